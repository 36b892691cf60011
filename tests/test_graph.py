"""The Graph model: validation with dotted paths, shape inference, NIR conversion, reporting."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import strategies
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nirbridge import GraphValidationError
from nirbridge.ir import (
    IF,
    LI,
    LIF,
    NEURON_TYPES,
    NODE_TYPES,
    SPIKING_TYPES,
    Affine,
    AvgPool2d,
    Conv1d,
    Conv2d,
    CubaLI,
    CubaLIF,
    Delay,
    Flatten,
    Graph,
    I,
    Input,
    Linear,
    Output,
    Scale,
    SumPool2d,
    Threshold,
)

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

f32 = np.float32


def full(shape, value, dtype=f32):
    return np.full(shape, value, dtype=dtype)


def lif(n, **override):
    fields = dict(tau=full(n, 0.01), r=full(n, 1.0), v_leak=full(n, 0.0), v_threshold=full(n, 1.0), v_reset=full(n, 0.0))
    fields.update(override)
    return LIF(**fields)


def dense(n_in, n_out, bias=True):
    w = np.arange(n_out * n_in, dtype=f32).reshape(n_out, n_in) / 10
    return Affine(weight=w, bias=np.zeros(n_out, f32)) if bias else Linear(weight=w)


def chain(*named, n_in=3, n_out=None):
    """Input -> named nodes in order -> Output."""
    nodes = {"in": Input(shape=np.array([n_in]))} if isinstance(n_in, int) else {"in": Input(shape=np.array(n_in))}
    names = [name for name, _ in named]
    nodes.update(dict(named))
    nodes["out"] = Output(shape=np.array([n_out if n_out is not None else n_in]))
    seq = ["in", *names, "out"]
    return dict(nodes=nodes, edges=list(zip(seq, seq[1:])))


def problems_of(**fields) -> list[str]:
    with pytest.raises(GraphValidationError) as info:
        Graph(**fields)
    return [str(p) for p in info.value.problems]


def zoo() -> Graph:
    """One graph holding every NIR primitive and a nested graph, shapes worked out by hand:
    Conv2d 3x3 pad 1 keeps 6x6; SumPool 2x2 stride 2 -> 3x3; Flatten 4*3*3 = 36;
    Conv1d kernel 3 on length 8 -> 6; Flatten 2*6 = 12."""
    cs = (4, 6, 6)
    nodes = {
        "img": Input(shape=np.array([2, 6, 6])),
        "conv": Conv2d(
            weight=full((4, 2, 3, 3), 0.1), bias=full(4, 0.0), stride=np.array(1), padding=np.array([1, 1]),
            dilation=np.array(1), groups=np.array(1), input_shape=np.array([6, 6]),
        ),
        "if": IF(r=full(cs, 1.0), v_threshold=full(cs, 1.0), v_reset=full(cs, 0.0)),
        "sum": SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "avg": AvgPool2d(kernel_size=np.array([1, 1]), stride=np.array([1, 1]), padding=np.array([0, 0])),
        "flat": Flatten(start_dim=0, end_dim=-1, input_type=np.array([4, 3, 3])),
        "fc": dense(36, 5),
        "seq": Input(shape=np.array([3, 8])),
        "conv1": Conv1d(
            weight=full((2, 3, 3), 0.1), bias=full(2, 0.0), stride=np.array(1), padding=np.array(0),
            dilation=np.array(1), groups=np.array(1), input_shape=np.array(8),
        ),
        "flat1": Flatten(start_dim=0, end_dim=-1),
        "fc1": dense(12, 5, bias=False),
        "lif": lif(5),
        "lin": dense(5, 5, bias=False),
        "li": LI(tau=full(5, 0.02), r=full(5, 1.0), v_leak=full(5, 0.0)),
        "scale": Scale(scale=full(5, 2.0)),
        "thr": Threshold(threshold=full(5, 0.5)),
        "delay": Delay(delay=full(5, 0.001)),
        "int": I(r=full(5, 1.0)),
        "culi": CubaLI(tau_syn=full(5, 0.005), tau_mem=full(5, 0.01), r=full(5, 1.0), v_leak=full(5, 0.0), w_in=full(5, 1.0)),
        "culif": CubaLIF(
            tau_syn=full(5, 0.005), tau_mem=full(5, 0.01), r=full(5, 1.0), v_leak=full(5, 0.0),
            v_threshold=full(5, 1.0), v_reset=full(5, 0.0), w_in=full(5, 1.0),
        ),
        "sub": Graph(**chain(("neuron", lif(5)), n_in=5)),
        "out": Output(shape=np.array([5])),
    }
    order = ["img", "conv", "if", "sum", "avg", "flat", "fc", "lif", "lin", "li", "scale", "thr", "delay",
             "int", "culi", "culif", "sub", "out"]
    edges = list(zip(order, order[1:])) + [("seq", "conv1"), ("conv1", "flat1"), ("flat1", "fc1"), ("fc1", "lif")]
    return Graph(nodes=nodes, edges=edges, metadata={"name": "zoo"})


# ----------------------------------------------------------------------------- valid graphs


def test_zoo_holds_every_primitive_and_infers_shapes_by_hand():
    g = zoo()
    assert {node.type for _, node in g.walk()} == set(NODE_TYPES)
    shapes = g.shapes()
    assert shapes["conv"] == ((2, 6, 6), (4, 6, 6))
    assert shapes["sum"] == ((4, 6, 6), (4, 3, 3))
    assert shapes["avg"] == ((4, 3, 3), (4, 3, 3))
    assert shapes["flat"] == ((4, 3, 3), (36,))
    assert shapes["conv1"] == ((3, 8), (2, 6))
    assert shapes["flat1"] == ((2, 6), (12,))
    assert shapes["sub"] == ((5,), (5,))
    assert NEURON_TYPES == {"I", "IF", "LI", "LIF", "CubaLI", "CubaLIF"}
    assert SPIKING_TYPES == {"IF", "LIF", "CubaLIF", "Threshold"}


def test_cycles_and_self_loops_are_allowed():
    g = Graph(
        nodes={"in": Input(shape=np.array([3])), "fc": dense(3, 4), "lif": lif(4), "rec": dense(4, 4), "out": Output(shape=np.array([4]))},
        edges=[("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "lif"), ("lif", "out")],
    )
    assert g.shapes()["rec"] == ((4,), (4,))


def test_scalar_parameters_broadcast_to_the_incoming_shape():
    """Old NIR files store neuron parameters as scalars; they apply to every element."""
    scalar = LIF(tau=np.float64(0.01), r=np.float64(1), v_leak=np.float64(0), v_threshold=np.float64(1), v_reset=np.float64(0))
    g = Graph(**chain(("fc", dense(3, 7)), ("lif", scalar), n_out=7))
    assert g.shapes()["lif"] == ((7,), (7,))
    assert g.nodes["lif"].tau.shape == () and g.nodes["lif"].tau.dtype == np.float64


def test_dotted_edges_address_nodes_inside_nested_graphs():
    sub = Graph(**chain(("lif", lif(4)), ("rec", dense(4, 4)), n_in=4))
    g = Graph(
        nodes={"in": Input(shape=np.array([3])), "fc": dense(3, 4), "sub": sub, "out": Output(shape=np.array([4]))},
        edges=[("in", "fc"), ("fc", "sub"), ("sub.lif", "out")],
    )
    assert g.resolve("sub.lif") == (sub, "lif")
    assert g.resolve("sub.nothing") is None
    assert [name for name, _ in g.walk()] == ["in", "fc", "sub", "sub.in", "sub.lif", "sub.rec", "sub.out", "out"]


def test_a_node_fed_only_from_outside_its_nested_graph_is_not_an_orphan():
    sub = Graph(
        nodes={"in": Input(shape=np.array([4])), "lif": lif(4), "out": Output(shape=np.array([4]))},
        edges=[("in", "lif"), ("lif", "out")],
    )
    inner = {  # plain data: on its own this graph is invalid, since b is wired only from outside
        "type": "NIRGraph",
        "nodes": {"in": Input(shape=np.array([4])), "a": lif(4), "b": lif(4), "out": Output(shape=np.array([4]))},
        "edges": [("in", "a"), ("a", "out")],
    }
    g = Graph(
        nodes={"in": Input(shape=np.array([4])), "x": inner, "s": sub, "out": Output(shape=np.array([4]))},
        edges=[("in", "x"), ("x", "x.b"), ("x.b", "s"), ("s", "out")],
    )
    assert g.resolve("x.b")[1] == "b"


def test_exact_names_with_dots_win_over_nested_paths():
    """The NIR paper's Braille graphs name top-level nodes `lif1.lif`, `lif1.w_rec`."""
    g = Graph(
        nodes={"in": Input(shape=np.array([2])), "lif1.lif": lif(2), "lif1.w_rec": dense(2, 2), "out": Output(shape=np.array([2]))},
        edges=[("in", "lif1.lif"), ("lif1.lif", "lif1.w_rec"), ("lif1.w_rec", "lif1.lif"), ("lif1.lif", "out")],
    )
    assert g.resolve("lif1.lif") == (g, "lif1.lif")


