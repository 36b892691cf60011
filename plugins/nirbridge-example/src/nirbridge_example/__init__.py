"""An example third-party nirbridge backend, written as the template for new ones.

It registers the backend `example` through the `nirbridge` entry-point group (see
pyproject.toml). Its "framework" is a small one: a native model is an `ExampleNetwork`
(a graph plus the semantics it runs under), executed by nirbridge's NumPy reference simulator.
A real backend puts its own framework in the three places marked FRAMEWORK below.

What the example declares, so that its gap reports differ from the `numpy` backend's:

- dense layers, Scale, Flatten, SumPool2d, Delay, Threshold and the LIF / LI / IF / I neurons
  run exactly;
- neurons run with r = 1 only (`unit_r`): `nirbridge.convert` moves any other r into a Scale
  node inserted in front of the neuron, exactly;
- AvgPool2d is not declared: it runs exactly through the SumPool2d + Scale rewrite;
- nested graphs are not declared: they are inlined;
- CubaLI / CubaLIF and convolutions are unsupported, with a reason and a suggestion;
- the semantics are fixed to the `nir` preset (reset to v_reset, immediately, exact integration, as the preset says)
  at any dt: a graph carrying other semantics is reported `approximate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import nirbridge
from nirbridge.backends.base import Backend, Support
from nirbridge.errors import GapError
from nirbridge.ir import Graph
from nirbridge.report import Gap, GapReport
from nirbridge.result import SimulationResult
from nirbridge.semantics import Policy, with_policy

__all__ = ["ExampleBackend", "ExampleNetwork", "register_backends"]
__version__ = "0.1.0"


@dataclass(frozen=True)
class ExampleNetwork:
    """The example framework's native model. FRAMEWORK: your own model class (a torch
    Module, a chip configuration, ...) goes here."""

    graph: Graph
    policy: Policy


_NEURON = "runs with r = 1; nirbridge.convert moves r into a Scale node in front"


class ExampleBackend(Backend):
    """The `example` backend. Class attributes declare what it can do; nirbridge generates
    gap reports, the support matrix and the conversion plan from them."""

    name = "example"
    preset = "nir"
    description = "Example third-party backend (NumPy simulator, reduced node set): the template for new backends"
    support = {
        "Affine": Support("exact", maps_to="dense layer with bias"),
        "Linear": Support("exact", maps_to="dense layer"),
        "Scale": Support("exact", maps_to="elementwise gain"),
        "Flatten": Support("exact", maps_to="reshape"),
        "SumPool2d": Support("exact", maps_to="sum pooling"),
        "Delay": Support("exact", maps_to="delay line (whole steps)"),
        "Threshold": Support("exact", maps_to="Heaviside step"),
        "I": Support("exact", maps_to=f"integrator, {_NEURON}"),
        "IF": Support("exact", maps_to=f"integrate-and-fire, {_NEURON}"),
        "LI": Support("exact", maps_to=f"leaky integrator, {_NEURON}"),
        "LIF": Support("exact", maps_to=f"leaky integrate-and-fire, {_NEURON}"),
        "CubaLIF": Support(
            "unsupported",
            reason="the example framework has no synaptic current state",
            suggestion="convert to numpy, or retrain with LIF neurons",
        ),
        "CubaLI": Support(
            "unsupported",
            reason="the example framework has no synaptic current state",
            suggestion="convert to numpy, or retrain with LI readout neurons",
        ),
        "Conv2d": Support(
            "unsupported", reason="the example framework has no convolutions",
            suggestion="convert to numpy",
        ),
        "Conv1d": Support(
            "unsupported", reason="the example framework has no convolutions",
            suggestion="convert to numpy",
        ),
    }
    #: node types the framework runs with r = 1 only (conversion inserts a Scale for r)
    unit_r = frozenset({"I", "IF", "LI", "LIF"})

    def accepts(self, obj: Any) -> bool:
        return isinstance(obj, ExampleNetwork)

    def to_nir(self, obj: ExampleNetwork, *, policy: Policy | None = None, sample: Any = None) -> Graph:
        """FRAMEWORK: read your model's layers and parameters into a `Graph`."""
        if not isinstance(obj, ExampleNetwork):
            raise TypeError(f"backend {self.name!r} exports ExampleNetwork objects, got {type(obj).__name__}")
        # the exported graph carries the semantics it runs under, so nothing is lost
        return with_policy(obj.graph, policy or obj.policy)

    def from_nir(self, graph: Graph, *, policy: Policy) -> ExampleNetwork:
        """FRAMEWORK: build your model from `graph`. Refuse what you cannot run with a
        `GapError` listing every problem, never by returning None or dropping nodes.
        `nirbridge.convert` applies the rewrites first, so a graph that reaches this method
        through `convert` only holds what `support` and `unit_r` allow."""
        gaps = []
        for name, node in graph.walk():
            if node.type in ("Input", "Output"):
                continue
            declared = self.support.get(node.type)
            if declared is None or declared.status == "unsupported":
                reason = declared.reason if declared else f"{self.name} has no {node.type} node"
                suggestion = declared.suggestion if declared else "convert with nirbridge.convert, which rewrites or reports it"
                gaps.append(Gap(name, node.type, "unsupported", reason=reason, suggestion=suggestion))
            elif node.type in self.unit_r and not np.all(node.r == 1):
                gaps.append(Gap(
                    name, node.type, "unsupported",
                    reason=f"{self.name} runs {node.type} with r = 1 only",
                    suggestion="convert with nirbridge.convert, which moves r into a Scale node",
                ))
        if gaps:
            raise GapError(GapReport(gaps=gaps, source="nir", target=self.name))
        # The framework's semantics are fixed; only the time step comes from the policy.
        native = Policy.preset(self.preset)
        return ExampleNetwork(graph, Policy(**{**native.model_dump(), "dt": policy.dt}))

    def simulate(self, native: ExampleNetwork, x: np.ndarray, *, record: tuple[str, ...] = ()) -> SimulationResult:
        """FRAMEWORK: run your model on `x` (time, batch, *features) and return numpy arrays."""
        from nirbridge.reference import simulate

        return simulate(native.graph, x, policy=native.policy, record=tuple(record))


@nirbridge.hookimpl
def register_backends():
    """The plugin hook: return the backends this distribution provides."""
    return [ExampleBackend()]
