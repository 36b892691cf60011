"""The support matrix: per backend and NIR node type, whether the backend runs it exactly,
approximately, through an exact rewrite, or not at all, generated from the backends' handlers.

    nirbridge backends --matrix                       # print the support matrix
    nirbridge backends --write-readme README.md       # refresh the README's block
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .backends.base import BackendRecord
from .backends.registry import backends as installed
from .errors import NirbridgeError
from .ir import NODE_TYPES
from .rewrite import R_TYPES, alternatives

README_START = "<!-- support-matrix:start -->"
README_END = "<!-- support-matrix:end -->"


def support_matrix(backends: Mapping[str, Any] | Iterable[Any]) -> dict[str, dict[str, str]]:
    """Backend name -> {row: cell}: one row per NIR node type (rewrites shown where they make
    a node exact), plus the backend's policy preset and whether it exports and imports."""
    items = backends.values() if isinstance(backends, Mapping) else backends
    table: dict[str, dict[str, str]] = {}
    for backend in items:
        backend = backend.load() if isinstance(backend, BackendRecord) else backend
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
        column["export (model to NIR)"] = "yes" if backend.can_export else "no"
        column["import (NIR to model)"] = "yes" if backend.can_import else "no"
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
    if backends is None:
        backends = installed()
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    if readme_block(text) is None:
        raise NirbridgeError(f"{path}: no {README_START} ... {README_END} block to fill")
    start = text.index(README_START) + len(README_START)
    end = text.index(README_END)
    new = text[:start] + "\n" + support_matrix_markdown(backends) + "\n" + text[end:]
    if new != text:
        file.write_text(new, encoding="utf-8")
    return new != text
