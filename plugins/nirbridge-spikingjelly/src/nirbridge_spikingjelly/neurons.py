"""NIR neuron node -> stock SpikingJelly node (single-step mode), stepped once per call:
SpikingJelly's neuron table for the torch toolkit's importer.

With `g` the reference's input gain and `x' = g x` (applied in front when g != 1):

    IF  -> IFNode(v_threshold, v_reset)        h = v + x'          (bit for bit the reference)
    LIF -> LIFNode(tau / dt, decay_input, ...) h = v + (x - (v - v0)) / tau   decay_input=True, g = dt/tau
                                               h = v - (v - v0) / tau + x'   decay_input=False
    reset to_reset: v_reset = node's v_reset (v0 = v_leak must equal it); subtract: v_reset=None (v0 = 0)

LIFNode is the reference's Euler equation in SpikingJelly's float32 order (a division by tau
instead of a multiplication by a = 1 - dt/tau): potentials differ in the last bits, spikes only
where a potential is within rounding of the threshold. SpikingJelly has one tau, threshold and
reset per layer, `>=` only, immediate resets, one spike per step, no floor, v starting at
v_reset (hard) or 0 (soft), no exact integration and no LI/I/CubaLI node: the other nodes run
on the toolkit's PolicyNeuron.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
from spikingjelly.activation_based import neuron

from nirbridge import ir as g
from nirbridge.backends.base import NodePlan, Support
from nirbridge.semantics import Policy, step_constants
from nirbridge_torch.cells import PolicyNeuron
from nirbridge_torch.importing import ConvertedModel, like
from nirbridge_torch.layers import compact

POLICY_CELL = "nirbridge_torch PolicyNeuron (the policy's equations, bit for bit the reference)"
#: relative tolerance for a gain to count as 1/tau (decay_input=True) or 1
GAIN_TOL = 1e-6


class SpikingJellyGraph(ConvertedModel):
    """A NIR graph as SpikingJelly nodes and torch layers (see `ConvertedModel`)."""


@dataclass
class Native:
    """A stock node's arguments and input gain, or `problem`: why there is none."""

    problem: str = ""
    kwargs: dict | None = None
    gain: np.ndarray | None = None
    text: str = ""


def _one(value) -> float | None:
    arr = np.asarray(value).reshape(-1)
    return float(arr[0]) if arr.size and np.all(arr == arr[0]) else None


def native(node: g.Node, p: Policy) -> Native:
    """The stock node of `node` under its effective policy `p` (see the module doc)."""
    if node.type not in ("IF", "LIF"):
        return Native(f"SpikingJelly has no stock {node.type} node with NIR's equations")
    rules = [(p.threshold == "ge", "SpikingJelly fires on v >= threshold (policy asks for >)"),
             (p.reset_timing == "immediate", "SpikingJelly resets in the step it fires"),
             (p.reset in ("to_reset", "subtract"), "SpikingJelly neurons always reset"),
             (p.spikes == "single", "SpikingJelly emits one spike per step"),
             (p.v_min is None, "SpikingJelly has no floor on the potential"),
             (node.type == "IF" or p.integration == "euler", "LIFNode integrates with forward Euler (policy: exact)")]
    fields = {f: _one(getattr(node, f)) for f in node.float_fields}
    rules.append((None not in fields.values(), "SpikingJelly holds one tau, threshold and reset per layer (these differ between neurons)"))
    why = [reason for ok, reason in rules if not ok]
    if why:
        return Native(why[0])
    hard = p.reset == "to_reset"
    v0 = fields["v_reset"] if hard else 0.0
    start = {"zero": 0.0, "v_leak": fields.get("v_leak", 0.0), "v_reset": fields["v_reset"]}[p.initial_v]
    if start != v0:
        return Native(f"SpikingJelly starts v at {'v_reset' if hard else '0 (soft reset)'}; the policy starts at {p.initial_v} = {start}")
    kwargs = dict(v_threshold=fields["v_threshold"], v_reset=v0 if hard else None, step_mode="s")
    gain = np.asarray(step_constants(node, p).gain, np.float64)
    if node.type == "IF":
        return Native(kwargs=kwargs, gain=None if np.all(np.float32(gain) == 1) else np.float32(gain), text="spikingjelly IFNode")
    if fields["v_leak"] != v0:
        return Native("LIFNode leaks towards v_reset (hard reset) or 0 (soft reset), not towards this v_leak")
    tau = fields["tau"] / p.dt
    if not tau > 1:
        return Native(f"LIFNode needs tau > dt (tau/dt = {tau:g})")
    decay_input = bool(np.allclose(gain, 1 / tau, rtol=GAIN_TOL, atol=0))
    rest = None if decay_input or np.allclose(gain, 1, rtol=GAIN_TOL, atol=0) else np.float32(gain)
    return Native(kwargs=dict(tau=tau, decay_input=decay_input, **kwargs), gain=rest,
                  text=f"spikingjelly LIFNode(decay_input={decay_input}) (SpikingJelly's float32 order)")


class SpikingJellyNeuron(torch.nn.Module):
    """A SpikingJelly node in single-step mode fed `x' = gain x`; outputs its spikes."""

    def __init__(self, node: torch.nn.Module, gain=None):
        super().__init__()
        self.node = node
        self.gain = None if gain is None else torch.nn.Parameter(compact(gain))
        self.now = SimpleNamespace(out=None)  # per-step state: no nn.Module.__setattr__ per step

    def reset_state(self) -> None:
        self.node.reset()
        self.now.out = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.now.out = self.node(x if self.gain is None else x * self.gain)
        return out

    def record_state(self) -> dict[str, torch.Tensor]:
        return {"v": self.node.v, "spikes": self.now.out}

    def to_node(self, node: g.Node, p: Policy) -> g.Node:
        """`node` with the trained input gain (the only parameter) written back into r."""
        gain = 1.0 if self.gain is None else self.gain.detach().cpu().numpy().astype(np.float64)
        per_step = gain / self.node.tau if getattr(self.node, "decay_input", False) else gain
        c = p.dt if node.type == "IF" else p.dt / node.tau.astype(np.float64)
        r = per_step if p.input == "impulse" else per_step / c
        return node.model_copy(update={"r": like(r, node.r)})


def plan_neuron(name: str, node: g.Node, policy: Policy, graph: g.Graph) -> NodePlan:
    """A stock SpikingJelly node where SpikingJelly computes the node's policy, else the policy neuron."""
    plan = native(node, policy)
    if plan.problem:
        support = Support("exact", maps_to=POLICY_CELL, reason=f"not native to SpikingJelly: {plan.problem}")
        return NodePlan(name, node, policy, support, lambda: PolicyNeuron(node, policy))
    cls = neuron.IFNode if node.type == "IF" else neuron.LIFNode
    text = plan.text + (" (+ input gain in front)" if plan.gain is not None else "")
    return NodePlan(name, node, policy, Support("exact", maps_to=text),
                    lambda: SpikingJellyNeuron(cls(**plan.kwargs), plan.gain), detail=plan)
