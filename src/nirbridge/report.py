"""Gap reports: per node, whether a conversion carries it exactly, approximately (what
differs) or not at all (why, and what to do instead)."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .table import table

Status = Literal["exact", "approximate", "unsupported"]
STATUSES: tuple[str, ...] = ("exact", "approximate", "unsupported")

#: pseudo node names of gaps that concern the whole graph rather than one node
POLICY_NODE = "(policy)"
GRAPH_NODE = "(graph)"


class GapWarning(UserWarning):
    """A non-strict conversion went ahead with approximations; the report says which."""


@dataclass(frozen=True)
class Gap:
    """One node of a conversion. `measured`: fraction of differing spikes on a probe input
    (set by `check(..., probe=x)` for approximate nodes)."""

    node: str
    node_type: str
    status: Status
    maps_to: str = ""
    reason: str = ""
    suggestion: str = ""
    measured: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GapReport:
    """Every node of a conversion with its status. `ok` when everything is exact. `notes`
    record what was decided on the way (where the policy came from, rewrites applied)."""

    gaps: list[Gap]
    source: str = ""
    target: str = ""
    policy: Any = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(g.status == "exact" for g in self.gaps)

    @property
    def exact(self) -> list[Gap]:
        return [g for g in self.gaps if g.status == "exact"]

    @property
    def approximate(self) -> list[Gap]:
        return [g for g in self.gaps if g.status == "approximate"]

    @property
    def unsupported(self) -> list[Gap]:
        return [g for g in self.gaps if g.status == "unsupported"]

    def __getitem__(self, node: str) -> Gap:
        for gap in self.gaps:
            if gap.node == node:
                return gap
        raise KeyError(f"no gap for node {node!r}; nodes: {', '.join(g.node for g in self.gaps)}")

    def summary(self) -> str:
        counts = ", ".join(f"{sum(g.status == s for g in self.gaps)} {s}" for s in STATUSES)
        route = f"{self.source or '?'} -> {self.target or '?'}"
        return f"{route}: {counts}"

    def __str__(self) -> str:
        rows = [("node", "type", "status", "maps to", "reason / suggestion", "measured")]
        for g in self.gaps:
            why = "; ".join(p for p in (g.reason, f"suggestion: {g.suggestion}" if g.suggestion else "") if p)
            measured = "" if g.measured is None else f"{g.measured:.2%} spikes differ"
            rows.append((g.node, g.node_type, g.status, g.maps_to, why, measured))
        lines = [self.summary(), table(rows)]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        policy = self.policy.model_dump(mode="json") if hasattr(self.policy, "model_dump") else self.policy
        return {
            "source": self.source,
            "target": self.target,
            "ok": self.ok,
            "policy": policy,
            "notes": list(self.notes),
            "gaps": [g.to_dict() for g in self.gaps],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def warn(self, stacklevel: int = 3) -> None:
        """Emit a `GapWarning` listing the nodes that are not exact."""
        bad = [f"{g.node} ({g.status}: {g.reason})" for g in self.gaps if g.status != "exact"]
        warnings.warn(f"{self.summary()}; " + "; ".join(bad), GapWarning, stacklevel=stacklevel)