def test_metadata_is_normalised_to_plain_python_values():
    g = Graph(
        **chain(("lif", lif(3)), n_in=3),
        metadata={
            "f": np.float32(0.5), "i": np.int64(3), "b": np.bool_(True), "s": b"bytes", "z": np.array(2.5),
            "names": np.array([b"a", b"b"], dtype=object), "nested": {"x": np.int16(7)}, "arr": np.arange(3),
        },
    )
    m = g.metadata
    assert (m["f"], m["i"], m["b"], m["s"], m["z"], m["names"], m["nested"]) == (0.5, 3, True, "bytes", 2.5, ["a", "b"], {"x": 7})
    assert type(m["f"]) is float and type(m["i"]) is int and type(m["b"]) is bool and type(m["nested"]["x"]) is int
    assert m["arr"].dtype == np.arange(3).dtype


def test_equality_is_bit_exact_with_dtypes():
    a = Graph(**chain(("lif", lif(3)), n_in=3))
    assert a == Graph(**chain(("lif", lif(3)), n_in=3))
    assert a != Graph(**chain(("lif", lif(3, tau=full(3, 0.01, np.float64))), n_in=3))
    assert a != Graph(**chain(("lif", lif(3, v_leak=full(3, -0.0))), n_in=3))


# ----------------------------------------------------------------------------- values


