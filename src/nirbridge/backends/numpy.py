"""The built-in backend `numpy`: the NumPy reference simulator as a backend.

Its native model is a `NumpyModel` (a graph plus the policy it runs under); it runs every
NIR primitive under every policy, so everything is exact. Registered directly by the
registry (so it survives NIRBRIDGE_DISABLE_PLUGINS=1) and declared as the core's entry point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import NODE_TYPES, Graph
from ..reference import simulate
from ..result import SimulationResult
from ..semantics import Policy, with_policy
from .base import Backend, Support
from .hookspecs import hookimpl


@dataclass(frozen=True)
class NumpyModel:
    """A graph ready to run on the NumPy reference simulator under `policy`."""

    graph: Graph
    policy: Policy


class NumpyBackend(Backend):
    name = "numpy"
    preset = "nir"
    description = "NumPy reference simulator (the oracle every backend is tested against)"
    support = {t: Support("exact", maps_to=f"reference {t}") for t in NODE_TYPES}

    def accepts(self, obj: Any) -> bool:
        return isinstance(obj, NumpyModel)

    def to_nir(self, obj: NumpyModel, *, policy: Policy | None = None, sample: Any = None) -> Graph:
        return with_policy(obj.graph, policy or obj.policy)

    def from_nir(self, graph: Graph, *, policy: Policy) -> NumpyModel:
        return NumpyModel(graph, policy)

    def simulate(self, native: NumpyModel, x: np.ndarray, *, record: tuple[str, ...] = ()) -> SimulationResult:
        return simulate(native.graph, x, policy=native.policy, record=list(record))

    def supports_policy(self, policy: Policy, graph: Graph | None = None) -> Support:
        return Support("exact", maps_to=f"reference semantics at dt={policy.dt:g} (every policy is native here)")


_NUMPY = NumpyBackend()


@hookimpl
def register_backends():
    return [_NUMPY]
