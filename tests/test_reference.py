"""The reference simulator's structure: recurrence, nested graphs, Delay, convolution and
pooling (against plain loops written here), dtypes, evaluation in chunks of steps vs step by
step, inputs, recording and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import strategies
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nirbridge.errors import NirbridgeError, PolicyError, SimulationError
from nirbridge.ir import (
    IF,
    LI,
    LIF,
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
from nirbridge.reference import simulate
from nirbridge.semantics import NodePolicy, Policy
from nirbridge.topology import flatten, schedule

F32 = np.float32


def chain(*nodes, shape):
    """Input(shape) -> nodes... -> Output, named n0, n1, ..."""
    names = [f"n{i}" for i in range(len(nodes))]
    graph_nodes = {"in": Input(shape=np.array(shape))} | dict(zip(names, nodes)) | {"out": Output(shape=np.array([1]))}
    path = ["in", *names, "out"]
    return Graph.model_construct(nodes=graph_nodes, edges=list(zip(path, path[1:])), metadata={}, type="NIRGraph")


def if_node(n=1, th=1.0, v_reset=0.0, r=1.0):
    return IF(r=np.full(n, r, F32), v_threshold=np.full(n, th, F32), v_reset=np.full(n, v_reset, F32))


IMPULSE = Policy(dt=1.0, input="impulse", reset="subtract")


def col(x):
    """(T,) -> (T, 1, 1)"""
    return np.asarray(x, dtype=np.float64).reshape(-1, 1, 1)


# ----------------------------------------------------------------------------- recurrence


def _if_loop(scale):
    nodes = {"in": Input(shape=np.array([1])), "if": if_node(), "rec": Scale(scale=np.array([scale], F32)), "out": Output(shape=np.array([1]))}
    return Graph(nodes=nodes, edges=[("in", "if"), ("if", "rec"), ("rec", "if"), ("if", "out")])


@pytest.mark.parametrize(
    "scale, v, z",
    [
        # input at k is x[k] + scale * z[k-1]: the edge rec -> if closes the cycle
        (1.0, [0.75, 0.25, 0.25, 0.25, 0.25], [0, 1, 1, 1, 1]),
        (0.5, [0.75, 0.25, 0.75, 0.75, 0.75], [0, 1, 0, 0, 0]),
    ],
)
def test_recurrent_edge_reads_last_step(scale, v, z):
    graph = _if_loop(scale)
    assert schedule(graph).delayed == {("rec", "if")}
    for chunk in (None, 1, 2):
        r = simulate(graph, col([0.75, 0.5, 0, 0, 0]), policy=IMPULSE, record=["if", "rec"], chunk_steps=chunk)
        np.testing.assert_array_equal(r.states["if"]["v"][:, 0, 0], v)
        np.testing.assert_array_equal(r.states["if"]["spikes"][:, 0, 0], z)
        np.testing.assert_array_equal(r.states["rec"]["y"][:, 0, 0], np.array(z) * scale)  # same-step edge


def test_self_loop_reads_last_step():
    nodes = {"in": Input(shape=np.array([1])), "if": if_node(), "out": Output(shape=np.array([1]))}
    graph = Graph(nodes=nodes, edges=[("in", "if"), ("if", "if"), ("if", "out")])
    r = simulate(graph, col([0.75, 0.5, 0, 0, 0]), policy=IMPULSE, record=["if"])
    np.testing.assert_array_equal(r.states["if"]["spikes"][:, 0, 0], [0, 1, 1, 1, 1])
    np.testing.assert_array_equal(r.output[:, 0, 0], [0, 1, 1, 1, 1])


def test_delay_inside_a_cycle_adds_to_the_cycle_step():
    # if -> d (1 step) -> if: the closing edge adds one more step, so a spike returns after 2
    nodes = {
        "in": Input(shape=np.array([1])),
        "if": if_node(th=0.5),
        "d": Delay(delay=np.array([1e-3])),
        "out": Output(shape=np.array([1])),
    }
    graph = Graph(nodes=nodes, edges=[("in", "if"), ("if", "d"), ("d", "if"), ("if", "out")])
    policy = Policy(dt=1e-3, input="impulse")
    for chunk in (None, 1, 2):
        r = simulate(graph, col([1.5, 0, 0, 0, 0, 0, 0]), policy=policy, chunk_steps=chunk)
        np.testing.assert_array_equal(r.output[:, 0, 0], [1, 0, 1, 0, 1, 0, 1])


def test_recurrent_lif_network_matches_a_plain_loop():
    """Linear -> LIF with a recurrent Linear (snnTorch RLeaky-like), against a loop written here."""
    rng = np.random.default_rng(1)
    n_in, n = 6, 5
    w_in = rng.normal(0, 1.0, (n, n_in))
    w_rec = rng.normal(0, 0.5, (n, n))
    tau, r_, th = 5e-3, 50.0, 1.0  # dt 1e-4: beta = 0.98, dt/tau r = 1
    lif = LIF(tau=np.full(n, tau), r=np.full(n, r_), v_leak=np.zeros(n), v_threshold=np.full(n, th), v_reset=np.zeros(n))
    graph = Graph(
        nodes={"in": Input(shape=np.array([n_in])), "fc": Linear(weight=w_in), "lif": lif, "rec": Linear(weight=w_rec), "out": Output(shape=np.array([n]))},
        edges=[("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")],
    )
    x = (rng.random((60, 3, n_in)) < 0.3).astype(np.float64)
    res = simulate(graph, x, policy=Policy(dt=1e-4), record=["lif"], dtype=np.float64)

    beta = 1 - 1e-4 / tau
    v = np.zeros((3, n))
    z = np.zeros((3, n))
    vs, zs = [], []
    for k in range(60):
        current = x[k] @ w_in.T + z @ w_rec.T  # last step's spikes through the recurrent weights
        v = beta * v + (1 - beta) * r_ * current
        z = (v > th).astype(float)
        v = np.where(z > 0, 0.0, v)
        vs.append(v)
        zs.append(z)
    np.testing.assert_array_equal(res.states["lif"]["spikes"], np.array(zs))
    np.testing.assert_allclose(res.states["lif"]["v"], np.array(vs), rtol=1e-12, atol=1e-12)
    assert 0.05 < np.mean(zs) < 0.6  # the network fires, not saturated


def test_two_node_cycle_with_affine_steps_inside_a_batched_graph():
    """in -> fc -> [lif <-> rec(Affine)] -> fc2 -> out: the cycle is stepped, the rest batched."""
    rng = np.random.default_rng(2)
    lif = LIF(tau=np.full(3, 2.0), r=np.full(3, 2.0), v_leak=np.zeros(3), v_threshold=np.ones(3), v_reset=np.zeros(3))
    graph = Graph(
        nodes={
            "in": Input(shape=np.array([2])),
            "fc": Linear(weight=np.array([[1.0, 0.5], [0.25, 1.0], [0.5, 0.5]])),
            "lif": lif,
            "rec": Affine(weight=np.array([[0, 0.5, 0], [0, 0, 0.5], [0.5, 0, 0]]), bias=np.array([0.25, 0, 0])),
            "fc2": Linear(weight=np.ones((1, 3))),
            "out": Output(shape=np.array([1])),
        },
        edges=[("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "fc2"), ("fc2", "out")],
    )
    plan = schedule(graph)
    assert ("lif", "rec") in plan.blocks or ("rec", "lif") in plan.blocks
    x = rng.choice([0.0, 0.5, 1.0], size=(20, 4, 2))
    a = simulate(graph, x, policy=Policy(dt=1.0), record=["lif", "rec"])
    b = simulate(graph, x, policy=Policy(dt=1.0), record=["lif", "rec"], chunk_steps=1)
    for name in ("lif", "rec"):
        for key in a.states[name]:
            np.testing.assert_array_equal(a.states[name][key], b.states[name][key])
    np.testing.assert_array_equal(a.output, b.output)
    # the Affine's bias enters the LIF from step 1 on (last step's value of rec)
    plain = simulate(graph, np.zeros((3, 1, 2)), policy=Policy(dt=1.0), record=["lif"])
    # v = 0.5 v + 0.5 * 2 * (0 + rec[k-1]); rec[k] = 0.25 + ... (no spikes): v = [0, 0.25, 0.375]
    np.testing.assert_array_equal(plain.states["lif"]["v"][:, 0, 0], [0, 0.25, 0.375])


# ----------------------------------------------------------------------------- nested


def _sub(th=1.0):
    return Graph(
        nodes={"i": Input(shape=np.array([2])), "fc": Linear(weight=np.array([[1.0, 1.0], [0.5, 0.0]])), "if": if_node(2, th=th), "o": Output(shape=np.array([2]))},
        edges=[("i", "fc"), ("fc", "if"), ("if", "o")],
    )


def test_nested_graph_equals_its_flat_version_and_records_dotted_names():
    nested = Graph(
        nodes={"in": Input(shape=np.array([2])), "sub": _sub(), "s": Scale(scale=np.array([2.0, 3.0])), "out": Output(shape=np.array([2]))},
        edges=[("in", "sub"), ("sub", "s"), ("s", "out")],
    )
    flat = Graph(
        nodes={
            "in": Input(shape=np.array([2])),
            "fc": Linear(weight=np.array([[1.0, 1.0], [0.5, 0.0]])),
            "if": if_node(2),
            "s": Scale(scale=np.array([2.0, 3.0])),
            "out": Output(shape=np.array([2])),
        },
        edges=[("in", "fc"), ("fc", "if"), ("if", "s"), ("s", "out")],
    )
    x = np.array([[[0.25, 0.5]], [[0.5, 0.25]], [[0.5, 0.5]], [[0.0, 1.0]]])
    a = simulate(nested, x, policy=IMPULSE, record=["sub.if", "sub.fc"])
    b = simulate(flat, x, policy=IMPULSE, record=["if"])
    np.testing.assert_array_equal(a.output, b.output)
    # neuron 0 gets 0.75, 0.75, 1.0, 1.0: v 0.75, 1.5 -> spike, 0.5 + 1.0 -> spike, 0.5 + 1 -> spike
    np.testing.assert_array_equal(a.states["sub.if"]["spikes"][:, 0, 0], [0, 1, 1, 1])
    np.testing.assert_array_equal(a.output[:, 0, 0], [0, 2, 2, 2])
    np.testing.assert_array_equal(a.states["sub.fc"]["y"][:, 0, 1], [0.125, 0.25, 0.25, 0])
    with pytest.raises(SimulationError, match=r"record\.sub.*inlined"):
        simulate(nested, x, record=["sub"])


def test_nested_override_and_dotted_edge_out_of_the_nested_graph():
    nested = Graph(
        nodes={"in": Input(shape=np.array([2])), "sub": _sub(), "out": Output(shape=np.array([2])), "raw": Output(shape=np.array([2]))},
        edges=[("in", "sub"), ("sub", "out"), ("sub.fc", "raw")],
    )
    x = np.full((3, 1, 2), 0.5)
    policy = Policy(dt=1.0, input="impulse", overrides={"sub.if": NodePolicy(reset="none")})
    r = simulate(nested, x, policy=policy, record=["sub.if"])
    np.testing.assert_array_equal(r.states["sub.if"]["v"][:, 0, 0], [1.0, 2.0, 3.0])  # no reset
    np.testing.assert_array_equal(r.outputs["raw"][:, 0], [[1.0, 0.25]] * 3)


# ----------------------------------------------------------------------------- Delay


def test_delay_shifts_each_element_by_its_steps():
    graph = Graph(
        nodes={"in": Input(shape=np.array([3])), "d": Delay(delay=np.array([2e-3, 0.0, 1e-3])), "out": Output(shape=np.array([3]))},
        edges=[("in", "d"), ("d", "out")],
    )
    x = np.arange(1, 16, dtype=float).reshape(5, 1, 3)  # x[k] = [3k+1, 3k+2, 3k+3]
    expected = np.array([[0, 2, 0], [0, 5, 3], [1, 8, 6], [4, 11, 9], [7, 14, 12]], dtype=float)
    for chunk in (None, 1, 2):
        y = simulate(graph, x, policy=Policy(dt=1e-3), chunk_steps=chunk).output[:, 0]
        np.testing.assert_array_equal(y, expected)
    # the same node at dt = 5e-4 delays twice as many steps
    y = simulate(graph, x, policy=Policy(dt=5e-4)).output[:, 0]
    np.testing.assert_array_equal(y[:, 0], [0, 0, 0, 0, 1])


def test_delay_tolerates_the_rounding_of_a_float32_delay():
    delay = np.array([3e-4], dtype=np.float32)  # 3.0000001e-4
    assert float(delay[0]) / 1e-4 != 3.0
    graph = chain(Delay(delay=delay), shape=[1])
    y = simulate(graph, col([1, 2, 3, 4, 5]), policy=Policy(dt=1e-4)).output[:, 0, 0]
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 2])


def test_delay_not_a_multiple_of_dt_names_node_and_element():
    graph = chain(Delay(delay=np.array([1e-4, 2.5e-4])), shape=[2])
    with pytest.raises(PolicyError, match=r"nodes\.n0\.delay\[1\].*2\.5 steps"):
        simulate(graph, np.zeros((3, 1, 2)), policy=Policy(dt=1e-4))


# ----------------------------------------------------------------------------- conv, pool, dense


def _conv_loop(x, w, b, stride, padding, dilation, groups):
    """Convolution by definition: for each output channel and position, sum over the group's
    input channels and the kernel offsets (x: (N, C, *S), padding: per dim (lo, hi))."""
    nd = w.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + list(padding))
    c_out, c_group = w.shape[:2]
    out_per_group = c_out // groups
    spans = [dilation[d] * (w.shape[2 + d] - 1) + 1 for d in range(nd)]
    out_sizes = [(xp.shape[2 + d] - spans[d]) // stride[d] + 1 for d in range(nd)]
    y = np.zeros((x.shape[0], c_out, *out_sizes))
    for o in range(c_out):
        g = o // out_per_group
        for pos in np.ndindex(*out_sizes):
            total = np.full(x.shape[0], b[o])
            for c in range(c_group):
                for k in np.ndindex(*w.shape[2:]):
                    idx = tuple(pos[d] * stride[d] + k[d] * dilation[d] for d in range(nd))
                    total = total + w[(o, c) + k] * xp[(slice(None), g * c_group + c) + idx]
            y[(slice(None), o) + pos] = total
    return y


CONV2D_CASES = [
    # (c_in, c_out, kernel, stride, padding, dilation, groups, (H, W))
    (2, 3, (3, 3), (1, 1), "valid", (1, 1), 1, (6, 5)),
    (2, 4, (2, 4), (1, 1), "same", (2, 1), 2, (5, 7)),  # even kernel: PyTorch pads more at the end
    (3, 3, (3, 3), (2, 2), (1, 1), (1, 1), 3, (7, 7)),  # depthwise, strided, padded
    (2, 2, (2, 3), (1, 2), (0, 2), (2, 1), 1, (6, 6)),
]


def _padding(mode, kernel, dilation):
    if mode == "valid":
        return [(0, 0)] * len(kernel)
    if mode == "same":
        return [((d * (k - 1)) // 2, d * (k - 1) - (d * (k - 1)) // 2) for k, d in zip(kernel, dilation)]
    return [(p, p) for p in mode]


@pytest.mark.parametrize("case", CONV2D_CASES)
def test_conv2d_matches_the_definition(case):
    c_in, c_out, kernel, stride, padding, dilation, groups, hw = case
    rng = np.random.default_rng(3)
    w = rng.normal(size=(c_out, c_in // groups, *kernel))
    b = rng.normal(size=c_out)
    node = Conv2d(
        weight=w, bias=b, stride=np.array(stride), dilation=np.array(dilation), groups=np.array(groups),
        padding=padding if isinstance(padding, str) else np.array(padding),
    )
    x = rng.normal(size=(3, 2, c_in, *hw))
    graph = chain(node, shape=[c_in, *hw])
    y = simulate(graph, x, dtype=np.float64).output
    expected = _conv_loop(x.reshape(6, c_in, *hw), w, b, stride, _padding(padding, kernel, dilation), dilation, groups)
    np.testing.assert_allclose(y, expected.reshape(3, 2, *expected.shape[1:]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "stride, padding, dilation, groups",
    [(1, "valid", 1, 1), (2, np.array(1), 1, 2), (1, "same", 2, 1), (3, np.array(2), 2, 2)],
)
def test_conv1d_matches_the_definition(stride, padding, dilation, groups):
    rng = np.random.default_rng(4)
    w = rng.normal(size=(4, 2 // groups * 1, 3)) if groups == 2 else rng.normal(size=(4, 2, 3))
    b = rng.normal(size=4)
    node = Conv1d(weight=w, bias=b, stride=np.array(stride), padding=padding, dilation=np.array(dilation), groups=np.array(groups))
    x = rng.normal(size=(2, 3, 2, 9))
    y = simulate(chain(node, shape=[2, 9]), x, dtype=np.float64).output
    pad = _padding(padding if isinstance(padding, str) else [int(padding)], (3,), (dilation,))
    expected = _conv_loop(x.reshape(6, 2, 9), w, b, (stride,), pad, (dilation,), groups)
    np.testing.assert_allclose(y, expected.reshape(2, 3, *expected.shape[1:]), rtol=1e-12, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv_and_pool_agree_with_torch():
    torch = pytest.importorskip("torch")  # an outside cross-check of 'same' padding and AvgPool
    rng = np.random.default_rng(5)
    w = rng.normal(size=(4, 1, 2, 4))
    b = rng.normal(size=4)
    conv = Conv2d(weight=w, bias=b, stride=np.array(1), padding="same", dilation=np.array([2, 1]), groups=np.array(2))
    pool = AvgPool2d(kernel_size=np.array([3, 2]), stride=np.array([2, 1]), padding=np.array([1, 1]))
    graph = Graph.model_construct(
        nodes={"in": Input(shape=np.array([2, 7, 6])), "c": conv, "p": pool, "out": Output(shape=np.array([1]))},
        edges=[("in", "c"), ("c", "p"), ("p", "out")], metadata={}, type="NIRGraph",
    )
    x = rng.normal(size=(2, 3, 2, 7, 6))
    r = simulate(graph, x, dtype=np.float64, record=["c"])
    tx = torch.from_numpy(x.reshape(6, 2, 7, 6))
    tc = torch.nn.functional.conv2d(tx, torch.from_numpy(w), torch.from_numpy(b), padding="same", dilation=(2, 1), groups=2)
    tp = torch.nn.functional.avg_pool2d(tc, (3, 2), stride=(2, 1), padding=(1, 1), count_include_pad=True)
    np.testing.assert_allclose(r.states["c"]["y"].reshape(tc.shape), tc.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r.output.reshape(tp.shape), tp.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [SumPool2d, AvgPool2d])
@pytest.mark.parametrize("kernel, stride, padding", [((2, 2), (2, 2), (0, 0)), ((3, 2), (1, 2), (1, 0)), ((2, 3), (2, 1), (1, 1))])
def test_pooling_matches_the_definition(cls, kernel, stride, padding):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 2, 3, 6, 7))
    node = cls(kernel_size=np.array(kernel), stride=np.array(stride), padding=np.array(padding))
    y = simulate(chain(node, shape=[3, 6, 7]), x, dtype=np.float64).output
    xp = np.pad(x, [(0, 0)] * 3 + [(padding[0],) * 2, (padding[1],) * 2])
    oh = (xp.shape[3] - kernel[0]) // stride[0] + 1
    ow = (xp.shape[4] - kernel[1]) // stride[1] + 1
    expected = np.zeros(x.shape[:3] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = xp[..., i * stride[0] : i * stride[0] + kernel[0], j * stride[1] : j * stride[1] + kernel[1]]
            expected[..., i, j] = window.sum(axis=(-2, -1)) / (1 if cls is SumPool2d else kernel[0] * kernel[1])
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_sum_pool_of_spikes_counts_them():
    x = np.zeros((1, 1, 1, 4, 4))
    x[0, 0, 0, :2, :2] = [[1, 1], [0, 1]]
    x[0, 0, 0, 3, 3] = 1
    node = SumPool2d(kernel_size=np.array(2), stride=np.array(2), padding=np.array(0))
    y = simulate(chain(node, shape=[1, 4, 4]), x).output[0, 0, 0]
    np.testing.assert_array_equal(y, [[3, 0], [0, 1]])


def test_flatten_dense_and_scale():
    x = np.arange(12, dtype=float).reshape(1, 1, 2, 3, 2)
    flat = Flatten(start_dim=1, end_dim=2, input_type=np.array([2, 3, 2]))
    r = simulate(chain(flat, shape=[2, 3, 2]), x, record=["n0"])
    np.testing.assert_array_equal(r.output[0, 0], np.arange(12).reshape(2, 6))  # C order
    affine = Affine(weight=np.array([[1.0, 2.0], [0.0, -1.0], [0.5, 0.5]]), bias=np.array([1.0, 0.0, -1.0]))
    scale = Scale(scale=np.array([2.0, 3.0, 4.0]))
    y = simulate(chain(affine, scale, shape=[2]), np.array([[[1.0, 2.0]], [[0.0, 0.0]]])).output[:, 0]
    np.testing.assert_array_equal(y, [[12, -6, 2], [2, 0, -4]])  # (W x + b) * s


def test_fan_in_sums_sources():
    nodes = {
        "in": Input(shape=np.array([1])),
        "a": Scale(scale=np.array([2.0])),
        "b": Scale(scale=np.array([-0.5])),
        "li": LI(tau=np.array([2.0]), r=np.array([2.0]), v_leak=np.array([0.0])),
        "out": Output(shape=np.array([1])),
    }
    graph = Graph(nodes=nodes, edges=[("in", "a"), ("in", "b"), ("a", "li"), ("b", "li"), ("li", "out")])
    y = simulate(graph, col([1, 0, 0]), policy=Policy(dt=1.0)).output[:, 0, 0]
    np.testing.assert_array_equal(y, [1.5, 0.75, 0.375])  # v = 0.5 v + (2 - 0.5) x


def test_several_inputs_and_outputs():
    nodes = {
        "a": Input(shape=np.array([1])),
        "b": Input(shape=np.array([2])),
        "fc": Linear(weight=np.array([[1.0, 1.0]])),
        "oa": Output(shape=np.array([1])),
        "ob": Output(shape=np.array([1])),
    }
    graph = Graph(nodes=nodes, edges=[("a", "oa"), ("b", "fc"), ("fc", "ob"), ("a", "ob")])
    r = simulate(graph, {"a": np.ones((2, 3, 1)), "b": np.full((2, 3, 2), 2.0)})
    assert set(r.outputs) == {"oa", "ob"}
    np.testing.assert_array_equal(r.outputs["ob"], np.full((2, 3, 1), 5.0))
    with pytest.raises(SimulationError, match=r"x\.b: missing"):
        simulate(graph, {"a": np.ones((2, 3, 1))})
    with pytest.raises(SimulationError, match="pass a dict"):
        simulate(graph, np.ones((2, 3, 1)))
    with pytest.raises(SimulationError, match=r"x\.b.*differs"):
        simulate(graph, {"a": np.ones((2, 3, 1)), "b": np.ones((2, 4, 2))})


# ----------------------------------------------------------------------------- dtypes, policy


def test_dtype_float32_by_default_float64_on_request():
    graph = chain(LIF(tau=np.array([2e-3]), r=np.array([1.0]), v_leak=np.array([0.0]), v_threshold=np.array([0.5]), v_reset=np.array([0.0])), shape=[1])
    x = col([1.0] * 5)
    a = simulate(graph, x, record=["n0"])
    b = simulate(graph, x, record=["n0"], dtype=np.float64)
    assert a.output.dtype == np.float32 and a.states["n0"]["v"].dtype == np.float32
    assert b.output.dtype == np.float64 and b.states["n0"]["v"].dtype == np.float64
    np.testing.assert_allclose(a.states["n0"]["v"], b.states["n0"]["v"], rtol=1e-6)
    with pytest.raises(SimulationError, match="dtype"):
        simulate(graph, x, dtype=np.int32)
    with pytest.raises(SimulationError, match="dtype"):
        simulate(graph, x, dtype=np.float16)


def test_default_policy_comes_from_graph_metadata():
    lif = LIF(tau=np.array([2.0]), r=np.array([1.0]), v_leak=np.array([0.0]), v_threshold=np.array([10.0]), v_reset=np.array([0.0]))
    plain = chain(lif, shape=[1])
    stored = Policy(dt=1.0, input="impulse")
    tagged = Graph.model_construct(nodes=plain.nodes, edges=plain.edges, metadata=stored.to_metadata(), type="NIRGraph")
    x = col([1, 0, 0])
    v_tagged = simulate(tagged, x, record=["n0"]).states["n0"]["v"][:, 0, 0]
    np.testing.assert_array_equal(v_tagged, [1, 0.5, 0.25])  # dt 1, impulse: v = 0.5 v + x
    default = simulate(plain, x, record=["n0"])  # nothing stored, no dt to infer: 'nir' at dt 1e-4
    a = np.exp(-1e-4 / 2.0)
    np.testing.assert_allclose(default.states["n0"]["v"][:, 0, 0], [1 - a, (1 - a) * a, (1 - a) * a**2], rtol=1e-6)
    assert default.policy == Policy.preset("nir")
    assert any("nothing in the graph says how it was stepped" in n for n in default.notes)
    assert simulate(tagged, x).policy == stored and simulate(tagged, x).notes == ["policy read from the graph's metadata"]


def test_simulate_resolves_the_policy_as_convert_does(fixtures_dir):
    """One answer per question: simulate, convert and verify pick the same semantics for a
    graph without a stored policy (the 'nir' preset at the dt its parameters imply)."""
    from nirbridge.conversion import resolve_source
    from nirbridge.io import load

    graph = load(fixtures_dir / "03_rnn" / "braille_noDelay_bias_zero.nir")
    x = (np.random.default_rng(0).random((40, 2, 12)) < 0.3).astype(np.float32)
    result = simulate(graph, x)
    assert result.policy == resolve_source(graph).policy == Policy.preset("nir", dt=1e-4)
    assert simulate(graph, x, policy="nir-paper").policy == Policy.preset("nir-paper")


# ----------------------------------------------------------------------------- errors


def _small():
    return chain(if_node(2), shape=[2])


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((3, 1, 3)), r"x: must be shaped \(time, batch, 2\), got \(3, 1, 3\)"),
        (np.zeros((3, 2)), r"x: must be shaped"),
        (np.zeros((0, 1, 2)), r"x: needs at least one time step"),
        (np.zeros((3, 1, 2), dtype=complex), r"x: must hold real numbers"),
        (np.array([[["a", "b"]]]), r"x: must hold real numbers"),
        (np.array([[[0.0, np.nan]]]), r"x\[0, 0, 1\]: must be finite"),
    ],
)
def test_bad_inputs_raise_simulation_error(x, match):
    with pytest.raises(SimulationError, match=match):
        simulate(_small(), x)


def test_bad_arguments_raise_named_errors():
    graph = _small()
    x = np.zeros((2, 1, 2))
    with pytest.raises(SimulationError, match=r"record\.nope: no such node"):
        simulate(graph, x, record=["nope"])
    with pytest.raises(PolicyError, match="policy"):
        simulate(graph, x, policy={"dt": 1.0})
    with pytest.raises(SimulationError, match="graph"):
        simulate(graph.to_nir(), x)
    assert issubclass(SimulationError, NirbridgeError)


def test_same_padding_with_stride_is_refused_naming_the_node():
    conv = Conv2d(weight=np.ones((1, 1, 3, 3)), bias=np.zeros(1), stride=np.array(2), padding="same", dilation=np.array(1), groups=np.array(1))
    with pytest.raises(SimulationError, match=r"nodes\.n0\.padding: 'same' needs stride 1"):
        simulate(chain(conv, shape=[1, 5, 5]), np.zeros((1, 1, 1, 5, 5)))


def test_parameter_shape_that_does_not_fit_names_the_field():
    graph = chain(LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3), v_reset=np.zeros(3)), shape=[2])
    with pytest.raises(SimulationError, match=r"nodes\.n0\.tau: shape \(3,\)"):
        simulate(graph, np.zeros((1, 1, 2)))


def test_results_do_not_alias_the_input():
    graph = Graph(nodes={"in": Input(shape=np.array([2])), "out": Output(shape=np.array([2]))}, edges=[("in", "out")])
    x = np.ones((2, 1, 2), dtype=np.float32)
    r = simulate(graph, x)
    r.output[...] = 5
    np.testing.assert_array_equal(x, 1)


# ----------------------------------------------------------------------------- properties

SPIKING = (IF, LIF, CubaLIF)


def tame(graph: Graph, policy: Policy, rng: np.random.Generator) -> Graph:
    """The same structure with parameter values redrawn in ranges where networks are active and
    float32 is accurate under `policy`: weights and scales in [-1, 2], gains in [0.5, 3] (per
    step for the integrators I and IF: dt r under `current` input), thresholds in
    [0.25, 1.5], levels in [-0.5, 0.5], time constants 2..7 steps, delays 0..3 whole steps."""
    dt = policy.dt
    ranges = {"r": (0.5, 3), "w_in": (0.5, 3), "v_threshold": (0.25, 1.5), "v_leak": (-0.5, 0.5), "v_reset": (-0.5, 0.5), "threshold": (-0.5, 1)}
    nodes = {}
    for name, node in graph.nodes.items():
        if isinstance(node, Graph):
            nodes[name] = tame(node, policy, rng)
            continue
        update = {}
        for field in node.float_fields:
            shape = np.shape(getattr(node, field))
            if field in ("tau", "tau_mem", "tau_syn"):
                update[field] = dt * rng.integers(2, 8, shape).astype(float)
            elif field == "delay":
                update[field] = dt * rng.integers(0, 4, shape).astype(float)
            else:
                update[field] = rng.uniform(*ranges.get(field, (-1, 2)), shape)
        if isinstance(node, (I, IF)) and policy.for_node(name, node.type).input == "current":
            update["r"] = update["r"] / dt
        nodes[name] = node.model_copy(update=update)
    return Graph.model_construct(nodes=nodes, edges=graph.edges, metadata={}, type="NIRGraph")


policies = st.builds(
    Policy,
    dt=st.sampled_from([1e-3, 1.0]),
    integration=st.sampled_from(["euler", "exact"]),
    reset=st.sampled_from(["to_reset", "subtract", "none"]),
    reset_timing=st.sampled_from(["immediate", "next_step"]),
    threshold=st.sampled_from(["gt", "ge"]),
    current_order=st.sampled_from(["current_first", "voltage_first"]),
    input=st.sampled_from(["current", "impulse"]),
)


def _inputs(graph, draw, steps, batch, values=None):
    """Inputs for every Input node: uniform in [-1, 2] (a positive drive through the mostly
    positive tamed weights, so spiking nodes fire), or drawn from `values`."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    out = {}
    for name, node in graph.inputs().items():
        shape = (steps, batch) + tuple(int(s) for s in np.atleast_1d(node.shape))
        out[name] = rng.uniform(-1, 2, shape) if values is None else rng.choice(values, shape)
    return out


