"""The Backend base class: what a plugin implements to take part in conversion.

A backend converts between its native models and `Graph`, runs its native models for
verification, and declares per NIR node type how exactly it can carry that node (`support`),
from which gap reports and the README's support matrix are generated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import PluginError
from ..ir import Graph, Node
from ..report import STATUSES, Status
from ..result import SimulationResult
from ..semantics import Policy, policy_differences

#: what a backend name must look like; "nir" is reserved for `convert(..., to="nir")`
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
RESERVED_NAMES = frozenset({"nir"})


@dataclass(frozen=True)
class Support:
    """How a backend carries one NIR node type: `maps_to` names the native construct;
    `reason` says what differs (approximate) or why not (unsupported); `suggestion` what to do."""

    status: Status
    maps_to: str = ""
    reason: str = ""
    suggestion: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise PluginError(f"Support.status: must be one of {', '.join(STATUSES)}, got {self.status!r}")


def name_problem(name: Any) -> str | None:
    """Why `name` cannot be a backend name, or None when it can."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        return f"backend name must be lowercase letters, digits, '-' or '_' starting with a letter, got {name!r}"
    if name in RESERVED_NAMES:
        return f"backend name {name!r} is reserved"
    return None


class Backend:
    """Subclass and set `name`, `preset` and `support`; implement what the backend can do.

    `to_nir(obj, policy=, sample=)` exports a native model (only if `accepts(obj)`);
    `from_nir(graph, policy=)` builds a native model; `simulate(native, x, record=)` runs it on
    `x` shaped (time, batch, *features) and returns a `SimulationResult` of numpy arrays.
    `from_nir` raises `GapError` for anything it cannot build; it never returns None.

    Refine the declared table per node (parameter values, shapes) by overriding
    `node_support`, and the policies it reproduces by overriding `supports_policy`.
    """

    name: ClassVar[str] = ""
    #: name of the Policy preset describing this backend's native semantics
    preset: ClassVar[str] = "nir"
    #: NIR node type -> Support
    support: ClassVar[dict[str, Support]] = {}
    #: node types whose `r` the backend cannot represent (it runs them as r = 1); conversion
    #: moves r != 1 into a Scale node inserted in front of the node
    unit_r: ClassVar[frozenset[str]] = frozenset()
    description: ClassVar[str] = ""

    def accepts(self, obj: Any) -> bool:
        return False

    def to_nir(self, obj: Any, *, policy: Policy | None = None, sample: Any = None) -> Graph:
        raise NotImplementedError(f"backend {self.name!r} cannot export models")

    def export(self, obj: Any, *, policy: Policy | None = None, sample: Any = None) -> tuple[Graph, list]:
        """`to_nir` plus the `Gap`s of what the exported graph only approximates. Backends whose
        export can be approximate override this (their `to_nir` refuses approximations);
        unsupported parts still raise `GapError`. Used by non-strict `convert`."""
        return self.to_nir(obj, policy=policy, sample=sample), []

    def from_nir(self, graph: Graph, *, policy: Policy) -> Any:
        raise NotImplementedError(f"backend {self.name!r} cannot import graphs")

    def simulate(self, native: Any, x: np.ndarray, *, record: tuple[str, ...] = ()) -> SimulationResult:
        raise NotImplementedError(f"backend {self.name!r} cannot simulate")

    # -- capabilities -------------------------------------------------------------
    @property
    def can_export(self) -> bool:
        return type(self).to_nir is not Backend.to_nir

    @property
    def can_import(self) -> bool:
        return type(self).from_nir is not Backend.from_nir

    @property
    def can_simulate(self) -> bool:
        return type(self).simulate is not Backend.simulate

    def node_support(self, name: str, node: Node, *, policy: Policy) -> Support:
        """How this backend carries one node of a graph (default: the declared table)."""
        declared = self.support.get(node.type)
        if declared is not None:
            return declared
        if node.type in ("Input", "Output"):
            return Support("exact", maps_to=f"{node.type.lower()} of the model")
        return Support("unsupported", reason=f"{self.name} has no {node.type} node")

    def supports_policy(self, policy: Policy, graph: Graph | None = None) -> Support:
        """Whether this backend reproduces `policy` exactly (on `graph`, when given: only the
        fields its nodes use count). Default: exact when those fields equal the backend's
        preset, type and node overrides included; otherwise approximate, naming each field
        that differs. Time constants are converted at the policy's dt, so any dt is exact."""
        native = Policy.preset(self.preset)
        diffs = policy_differences(policy, native, graph)
        if not diffs:
            return Support("exact", maps_to=f"{self.name} native semantics (preset {self.preset!r}) at dt={policy.dt:g}")
        return Support(
            "approximate",
            maps_to=f"{self.name} native semantics (preset {self.preset!r})",
            reason="; ".join(diffs),
            suggestion=f"convert to a backend that reproduces these semantics, or retrain the model under Policy.preset({self.preset!r})",
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
