"""The core is layered: a module imports only from its own layer or the layers below it, at
module level or inside functions, and the import graph has no cycle. Also, the core imports
without torch or jax."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "nirbridge"

#: lowest first; a module may import from its own layer (acyclically) and from lower layers
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("errors", "table", "result", "atomic")),
    ("primitives", ("ir.kinds", "ir.base", "ir.ports", "ir.linear", "ir.conv", "ir.pooling", "ir.neuron", "ir.delay",
                    "ir.flatten", "ir.threshold", "ir.nir_interop")),
    ("checks", ("shape_inference", "checker")),
    ("graph", ("ir.graph", "ir")),
    ("semantics", ("semantics.fields", "semantics.presets", "semantics.dt_inference", "semantics.policy",
                   "semantics.discretization", "semantics")),
    ("files and topology", ("io", "topology", "dvs", "datasets")),
    ("reference", ("reference.delay", "reference.layers", "reference.neurons", "reference.engine", "reference")),
    ("reports", ("report", "compare")),
    ("backends", ("backends.base", "backends.hookspecs", "rewrite", "backends.numpy", "backends.registry", "backends")),
    ("conversion", ("conversion", "verification", "support_matrix", "recording", "evaluation", "ray_engine")),
    ("interfaces", ("cli", "plot", "testing", "testing.roundtrip", "")),
]
RANK = {module: rank for rank, (_, modules) in enumerate(LAYERS) for module in modules}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, root: Path = PACKAGE) -> set[str]:
    """The nirbridge modules `path` imports (module level and inside functions)."""
    me = module_name(path, root)
    package = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else package
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.split(".")[0] == "nirbridge":
                target = ".".join(node.module.split(".")[1:])
            else:
                continue
            for alias in node.names:  # `from . import x` may name a submodule
                sub = f"{target}.{alias.name}" if target else alias.name
                found.add(sub if sub in RANK else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "nirbridge":
                    found.add(".".join(alias.name.split(".")[1:]))
    found.discard(me)
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: imports(path) for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    assert set(MODULES) - set(RANK) == set(), "add new modules to LAYERS"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_only(module):
    upward = sorted(t for t in GRAPH[module] if RANK.get(t, -1) > RANK[module])
    assert not upward, f"{module} (layer {LAYERS[RANK[module]][0]!r}) imports higher layers: {upward}"


def test_no_import_cycles():
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(GRAPH.get(name, ())):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target] if target in path else [name, target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def test_the_check_sees_function_level_and_relative_imports(tmp_path):
    base = tmp_path / "nirbridge" / "ir" / "base.py"
    base.parent.mkdir(parents=True)
    base.write_text("from ..errors import Problem\n\ndef f():\n    from ..conversion import convert\n    import nirbridge.cli\n")
    found = imports(base, root=tmp_path / "nirbridge")
    assert found == {"errors", "conversion", "cli"}
    assert sorted(t for t in found if RANK[t] > RANK["ir.base"]) == ["cli", "conversion"]


def test_core_imports_without_torch_or_jax():
    code = (
        "import sys, nirbridge, nirbridge.cli, nirbridge.conversion, nirbridge.verification, nirbridge.support_matrix; "
        "print(sorted(m for m in ('torch', 'jax', 'snntorch', 'norse') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
