"""Shape inference: the (input, output) shape of every node of a graph, propagated along its
edges from what each node's parameters fix, and the edges whose shapes disagree.

Shapes exclude the batch dimension. Edge endpoints may name nodes inside nested graphs with
dotted paths (`sub.lif`); an edge into a nested graph by its own name feeds its single Input.
Propagation is a worklist over the edges, so it is linear in nodes and edges whatever order
the edges are listed in.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .errors import Problem
from .ir.base import Shape, ShapeError
from .ir.kinds import GRAPH_TYPE

Shapes = dict[str, tuple[Shape | None, Shape | None]]


def format_shape(shape: Shape | None) -> str:
    return "?" if shape is None else str(tuple(shape))


def is_graph(node: Any) -> bool:
    return getattr(node, "type", None) == GRAPH_TYPE


def split_endpoint(graph, ref: str) -> tuple[str, str] | None:
    """(top-level node, rest) that an edge endpoint names: exact names first, then dotted
    paths into nested graphs (`sub.lif` -> ("sub", "lif")). None if nothing matches."""
    if ref in graph.nodes:
        return ref, ""
    head, sep, rest = ref.partition(".")
    while sep:
        sub = graph.nodes.get(head)
        if is_graph(sub) and sub.resolve(rest) is not None:
            return head, rest
        more, sep, rest = rest.partition(".")
        head = f"{head}.{more}"
    return None


def infer_shapes(graph, bad: set[str] | None = None) -> tuple[Shapes, list[Problem]]:
    """Per top-level node (input shape, output shape), and the problems found (edges whose
    shapes disagree, impossible shapes). Nodes in `bad` (invalid on their own) take part with
    unknown shapes."""
    return _Inference({}).run(graph, bad or set())


class _Inference:
    """One inference over a graph and its nested graphs (each nested graph inferred once)."""

    def __init__(self, cache: dict[int, Shapes]):
        self.cache = cache

    def shapes_of(self, graph) -> Shapes:
        key = id(graph)
        if key not in self.cache:
            self.cache[key] = self.run(graph, set())[0]
        return self.cache[key]

    def endpoint_shape(self, graph, ref: str, out: bool) -> Shape | None:
        """Output (out=True) or input shape of the node an endpoint names inside nested graphs."""
        found = split_endpoint(graph, ref)
        if found is None:
            return None
        name, rest = found
        node = graph.nodes[name]
        if rest:
            return self.endpoint_shape(node, rest, out) if is_graph(node) else None
        return self.shapes_of(graph)[name][1 if out else 0]

    def run(self, graph, bad: set[str]) -> tuple[Shapes, list[Problem]]:
        problems: list[Problem] = []
        ins: dict[str, Shape | None] = {}
        outs: dict[str, Shape | None] = {}
        ready: deque[str] = deque()

        def apply(name: str, shape: Shape) -> None:
            node = graph.nodes[name]
            try:
                outs[name] = node.output_shape(shape)
            except ShapeError as exc:
                if not is_graph(node):  # nested graphs: reported per edge below
                    problems.append(Problem(f"nodes.{name}", str(exc)))
                return
            ready.append(name)

        for name, node in graph.nodes.items():
            ins[name] = outs[name] = None
            if name in bad:
                continue
            ins[name] = node.input_shape()
            if ins[name] is not None:
                apply(name, ins[name])
        ends = [(split_endpoint(graph, s), split_endpoint(graph, d)) for s, d in graph.edges]
        successors: dict[str, list[str]] = {}
        for s, d in ends:
            if s and d and not s[1] and not d[1]:
                successors.setdefault(s[0], []).append(d[0])
        while ready:
            source = ready.popleft()
            for dest in successors.get(source, ()):
                if ins[dest] is None and dest not in bad:
                    ins[dest] = outs[source]
                    apply(dest, ins[dest])
        for i, ((src, dst), (s, d)) in enumerate(zip(graph.edges, ends)):
            if not s or not d or s[0] in bad or d[0] in bad:
                continue
            for (name, rest), role in ((s, "Output"), (d, "Input")):
                node = graph.nodes[name]
                if not rest and is_graph(node):
                    n = len(node.outputs() if role == "Output" else node.inputs())
                    if n != 1:
                        msg = f"nested graph {name!r} has {n} {role} nodes; name one as '{name}.<node>'"
                        problems.append(Problem(f"edges[{i}]", msg))
            out = outs[s[0]] if not s[1] else self.endpoint_shape(graph.nodes[s[0]], s[1], out=True)
            into = ins[d[0]] if not d[1] else self.endpoint_shape(graph.nodes[d[0]], d[1], out=False)
            if out is not None and into is not None and tuple(out) != tuple(into):
                problems.append(Problem(f"edges[{i}]", f"{src} outputs shape {format_shape(out)} but {dst} takes {format_shape(into)}"))
        return {n: (ins[n], outs[n]) for n in graph.nodes}, problems