def test_tau_must_be_positive_with_path_and_value():
    tau = full(5, 0.01)
    tau[3] = -0.02
    assert problems_of(**chain(("fc", dense(3, 5)), ("lif1", lif(5, tau=tau)), n_out=5)) == [
        "nodes.lif1.tau[3]: must be > 0, got -0.02"
    ]


@pytest.mark.parametrize(
    "field, bad, expected",
    [
        ("tau", 0.0, "nodes.lif.tau[1]: must be > 0, got 0.0"),
        ("tau", np.nan, "nodes.lif.tau[1]: must be finite, got nan"),
        ("v_threshold", np.inf, "nodes.lif.v_threshold[1]: must be finite, got inf"),
        ("r", -np.inf, "nodes.lif.r[1]: must be finite, got -inf"),
    ],
)
def test_non_finite_and_non_positive_values(field, bad, expected):
    arr = full(3, 0.5)
    arr[1] = bad
    assert problems_of(**chain(("lif", lif(3, **{field: arr})))) == [expected]


def test_index_of_a_bad_value_in_a_matrix():
    w = np.ones((2, 3), f32)
    w[1, 2] = np.nan
    assert problems_of(**chain(("fc", Linear(weight=w)), n_out=2)) == ["nodes.fc.weight[1, 2]: must be finite, got nan"]


def test_every_problem_is_reported_at_once():
    tau = full(3, 0.01)
    tau[0] = -1
    found = problems_of(
        nodes={
            "in": Input(shape=np.array([3])),
            "lif": lif(3, tau=tau, r=np.full(3, 2**60, np.int64)),
            "fc": Affine(weight=np.ones((2, 3), f32), bias=np.ones(3, f32)),
            "out": Output(shape=np.array([2])),
        },
        edges=[("in", "lif"), ("lif", "fc"), ("fc", "out"), ("fc", "ghost")],
    )
    assert "nodes.lif.tau[0]: must be > 0, got -1.0" in found
    assert "nodes.lif.r: integers beyond 2**53 cannot become floats exactly, got dtype int64" in found
    assert "nodes.fc.bias: shape (3,) does not match weight rows (2,)" in found
    assert any(p.startswith("edges[3]: destination 'ghost' does not exist") for p in found)
    assert len(found) == 4