def assert_spikes_agree_until_a_tie(a, b, flat: Graph, tol: float):
    """Spikes of every spiking node agree, except that the runs may part at a threshold tie:
    the first disagreement (earliest step, first node in schedule order) must be at a potential
    within tol * max(1, |threshold|) of the threshold, judged on the run that did not spike
    there (its recorded v is the tested value). Later steps may differ after that."""
    plan = schedule(flat)
    first = None
    for name in plan.order:
        node = flat.nodes[name]
        if not isinstance(node, SPIKING + (Threshold,)):
            continue
        za = a.states[name]["spikes" if isinstance(node, SPIKING) else "y"]
        zb = b.states[name]["spikes" if isinstance(node, SPIKING) else "y"]
        diff = np.argwhere(za != zb)
        if len(diff) and (first is None or diff[0][0] < first[0]):
            first = (int(diff[0][0]), name)
    if first is None:
        return None
    step, name = first
    node = flat.nodes[name]
    for run, other in ((a, b), (b, a)):
        for idx in np.argwhere(
            (run.states[name]["spikes" if isinstance(node, SPIKING) else "y"][step] == 0)
            & (other.states[name]["spikes" if isinstance(node, SPIKING) else "y"][step] == 1)
        ):
            idx = tuple(int(i) for i in idx)
            if isinstance(node, SPIKING):
                tested = run.states[name]["v"][step][idx]
                th = float(np.broadcast_to(node.v_threshold, run.states[name]["v"].shape[2:])[idx[1:]])
            else:
                tested = sum(
                    run.states[s]["y" if "y" in run.states[s] else ("spikes" if "spikes" in run.states[s] else "v")][step - d][idx]
                    for s, d in plan.sources[name]
                    if step - d >= 0
                )
                th = float(np.broadcast_to(node.threshold, run.states[name]["y"].shape[2:])[idx[1:]])
            assert abs(tested - th) <= tol * max(1.0, abs(th)), f"{name} step {step} {idx}: v={tested}, threshold {th}"
    return first


