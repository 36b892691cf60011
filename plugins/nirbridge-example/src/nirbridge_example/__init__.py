"""An example third-party nirbridge backend, written as the template for new ones.

It registers the backend `example` through the `nirbridge` entry-point group (see
pyproject.toml; the entry point names `nirbridge_example.plugin`, which stays light). Its
"framework" is a small one: a native model is an `ExampleNetwork` (a graph plus the semantics
it runs under), executed by nirbridge's NumPy reference simulator. A real backend puts its own
framework in the places marked FRAMEWORK below.

A backend is a table of handlers, one per NIR node type, and a `build` that assembles the
pieces the handlers' plans make. What the example declares, so that its gap reports differ from
the `numpy` backend's:

- dense layers, Scale, Flatten, SumPool2d, Delay, Threshold and the LIF / LI / IF / I neurons
  run exactly;
- neurons run with r = 1 only (`unit_r`): `nirbridge.convert` moves any other r into a Scale
  node inserted in front of the neuron, exactly;
- AvgPool2d is not declared: it runs exactly through the SumPool2d + Scale rewrite;
- nested graphs are not declared: they are inlined;
- CubaLI / CubaLIF and convolutions are unsupported, with a reason and a suggestion;
- the semantics are fixed to the `nir` preset (reset to v_reset, immediately, exact
  integration) at any dt: a graph carrying other semantics is reported `approximate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nirbridge.backends.base import Backend, BuildPlan, exact, unsupported
from nirbridge.ir import Graph
from nirbridge.reference import simulate
from nirbridge.result import SimulationResult
from nirbridge.semantics import Policy, with_policy

__all__ = ["ExampleBackend", "ExampleNetwork"]
__version__ = "0.1.0"


@dataclass(frozen=True)
class ExampleNetwork:
    """The example framework's native model. FRAMEWORK: your own model class (a torch
    Module, a chip configuration, ...) goes here."""

    graph: Graph
    policy: Policy
    source: Graph | None = None  # the graph it was built from (before nirbridge's rewrites)


_NEURON = "runs with r = 1; nirbridge.convert moves r into a Scale node in front"
_NO_SYNAPSE = "the example framework has no synaptic current state"
_NO_CONV = "the example framework has no convolutions"


class ExampleBackend(Backend):
    """The `example` backend. FRAMEWORK: each handler names the native construct and, in a
    real backend, a function `build(node, policy)` making it; `build(plan)` assembles them."""

    name = "example"
    preset = "nir"
    description = "Example third-party backend (NumPy simulator, reduced node set): the template for new backends"
    handlers = {
        "Affine": exact("dense layer with bias"),
        "Linear": exact("dense layer"),
        "Scale": exact("elementwise gain"),
        "Flatten": exact("reshape"),
        "SumPool2d": exact("sum pooling"),
        "Delay": exact("delay line (whole steps)"),
        "Threshold": exact("Heaviside step"),
        "I": exact(f"integrator, {_NEURON}"),
        "IF": exact(f"integrate-and-fire, {_NEURON}"),
        "LI": exact(f"leaky integrator, {_NEURON}"),
        "LIF": exact(f"leaky integrate-and-fire, {_NEURON}"),
        "CubaLIF": unsupported(_NO_SYNAPSE, "convert to numpy, or retrain with LIF neurons"),
        "CubaLI": unsupported(_NO_SYNAPSE, "convert to numpy, or retrain with LI readout neurons"),
        "Conv2d": unsupported(_NO_CONV, "convert to numpy"),
        "Conv1d": unsupported(_NO_CONV, "convert to numpy"),
    }
    #: node types the framework runs with r = 1 only (conversion inserts a Scale for r)
    unit_r = frozenset({"I", "IF", "LI", "LIF"})

    def build(self, plan: BuildPlan) -> ExampleNetwork:
        """FRAMEWORK: assemble your model from the plan: `plan.nodes[name].build()` makes each
        node's piece, as its handler decided; the graph's edges say how they connect. Only
        what the handlers allowed reaches here (nirbridge refuses the rest before building)."""
        native = Policy.preset(self.preset)  # the framework's semantics are fixed; dt comes from the plan
        return ExampleNetwork(plan.graph, Policy(**{**native.model_dump(), "dt": plan.policy.dt}), source=plan.source)

    def accepts(self, obj: Any) -> bool:
        return isinstance(obj, ExampleNetwork)

    def export(self, obj: ExampleNetwork, *, policy: Policy | None = None, sample: Any = None) -> tuple[Graph, list]:
        """FRAMEWORK: read your model's layers and parameters into a `Graph`; return the gaps of
        what it only approximates (none here). The graph carries the semantics it runs under; a
        model built from a graph gives back that graph (not nirbridge's rewrites of it)."""
        if not isinstance(obj, ExampleNetwork):
            raise TypeError(f"backend {self.name!r} exports ExampleNetwork objects, got {type(obj).__name__}")
        return with_policy(obj.source or obj.graph, policy or obj.policy), []

    def simulate(self, native: ExampleNetwork, x: np.ndarray, *, record: tuple[str, ...] = ()) -> SimulationResult:
        """FRAMEWORK: run your model on `x` (time, batch, *features) and return numpy arrays."""
        return simulate(native.graph, x, policy=native.policy, record=tuple(record))
