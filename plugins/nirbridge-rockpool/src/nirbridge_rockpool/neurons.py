"""NIR neuron node -> stock Rockpool module, stepped once per call: Rockpool's neuron table for
the torch toolkit's importer.

The adapter feeds the module `x' = gain x + leak` (the reference's `u = g x + c v_leak`, from
`nirbridge.semantics.step_constants`), and `LIFNeuronTorch` (bias 0, noise 0) steps
`v = alpha v + x'`, `n = (v >= theta) floor(v / theta)` capped at `max_spikes_per_dt`,
`v = v - n theta`: the reference's float32 operations in its order. Its alpha is its own
float32 `exp(-dt/tau_mem)`: tau_mem is the float32 value nearest the node's for which that
is the reference's decay (IF: tau_mem = inf, alpha = 1).

    IF, LIF  -> LIFNeuronTorch     spikes single / multi with max_spikes m / multi:
                                   max_spikes_per_dt 1 / m / float32 max

Rockpool's modules keep only the first batch element's state between calls, so the adapter
holds the batch's membrane and hands it to the module at every step. LIFNeuronTorch has no
`gt` threshold, no reset other than subtract in the same step, no floor and no start other
than 0; `ExpSynTorch` and `LIFTorch`'s synapse compute `beta (i + x)`, not the reference's
`a I + g x` (equal up to the last bit): I, LI, CubaLI, CubaLIF and those IF/LIF nodes run on the
toolkit's PolicyNeuron.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import torch
from rockpool.nn.modules.torch import LIFNeuronTorch
from rockpool.nn.modules.torch import lif_neuron_torch as _lnt

from nirbridge import ir as g
from nirbridge.backends.base import NodePlan, Support
from nirbridge.semantics import Policy, current_gain, step_constants, tau_from_decay
from nirbridge_torch.cells import PolicyNeuron
from nirbridge_torch.importing import ConvertedModel, like
from nirbridge_torch.layers import compact

POLICY_CELL = "nirbridge_torch PolicyNeuron (the policy's equations, bit for bit the reference)"
LAYER = "rockpool LIFNeuronTorch"
F32_MAX = float(np.finfo(np.float32).max)


class RockpoolGraph(ConvertedModel):
    """A NIR graph as Rockpool modules and torch layers (see `ConvertedModel`)."""


@dataclass
class Native:
    """How a node runs on a stock LIFNeuronTorch, or `problem`: why it cannot."""

    problem: str = ""
    kwargs: dict = field(default_factory=dict)
    gain: np.ndarray | None = None
    leak: np.ndarray | None = None


def _f32(x) -> np.ndarray | None:
    return None if x is None else np.asarray(x, dtype=np.float32)


def rockpool_tau(alpha: np.ndarray, dt: float) -> np.ndarray | None:
    """float32 tau_mem with Rockpool's float32 `exp(-dt / tau_mem)` equal to `alpha` (1: inf),
    searched within a few ulps of -dt/ln(alpha); None where some alpha has none."""
    alpha = np.asarray(alpha, np.float32)
    with np.errstate(divide="ignore"):
        start = np.where(alpha < 1, -dt / np.log(alpha.astype(np.float64)), np.inf).astype(np.float32)
    tau, found = start.copy(), np.zeros(alpha.shape, bool)
    lo, hi = start, start
    for _ in range(8):
        for c in (lo, hi):
            got = _lnt.tau_to_decay(dt, torch.from_numpy(c.copy())).numpy()
            ok = (got == alpha) & ~found
            tau, found = np.where(ok, c, tau), found | ok
        lo, hi = np.nextafter(lo, np.float32(0)), np.nextafter(hi, np.float32(np.inf))
    return tau if found.all() else None


def native_problem(node: g.Node, p: Policy) -> str:
    """Why a stock LIFNeuronTorch cannot compute `node` under its effective policy `p` ('' if it can)."""
    if node.type not in ("IF", "LIF"):
        what = {"LI": "ExpSynTorch computes beta (i + x)", "CubaLIF": "LIFTorch's synapse computes beta (i + x)",
                "CubaLI": "Rockpool has no current-based leaky integrator", "I": "Rockpool has no integrator"}[node.type]
        return f"{what}, not the reference's a I + g x (equal up to the last bit)" if node.type in ("LI", "CubaLIF") else what
    if p.threshold != "ge":
        return "Rockpool fires on v >= threshold (policy asks for >)"
    if p.reset != "subtract" or p.reset_timing != "immediate":
        return "Rockpool subtracts the threshold in the step it fires (policy resets otherwise)"
    if p.v_min is not None:
        return "Rockpool has no potential floor"
    if p.initial_v != "zero" and np.any(getattr(node, p.initial_v, 0)):
        return f"Rockpool modules start at v = 0 (policy starts at {p.initial_v})"
    if np.any(np.asarray(node.v_threshold) <= 0):
        return "Rockpool counts floor(v / threshold) spikes, which needs thresholds > 0"
    return ""


def native(node: g.Node, p: Policy) -> Native:
    """The stock module of `node` under its effective policy `p` (see the module doc)."""
    problem = native_problem(node, p)
    if problem:
        return Native(problem)
    k = step_constants(node, p)
    alpha = np.ones_like(np.asarray(node.r, np.float32)) if node.type == "IF" else _f32(k.a)
    tau = rockpool_tau(np.broadcast_to(alpha, np.shape(node.v_threshold)), p.dt)
    if tau is None:
        return Native("no float32 tau_mem gives Rockpool's exp(-dt/tau_mem) the reference's decay")
    cap = 1 if p.spikes == "single" else F32_MAX if p.max_spikes is None else p.max_spikes
    kwargs = dict(shape=(int(np.size(node.v_threshold)),), tau_mem=torch.from_numpy(tau.reshape(-1)),
                  threshold=torch.from_numpy(_f32(node.v_threshold).reshape(-1).copy()), bias=0.0, dt=p.dt,
                  max_spikes_per_dt=torch.tensor(float(cap)))
    gain = None if np.all(k.gain == 1) else _f32(k.gain)
    leak = None if k.leak is None or not np.any(k.leak) else _f32(k.leak)
    return Native(kwargs=kwargs, gain=gain, leak=leak)


class RockpoolNeuron(torch.nn.Module):
    """A LIFNeuronTorch stepped once per call on `x' = gain x + leak`; outputs its spike counts.
    The batch's membrane lives here until `reset_state()` (Rockpool keeps batch 0's only)."""

    def __init__(self, layer: LIFNeuronTorch, shape: tuple[int, ...], *, gain=None, leak=None):
        super().__init__()
        self.layer = layer.to_torch()
        self.shape = tuple(shape)
        self.gain = None if gain is None else torch.nn.Parameter(compact(gain))
        self.register_buffer("leak", None if leak is None else compact(leak))
        self.now = SimpleNamespace(v=None, out=None)  # per-step state: no nn.Module.__setattr__ per step

    def reset_state(self) -> None:
        self.now.v = self.now.out = None
        self.layer.reset_state()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gain is not None:
            x = x * self.gain
        if self.leak is not None:
            x = x + self.leak
        batch = x.shape[0]
        flat = x.reshape(batch, 1, -1)
        if self.now.v is not None and self.now.v.shape[0] == batch:
            self.layer._buffers["vmem"] = self.now.v  # the module broadcasts it over the batch (ones * v)
        else:
            self.layer.reset_state()
        out, _, record = self.layer.evolve(flat, record=True)
        self.now.v = record["vmem"][:, 0]
        self.now.out = out[:, 0].reshape(batch, *self.shape)
        return self.now.out

    def record_state(self) -> dict[str, torch.Tensor]:
        v = None if self.now.v is None else self.now.v.reshape(-1, *self.shape)
        return {"v": v, "spikes": self.now.out}

    def to_node(self, node: g.Node, p: Policy) -> g.Node:
        """`node` with the module's current parameters (the inverse of `native`)."""
        layer = self.layer
        gain = 1.0 if self.gain is None else self.gain.detach().cpu().numpy().astype(np.float64)
        leak = 0.0 if self.leak is None else self.leak.cpu().numpy().astype(np.float64)
        impulse = p.input == "impulse"
        fields = {"v_threshold": layer.threshold.detach().reshape(np.shape(node.v_threshold))}
        if node.type == "IF":
            fields["r"] = gain if impulse else gain / p.dt
        else:
            alpha = _lnt.tau_to_decay(layer.dt, layer.tau_mem).detach().cpu().numpy().astype(np.float64).reshape(np.shape(node.tau))
            tau = tau_from_decay(alpha, p.dt, p.integration)
            c = current_gain(tau, p.dt, p.integration)
            fields |= {"tau": tau, "r": gain if impulse else gain / c, "v_leak": leak / c}
        return node.model_copy(update={k: like(v, getattr(node, k)) for k, v in fields.items()})


def plan_neuron(name: str, node: g.Node, policy: Policy, graph: g.Graph) -> NodePlan:
    """A stock LIFNeuronTorch where Rockpool computes the node's policy, else the policy neuron."""
    plan = native(node, policy)
    if plan.problem:
        support = Support("exact", maps_to=POLICY_CELL, reason=f"not native to Rockpool: {plan.problem}")
        return NodePlan(name, node, policy, support, lambda: PolicyNeuron(node, policy))
    extra = [what for what, value in (("input gain", plan.gain), ("leak", plan.leak)) if value is not None]
    text = LAYER + (" (tau_mem = inf)" if node.type == "IF" else "") + (f" (+ {' and '.join(extra)} in front)" if extra else "")
    shape = tuple(np.shape(node.v_threshold))
    return NodePlan(name, node, policy, Support("exact", maps_to=text),
                    lambda: RockpoolNeuron(LIFNeuronTorch(**plan.kwargs), shape, gain=plan.gain, leak=plan.leak), detail=plan)
