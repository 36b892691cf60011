"""The README's support matrix is generated from the backends' declared tables, and a test
fails when the README's copy is stale."""

from __future__ import annotations

from pathlib import Path

import pytest

import nirbridge
from nirbridge.backends.base import Handler, Support, exact
from nirbridge.backends.numpy import NumpyBackend
from nirbridge.errors import NirbridgeError
from nirbridge.support_matrix import (
    README_END,
    README_START,
    parse_matrix_markdown,
    readme_block,
    support_matrix,
    support_matrix_markdown,
    write_readme,
)

README = Path(__file__).resolve().parents[1] / "README.md"
REGENERATE = "nirbridge backends --write-readme README.md"


class Partial(NumpyBackend):
    name = "partial"
    preset = "norse"
    unit_r = frozenset({"LIF"})
    handlers = {
        "Linear": exact("dense"),
        "LIF": exact("lif"),
        "LI": Handler(Support("approximate", "leaky", reason="no v_leak")),
        "SumPool2d": exact("sum"),
        "Scale": exact("gain"),
    }


def test_readme_support_matrix_is_current():
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    block = readme_block(text)
    assert block is not None, f"README.md has no support matrix: add a line {README_START} and a line {README_END}, then run `{REGENERATE}`"
    documented = parse_matrix_markdown(block)
    for name, column in support_matrix(nirbridge.backends()).items():
        assert name in documented, f"README.md's support matrix lacks backend {name!r}: run `{REGENERATE}`"
        assert documented[name] == column, f"README.md's support matrix column {name!r} is stale: run `{REGENERATE}`"


def test_numpy_column_is_all_exact():
    column = support_matrix([NumpyBackend()])["numpy"]
    assert column["policy preset"] == "`nir`" and column["export (model to NIR)"] == "yes"
    node_rows = {k: v for k, v in column.items() if k not in ("policy preset", "export (model to NIR)", "import (NIR to model)")}
    assert len(node_rows) == 17 and set(node_rows.values()) == {"exact"}


def test_cells_show_rewrites_approximations_and_gaps():
    column = support_matrix([Partial()])["partial"]
    assert column["AvgPool2d"] == "exact via SumPool2d + Scale"
    assert column["NIRGraph (nested)"] == "exact via inlining"
    assert column["LIF"] == "exact (r via Scale)"
    assert column["LI"] == "approximate"
    assert column["Conv2d"] == "—"
    assert column["policy preset"] == "`norse`"


def test_markdown_parses_back_to_the_matrix():
    backends = [NumpyBackend(), Partial()]
    text = support_matrix_markdown(backends)
    assert text.splitlines()[0] == "| NIR node | `numpy` | `partial` |"
    assert parse_matrix_markdown(text) == support_matrix(backends)


def test_write_readme_replaces_only_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{README_START}\nold table\n{README_END}\nafter\n", encoding="utf-8")
    assert write_readme(str(readme), [Partial()]) is True
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{README_END}\nafter\n")
    assert readme_block(text) == support_matrix_markdown([Partial()])
    assert write_readme(str(readme), [Partial()]) is False  # already current


def test_write_readme_without_markers_is_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n", encoding="utf-8")
    with pytest.raises(NirbridgeError, match="support-matrix:start"):
        write_readme(str(readme), [Partial()])
