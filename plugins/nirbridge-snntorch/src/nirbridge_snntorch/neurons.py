"""NIR neuron node -> snnTorch module (with `init_hidden=True`) in a thin adapter.

The adapter computes `x' = gain * x + bias` in front of the snnTorch neuron when the node's
gain is not 1 or it has a leak towards v_leak != 0, and reads the neuron's states back in NIR
terms (`record_state`). For a LIF node under a node policy `p` (c, a from `p.integration`):

    Leaky(beta = a)                 x' = g x + c v_leak,  g = c r (current) or r (impulse)
    Synaptic(alpha = a_syn, beta = a_mem)   x' = g_syn x, when c_mem r = 1 (snnTorch's convention)
    LI / CubaLI: the same with threshold = inf and reset "none", output v
    IF / I: Leaky(beta = 1), g = dt r (current) or r (impulse)

and the reset mechanism/reset_delay that gives the policy's reset (see `semantics.py`):
subtract+next_step: subtract, reset_delay=True; to_reset+immediate (v_reset = 0): zero with
reset_delay=False; to_reset+next_step (v_reset = 0): Synaptic zero with reset_delay=True;
none: none. `native_plan` says why a node cannot be native; callers then use
`nirbridge_torch.cells.PolicyNeuron`. `SnnTorchNeuron.to_node` reads trained values back
(tau from beta and alpha, r and w_in from the input gain, v_leak from the input bias).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import snntorch as snn
import torch

from nirbridge import ir as g
from nirbridge.semantics import Policy, current_gain, step_constants, tau_from_decay
from nirbridge_torch.importing import like
from nirbridge_torch.layers import compact

#: gains within this of 1 are treated as 1 (the float32 rounding of tau/dt * dt/tau)
UNIT_TOL = 1e-6


@dataclass
class Plan:
    """How a node runs natively: the snnTorch class and its arguments, input gain and bias,
    `problem` when it cannot."""

    cls: type | None = None
    kwargs: dict | None = None
    gain: np.ndarray | None = None
    bias: np.ndarray | None = None
    output_v: bool = False
    problem: str = ""
    text: str = ""


def _f32(x) -> np.ndarray:
    return np.array(x, dtype=np.float32)


def native_plan(node: g.Node, policy: Policy) -> Plan:
    """How to run a neuron node with a real snnTorch module under the node's effective policy."""
    kind = node.type
    p = policy
    spiking = kind in ("LIF", "IF", "CubaLIF")
    if p.initial_v != "zero" and np.any(getattr(node, p.initial_v, 0)):
        return Plan(problem=f"snnTorch neurons start at mem = 0 (policy starts at {p.initial_v})")
    if spiking:
        if p.spikes == "multi":
            return Plan(problem="snnTorch emits at most one spike per step (policy counts several)")
        if p.v_min is not None:
            return Plan(problem="snnTorch has no floor on the membrane potential (policy has v_min)")
        if p.threshold != "gt":
            return Plan(problem="snnTorch fires on mem > threshold only (policy asks for >=)")
        if np.any(node.v_threshold < 0):
            return Plan(problem="snnTorch resets at step 0 when the threshold is negative")
        if p.reset == "subtract" and p.reset_timing == "immediate":
            return Plan(problem="snnTorch subtracts one step late (reset_delay=True) or with a double-reset guard "
                        "(reset_delay=False); immediate subtraction is not an snnTorch neuron")
        if p.reset == "to_reset" and np.any(node.v_reset != 0):
            return Plan(problem="snnTorch resets to zero only (v_reset != 0)")
        if p.reset == "to_reset" and p.reset_timing == "next_step" and kind != "CubaLIF":
            return Plan(problem="snnTorch Leaky zeroes immediately; a one-step-late reset to zero is not a Leaky")
    mechanism = {"subtract": "subtract", "to_reset": "zero", "none": "none"}[p.reset] if spiking else "none"
    delay = not (p.reset == "to_reset" and p.reset_timing == "immediate")
    common = dict(init_hidden=True, reset_mechanism=mechanism)  # trainable: beta, alpha, threshold are Parameters
    k = step_constants(node, p)  # float64, rounded once below, as the reference rounds them
    if kind in ("LIF", "LI"):
        if np.any((k.a < 0) | (k.a > 1)):
            return Plan(problem="tau < dt gives a negative decay 1 - dt/tau; snnTorch clamps beta to [0, 1]")
        thr = node.v_threshold if spiking else np.full(node.tau.shape, np.inf, dtype=np.float32)
        kwargs = dict(beta=compact(k.a), threshold=compact(thr), reset_delay=delay,
                      learn_beta=True, learn_threshold=spiking, **common)
        return Plan(snn.Leaky, kwargs, _f32(k.gain), _f32(k.leak), output_v=not spiking, text="snnTorch Leaky")
    if kind in ("IF", "I"):
        thr = node.v_threshold if spiking else np.full(node.r.shape, np.inf, dtype=np.float32)
        kwargs = dict(beta=compact(np.ones(node.r.shape)), threshold=compact(thr), reset_delay=delay,
                      learn_threshold=spiking, **common)
        return Plan(snn.Leaky, kwargs, _f32(k.gain), None, output_v=not spiking, text="snnTorch Leaky(beta=1)")
    # CubaLIF / CubaLI
    if p.current_order != "current_first":
        return Plan(problem="snnTorch Synaptic drives v with this step's current (current_first)")
    if np.any(node.v_leak != 0):
        return Plan(problem="snnTorch Synaptic has no leak towards v_leak != 0")
    if np.any((k.a_syn < 0) | (k.a_syn > 1) | (k.a < 0) | (k.a > 1)):
        return Plan(problem="tau < dt gives a negative decay 1 - dt/tau; snnTorch clamps alpha and beta to [0, 1]")
    if not np.allclose(k.c_r, 1, rtol=0, atol=UNIT_TOL):
        # Synaptic adds syn to mem unscaled; carrying k = c_mem r != 1 would need a rescaled
        # state (mem = v / k, threshold / k), which rounds differently from the reference and
        # flips spikes within an ulp of threshold
        return Plan(problem="snnTorch Synaptic adds the current to the membrane unscaled (c_mem r != 1)")
    thr = node.v_threshold if spiking else np.full(node.tau_syn.shape, np.inf, dtype=np.float32)
    kwargs = dict(alpha=compact(k.a_syn), beta=compact(k.a),
                  threshold=compact(thr), reset_delay=delay, learn_alpha=True, learn_beta=True,
                  learn_threshold=spiking, **common)
    return Plan(snn.Synaptic, kwargs, _f32(k.gain), None, output_v=not spiking, text="snnTorch Synaptic")


