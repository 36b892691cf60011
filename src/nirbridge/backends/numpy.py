"""The built-in backend `numpy`: the NumPy reference simulator as a backend.

Its native model is a `NumpyModel` (a graph plus the policy it runs under); it runs every
NIR primitive under every policy, so everything is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import NODE_TYPES, Graph
from ..reference import simulate
from ..result import SimulationResult
from ..semantics import Policy, with_policy
from .base import Backend, BuildPlan, Support, exact


@dataclass(frozen=True)
class NumpyModel:
    """A graph ready to run on the NumPy reference simulator under `policy`."""

    graph: Graph
    policy: Policy


class NumpyBackend(Backend):
    name = "numpy"
    preset = "nir"
    description = "NumPy reference simulator (the oracle every backend is tested against)"
    handlers = {t: exact(f"reference {t}") for t in NODE_TYPES}

    def build(self, plan: BuildPlan) -> NumpyModel:
        return NumpyModel(plan.graph, plan.policy)

    def accepts(self, obj: Any) -> bool:
        return isinstance(obj, NumpyModel)

    def export(self, obj: NumpyModel, *, policy: Policy | None = None, sample: Any = None) -> tuple[Graph, list]:
        return with_policy(obj.graph, policy or obj.policy), []

    def simulate(self, native: NumpyModel, x: np.ndarray, *, record: tuple[str, ...] = ()) -> SimulationResult:
        return simulate(native.graph, x, policy=native.policy, record=list(record))

    def supports_policy(self, policy: Policy, graph: Graph | None = None) -> Support:
        return Support("exact", maps_to=f"reference semantics at dt={policy.dt:g} (every policy is native here)")
