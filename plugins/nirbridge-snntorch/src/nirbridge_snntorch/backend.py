"""The `snntorch` backend: snnTorch models <-> nirbridge graphs, spike for spike."""

from __future__ import annotations

from typing import Any

import numpy as np

from nirbridge.backends.base import Backend, Support
from nirbridge.errors import GapError
from nirbridge.ir import Graph, Node
from nirbridge.result import SimulationResult
from nirbridge.semantics import Policy

CELL = "a torch cell stepping the policy (nirbridge_torch.cells.PolicyNeuron) where snnTorch lacks the policy"


class SnnTorchBackend(Backend):
    """Export (`to_nir`) traces an snnTorch model on a sample input; import (`from_nir`) builds
    snnTorch neurons (`init_hidden=True`) and torch layers run one step per call."""

    name = "snntorch"
    preset = "snntorch"
    description = "snnTorch 1.0 (Leaky, Synaptic, RLeaky, RSynaptic, Lapicque; torch layers)"
    support = {
        "Affine": Support("exact", maps_to="torch.nn.Linear"),
        "Linear": Support("exact", maps_to="torch.nn.Linear(bias=False)"),
        "Conv1d": Support("exact", maps_to="torch.nn.Conv1d"),
        "Conv2d": Support("exact", maps_to="torch.nn.Conv2d"),
        "Flatten": Support("exact", maps_to="torch.nn.Flatten"),
        "SumPool2d": Support("exact", maps_to="avg_pool2d with divisor 1 (nirbridge_torch)"),
        "AvgPool2d": Support("exact", maps_to="torch.nn.AvgPool2d"),
        "Scale": Support("exact", maps_to="elementwise scale (nirbridge_torch)"),
        "Threshold": Support("exact", maps_to="Heaviside module (nirbridge_torch)"),
        "Delay": Support("exact", maps_to="ring buffer (nirbridge_torch); delay must be a multiple of dt"),
        "LIF": Support("exact", maps_to=f"snntorch.Leaky (beta = 1 - dt/tau, input gain r dt/tau), or {CELL}"),
        "CubaLIF": Support("exact", maps_to=f"snntorch.Synaptic (alpha, beta from tau_syn, tau_mem), or {CELL}"),
        "IF": Support("exact", maps_to=f"snntorch.Leaky(beta=1), input gain r dt, or {CELL}"),
        "LI": Support("exact", maps_to="snntorch.Leaky(threshold=inf, reset none), output mem"),
        "CubaLI": Support("exact", maps_to="snntorch.Synaptic(threshold=inf, reset none), output mem"),
        "I": Support("exact", maps_to="snntorch.Leaky(beta=1, threshold=inf), output mem"),
        "NIRGraph": Support("exact", maps_to="flattened; a neuron with its own recurrent layer becomes RLeaky/RSynaptic"),
    }

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

    def to_nir(self, obj: Any, *, policy: Policy | None = None, sample: Any = None, allow_approximate: bool = False) -> Graph:
        """Export an snnTorch model run once on `sample` (see `nirbridge_snntorch.export`);
        a model made by `from_nir` gives back its graph with current parameter values."""
        from .export import to_nir
        from .importer import SnnTorchGraphModule, graph_of

        if isinstance(obj, SnnTorchGraphModule):
            return graph_of(obj)
        return to_nir(obj, sample=sample, policy=policy, allow_approximate=allow_approximate)

    def export(self, obj: Any, *, policy: Policy | None = None, sample: Any = None):
        """The exported graph and the gaps it only approximates (e.g. `reset_delay=False` with
        subtraction); `GapError` when any layer is unsupported."""
        from .export import export
        from .importer import SnnTorchGraphModule, graph_of

        if isinstance(obj, SnnTorchGraphModule):
            return graph_of(obj), []
        graph, report = export(obj, sample=sample, policy=policy)
        if graph is None or report.unsupported:
            raise GapError(report)
        return graph, report.approximate

    def from_nir(self, graph: Graph, *, policy: Policy):
        from .importer import from_nir

        return from_nir(graph, policy=policy)

    def simulate(self, native: Any, x: np.ndarray, *, record: tuple[str, ...] = ()) -> SimulationResult:
        from nirbridge_torch import run_sequence

        return run_sequence(native, x, record=tuple(record))

    def node_support(self, name: str, node: Node, *, policy: Policy) -> Support:
        declared = super().node_support(name, node, policy=policy)
        if node.type in ("LIF", "CubaLIF", "IF", "LI", "CubaLI", "I"):
            from .neurons import native_plan

            plan = native_plan(node, policy)
            if plan.problem:
                return Support("exact", maps_to="torch cell stepping the policy (not an snnTorch module)", reason=plan.problem)
            return Support("exact", maps_to=plan.text)
        return declared

    def supports_policy(self, policy: Policy, graph: Graph | None = None) -> Support:
        """Every policy is exact: snnTorch neurons where they compute it, torch cells elsewhere."""
        return Support("exact", maps_to=f"snnTorch neurons, or {CELL}, at dt={policy.dt:g}")