@pytest.mark.parametrize(
    "value, expected",
    [
        (np.ones(3, np.complex64), "must be a float array, got dtype complex64"),
        (np.array(["a", "b", "c"]), "must be a float array, got dtype <U1"),
        (np.array([1.0, "x", None], dtype=object), "must be a float array, got dtype object"),
        (np.ones(3, bool), "must be a float array, got dtype bool"),
    ],
)
def test_parameters_must_be_float_arrays(value, expected):
    assert problems_of(**chain(("s", Scale(scale=value)))) == [f"nodes.s.scale: {expected}"]


def test_integer_parameters_become_exact_floats():
    """As NIR's own tests write them (`nir.Threshold(np.array([1, 2, 3]))`): float32 where it
    holds every value exactly, else float64; never a changed value."""
    small = Scale(scale=np.array([1, -2, 3]))
    assert small.scale.dtype == np.float32 and small.scale.tolist() == [1.0, -2.0, 3.0]
    big = Scale(scale=np.array([2**24 + 1, 0]))
    assert big.scale.dtype == np.float64 and int(big.scale[0]) == 2**24 + 1
    graph = Graph.from_nir(nir.NIRGraph.from_list(nir.Threshold(np.array([1, 2, 3]))))
    assert graph.nodes["threshold"].threshold.dtype == np.float32


def test_a_convolution_without_bias_has_a_zero_bias():
    conv = nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3), np.float32), stride=1, padding=1, dilation=1, groups=1, bias=None)
    graph = Graph.from_nir(nir.NIRGraph.from_list(conv))
    bias = graph.nodes["conv2d"].bias
    assert bias.dtype == np.float32 and bias.shape == (2,) and not bias.any()


def test_torch_tensors_in_nir_nodes_are_accepted():
    torch = pytest.importorskip("torch")
    weight = torch.ones(2, 3, requires_grad=True)
    graph = Graph.from_nir(nir.NIRGraph.from_list(nir.Linear(weight), nir.LIF(
        tau=torch.full((2,), 0.01), r=torch.ones(2), v_leak=torch.zeros(2), v_threshold=torch.ones(2, dtype=torch.bfloat16), v_reset=torch.zeros(2))))
    lin = graph.nodes["linear"]
    assert isinstance(lin.weight, np.ndarray) and lin.weight.dtype == np.float32 and (lin.weight == 1).all()
    assert graph.nodes["lif"].v_threshold.dtype == np.float32
    with torch.no_grad():
        weight.fill_(5.0)
    assert (lin.weight == 1).all()  # a copy: the tensor's later changes do not reach the graph


def test_extended_precision_and_float32_overflow_are_refused():
    if np.dtype(np.longdouble).itemsize > 8:
        assert problems_of(**chain(("s", Scale(scale=np.ones(3, np.longdouble))))) == [
            f"nodes.s.scale: extended precision ({np.dtype(np.longdouble)}) is not supported: convert to float64"]
    huge = np.array([1.0, 1e39, 2.0])
    assert problems_of(**chain(("s", Scale(scale=huge)))) == ["nodes.s.scale[1]: 1e+39 overflows float32, the working dtype"]


def test_a_graph_cannot_be_changed_after_validation():
    weight = np.ones((2, 3), np.float32)
    g = Graph(**chain(("fc", Linear(weight=weight)), n_out=2), metadata={"who": {"names": ["a"]}})
    weight[0, 0] = np.nan  # the caller's array is not the graph's
    assert np.isfinite(g.nodes["fc"].weight).all()
    with pytest.raises(ValueError):
        g.nodes["fc"].weight[0, 0] = 2.0
    for change in (lambda: g.metadata.__setitem__("x", 1), lambda: g.metadata.update(x=1),
                   lambda: g.metadata["who"].__setitem__("y", 2), lambda: g.metadata["who"]["names"].append("b")):
        with pytest.raises(TypeError, match="read-only"):
            change()
    with pytest.raises(TypeError, match="read-only"):
        g.metadata |= {"x": 1}
    changed = g.replace(metadata={"x": 1})
    assert changed.metadata == {"x": 1} and g.metadata == {"who": {"names": ["a"]}}
    with pytest.raises(GraphValidationError):
        g.replace(edges=[("in", "ghost")])  # updates are validated again


