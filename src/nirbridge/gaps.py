"""Gap reports: per node, whether a conversion carries it exactly, approximately (what
differs) or not at all (why, and what to do instead); and the support matrix generated from
the backends' declared tables.

    nirbridge backends --matrix                       # print the support matrix
    nirbridge backends --write-readme README.md       # refresh the README's block
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .backend import STATUSES, Status

#: pseudo node names of gaps that concern the whole graph rather than one node
POLICY_NODE = "(policy)"
GRAPH_NODE = "(graph)"

README_START = "<!-- support-matrix:start -->"
README_END = "<!-- support-matrix:end -->"


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
        lines = [self.summary(), _table(rows)]
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


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- support matrix


def support_matrix(backends: Mapping[str, Any] | Iterable[Any]) -> dict[str, dict[str, str]]:
    """Backend name -> {row: cell}: one row per NIR node type (rewrites shown where they make
    a node exact), plus the backend's policy preset and whether it exports and imports."""
    from .graph import NODE_TYPES
    from .rewrite import R_TYPES, alternatives

    items = backends.values() if isinstance(backends, Mapping) else backends
    table: dict[str, dict[str, str]] = {}
    for backend in items:
        column: dict[str, str] = {}
        via = alternatives(backend)
        for node_type in NODE_TYPES:
            if node_type in ("Input", "Output"):
                continue
            declared = backend.support.get(node_type)
            status = declared.status if declared is not None else "unsupported"
            if node_type in backend.unit_r and node_type in R_TYPES and status != "unsupported":
                cell = f"{status} (r via Scale)" if node_type in via else f"{status} (r = 1 only)"
            elif node_type in via and status != "exact":
                cell = f"exact via {via[node_type]}"
            else:
                cell = "—" if status == "unsupported" else status
            column[_row_label(node_type)] = cell
        column["policy preset"] = f"`{backend.preset}`"
        column["export (to_nir)"] = "yes" if backend.can_export else "no"
        column["import (from_nir)"] = "yes" if backend.can_import else "no"
        table[backend.name] = column
    return table


def _row_label(node_type: str) -> str:
    return "NIRGraph (nested)" if node_type == "NIRGraph" else node_type


def support_matrix_markdown(backends: Mapping[str, Any] | Iterable[Any]) -> str:
    """The README's support table (Markdown), one column per backend."""
    table = support_matrix(backends)
    names = list(table)
    rows = list(next(iter(table.values()))) if table else []
    lines = [
        "| NIR node | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    lines += ["| " + row + " | " + " | ".join(table[n][row] for n in names) + " |" for row in rows]
    return "\n".join(lines)


def parse_matrix_markdown(text: str) -> dict[str, dict[str, str]]:
    """Inverse of `support_matrix_markdown`: backend -> {row: cell}."""
    rows = [line.strip() for line in text.strip().splitlines() if line.strip().startswith("|")]
    if len(rows) < 2:
        return {}

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    names = [c.strip("`") for c in cells(rows[0])[1:]]
    table: dict[str, dict[str, str]] = {n: {} for n in names}
    for line in rows[2:]:
        row, *values = cells(line)
        for name, value in zip(names, values):
            table[name][row] = value
    return table


def readme_block(text: str) -> str | None:
    """The text between the support-matrix markers of a README, or None when they are missing."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return None
    return text[start + len(README_START) : end].strip("\n")


def write_readme(path: str, backends: Mapping[str, Any] | Iterable[Any] | None = None) -> bool:
    """Replace the README's support-matrix block; returns whether the file changed."""
    from pathlib import Path

    if backends is None:
        from .plugins import backends as installed

        backends = installed()
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    if readme_block(text) is None:
        from .errors import NirbridgeError

        raise NirbridgeError(f"{path}: no {README_START} ... {README_END} block to fill")
    start = text.index(README_START) + len(README_START)
    end = text.index(README_END)
    new = text[:start] + "\n" + support_matrix_markdown(backends) + "\n" + text[end:]
    if new != text:
        file.write_text(new, encoding="utf-8")
    return new != text
