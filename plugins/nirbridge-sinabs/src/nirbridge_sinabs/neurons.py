"""NIR neuron node -> stock Sinabs layer, stepped once per call: Sinabs' neuron table for the
torch toolkit's importer.

The adapter feeds the layer `x' = gain x + leak` (the reference's `u = g x + c v_leak`, from
`nirbridge.semantics.step_constants`), and the layer, built with `train_alphas=True` and
`alpha_mem = a` (the reference's float32 decay under any integration), steps `v = a v + x'`:
the reference's float32 operations in its order, so stock layers agree with it bit for bit.

    I    -> ExpLeak, alpha 1           v = v + x'                  output v
    IF   -> IAF                        v = v + x'
    LI   -> ExpLeak(norm_input=False)  v = a v + x'                output v
    LIF  -> LIF(norm_input=False)      v = a v + x'
    spikes single / multi / multi with max_spikes m:   SingleSpike / MultiSpike / MaxSpike(m)
    reset subtract / to_reset (v_reset 0) / none:      MembraneSubtract() / MembraneReset(0) /
                                                       MembraneSubtract(subtract_value=0)
    v_min m / "-v_threshold":                          min_v_mem = m / -v_threshold

Sinabs has no `gt` threshold, no next-step reset, no reset to v_reset != 0 (MembraneReset adds
its value to every neuron every step), no start other than 0, and a synapse that computes
`alpha_syn (i + x)` (not NIR's `a_syn I + g x`): those nodes run on the toolkit's PolicyNeuron.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import sinabs.layers as sl
import torch
from sinabs.activation import MaxSpike, MembraneReset, MembraneSubtract, MultiSpike, SingleSpike

from nirbridge import ir as g
from nirbridge.backends.base import NodePlan, Support
from nirbridge.semantics import Policy, current_gain, step_constants, tau_from_decay
from nirbridge_torch.cells import PolicyNeuron
from nirbridge_torch.importing import ConvertedModel, like
from nirbridge_torch.layers import compact

POLICY_CELL = "nirbridge_torch PolicyNeuron (the policy's equations, bit for bit the reference)"
LAYERS = {"I": "sinabs.layers.ExpLeak (alpha 1)", "IF": "sinabs.layers.IAF", "LI": "sinabs.layers.ExpLeak", "LIF": "sinabs.layers.LIF"}


class SinabsGraph(ConvertedModel):
    """A NIR graph as Sinabs layers and torch layers (see `ConvertedModel`)."""


@dataclass
class Native:
    """How a node runs on a stock Sinabs layer, or `problem`: why it cannot."""

    problem: str = ""
    kind: str = ""
    kwargs: dict = field(default_factory=dict)
    alpha: np.ndarray | None = None
    gain: np.ndarray | None = None
    leak: np.ndarray | None = None


def _f32(x) -> np.ndarray | None:
    return None if x is None else np.asarray(x, dtype=np.float32)


def native_problem(node: g.Node, p: Policy) -> str:
    """Why a stock Sinabs layer cannot compute `node` under its effective policy `p` ('' if it can)."""
    if node.type in ("CubaLI", "CubaLIF"):
        return "Sinabs' synapse decays the input in the step it arrives (i = alpha_syn (i + x)), not I = a_syn I + g x"
    if p.initial_v != "zero" and np.any(getattr(node, p.initial_v, 0)):
        return f"Sinabs layers start at v = 0 (policy starts at {p.initial_v})"
    if node.type in ("IF", "LIF"):
        if p.threshold != "ge":
            return "Sinabs fires on v >= threshold (policy asks for >)"
        if p.reset_timing != "immediate":
            return "Sinabs resets in the step it fires (policy resets one step late)"
        if p.reset == "to_reset" and np.any(node.v_reset != 0):
            return "Sinabs' MembraneReset adds its value to every neuron every step: only a reset to 0 is a reset (v_reset != 0)"
    return ""


def native(node: g.Node, p: Policy) -> Native:
    """The stock layer of `node` under its effective policy `p` (see the module doc)."""
    problem = native_problem(node, p)
    if problem:
        return Native(problem)
    k = step_constants(node, p)
    gain = None if np.all(k.gain == 1) else _f32(k.gain)
    leak = None if k.leak is None or not np.any(k.leak) else _f32(k.leak)
    if node.type in ("I", "LI"):
        alpha = np.ones_like(node.r) if node.type == "I" else k.a
        return Native(kind=node.type, alpha=_f32(alpha), gain=gain, leak=leak)
    spike_fn = SingleSpike if p.spikes == "single" else MultiSpike if p.max_spikes is None else MaxSpike(p.max_spikes)
    reset_fn = {"subtract": MembraneSubtract(), "to_reset": MembraneReset(0.0), "none": MembraneSubtract(subtract_value=0.0)}[p.reset]
    floor = None if p.v_min is None else -node.v_threshold if p.v_min == "-v_threshold" else np.float32(p.v_min)
    kwargs = dict(spike_threshold=compact(node.v_threshold), spike_fn=spike_fn, reset_fn=reset_fn,
                  min_v_mem=None if floor is None else compact(floor))
    return Native(kind=node.type, kwargs=kwargs, alpha=None if node.type == "IF" else _f32(k.a), gain=gain, leak=leak)


def layer_of(plan: Native) -> torch.nn.Module:
    """The Sinabs layer of a plan (decay factors set as parameters: `train_alphas=True`)."""
    if plan.kind == "IF":
        return sl.IAF(**plan.kwargs)
    cls = sl.LIF if plan.kind == "LIF" else sl.ExpLeak
    layer = cls(tau_mem=1.0, train_alphas=True, norm_input=False, **plan.kwargs)
    layer.alpha_mem = torch.nn.Parameter(compact(plan.alpha))
    return layer


class SinabsNeuron(torch.nn.Module):
    """A Sinabs layer stepped once per call on `x' = gain x + leak`; outputs its spikes (v for
    ExpLeak). State lives in the layer until `reset_state()`."""

    def __init__(self, layer: torch.nn.Module, *, gain=None, leak=None):
        super().__init__()
        self.layer = layer
        self.gain = None if gain is None else torch.nn.Parameter(compact(gain))
        self.register_buffer("leak", None if leak is None else compact(leak))
        self.now = SimpleNamespace(out=None)  # per-step state: no nn.Module.__setattr__ per step

    def reset_state(self) -> None:
        # empty states: the next call makes zeros of its shape (Sinabs' reset_states keeps the
        # old shape, and a new batch size would then be resampled at random)
        for name, buffer in list(self.layer.named_buffers()):
            self.layer.register_buffer(name, torch.zeros(0, device=buffer.device))
        self.now.out = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gain is not None:
            x = x * self.gain
        if self.leak is not None:
            x = x + self.leak
        out = self.now.out = self.layer(x.unsqueeze(1)).squeeze(1)
        return out

    def record_state(self) -> dict[str, torch.Tensor]:
        state = {"v": self.layer.v_mem}
        if self.layer.spike_fn is not None:
            state["spikes"] = self.now.out
        return state

    def to_node(self, node: g.Node, p: Policy) -> g.Node:
        """`node` with the layer's current parameters (the inverse of `native`)."""
        layer = self.layer
        gain = 1.0 if self.gain is None else self.gain.detach().cpu().numpy().astype(np.float64)
        leak = 0.0 if self.leak is None else self.leak.cpu().numpy().astype(np.float64)
        impulse = p.input == "impulse"
        if node.type in ("I", "IF"):
            fields = {"r": gain if impulse else gain / p.dt}
        else:
            tau = tau_from_decay(layer.alpha_mem.detach().cpu().numpy().astype(np.float64), p.dt, p.integration)
            c = current_gain(tau, p.dt, p.integration)
            fields = {"tau": tau, "r": gain if impulse else gain / c, "v_leak": leak / c}
        if node.type in ("IF", "LIF"):
            fields["v_threshold"] = layer.spike_threshold
        return node.model_copy(update={k: like(v, getattr(node, k)) for k, v in fields.items()})


def plan_neuron(name: str, node: g.Node, policy: Policy, graph: g.Graph) -> NodePlan:
    """A stock Sinabs layer where Sinabs computes the node's policy, else the policy neuron."""
    plan = native(node, policy)
    if plan.problem:
        support = Support("exact", maps_to=POLICY_CELL, reason=f"not native to Sinabs: {plan.problem}")
        return NodePlan(name, node, policy, support, lambda: PolicyNeuron(node, policy))
    extra = [what for what, value in (("input gain", plan.gain), ("leak", plan.leak)) if value is not None]
    text = LAYERS[node.type] + (f" (+ {' and '.join(extra)} in front)" if extra else "")
    return NodePlan(name, node, policy, Support("exact", maps_to=text),
                    lambda: SinabsNeuron(layer_of(plan), gain=plan.gain, leak=plan.leak), detail=plan)
