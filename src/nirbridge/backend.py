"""The Backend base class: what a plugin implements to take part in conversion.

A backend converts between its native models and `Graph`, runs its native models for
verification, and declares per NIR node type how exactly it can carry that node (`support`),
from which gap reports and the README's support matrix are generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from .graph import Graph
from .policy import Policy
from .result import SimulationResult

Status = Literal["exact", "approximate", "unsupported"]


@dataclass(frozen=True)
class Support:
    """How a backend carries one NIR node type: `maps_to` names the native construct;
    `reason` says what differs (approximate) or why not (unsupported); `suggestion` what to do."""

    status: Status
    maps_to: str = ""
    reason: str = ""
    suggestion: str = ""


class Backend:
    """Subclass and set `name`, `preset` and `support`; implement what the backend can do.

    `to_nir(obj, policy=, sample=)` exports a native model (only if `accepts(obj)`);
    `from_nir(graph, policy=)` builds a native model; `simulate(native, x, record=)` runs it on
    `x` shaped (time, batch, *features) and returns a `SimulationResult` of numpy arrays.
    """

    name: ClassVar[str] = ""
    #: name of the Policy preset describing this backend's native semantics
    preset: ClassVar[str] = "nir"
    #: NIR node type -> Support
    support: ClassVar[dict[str, Support]] = {}
    description: ClassVar[str] = ""

    def accepts(self, obj: Any) -> bool:
        return False

    def to_nir(self, obj: Any, *, policy: Policy | None = None, sample: Any = None) -> Graph:
        raise NotImplementedError(f"backend {self.name!r} cannot export models")

    def from_nir(self, graph: Graph, *, policy: Policy) -> Any:
        raise NotImplementedError(f"backend {self.name!r} cannot import graphs")

    def simulate(self, native: Any, x: np.ndarray, *, record: tuple[str, ...] = ()) -> SimulationResult:
        raise NotImplementedError(f"backend {self.name!r} cannot simulate")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
