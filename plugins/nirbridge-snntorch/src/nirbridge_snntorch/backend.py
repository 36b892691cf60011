"""The `snntorch` backend: snnTorch models <-> nirbridge graphs, spike for spike. The torch
toolkit (`nirbridge_torch.backend.TorchBackend`) does the work; this is snnTorch's table."""

from __future__ import annotations

from typing import Any

from nirbridge import convert
from nirbridge.backends.base import Handler, NodePlan, Support
from nirbridge.ir import NEURON_TYPES, Graph
from nirbridge.semantics import Policy
from nirbridge_torch.backend import TorchBackend

from .importer import SnnTorchGraphModule, collapse_recurrences, plan_neuron

CELL = "a torch cell stepping the policy (nirbridge_torch.cells.PolicyNeuron) where snnTorch lacks the policy"


def _neuron(maps_to: str) -> Handler:
    return Handler(Support("exact", maps_to=maps_to), plan=plan_neuron)


class SnnTorchBackend(TorchBackend):
    """Export traces an snnTorch model on a sample input; import builds snnTorch neurons
    (`init_hidden=True`) and torch layers run one step per call."""

    name = "snntorch"
    preset = "snntorch"
    description = "snnTorch 1.0 (Leaky, Synaptic, RLeaky, RSynaptic, Lapicque; torch layers)"
    model_class = SnnTorchGraphModule
    neuron_handlers = {
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
        plans = super().plan_graph(graph, policy)
        if any(node.type in NEURON_TYPES for node in graph.nodes.values()):
            plans = collapse_recurrences(graph, plans)
        return plans

    def framework(self):
        from .exporter import FRAMEWORK

        return FRAMEWORK

    def is_native(self, module: Any) -> bool:
        import snntorch

        return isinstance(module, snntorch.SpikingNeuron)

    def supports_policy(self, policy: Policy, graph: Graph | None = None) -> Support:
        """Every policy is exact: snnTorch neurons where they compute it, torch cells elsewhere."""
        return Support("exact", maps_to=f"snnTorch neurons, or {CELL}, at dt={policy.dt:g}")


def from_nir(graph: Graph, *, policy: Policy | None = None):
    """The snnTorch model of `graph` (`nirbridge.convert(graph, to="snntorch")`)."""
    return convert(graph, to=SnnTorchBackend(), policy=policy)