def test_strings_where_arrays_belong_are_refused():
    found = problems_of(**chain(("s", {"type": "Scale", "scale": "1.0"})))
    assert found == ["nodes.s.scale: must be an array, got str"]


def test_integer_fields_must_be_integers():
    pool = SumPool2d(kernel_size=np.array([2.0, 2.0]), stride=np.array([1, 1]), padding=np.array([0, 0]))
    found = problems_of(**chain(("p", pool), ("f", Flatten(start_dim=0)), n_in=[1, 4, 4], n_out=9))
    assert found == ["nodes.p.kernel_size: must be an integer array, got dtype float64"]


# ----------------------------------------------------------------------------- shapes inside a node


def test_neuron_fields_must_share_a_shape():
    assert problems_of(**chain(("lif", lif(3, v_leak=full(4, 0.0))))) == [
        "nodes.lif.v_leak: shape (4,) differs from tau shape (3,)"
    ]


def test_affine_weight_and_bias_must_agree():
    assert problems_of(**chain(("fc", Affine(weight=np.ones(3, f32), bias=np.ones(3, f32))))) == [
        "nodes.fc.weight: must be 2-dimensional (out, in), got shape (3,)"
    ]


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"weight": full((4, 2, 3), 0.1)}, "nodes.c.weight: must have 4 dimensions, got shape (4, 2, 3)"),
        ({"groups": np.array(3)}, "nodes.c.groups: 3 does not divide 4 output channels"),
        ({"groups": np.array(0)}, "nodes.c.groups: must be a positive integer, got 0"),
        ({"bias": full(3, 0.0)}, "nodes.c.bias: shape (3,) does not match 4 output channels"),
        ({"stride": np.array([0, 1])}, "nodes.c.stride: must be >= 1, got [0, 1]"),
        ({"padding": np.array([-1, 0])}, "nodes.c.padding: must be >= 0, got [-1, 0]"),
        ({"dilation": np.array([1, 1, 1])}, "nodes.c.dilation: must have 1 or 2 values, got 3"),
        ({"padding": "same", "stride": np.array(2)}, "nodes.c.padding: 'same' needs stride 1, got stride 2"),
        ({"input_shape": np.array([6])}, "nodes.c.input_shape: must hold 2 spatial size(s), got shape (1,)"),
    ],
)
def test_conv_parameters(override, expected):
    fields = dict(weight=full((4, 2, 3, 3), 0.1), bias=full(4, 0.0), stride=np.array(1), padding=np.array(1),
                  dilation=np.array(1), groups=np.array(1))
    fields.update(override)
    found = problems_of(**chain(("c", Conv2d(**fields)), ("f", Flatten(start_dim=0)), n_in=[2, 6, 6], n_out=144))
    assert expected in found


@pytest.mark.parametrize("shape, expected", [
    ([], "must be a non-empty 1-d array of sizes, got shape (0,)"),
    ([3, 0], "sizes must be >= 1, got [3, 0]"),
    ([[3]], "must be a non-empty 1-d array of sizes, got shape (1, 1)"),
])
def test_input_shapes_must_be_sizes(shape, expected):
    found = problems_of(nodes={"in": Input(shape=np.array(shape, dtype=np.int64)), "out": Output(shape=np.array([3]))}, edges=[("in", "out")])
    assert f"nodes.in.shape: {expected}" in found


# ----------------------------------------------------------------------------- edges and names


def test_edges_must_name_existing_nodes_once():
    g = chain(("lif", lif(3)))
    g["edges"] += [("lif", "nowhere"), ("in", "lif")]
    assert problems_of(**g) == [
        "edges[2]: destination 'nowhere' does not exist (nodes: in, lif, out)",
        "edges[3]: duplicate edge in -> lif",
    ]


def test_edges_must_be_pairs():
    g = chain(("lif", lif(3)))
    g["edges"][0] = ("in", "lif", "out")
    found = problems_of(**g)
    assert len(found) == 1 and found[0].startswith("edges[0]")


