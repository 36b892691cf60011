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
import torch

from nirbridge import ir as g
from nirbridge.errors import GapError, PolicyError
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


def plan_node(name: str, node: g.Node, policy: Policy, *, native_only: bool) -> Gap:
    """How one (flat) node is carried: exact with a stock Norse cell, exact with a policy
    cell, approximate (native_only), or unsupported."""
    if isinstance(node, (g.Input, g.Output)):
        return Gap(name, node.type, "exact", maps_to=f"{node.type.lower()} of the model")
    if isinstance(node, g.Graph):
        return Gap(name, node.type, "exact", maps_to="nested graph, run by the shared executor")
    if isinstance(node, STATELESS):
        if isinstance(node, g.Delay):
            try:
                from nirbridge_torch.layers import delay_steps

                delay_steps(node, policy.dt, name)
            except PolicyError as exc:
                return Gap(name, node.type, "unsupported", reason=str(exc), suggestion="choose a dt that divides every delay")
        return Gap(name, node.type, "exact", maps_to=STATELESS_MAPS[node.type])
    if isinstance(node, NEURONS):
        eff = policy.for_node(name, node.type)
        why = native_reason(node, eff)
        if not why:
            return Gap(name, node.type, "exact", maps_to=NATIVE_CELL[node.type])
        if native_only:
            if isinstance(node, g.I):
                return Gap(name, node.type, "unsupported", reason="Norse has no plain integrator (I)", suggestion="convert with native_only=False")
            return Gap(name, node.type, "approximate", maps_to=NATIVE_CELL[node.type], reason=why,
                       suggestion="convert with native_only=False for an exact cell")
        return Gap(name, node.type, "exact", maps_to=POLICY_CELL, reason=f"not native to Norse: {why}")
    return Gap(name, node.type, "unsupported", reason=f"norse has no {node.type} node")


def build_module(name: str, node: g.Node, policy: Policy, *, native_only: bool) -> torch.nn.Module:
    if isinstance(node, STATELESS):
        return build_stateless(node, policy=policy.for_node(name, node.type), name=name)
    eff = policy.for_node(name, node.type)
    if isinstance(node, g.I) or (native_reason(node, eff) and not native_only):
        return PolicyCell(node, eff)
    return NativeCell(node, eff)


def from_nir(graph: g.Graph, *, policy: Policy | None = None, native_only: bool = False, probe=None) -> NorseGraph:
    """Build the Norse model of `graph` under `policy` (default: the policy in the graph's
    metadata, else the `norse` preset). Raises `GapError` listing every node that cannot be
    built. With `native_only`, stock Norse cells only; nodes whose policy Norse lacks are
    `approximate`, measured on `probe` (or a generated input) against the exact model."""
    if not isinstance(graph, g.Graph):
        graph = g.Graph.from_nir(graph)
    if policy is None:
        policy = Policy.from_metadata(graph.metadata) or Policy.preset("norse")
    flat = flatten(graph)
    gaps = [plan_node(name, node, policy, native_only=native_only) for name, node in flat.nodes.items()]
    report = GapReport(gaps, source="nir", target="norse", policy=policy,
                       notes=[f"dt={policy.dt:g} s; {'stock Norse cells only' if native_only else 'exact mode'}"])
    if report.unsupported:
        raise GapError(report)
    modules = {
        name: build_module(name, node, policy, native_only=native_only)
        for name, node in flat.nodes.items()
        if not isinstance(node, (g.Input, g.Output))
    }
    model = NorseGraph(flat, modules, policy=policy, report=report, source_graph=graph)
    if native_only and report.approximate:
        measure(model, graph, policy, probe)
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
    exact = from_nir(graph, policy=policy, native_only=False)
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
