"""Graph structure shared by every simulator: flattening nested graphs and the cycle rule.

The cycle rule (docs/semantics.md, "Recurrence"): nodes are ordered by a depth-first search
from the Input nodes (in node order, edges in file order), taking the reverse postorder; an
edge from a node to itself or to a node earlier in that order closes a cycle and carries the
source's value of the previous step (zero at step 0). Every other edge carries the value of
the same step. This module is the only place the rule is written down.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import GraphValidationError, Problem
from .ir import Graph, Input, Output

Edge = tuple[str, str]


def flatten(graph: Graph) -> Graph:
    """Inline nested graphs: node `sub`'s inner node `x` becomes `sub.x`; the nested graph's
    Input and Output nodes disappear, edges into `sub` (or `sub.<its Input>`) feed what its
    Input fed, and edges out of `sub` leave from what fed its Output. Works at any depth. A
    graph without nested graphs is returned as is."""
    if not any(isinstance(n, Graph) for n in graph.nodes.values()):
        return graph
    nodes, edges, _, _ = _inline(graph)
    return Graph.model_construct(nodes=nodes, edges=edges, metadata=graph.metadata, type="NIRGraph")


def _inline(graph: Graph) -> tuple[dict, list[Edge], dict[str, list[str]], dict[str, list[str]]]:
    """Flat nodes and edges of `graph`, plus, for every name that stands for a nested graph or
    one of its Input/Output nodes, the flat nodes an edge into it enters (`entries`) and the
    flat nodes an edge out of it leaves from (`exits`)."""
    nodes: dict = {}
    edges: list[Edge] = []
    entries: dict[str, list[str]] = {}
    exits: dict[str, list[str]] = {}
    for name, node in graph.nodes.items():
        if not isinstance(node, Graph):
            nodes[name] = node
            continue
        inner_nodes, inner_edges, inner_entries, inner_exits = _inline(node)
        ins = [k for k, n in node.nodes.items() if isinstance(n, Input)]
        outs = [k for k, n in node.nodes.items() if isinstance(n, Output)]

        def flat(inner: str, name: str = name) -> str:
            return f"{name}.{inner}"

        for inner_name, inner_node in inner_nodes.items():
            if inner_name in ins or inner_name in outs:
                continue
            if flat(inner_name) in graph.nodes:
                raise GraphValidationError(
                    problems=[Problem(f"nodes.{flat(inner_name)}", f"name collides with node {inner_name!r} of nested graph {name!r}")]
                )
            nodes[flat(inner_name)] = inner_node
        succ = {i: [flat(d) for s, d in inner_edges if s == i] for i in ins}
        pred = {o: [flat(s) for s, d in inner_edges if d == o] for o in outs}
        entries[name] = [n for i in ins for n in succ[i]]
        exits[name] = [n for o in outs for n in pred[o]]
        for i in ins:
            entries[flat(i)] = succ[i]
        for o in outs:
            exits[flat(o)] = pred[o]
        entries.update({flat(k): [flat(n) for n in v] for k, v in inner_entries.items()})
        exits.update({flat(k): [flat(n) for n in v] for k, v in inner_exits.items()})
        edges += [(flat(s), flat(d)) for s, d in inner_edges if s not in ins and d not in outs]
    for src, dst in graph.edges:
        for s in exits.get(src, [src]):
            for d in entries.get(dst, [dst]):
                edges.append((s, d))
    return nodes, list(dict.fromkeys(edges)), entries, exits


@dataclass(frozen=True)
class Schedule:
    """How to evaluate a flat graph.

    `order`: every node, each after all the nodes it reads at the same step.
    `sources[node]`: (source, delayed) pairs: delayed sources are read at the previous step.
    `blocks`: the order cut into strongly connected components; a block of one node with no
    delayed input from itself can be evaluated over all time steps at once.
    """

    order: tuple[str, ...]
    sources: dict[str, tuple[tuple[str, bool], ...]]
    delayed: frozenset[Edge]
    blocks: tuple[tuple[str, ...], ...]

    def is_cyclic(self, block: tuple[str, ...]) -> bool:
        return len(block) > 1 or any(s == block[0] for s, _ in self.sources[block[0]])


def schedule(graph: Graph) -> Schedule:
    """Order the nodes of a flat graph (see `flatten`) and mark the edges that close cycles.

    One depth-first search (iterative, so any depth) gives both: its reverse postorder is the
    order, and Tarjan's lowlinks along the same search give the strongly connected components.
    Time and memory linear in nodes and edges."""
    succ: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for s, d in graph.edges:
        succ[s].append(d)
    starts = [n for n, node in graph.nodes.items() if isinstance(node, Input)]
    starts += [n for n, node in graph.nodes.items() if not isinstance(node, Input)]
    index: dict[str, int] = {}  # visiting order
    low: dict[str, int] = {}  # the lowest index reachable through the search tree and one back edge
    open_nodes: list[str] = []  # visited, component not yet closed
    on_stack: set[str] = set()
    postorder: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        open_nodes.append(node)
        on_stack.add(node)

    for start in starts:
        if start in index:
            continue
        visit(start)
        work = [(start, iter(succ[start]))]
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in index:
                    visit(nxt)
                    work.append((nxt, iter(succ[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                postorder.append(node)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:  # node is the root of a component: close it
                    component = []
                    while True:
                        member = open_nodes.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
    order = tuple(reversed(postorder))
    pos = {n: i for i, n in enumerate(order)}
    delayed = frozenset((s, d) for s, d in graph.edges if pos[s] >= pos[d])
    incoming: dict[str, list[tuple[str, bool]]] = {n: [] for n in order}
    for s, d in graph.edges:
        incoming[d].append((s, (s, d) in delayed))
    sources = {n: tuple(incoming[n]) for n in order}
    # each block listed in order, blocks in the order of their first node: every block comes
    # after the blocks it reads at the same step
    blocks = sorted((sorted(c, key=pos.__getitem__) for c in components), key=lambda c: pos[c[0]])
    return Schedule(order, sources, delayed, tuple(tuple(b) for b in blocks))
