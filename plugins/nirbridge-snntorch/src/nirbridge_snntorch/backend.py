"""The `snntorch` backend: snnTorch models <-> nirbridge graphs, spike for spike."""

from __future__ import annotations

from typing import Any

import numpy as np

from nirbridge import convert
from nirbridge.backends.base import Backend, BuildPlan, Handler, NodePlan, Support, exact
from nirbridge.errors import GapError
from nirbridge.ir import NEURON_TYPES, Graph
from nirbridge.result import SimulationResult
from nirbridge.semantics import Policy, with_policy

CELL = "a torch cell stepping the policy (nirbridge_torch.cells.PolicyNeuron) where snnTorch lacks the policy"


def _stateless(maps_to: str) -> Handler:
    def build(node, policy):
        from nirbridge_torch import build_stateless

        return build_stateless(node, policy=policy)

    return exact(maps_to, build)


def _neuron(maps_to: str) -> Handler:
    def plan(name, node, policy, graph) -> NodePlan:
        from .importer import plan_neuron

        return plan_neuron(name, node, policy, graph)

    return Handler(Support("exact", maps_to=maps_to), plan=plan)


class SnnTorchBackend(Backend):
    """Export traces an snnTorch model on a sample input; import builds snnTorch neurons
    (`init_hidden=True`) and torch layers run one step per call."""

    name = "snntorch"
    preset = "snntorch"
    description = "snnTorch 1.0 (Leaky, Synaptic, RLeaky, RSynaptic, Lapicque; torch layers)"
    handlers = {
        "Affine": _stateless("torch.nn.Linear"),
        "Linear": _stateless("torch.nn.Linear(bias=False)"),
        "Conv1d": _stateless("torch.nn.Conv1d"),
        "Conv2d": _stateless("torch.nn.Conv2d"),
        "Flatten": _stateless("torch.nn.Flatten"),
        "SumPool2d": _stateless("avg_pool2d with divisor 1 (nirbridge_torch)"),
        "AvgPool2d": _stateless("torch.nn.AvgPool2d"),
        "Scale": _stateless("elementwise scale (nirbridge_torch)"),
        "Threshold": _stateless("Heaviside module (nirbridge_torch)"),
        "Delay": _stateless("ring buffer (nirbridge_torch); delay must be a multiple of dt"),
        "LIF": _neuron(f"snntorch.Leaky (beta = 1 - dt/tau, input gain r dt/tau), or {CELL}"),
        "CubaLIF": _neuron(f"snntorch.Synaptic (alpha, beta from tau_syn, tau_mem), or {CELL}"),
        "IF": _neuron(f"snntorch.Leaky(beta=1), input gain r dt, or {CELL}"),
        "LI": _neuron("snntorch.Leaky(threshold=inf, reset none), output mem"),
        "CubaLI": _neuron("snntorch.Synaptic(threshold=inf, reset none), output mem"),
        "I": _neuron("snntorch.Leaky(beta=1, threshold=inf), output mem"),
    }

    def plan_graph(self, graph: Graph, policy: Policy) -> dict[str, NodePlan]:
        """Every node once; then a neuron with its own one-layer recurrence becomes an
        RLeaky/RSynaptic holding that layer."""
        from .importer import collapse_recurrences

        plans = super().plan_graph(graph, policy)
        if any(node.type in NEURON_TYPES for node in graph.nodes.values()):
            plans = collapse_recurrences(graph, plans)
        return plans

    def build(self, plan: BuildPlan):
        from .importer import build_model

        return build_model(plan)

    def accepts(self, obj: Any) -> bool:
        try:
            import snntorch
            import torch
        except ImportError:
            return False
        from .importer import SnnTorchGraphModule

        if isinstance(obj, SnnTorchGraphModule):
            return True
        return isinstance(obj, torch.nn.Module) and any(isinstance(m, snntorch.SpikingNeuron) for m in obj.modules())

    def export(self, obj: Any, *, policy: Policy | None = None, sample: Any = None):
        """The graph of an snnTorch model run once on `sample` (see `nirbridge_snntorch.exporter`)
        and the gaps it only approximates (e.g. `reset_delay=False` with subtraction); a
        model made by this backend gives back its graph with current parameter values.
        `GapError` when any layer is unsupported."""
        from .exporter import export
        from .importer import SnnTorchGraphModule, graph_of

        if isinstance(obj, SnnTorchGraphModule):
            return with_policy(graph_of(obj), policy or obj.policy), []
        graph, report = export(obj, sample=sample, policy=policy)
        if graph is None or report.unsupported:
            raise GapError(report)
        return graph, report.approximate

    def simulate(self, native: Any, x: np.ndarray, *, record: tuple[str, ...] = ()) -> SimulationResult:
        from nirbridge_torch import run_sequence

        return run_sequence(native, x, record=tuple(record))

    def supports_policy(self, policy: Policy, graph: Graph | None = None) -> Support:
        """Every policy is exact: snnTorch neurons where they compute it, torch cells elsewhere."""
        return Support("exact", maps_to=f"snnTorch neurons, or {CELL}, at dt={policy.dt:g}")


def from_nir(graph: Graph, *, policy: Policy | None = None):
    """The snnTorch model of `graph` (`nirbridge.convert(graph, to="snntorch")`)."""
    return convert(graph, to=SnnTorchBackend(), policy=policy)