@pytest.mark.parametrize("name", ["", "a/b", ".", "nul\x00"])
def test_node_names(name):
    found = problems_of(**chain((name, lif(3))))
    assert f"nodes.{name!r}: node names must be non-empty, not '.', without '/' or NUL" in found


def test_orphans_and_dead_ends():
    g = chain(("lif", lif(3)))
    g["nodes"].update({"lonely": lif(3), "sink": lif(3), "in2": Input(shape=np.array([3])), "out2": Output(shape=np.array([3]))})
    g["edges"].append(("lif", "sink"))
    assert set(problems_of(**g)) == {
        "nodes.lonely: node is connected to nothing (orphan)",
        "nodes.sink: node has no outgoing edge (only Output nodes may end a path)",
        "nodes.in2: Input node feeds nothing (orphan)",
        "nodes.out2: Output node receives nothing (orphan)",
    }


def test_input_nodes_take_no_edges_and_output_nodes_send_none():
    g = chain(("lif", lif(3)))
    g["edges"] += [("lif", "in"), ("out", "lif")]
    found = problems_of(**g)
    assert "edges[2]: Input node 'in' cannot receive edges" in found
    assert "edges[3]: Output node 'out' cannot send edges" in found


# ----------------------------------------------------------------------------- shapes across edges


def test_shape_mismatch_across_an_edge():
    assert problems_of(**chain(("fc", dense(3, 4)), ("lif", lif(5)), n_out=5)) == [
        "edges[1]: fc outputs shape (4,) but lif takes (5,)"
    ]


def test_shape_mismatch_closing_a_cycle():
    found = problems_of(
        nodes={"in": Input(shape=np.array([3])), "fc": dense(3, 4), "lif": lif(4), "rec": dense(4, 3), "out": Output(shape=np.array([4]))},
        edges=[("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")],
    )
    assert found == ["edges[3]: rec outputs shape (3,) but lif takes (4,)"]


def test_shapes_propagate_through_conv_pool_and_flatten():
    conv = Conv2d(weight=full((4, 2, 3, 3), 0.1), bias=full(4, 0.0), stride=np.array(2), padding=np.array(0),
                  dilation=np.array(1), groups=np.array(1))
    pool = AvgPool2d(kernel_size=np.array(2), stride=np.array(2), padding=np.array(0))
    # 9x9, kernel 3, stride 2 -> 4x4; pool 2 -> 2x2; flatten 4*2*2 = 16; the Affine takes 15
    found = problems_of(**chain(("c", conv), ("p", pool), ("f", Flatten(start_dim=0)), ("fc", dense(15, 2)), n_in=[2, 9, 9], n_out=2))
    assert found == ["edges[3]: f outputs shape (16,) but fc takes (15,)"]


def test_impossible_flatten_and_conv_inputs():
    found = problems_of(**chain(("f", Flatten(start_dim=2)), n_in=[2, 3], n_out=6))
    assert found == ["nodes.f: start_dim=2, end_dim=-1 invalid for input shape (2, 3)"]
    conv = Conv1d(weight=full((2, 3, 3), 0.1), bias=full(2, 0.0), stride=np.array(1), padding=np.array(0),
                  dilation=np.array(1), groups=np.array(1))
    found = problems_of(**chain(("c", conv), ("f", Flatten(start_dim=0)), n_in=[2, 8], n_out=12))
    assert found == ["nodes.c: expects 3 input channels, got shape (2, 8)"]


def _windows(n, k, s, p, d):
    """Window positions counted one by one (independent of the closed-form size formula)."""
    count, start = 0, 0
    while start + d * (k - 1) <= n + 2 * p - 1:
        count, start = count + 1, start + s
    return count


@PROPERTY
@given(
    c=st.integers(1, 3), n=st.integers(1, 12), m=st.integers(1, 12), k=st.integers(1, 4),
    s=st.integers(1, 3), p=st.integers(0, 2), d=st.integers(1, 2),
)
def test_conv2d_output_size_matches_counted_windows(c, n, m, k, s, p, d):
    conv = Conv2d(weight=full((2, c, k, k), 0.1), bias=full(2, 0.0), stride=np.array(s), padding=np.array(p),
                  dilation=np.array(d), groups=np.array(1), input_shape=np.array([n, m]))
    h, w = _windows(n, k, s, p, d), _windows(m, k, s, p, d)
    fields = chain(("c", conv), ("f", Flatten(start_dim=0)), n_in=[c, n, m], n_out=max(2 * h * w, 1))
    if h < 1 or w < 1:
        assert any("too small for kernel" in p for p in problems_of(**fields))
    else:
        assert Graph(**fields).shapes()["c"][1] == (2, h, w)


