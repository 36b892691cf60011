"""NIR Graph -> Norse model (`from_nir`): Norse's neuron table for the torch toolkit's importer.

The model is a `nirbridge_torch` `ConvertedModel`: one time step per call, nested graphs and
recurrent edges run by the shared executor (a cycle is closed by a one-step delay, as in the
NumPy reference). Neuron nodes become Norse cells (`cells.NativeCell`) where Norse's own
semantics are the node's policy, and the toolkit's `PolicyNeuron` otherwise; with
`native_only=True` they are always stock Norse cells, and the differences are measured on a
probe and reported as approximate.
"""

from __future__ import annotations

import numpy as np

from nirbridge import convert
from nirbridge import ir as g
from nirbridge.backends.base import BuildPlan, NodePlan, Support
from nirbridge.report import Gap
from nirbridge.semantics import Policy
from nirbridge.topology import flatten
from nirbridge_torch.cells import PolicyNeuron
from nirbridge_torch.executor import run_sequence
from nirbridge_torch.importing import ConvertedModel
from nirbridge_torch.importing import build_model as build_converted

from .cells import NativeCell, native_reason

NEURONS = (g.I, g.IF, g.LI, g.LIF, g.CubaLI, g.CubaLIF)
NATIVE_CELL = {"IF": "norse.torch.IAFCell", "LIF": "norse.torch.LIFBoxCell", "LI": "norse.torch.LIBoxCell",
               "CubaLIF": "norse.torch.LIFCell", "CubaLI": "norse.torch.LICell"}
POLICY_CELL = "nirbridge_torch PolicyNeuron (the policy's equations, bit for bit the reference)"


class NorseGraph(ConvertedModel):
    """A NIR graph as Norse cells and torch layers (see `ConvertedModel`)."""


def plan_neuron(name: str, node: g.Node, policy: Policy, *, native_only: bool) -> NodePlan:
    """How one neuron node is carried under its effective `policy`: exact with a stock Norse
    cell, exact with the policy neuron, approximate (native_only), or unsupported."""
    why = native_reason(node, policy)
    if not why:
        return NodePlan(name, node, policy, Support("exact", maps_to=NATIVE_CELL[node.type]), lambda: NativeCell(node, policy))
    if not native_only:
        return NodePlan(name, node, policy, Support("exact", maps_to=POLICY_CELL, reason=f"not native to Norse: {why}"), lambda: PolicyNeuron(node, policy))
    if isinstance(node, g.I):
        return NodePlan(name, node, policy, Support("unsupported", reason="Norse has no plain integrator (I)", suggestion="convert with native_only=False"))
    support = Support("approximate", maps_to=NATIVE_CELL[node.type], reason=why, suggestion="convert with native_only=False for an exact cell")
    return NodePlan(name, node, policy, support, lambda: NativeCell(node, policy))


def build_model(plan: BuildPlan, *, native_only: bool, probe=None) -> NorseGraph:
    """The Norse model of a plan. With `native_only`, the approximate nodes get `measured` in
    the plan's report: how many of their spikes differ from the exact model on `probe`."""
    model = build_converted(plan, NorseGraph)
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
    from .backend import NorseBackend

    x = probe_input(graph) if probe is None else np.asarray(probe)
    names = [gap.node for gap in model.report.approximate if gap.node_type in ("IF", "LIF", "CubaLIF")]
    exact = convert(graph, to=NorseBackend(), policy=policy)
    ours = run_sequence(model, x, record=names)
    want = run_sequence(exact, x, record=names)
    gaps = []
    for gap in model.report.gaps:
        if gap.node in names:
            a, b = ours.states[gap.node]["spikes"], want.states[gap.node]["spikes"]
            gap = Gap(gap.node, gap.node_type, gap.status, gap.maps_to,
                      f"{gap.reason}; exact firing rate on the probe {float(b.mean()):.3f}", gap.suggestion, float(np.mean(a != b)))
        gaps.append(gap)
    model.report.gaps = gaps
    model.report.notes.append(f"measured against the exact model on a probe input of shape {tuple(x.shape)}")