def _spike_count(result, flat: Graph) -> int:
    return sum(
        int(np.count_nonzero(result.states[n]["spikes" if isinstance(node, SPIKING) else "y"]))
        for n, node in flat.nodes.items()
        if isinstance(node, SPIKING + (Threshold,))
    )


def _note_firing(result, flat: Graph) -> None:
    """Hypothesis statistics (`--hypothesis-show-statistics`): how many examples spike at all."""
    event("some spiking node fires" if _spike_count(result, flat) else "no spikes")


def _record_all(flat: Graph):
    return list(flat.nodes)


def _tame_graph(data, policy):
    """A graph with a spiking neuron, tamed for `policy`."""
    graph = data.draw(strategies.graphs(spiking=True))
    return tame(graph, policy, np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_float32_agrees_with_float64_on_spikes(data):
    policy = data.draw(policies)
    graph = _tame_graph(data, policy)
    flat = flatten(graph)
    steps, batch = data.draw(st.integers(4, 12)), data.draw(st.integers(1, 2))
    x = _inputs(flat, data.draw, steps, batch)
    a = simulate(graph, x, policy=policy, record=_record_all(flat), dtype=np.float32)
    b = simulate(graph, x, policy=policy, record=_record_all(flat), dtype=np.float64)
    _note_firing(b, flat)
    first = assert_spikes_agree_until_a_tie(a, b, flat, 1e-5)
    event("parted at a threshold tie" if first else "identical spikes")
    if first is None:  # no divergence: analog outputs agree to float32 precision
        for name in a.outputs:
            scale = max(1.0, float(np.abs(b.outputs[name]).max(initial=0)))
            np.testing.assert_allclose(a.outputs[name], b.outputs[name], rtol=1e-4, atol=1e-5 * scale)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_chunked_matches_stepwise_on_any_graph(data):
    """Only BLAS summation order differs (chunk x B rows at once vs B rows per step): spikes
    agree up to threshold ties at float32 rounding, analog values to a few ulps."""
    policy = data.draw(policies)
    graph = _tame_graph(data, policy)
    flat = flatten(graph)
    steps, batch = data.draw(st.integers(4, 12)), data.draw(st.integers(1, 2))
    x = _inputs(flat, data.draw, steps, batch)
    chunk = data.draw(st.sampled_from([None, 2, 3, 5]))
    a = simulate(graph, x, policy=policy, record=_record_all(flat), chunk_steps=chunk)
    b = simulate(graph, x, policy=policy, record=_record_all(flat), chunk_steps=1)
    _note_firing(b, flat)
    first = assert_spikes_agree_until_a_tie(a, b, flat, 1e-5)
    event("parted at a threshold tie" if first else "identical spikes")
    until = first[0] if first else steps
    for name in a.states:
        for key in a.states[name]:
            va, vb = a.states[name][key][:until], b.states[name][key][:until]
            scale = max(1.0, float(np.abs(vb).max(initial=0)))
            np.testing.assert_allclose(va, vb, rtol=1e-5, atol=1e-6 * scale, err_msg=f"{name}.{key}")


# exact arithmetic: dyadic weights on spikes or dyadic inputs make every sum exact in any order

DYADIC = st.sampled_from([-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5])


def _dyadic(draw, shape):
    return np.asarray(draw(st.lists(DYADIC, min_size=math.prod(shape), max_size=math.prod(shape))), dtype=np.float32).reshape(shape)


def _neuron(draw, n):
    kind = draw(st.sampled_from([I, IF, LI, LIF, CubaLI, CubaLIF]))
    pick = lambda values: np.asarray(draw(st.lists(st.sampled_from(values), min_size=n, max_size=n)), dtype=np.float32)  # noqa: E731
    fields = {
        "tau": pick([2.0, 4.0, 8.0]), "tau_mem": pick([2.0, 4.0, 8.0]), "tau_syn": pick([2.0, 4.0]),
        "r": pick([0.5, 1.0, 2.0]), "w_in": pick([0.5, 1.0, 2.0]), "v_leak": pick([0.0, 0.25]),
        "v_threshold": pick([0.5, 1.0, 1.5]), "v_reset": pick([0.0, -0.5]),
    }
    return kind(**{k: fields[k] for k in kind.float_fields})


@st.composite
def spiking_networks(draw):
    """Input -> [Conv2d -> IF -> SumPool2d/AvgPool2d (area 1, 2 or 4) -> Flatten] -> (dense ->
    neuron [-> Threshold] [-> Delay], optional recurrent dense)+ -> Output. Dense and conv
    layers only ever see dyadic inputs or spikes, with dyadic weights."""
    nodes, edges = {}, []
    if draw(st.booleans()):
        c, h, w = draw(st.integers(1, 2)), draw(st.integers(3, 5)), draw(st.integers(3, 5))
        nodes["in"] = Input(shape=np.array([c, h, w]))
        groups = draw(st.sampled_from([1, c]))
        c_out = 2 * groups
        mode = draw(st.sampled_from(["same", "valid", "int"]))
        nodes["conv"] = Conv2d(
            weight=_dyadic(draw, (c_out, c // groups, 2, 2)), bias=_dyadic(draw, (c_out,)),
            stride=np.array(1 if mode == "same" else draw(st.integers(1, 2))), dilation=np.array(draw(st.integers(1, 2))),
            groups=np.array(groups), padding=mode if mode != "int" else np.array(draw(st.integers(0, 1))),
        )
        conv_out = nodes["conv"].output_shape((c, h, w))  # the node's own shape rule
        nodes["cif"] = IF(r=np.ones(conv_out, F32), v_threshold=np.ones(conv_out, F32), v_reset=np.zeros(conv_out, F32))
        kernel = [draw(st.integers(1, min(2, conv_out[1]))), min(2, conv_out[2])]  # area 1, 2 or 4
        nodes["pool"] = draw(st.sampled_from([SumPool2d, AvgPool2d]))(
            kernel_size=np.array(kernel), stride=np.array(1), padding=np.array(0)
        )
        nodes["flat"] = Flatten(start_dim=0, end_dim=-1)
        edges += [("in", "conv"), ("conv", "cif"), ("cif", "pool"), ("pool", "flat")]
        width = math.prod(nodes["pool"].output_shape(conv_out))
        prev = "flat"
    else:
        width = draw(st.integers(1, 4))
        nodes["in"] = Input(shape=np.array([width]))
        prev = "in"
    for i in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 4))
        dense = f"fc{i}"
        nodes[dense] = (
            Affine(weight=_dyadic(draw, (n, width)), bias=_dyadic(draw, (n,)))
            if draw(st.booleans())
            else Linear(weight=_dyadic(draw, (n, width)))
        )
        neuron = f"neuron{i}"
        nodes[neuron] = _neuron(draw, n)
        edges += [(prev, dense), (dense, neuron)]
        prev = neuron
        if not isinstance(nodes[neuron], SPIKING):
            nodes[f"th{i}"] = Threshold(threshold=_dyadic(draw, (n,)))
            edges.append((prev, f"th{i}"))
            prev = f"th{i}"
        if draw(st.booleans()):
            nodes[f"rec{i}"] = Linear(weight=_dyadic(draw, (n, n)))
            edges += [(prev, f"rec{i}"), (f"rec{i}", neuron)]
        if draw(st.booleans()):
            nodes[f"delay{i}"] = Delay(delay=np.asarray(draw(st.lists(st.sampled_from([0.0, 1.0, 2.0]), min_size=n, max_size=n))))
            edges.append((prev, f"delay{i}"))
            prev = f"delay{i}"
        width = n
    nodes["out"] = Output(shape=np.array([width]))
    edges.append((prev, "out"))
    return Graph(nodes=nodes, edges=edges)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=spiking_networks(), policy=policies.map(lambda p: p.model_copy(update={"dt": 1.0})), data=st.data())