@PROPERTY
@given(n=st.integers(1, 10), k=st.integers(1, 3), s=st.integers(1, 3), p=st.integers(0, 1))
def test_pool_output_size_matches_counted_windows(n, k, s, p):
    pool = SumPool2d(kernel_size=np.array([k, 1]), stride=np.array([s, 1]), padding=np.array([p, 0]))
    h = _windows(n, k, s, p, 1)
    fields = chain(("p", pool), ("f", Flatten(start_dim=0)), n_in=[1, n, 3], n_out=max(3 * h, 1))
    if h < 1:
        assert any("too small for kernel" in p for p in problems_of(**fields))
    else:
        assert Graph(**fields).shapes()["p"][1] == (1, h, 3)


# ----------------------------------------------------------------------------- nested graphs


def test_problems_inside_nested_graphs_carry_the_full_path():
    tau = full(4, 0.01)
    tau[2] = -1
    sub = {"type": "NIRGraph", **chain(("lif", lif(4, tau=tau)), n_in=4)}
    found = problems_of(**chain(("fc", dense(3, 4)), ("sub", sub), n_out=4))
    assert found == ["nodes.sub.nodes.lif.tau[2]: must be > 0, got -1.0"]


def test_dotted_edges_are_shape_checked():
    sub = Graph(**chain(("lif", lif(4)), n_in=4))
    found = problems_of(
        nodes={"in": Input(shape=np.array([3])), "fc": dense(3, 4), "sub": sub, "out": Output(shape=np.array([5]))},
        edges=[("in", "fc"), ("fc", "sub"), ("sub.lif", "out")],
    )
    assert found == ["edges[2]: sub.lif outputs shape (4,) but out takes (5,)"]


def test_dotted_edges_to_missing_inner_nodes():
    sub = Graph(**chain(("lif", lif(4)), n_in=4))
    found = problems_of(
        nodes={"in": Input(shape=np.array([4])), "sub": sub, "out": Output(shape=np.array([4]))},
        edges=[("in", "sub"), ("sub.lif2", "out"), ("sub", "out")],
    )
    assert found == ["edges[1]: source 'sub.lif2' does not exist (nodes: in, out, sub)"]


def test_a_nested_graph_used_by_name_needs_one_output():
    sub = Graph(
        nodes={"in": Input(shape=np.array([4])), "lif": lif(4), "o1": Output(shape=np.array([4])), "o2": Output(shape=np.array([4]))},
        edges=[("in", "lif"), ("lif", "o1"), ("lif", "o2")],
    )
    found = problems_of(
        nodes={"in": Input(shape=np.array([4])), "sub": sub, "out": Output(shape=np.array([4]))},
        edges=[("in", "sub"), ("sub", "out")],
    )
    assert found == ["edges[1]: nested graph 'sub' has 2 Output nodes; name one as 'sub.<node>'"]


def test_nesting_depth_is_limited():
    g = Graph(**chain(("lif", lif(2)), n_in=2))
    for _ in range(40):
        g = Graph.model_construct(**chain(("sub", g), n_in=2))
    with pytest.raises(GraphValidationError, match="nesting deeper than 32 levels"):
        Graph(nodes=g.nodes, edges=g.edges)


# ----------------------------------------------------------------------------- plain data and NIR


def test_unknown_types_and_keys_in_plain_data():
    found = problems_of(**chain(("x", {"type": "Conv3d", "weight": [1.0]})))
    assert found == ["nodes.x: unknown node type 'Conv3d'"]
    found = problems_of(**chain(("x", {"type": "Scale", "scale": [1.0, 1, 1], "gain": [2.0]})))
    assert found == ["nodes.x.gain: unknown key"]
    found = problems_of(**chain(("x", {"type": "LIF", "tau": [0.1, 0.1, 0.1]})))
    assert set(found) == {f"nodes.x.{k}: missing" for k in ("r", "v_leak", "v_threshold", "v_reset")}


