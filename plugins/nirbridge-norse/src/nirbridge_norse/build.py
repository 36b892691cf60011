"""NIR Graph -> Norse model (`from_nir`).

The model is a `nirbridge_torch.GraphModule`: one time step per call, nested graphs and
recurrent edges run by the shared executor (a cycle is closed by a one-step delay, as in the
NumPy reference). Neuron nodes become Norse cells (`cells.NativeCell`) where Norse's own
semantics are the node's policy, and `cells.PolicyCell` (built on Norse's functional
threshold and reset) otherwise; with `native_only=True` they are always stock Norse cells
and the differences are reported as approximate.
"""

from __future__ import annotations

import numpy as np

from nirbridge import convert
from nirbridge import ir as g
from nirbridge.backends.base import BuildPlan, NodePlan, Support
from nirbridge.errors import PolicyError
from nirbridge.report import Gap, GapReport
from nirbridge.semantics import Policy
from nirbridge.topology import flatten
from nirbridge_torch import GraphModule, build_stateless

from .cells import NativeCell, PolicyCell, native_reason

NEURONS = (g.I, g.IF, g.LI, g.LIF, g.CubaLI, g.CubaLIF)
STATELESS = (g.Affine, g.Linear, g.Scale, g.Conv1d, g.Conv2d, g.Flatten, g.SumPool2d, g.AvgPool2d, g.Threshold, g.Delay)

NATIVE_CELL = {"IF": "norse.torch.IAFCell", "LIF": "norse.torch.LIFBoxCell", "LI": "norse.torch.LIBoxCell",
               "CubaLIF": "norse.torch.LIFCell", "CubaLI": "norse.torch.LICell"}
POLICY_CELL = "nirbridge_norse.PolicyCell (exact cell on norse.torch.functional threshold/reset)"
STATELESS_MAPS = {
    "Affine": "torch.nn.Linear", "Linear": "torch.nn.Linear (no bias)", "Scale": "nirbridge_torch Scale",
    "Conv1d": "torch.nn.Conv1d", "Conv2d": "torch.nn.Conv2d", "Flatten": "torch.nn.Flatten",
    "SumPool2d": "avg_pool2d with divisor 1", "AvgPool2d": "torch.nn.AvgPool2d", "Threshold": "nirbridge_torch Threshold",
    "Delay": "nirbridge_torch Delay (ring buffer)",
}


class NorseGraph(GraphModule):
    """A NIR graph as Norse cells and torch layers (see `GraphModule`). Keeps the graph and
    policy it was built from (`source_graph`, `policy`) and the conversion's `report`."""

    def __init__(self, graph: g.Graph, modules, *, policy: Policy, report: GapReport, source_graph: g.Graph):
        super().__init__(graph, modules)
        self.policy = policy
        self.report = report
        self.source_graph = source_graph


def plan_node(name: str, node: g.Node, policy: Policy, *, native_only: bool) -> NodePlan:
    """How one (flat) node is carried under its effective `policy`: exact with a stock Norse
    cell, exact with a policy cell, approximate (native_only), or unsupported."""
    if isinstance(node, STATELESS):
        if isinstance(node, g.Delay):
            try:
                from nirbridge_torch.layers import delay_steps

                delay_steps(node, policy.dt, name)
            except PolicyError as exc:
                return NodePlan(name, node, policy, Support("unsupported", reason=str(exc), suggestion="choose a dt that divides every delay"))
        return NodePlan(name, node, policy, Support("exact", maps_to=STATELESS_MAPS[node.type]),
                        lambda: build_stateless(node, policy=policy, name=name))
    if isinstance(node, NEURONS):
        why = native_reason(node, policy)
        if not why:
            return NodePlan(name, node, policy, Support("exact", maps_to=NATIVE_CELL[node.type]), lambda: NativeCell(node, policy))
        if native_only:
            if isinstance(node, g.I):
                return NodePlan(name, node, policy, Support("unsupported", reason="Norse has no plain integrator (I)", suggestion="convert with native_only=False"))
            support = Support("approximate", maps_to=NATIVE_CELL[node.type], reason=why, suggestion="convert with native_only=False for an exact cell")
            return NodePlan(name, node, policy, support, lambda: NativeCell(node, policy))
        return NodePlan(name, node, policy, Support("exact", maps_to=POLICY_CELL, reason=f"not native to Norse: {why}"), lambda: PolicyCell(node, policy))
    return NodePlan(name, node, policy, Support("unsupported", reason=f"norse has no {node.type} node"))


def build_model(plan: BuildPlan, *, native_only: bool, probe=None) -> NorseGraph:
    """The Norse model of a plan. With `native_only`, the approximate nodes get `measured` in
    the plan's report: how many of their spikes differ from the exact model on `probe`."""
    modules = {name: p.build() for name, p in plan.nodes.items() if p.build is not None}
    model = NorseGraph(plan.graph, modules, policy=plan.policy, report=plan.report, source_graph=plan.source)
    if native_only and plan.report.approximate:
        measure(model, plan.graph, plan.policy, probe)
    return model


def probe_input(graph: g.Graph, *, steps: int = 200, batch: int = 4, seed: int = 0) -> np.ndarray:
    """A deterministic probe: Bernoulli(0.2) spikes shaped (steps, batch, *input shape)."""
    shape = graph.input_shape() or tuple(int(n) for n in next(iter(flatten(graph).inputs().values())).shape)
    rng = np.random.default_rng(seed)
    return (rng.random((steps, batch, *shape)) < 0.2).astype(np.float32)


def measure(model: NorseGraph, graph: g.Graph, policy: Policy, probe=None) -> None:
    """Fill `measured` of the approximate gaps: the fraction of spikes of that node that
    differ from the exact model on `probe` (a generated input when None)."""
    from nirbridge_torch import run_sequence

    x = probe_input(graph) if probe is None else np.asarray(probe)
    names = [gap.node for gap in model.report.approximate if gap.node_type in ("IF", "LIF", "CubaLIF")]
    from .backend import NorseBackend

    exact = convert(graph, to=NorseBackend(), policy=policy)
    ours = run_sequence(model, x, record=names)
    want = run_sequence(exact, x, record=names)
    gaps = []
    for gap in model.report.gaps:
        if gap.node in names:
            a, b = ours.states[gap.node]["spikes"], want.states[gap.node]["spikes"]
            rate = float(b.mean())
            gap = Gap(gap.node, gap.node_type, gap.status, gap.maps_to,
                      f"{gap.reason}; exact firing rate on the probe {rate:.3f}", gap.suggestion,
                      float(np.mean(a != b)))
        gaps.append(gap)
    model.report.gaps = gaps
    model.report.notes.append(f"measured against the exact model on a probe input of shape {tuple(x.shape)}")