def test_any_chunk_size_gives_the_same_bits(graph, policy, data):
    """Where every matrix product is exact (dyadic weights times spikes or dyadic inputs),
    evaluation in chunks of any size (whole run, several steps, one step) gives the same bits,
    states included: state, Delay history and delayed edges carry over chunk boundaries."""
    steps, batch = data.draw(st.integers(1, 10)), data.draw(st.integers(1, 3))
    x = _inputs(graph, data.draw, steps, batch, [0.0, 0.25, 0.5, 1.0])
    record = list(graph.nodes)
    a = simulate(graph, x, policy=policy, record=record, chunk_steps=data.draw(st.sampled_from([None, 2, 3, 4])))
    b = simulate(graph, x, policy=policy, record=record, chunk_steps=1)
    _note_firing(b, graph)
    event("recurrent" if any(n.startswith("rec") for n in graph.nodes) else "feed-forward")
    for name in record:
        assert a.states[name].keys() == b.states[name].keys()
        for key in a.states[name]:
            np.testing.assert_array_equal(a.states[name][key], b.states[name][key], err_msg=f"{name}.{key}")
    for name in a.outputs:
        np.testing.assert_array_equal(a.outputs[name], b.outputs[name])


def test_float32_and_float64_part_at_a_threshold_tie_and_only_there():
    """Ten steps of 0.1 reach 1.0000001 in float32 and 0.9999999999999999 in float64: the runs
    part at a tie, which the comparison accepts; a real difference it rejects."""
    graph = chain(if_node(th=1.0), shape=[1])
    policy = Policy(dt=1.0, input="impulse")
    x = col([0.1] * 12)
    a = simulate(graph, x, policy=policy, record=["n0"])
    b = simulate(graph, x, policy=policy, record=["n0"], dtype=np.float64)
    assert a.states["n0"]["spikes"][9, 0, 0] == 1 and b.states["n0"]["spikes"][9, 0, 0] == 0
    assert assert_spikes_agree_until_a_tie(a, b, flatten(graph), 1e-5) == (9, "n0")
    c = simulate(graph, x * 1.5, policy=policy, record=["n0"], dtype=np.float64)  # spikes at step 6
    with pytest.raises(AssertionError, match="n0 step 6"):
        assert_spikes_agree_until_a_tie(a, c, flatten(graph), 1e-5)