def test_from_dict_builds_the_same_graph():
    g = zoo()
    data = {"type": "NIRGraph", "nodes": g.nodes, "edges": g.edges, "metadata": g.metadata}
    assert Graph.from_dict(data) == g


def test_zoo_round_trips_through_nir():
    g = zoo()
    n = g.to_nir()
    assert isinstance(n.nodes["sub"], nir.NIRGraph) and isinstance(n.nodes["culif"], nir.CubaLIF)
    assert Graph.from_nir(n) == g


@PROPERTY
@given(strategies.graphs())
def test_from_nir_inverts_to_nir(g):
    assert Graph.from_nir(g.to_nir()) == g


def test_cubalif_w_in_keeps_its_dtype_through_nir():
    """nir.CubaLIF multiplies w_in by ones_like(v_threshold); a float32 w_in next to float64
    thresholds must still come back as float32."""
    n = 3
    node = CubaLIF(
        tau_syn=full(n, 0.005, np.float64), tau_mem=full(n, 0.01, np.float64), r=full(n, 1.0, np.float64),
        v_leak=full(n, 0.0, np.float64), v_threshold=full(n, 1.0, np.float64), v_reset=full(n, 0.0, np.float64),
        w_in=full(n, 1.5),
    )
    g = Graph(**chain(("c", node)))
    assert Graph.from_nir(g.to_nir()).nodes["c"].w_in.dtype == np.float32


def test_from_nir_reports_bad_values_as_graph_errors():
    bad = nir.NIRGraph(
        nodes={"in": nir.Input(np.array([2])), "lif": nir.LIF(tau=np.array([0.01, -1.0]), r=np.ones(2), v_leak=np.zeros(2),
                                                             v_threshold=np.ones(2), v_reset=np.zeros(2)),
               "out": nir.Output(np.array([2]))},
        edges=[("in", "lif"), ("lif", "out")], type_check=False,
    )
    with pytest.raises(GraphValidationError, match=r"nodes\.lif\.tau\[1\]: must be > 0, got -1\.0"):
        Graph.from_nir(bad)


def test_from_nir_refuses_node_types_outside_the_table():
    from nir.ir.graph import Identity

    ident = Identity(input_type={"input": np.array([2])})
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([2])), "id": ident, "out": nir.Output(np.array([2]))},
                     edges=[("in", "id"), ("id", "out")], type_check=False)
    with pytest.raises(GraphValidationError, match="nodes.id: unknown node type 'Identity'"):
        Graph.from_nir(g)


# ----------------------------------------------------------------------------- reporting


def test_summary_lists_nodes_shapes_and_parameters():
    g = Graph(**chain(("fc", dense(3, 4)), ("lif", lif(4)), n_out=4))
    lines = g.summary().splitlines()
    assert lines[0].split() == ["node", "type", "input", "output", "params"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:-1]}
    assert rows["fc"] == ["Affine", "(3,)", "(4,)", str(3 * 4 + 4)]
    assert rows["lif"] == ["LIF", "(4,)", "(4,)", str(5 * 4)]
    assert lines[-1] == "4 nodes, 3 edges, 36 parameters"


def test_summary_includes_nested_nodes():
    lines = zoo().summary().splitlines()
    assert any(line.split()[:2] == ["sub.neuron", "LIF"] for line in lines)


def test_json_schema_describes_every_node_type():
    schema = Graph.json_schema()
    text = json.dumps(schema)
    for kind in NODE_TYPES:
        assert f'"{kind}"' in text
    graph = schema["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    assert {"nodes", "edges", "metadata"} <= set(graph["properties"])


def test_a_graph_from_something_that_is_not_a_mapping_is_refused():
    for bad in ("abc", [("in", "out")], None):
        with pytest.raises(GraphValidationError, match="a graph must be a mapping"):
            Graph.from_dict(bad)


def test_a_layer_of_size_zero_is_refused():
    found = problems_of(**chain(("fc", Linear(weight=np.zeros((0, 3), np.float32))), n_out=0))
    assert "nodes.fc.weight: is empty (shape (0, 3)): a layer of size 0 computes nothing" in found