class SnnTorchNeuron(torch.nn.Module):
    """An snnTorch neuron (`init_hidden=True`) stepped once per call, with an optional input
    transform `x' = gain * x + bias`; outputs spikes (or v for LI/CubaLI/I)."""

    def __init__(self, neuron: torch.nn.Module, *, gain=None, bias=None, output_v: bool = False):
        super().__init__()
        self.neuron = neuron
        use_gain = gain is not None and not np.allclose(gain, 1, rtol=0, atol=UNIT_TOL)
        use_bias = bias is not None and np.any(bias != 0)
        self.gain = torch.nn.Parameter(compact(gain)) if use_gain else None
        self.register_buffer("bias", compact(bias) if use_bias else None)
        self.output_v = output_v
        self.now = SimpleNamespace(spikes=None)  # per-step state: no nn.Module.__setattr__ per step

    def reset_state(self) -> None:
        self.neuron.reset_mem()
        self.now.spikes = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gain is not None:
            x = x * self.gain
        if self.bias is not None:
            x = x + self.bias
        neuron = self.neuron
        spk = self.now.spikes = neuron(x)
        return neuron.mem if self.output_v else spk

    def record_state(self) -> dict[str, torch.Tensor]:
        state = {"v": self.neuron.mem}
        if hasattr(self.neuron, "syn"):
            state["I"] = self.neuron.syn
        if not self.output_v:
            state["spikes"] = self.now.spikes
        return state

    # -- back to NIR ------------------------------------------------------------------
    def to_node(self, node: g.Node, p: Policy) -> g.Node:
        """`node` with the neuron's current parameters (the inverse of `native_plan`)."""
        n = self.neuron
        gain = self.gain.detach().cpu().numpy().astype(np.float64) if self.gain is not None else 1.0
        bias = self.bias.cpu().numpy().astype(np.float64) if self.bias is not None else 0.0
        decayed = lambda a: tau_from_decay(a.detach().clamp(0, 1).cpu().numpy().astype(np.float64), p.dt, p.integration)  # noqa: E731
        if node.type in ("LIF", "LI"):
            tau = decayed(n.beta)
            c = current_gain(tau, p.dt, p.integration)
            fields = dict(tau=tau, r=gain if p.input == "impulse" else gain / c, v_leak=bias / c)
        elif node.type in ("IF", "I"):
            fields = dict(r=gain if p.input == "impulse" else gain / p.dt)
        else:
            tau_syn, tau_mem = decayed(n.alpha), decayed(n.beta)
            c_syn, c_mem = current_gain(tau_syn, p.dt, p.integration), current_gain(tau_mem, p.dt, p.integration)
            fields = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=1 / c_mem, w_in=gain if p.input == "impulse" else gain / c_syn)
        if "v_threshold" in type(node).model_fields:
            fields["v_threshold"] = n.threshold
        return node.model_copy(update={k: like(v, getattr(node, k)) for k, v in fields.items()})

    def held_node(self, name: str, node: g.Node) -> g.Node:
        """The recurrent node this RLeaky/RSynaptic holds, with current values."""
        rec = self.neuron.recurrent
        if isinstance(node, g.Scale):
            return node.model_copy(update={"scale": like(rec.V, node.scale)})
        return node.model_copy(update={"weight": like(rec.weight, node.weight)})


def build_native(plan: Plan, recurrent: torch.nn.Module | None = None) -> SnnTorchNeuron:
    """The adapter for a plan; with `recurrent` (a bias-free Linear/Conv2d or a V tensor) the
    neuron is an RLeaky/RSynaptic whose recurrence is that layer."""
    kwargs = dict(plan.kwargs)
    cls = plan.cls
    if recurrent is not None:
        cls = snn.RLeaky if cls is snn.Leaky else snn.RSynaptic
        if isinstance(recurrent, torch.Tensor):
            kwargs.update(all_to_all=False, V=recurrent.clone())
        elif isinstance(recurrent, torch.nn.Linear):
            kwargs.update(all_to_all=True, linear_features=recurrent.in_features)
        else:
            kwargs.update(all_to_all=True, conv2d_channels=recurrent.in_channels, kernel_size=recurrent.kernel_size)
    neuron = cls(**kwargs)
    if recurrent is not None and not isinstance(recurrent, torch.Tensor):
        neuron.recurrent = recurrent
    return SnnTorchNeuron(neuron, gain=plan.gain, bias=plan.bias, output_v=plan.output_v)
