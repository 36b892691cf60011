"""The checker: every rule of NIR a graph can break, as a list of `Problem`s with dotted paths
(`nodes.lif1.tau[3]: must be > 0, got -0.02`), all at once.

Per node: its own fields (`Node.problems`: dtypes, finiteness, signs, shapes within the node).
Per graph: names (non-empty, no '/', NUL or '.'), edges (endpoints exist, no duplicates, nothing
into an Input or out of an Output), orphans, nesting depth, and shapes across edges
(`shape_inference`). Linear in nodes and edges.
"""

from __future__ import annotations

from collections.abc import Iterator

from .errors import Problem
from .shape_inference import infer_shapes, is_graph, split_endpoint


def graph_problems(graph) -> Iterator[Problem]:
    """Every problem of `graph` and of the graphs nested in it."""
    yield from _graph_problems(graph, depth=0)


def _some_names(graph, limit: int = 10) -> str:
    names = sorted(graph.nodes)
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


MAX_DEPTH = 32


def bad_name(name: str) -> bool:
    return not name or "/" in name or "\x00" in name or name == "."


def _graph_problems(
    graph, depth: int, entered: frozenset[str] = frozenset(), left: frozenset[str] = frozenset()
) -> Iterator[Problem]:
    """Every problem of `graph`. `entered`/`left`: names (possibly dotted) of nodes inside this
    graph that edges of an enclosing graph reach into or start from."""
    if depth > MAX_DEPTH:
        yield Problem("", f"nesting deeper than {MAX_DEPTH} levels")
        return
    touched_in: set[str] = set()
    touched_out: set[str] = set()
    inner_in: dict[str, set[str]] = {}
    inner_out: dict[str, set[str]] = {}

    def touch(ref: str, source: bool) -> tuple[str, str] | None:
        found = split_endpoint(graph, ref)
        if found is not None:
            name, rest = found
            (touched_out if source else touched_in).add(name)
            if rest:
                (inner_out if source else inner_in).setdefault(name, set()).add(rest)
        return found

    for ref in entered:
        touch(ref, source=False)
    for ref in left:
        touch(ref, source=True)
    edge_problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    edges_ok = True
    for i, edge in enumerate(graph.edges):
        for role, ref in (("source", edge[0]), ("destination", edge[1])):
            found = touch(ref, source=role == "source")
            if found is None:
                edges_ok = False
                names = _some_names(graph)
                edge_problems.append(Problem(f"edges[{i}]", f"{role} {ref!r} does not exist (nodes: {names})"))
                continue
            name, rest = found
            node_type = None if rest else graph.nodes[name].type  # dotted names may enter a nested Input
            if role == "destination" and node_type == "Input":
                edge_problems.append(Problem(f"edges[{i}]", f"Input node {name!r} cannot receive edges"))
            elif role == "source" and node_type == "Output":
                edge_problems.append(Problem(f"edges[{i}]", f"Output node {name!r} cannot send edges"))
        if edge in seen:
            edge_problems.append(Problem(f"edges[{i}]", f"duplicate edge {edge[0]} -> {edge[1]}"))
        seen.add(edge)

    bad: set[str] = set()
    for name, node in graph.nodes.items():
        if bad_name(name):
            bad.add(name)
            yield Problem(f"nodes.{name!r}", "node names must be non-empty, not '.', without '/' or NUL")
        if is_graph(node):
            inner = _graph_problems(
                node, depth + 1, frozenset(inner_in.get(name, ())), frozenset(inner_out.get(name, ()))
            )
            problems = [Problem(f"nodes.{name}.{p.path}" if p.path else f"nodes.{name}", p.message) for p in inner]
        else:
            problems = [Problem(f"nodes.{name}.{p.path}", p.message) for p in node.problems()]
        if problems:
            bad.add(name)
            yield from problems
    yield from edge_problems
    for name, node in graph.nodes.items():
        node_type = node.type
        if node_type == "Input":
            if name not in touched_out:
                yield Problem(f"nodes.{name}", "Input node feeds nothing (orphan)")
        elif node_type == "Output":
            if name not in touched_in:
                yield Problem(f"nodes.{name}", "Output node receives nothing (orphan)")
        elif name not in touched_in and name not in touched_out:
            yield Problem(f"nodes.{name}", "node is connected to nothing (orphan)")
        elif name not in touched_in:
            yield Problem(f"nodes.{name}", "node has no incoming edge (only Input nodes may start a path)")
        elif name not in touched_out:
            yield Problem(f"nodes.{name}", "node has no outgoing edge (only Output nodes may end a path)")
    if edges_ok:
        yield from infer_shapes(graph, bad)[1]
