"""The cycle rule and nested-graph flattening, written out by hand."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nirbridge import GraphValidationError
from nirbridge.ir import Graph, Input, Linear, Output, Scale
from nirbridge.topology import flatten, schedule


def scale(n=2):
    return Scale(scale=np.ones(n))


def io(n=2):
    return Input(shape=np.array([n])), Output(shape=np.array([n]))


def recurrent_subgraph():
    i, o = io()
    return Graph(
        nodes={"in": i, "lif": scale(), "w": Linear(weight=np.eye(2)), "out": o},
        edges=[("in", "lif"), ("lif", "w"), ("w", "lif"), ("lif", "out")],
    )


def test_flatten_inlines_nested_graph_with_dotted_names():
    i, o = io()
    g = Graph(nodes={"input": i, "sub": recurrent_subgraph(), "output": o}, edges=[("input", "sub"), ("sub", "output")])
    flat = flatten(g)
    assert set(flat.nodes) == {"input", "sub.lif", "sub.w", "output"}
    assert set(flat.edges) == {("input", "sub.lif"), ("sub.lif", "sub.w"), ("sub.w", "sub.lif"), ("sub.lif", "output")}


def test_flatten_keeps_edges_that_address_inner_nodes_by_dotted_name():
    i, o = io()
    g = Graph(
        nodes={"input": i, "sub": recurrent_subgraph(), "s": scale(), "output": o},
        edges=[("input", "sub"), ("sub", "output"), ("sub.w", "s"), ("s", "output")],
    )
    assert ("sub.w", "s") in flatten(g).edges


def test_flatten_refuses_name_collisions():
    i, o = io()
    g = Graph(
        nodes={"input": i, "sub": recurrent_subgraph(), "sub.w": scale(), "output": o},
        edges=[("input", "sub"), ("sub", "sub.w"), ("sub.w", "output")],
    )
    with pytest.raises(GraphValidationError, match="sub.w"):
        flatten(g)


def test_schedule_orders_feedforward_and_delays_the_closing_edge():
    i, o = io()
    g = Graph(
        nodes={"input": i, "a": scale(), "b": scale(), "output": o},
        edges=[("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")],
    )
    s = schedule(g)
    assert s.order == ("input", "a", "b", "output")
    assert s.delayed == {("b", "a")}
    assert s.sources["a"] == (("input", False), ("b", True))
    assert s.blocks == (("input",), ("a", "b"), ("output",))
    assert s.is_cyclic(("a", "b")) and not s.is_cyclic(("input",))


def test_self_loop_is_delayed_and_cyclic():
    i, o = io()
    g = Graph(nodes={"input": i, "a": scale(), "output": o}, edges=[("input", "a"), ("a", "a"), ("a", "output")])
    s = schedule(g)
    assert s.delayed == {("a", "a")}
    assert s.is_cyclic(("a",))


def test_edge_order_decides_which_edge_closes_a_cycle():
    """The depth-first search follows edges in file order: listing b's edge first makes a the
    late node, so the edge a -> b closes the cycle instead."""
    i, o = io()
    nodes = {"input": i, "a": scale(), "b": scale(), "output": o}
    first = Graph(nodes=nodes, edges=[("input", "a"), ("input", "b"), ("a", "b"), ("b", "a"), ("b", "output")])
    assert schedule(first).delayed == {("b", "a")}
    second = Graph(nodes=nodes, edges=[("input", "b"), ("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")])
    assert schedule(second).delayed == {("a", "b")}


def test_flatten_resolves_edges_into_a_graph_nested_two_levels_deep():
    """`outer.mid` names a nested graph inside a nested graph: edges into and out of it reach
    its inner nodes."""
    i, o = io()
    mid = recurrent_subgraph()
    i2, o2 = io()
    middle = Graph(nodes={"in": i2, "mid": mid, "out": o2}, edges=[("in", "mid"), ("mid", "out")])
    i3, o3 = io()
    g = Graph(
        nodes={"input": i3, "outer": middle, "s": scale(), "output": o3},
        edges=[("input", "outer"), ("outer", "output"), ("outer.mid", "s"), ("s", "output")],
    )
    flat = flatten(g)
    assert set(flat.nodes) == {"input", "outer.mid.lif", "outer.mid.w", "s", "output"}
    assert ("outer.mid.lif", "s") in flat.edges
    assert ("input", "outer.mid.lif") in flat.edges and ("outer.mid.lif", "output") in flat.edges
    schedule(flat)  # every edge names a flat node


def _components_by_reachability(order, edges):
    """Strongly connected components the slow way: the nodes both reachable from and reaching
    each node, listed in `order`, in the order of their first node."""
    forward = {n: {d for s, d in edges if s == n} for n in order}
    backward = {n: {s for s, d in edges if d == n} for n in order}

    def reach(start, adj):
        found, todo = {start}, [start]
        while todo:
            for m in adj[todo.pop()] - found:
                found.add(m)
                todo.append(m)
        return found

    blocks, assigned = [], set()
    for n in order:
        if n not in assigned:
            component = reach(n, forward) & reach(n, backward)
            assigned |= component
            blocks.append(tuple(m for m in order if m in component))
    return tuple(blocks)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(st.just(n), st.lists(st.tuples(st.integers(0, n), st.integers(1, n)), max_size=3 * n))))
def test_blocks_are_the_strongly_connected_components_in_order(case):
    n, pairs = case
    names = ["input"] + [f"n{i}" for i in range(1, n + 1)]
    edges = list(dict.fromkeys((names[s], names[d]) for s, d in pairs))
    graph = Graph.model_construct(
        nodes={"input": Input(shape=np.array([2]))} | {m: scale() for m in names[1:]}, edges=edges, metadata={}, type="NIRGraph"
    )
    s = schedule(graph)
    assert s.blocks == _components_by_reachability(s.order, edges)
    pos = {m: i for i, m in enumerate(s.order)}
    block_of = {m: b for b, block in enumerate(s.blocks) for m in block}
    for src, dst in edges:  # same-step edges never point back to an earlier block
        if (src, dst) not in s.delayed:
            assert pos[src] < pos[dst] and block_of[src] <= block_of[dst]


def test_schedule_of_a_long_chain():
    """30,000 nodes in a row: no recursion, every node its own block, no delayed edge."""
    names = ["input"] + [f"n{i}" for i in range(30_000)]
    graph = Graph.model_construct(
        nodes={"input": Input(shape=np.array([2]))} | dict.fromkeys(names[1:], scale()),
        edges=list(zip(names, names[1:])), metadata={}, type="NIRGraph",
    )
    s = schedule(graph)
    assert s.order == tuple(names) and not s.delayed and len(s.blocks) == len(names)
    ring = Graph.model_construct(nodes=graph.nodes, edges=graph.edges + [(names[-1], names[1])], metadata={}, type="NIRGraph")
    s = schedule(ring)  # one cycle through all of them: one block
    assert s.delayed == {(names[-1], names[1])} and s.blocks == (("input",), tuple(names[1:]))
