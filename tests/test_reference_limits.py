"""The reference simulator's bounds: memory that does not grow with the number of steps,
non-finite states refused with the node and step named, sizes checked before anything large
is allocated, and long graphs."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from nirbridge.errors import GraphValidationError, ResourceLimitError, SimulationError
from nirbridge.ir import LI, LIF, Conv2d, Delay, Graph, Input, Linear, Output
from nirbridge.reference import engine, simulate
from nirbridge.semantics import Policy

F32 = np.float32
SNNTORCH = Policy.preset("snntorch")


def lif(n, th=1.0, tau=1e-3):
    f = lambda v: np.full(n, v, F32)  # noqa: E731
    return LIF(tau=f(tau), r=f(tau / 1e-4), v_leak=f(0), v_threshold=f(th), v_reset=f(0))


def mlp(n_in=64, hidden=128, n_out=8, seed=0) -> Graph:
    """Input -> Linear -> LIF -> Linear -> LIF -> Output, snnTorch-style parameters."""
    rng = np.random.default_rng(seed)
    nodes = {
        "in": Input(shape=np.array([n_in])),
        "fc1": Linear(weight=rng.normal(0, 0.5, (hidden, n_in)).astype(F32)),
        "lif1": lif(hidden),
        "fc2": Linear(weight=rng.normal(0, 0.5, (n_out, hidden)).astype(F32)),
        "lif2": lif(n_out),
        "out": Output(shape=np.array([n_out])),
    }
    names = list(nodes)
    return Graph(nodes=nodes, edges=list(zip(names, names[1:])))


def spikes(steps, batch, n, seed=1):
    return (np.random.default_rng(seed).random((steps, batch, n)) < 0.2).astype(F32)


def traced_peak(fn):
    """(result, peak bytes numpy and Python allocated while `fn` ran)."""
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ----------------------------------------------------------------------------- memory


def test_memory_beyond_the_outputs_does_not_grow_with_the_steps(monkeypatch):
    """With the default chunking (bounded here to 256 KiB of values), a run 20 times longer
    needs no more memory than the longer output itself: nothing else is kept per step."""
    monkeypatch.setattr(engine, "CHUNK_BYTES", 256 << 10)
    graph = mlp()
    extra = {}
    for steps in (100, 2000):
        x = spikes(steps, 4, 64)
        result, peak = traced_peak(lambda: simulate(graph, x, policy=SNNTORCH))  # noqa: B023
        assert 0.05 < result.output.mean() < 0.95  # the network fires
        extra[steps] = peak - result.output.nbytes
    assert extra[2000] <= 1.1 * extra[100] + 64_000, extra
    assert extra[2000] < 1_000_000  # the 256 KiB chunks and their buffers, not 2000 steps of 4 layers


def test_explicit_chunks_bound_memory_the_same_way():
    graph, extra = mlp(), {}
    for steps in (64, 1024):
        x = spikes(steps, 4, 64)
        result, peak = traced_peak(lambda: simulate(graph, x, policy=SNNTORCH, chunk_steps=16))  # noqa: B023
        extra[steps] = peak - result.output.nbytes
    assert extra[1024] <= 1.1 * extra[64] + 64_000, extra


def test_record_keeps_the_recorded_node_only():
    """Recording lif1 costs its v and spikes for every step, and nothing else grows."""
    graph, x = mlp(), spikes(1000, 4, 64)
    plain, peak = traced_peak(lambda: simulate(graph, x, policy=SNNTORCH, chunk_steps=10))
    recorded, peak_recorded = traced_peak(lambda: simulate(graph, x, policy=SNNTORCH, record=["lif1"], chunk_steps=10))
    kept = sum(a.nbytes for a in recorded.states["lif1"].values())
    assert set(recorded.states) == {"lif1"} and kept == 2 * 1000 * 4 * 128 * 4
    assert peak_recorded - peak <= 1.05 * kept + 64_000
    np.testing.assert_array_equal(recorded.output, plain.output)


@pytest.mark.parametrize("chunk", [0, -3, 1.5, True, "4"])
def test_bad_chunk_steps_is_named(chunk):
    with pytest.raises(SimulationError, match="chunk_steps"):
        simulate(mlp(), spikes(5, 1, 64), policy=SNNTORCH, chunk_steps=chunk)


def test_chunk_longer_than_the_run_and_uneven_last_chunk():
    graph, x = mlp(), spikes(23, 3, 64)
    whole = simulate(graph, x, policy=SNNTORCH, chunk_steps=1, record=["lif1"])
    for chunk in (5, 23, 100):
        part = simulate(graph, x, policy=SNNTORCH, chunk_steps=chunk, record=["lif1"])
        np.testing.assert_array_equal(part.output, whole.output)
        np.testing.assert_array_equal(part.states["lif1"]["spikes"], whole.states["lif1"]["spikes"])


# ----------------------------------------------------------------------------- delays across chunks


@pytest.mark.parametrize("chunk", [None, 1, 2, 3, 7])
def test_delay_history_carries_over_chunks(chunk):
    """y[k] = x[k - d] for delays of 0 to 9 steps, whatever the chunk size."""
    d = np.arange(10)
    graph = Graph(
        nodes={"in": Input(shape=np.array([10])), "d": Delay(delay=d * 1e-3), "out": Output(shape=np.array([10]))},
        edges=[("in", "d"), ("d", "out")],
    )
    x = np.random.default_rng(0).normal(size=(25, 2, 10))
    y = simulate(graph, x, policy=Policy(dt=1e-3), chunk_steps=chunk, dtype=np.float64).output
    for j in range(10):
        expected = np.concatenate([np.zeros((j, 2)), x[: 25 - j, :, j]])
        np.testing.assert_array_equal(y[:, :, j], expected)


@pytest.mark.parametrize("seconds", [1e6, 1e30])
def test_huge_delay_allocates_nothing_large(seconds):
    """A delay far beyond the run only ever reads zeros: it is cut to the run's length."""
    graph = Graph(
        nodes={"in": Input(shape=np.array([3])), "d": Delay(delay=np.full(3, seconds)), "out": Output(shape=np.array([3]))},
        edges=[("in", "d"), ("d", "out")],
    )
    result, peak = traced_peak(lambda: simulate(graph, np.ones((5, 2, 3), F32), policy=Policy(dt=1e-4)))
    assert not result.output.any()
    assert peak < 100_000


# ----------------------------------------------------------------------------- sizes


def conv_graph(padding):
    side = 4 + 2 * padding - 2
    return Graph(
        nodes={
            "in": Input(shape=np.array([1, 4, 4])),
            "conv": Conv2d(
                weight=np.ones((1, 1, 3, 3), F32), bias=np.zeros(1, F32), stride=np.array([1, 1]),
                padding=np.array([padding, padding]), dilation=np.array([1, 1]), groups=np.array(1),
            ),
            "out": Output(shape=np.array([1, side, side])),
        },
        edges=[("in", "conv"), ("conv", "out")],
    )


def test_huge_conv_padding_is_refused_before_allocating():
    x = np.ones((3, 2, 1, 4, 4), F32)
    tracemalloc.start()
    try:
        with pytest.raises(ResourceLimitError, match=r"nodes\.conv\.padding: needs an array of [\d,]+ bytes .*max_array_bytes"):
            simulate(conv_graph(2**20), x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_max_array_bytes_is_the_limit():
    x = np.ones((3, 2, 1, 4, 4), F32)
    simulate(conv_graph(8), x)  # 2 x 18 x 18 floats per padded input: fine
    with pytest.raises(ResourceLimitError, match=r"nodes\.conv\.padding"):
        simulate(conv_graph(8), x, max_array_bytes=1000)
    with pytest.raises(ResourceLimitError, match=r"nodes\.fc1"):
        simulate(mlp(), spikes(3, 2, 64), policy=SNNTORCH, max_array_bytes=100)


def test_zero_sized_layer_gives_empty_outputs():
    nodes = {
        "in": Input(shape=np.array([3])),
        "fc": Linear(weight=np.zeros((0, 3), F32)),
        "lif": lif(0),
        "out": Output(shape=np.array([1])),  # the shape rule is the graph validator's; the simulator follows edges
    }
    graph = Graph.model_construct(nodes=nodes, edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")], metadata={}, type="NIRGraph")
    result = simulate(graph, np.ones((5, 2, 3)), policy=SNNTORCH, record=["lif"])
    assert result.output.shape == (5, 2, 0) and result.states["lif"]["v"].shape == (5, 2, 0)


# ----------------------------------------------------------------------------- non-finite states


def test_overflow_raises_naming_the_node_and_first_step():
    graph = Graph(
        nodes={"in": Input(shape=np.array([2])), "fc": Linear(weight=np.full((2, 2), 1e30, F32)), "lif": lif(2), "out": Output(shape=np.array([2]))},
        edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")],
    )
    x = np.zeros((9, 1, 2), F32)
    x[6, 0, 1] = 1e10  # 1e40 overflows float32 at step 6
    for chunk in (None, 1, 4):
        with pytest.raises(SimulationError, match=r"nodes\.fc\.y: became inf at step 6 .*check_finite=False"):
            simulate(graph, x, policy=SNNTORCH, chunk_steps=chunk)
    out = simulate(graph, x, policy=SNNTORCH, check_finite=False, record=["lif"])  # the opt-out returns them
    assert not np.isfinite(out.states["lif"]["v"][6:]).all() and np.isfinite(out.states["lif"]["v"][:6]).all()


def test_euler_with_dt_far_above_tau_raises_and_says_why():
    """decay = 1 - dt/tau = -99: |v| grows 99-fold per step until float32 overflows; the
    step is computed here with a plain float32 loop."""
    graph = Graph(
        nodes={"in": Input(shape=np.array([1])), "li": LI(tau=np.full(1, 1e-4, F32), r=np.ones(1, F32), v_leak=np.zeros(1, F32)), "out": Output(shape=np.array([1]))},
        edges=[("in", "li"), ("li", "out")],
    )
    policy, x = Policy(dt=1e-2), np.ones((40, 1, 1), F32)
    v, first = F32(0), None
    with np.errstate(over="ignore"):
        for k in range(40):
            v = F32(-99) * v + F32(100)  # a = 1 - dt/tau, u = (dt/tau) r x
            if first is None and not np.isfinite(v):
                first = k
    assert first is not None
    with pytest.raises(SimulationError, match=rf"nodes\.li\.v: became -?inf at step {first} .*decay per step from tau is -99.*forward Euler"):
        simulate(graph, x, policy=policy)
    simulate(graph, x, policy=policy.model_copy(update={"integration": "exact"}))  # stable: no error


@pytest.mark.parametrize("chunk", [None, 1, 2, 5])
def test_overflow_inside_a_recurrent_loop_is_found_in_any_chunking(chunk):
    """An LIF (no reset) fed back onto itself through a weight of 3e38: it spikes at step 4
    (v = 5), so v = 0.9 * 5 + 3e38 at step 5 and 0.9 * 3e38 + 3e38 = inf at step 6."""
    graph = Graph(
        nodes={"in": Input(shape=np.array([1])), "lif": lif(1), "rec": Linear(weight=np.full((1, 1), 3e38, F32)), "out": Output(shape=np.array([1]))},
        edges=[("in", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")],
    )
    x = np.zeros((12, 1, 1), F32)
    x[4] = 5.0
    with pytest.raises(SimulationError, match=r"nodes\.lif\.v: became inf at step 6 \(sample 0, element \[0\]\)"):
        simulate(graph, x, policy=Policy.preset("snntorch", reset="none"), chunk_steps=chunk)


def test_parameters_that_overflow_float32_are_named():
    nodes = {"in": Input(shape=np.array([2])), "fc": Linear(weight=np.array([[1.0, 2.0], [3.0, 1e39]])), "out": Output(shape=np.array([2]))}
    edges = [("in", "fc"), ("fc", "out")]
    with pytest.raises(GraphValidationError, match=r"nodes\.fc\.weight\[1, 1\]: 1e\+39 overflows float32"):
        Graph(nodes=nodes, edges=edges)
    unchecked = Graph.model_construct(nodes=nodes, edges=edges, metadata={}, type="NIRGraph")  # the simulator checks too
    with pytest.raises(SimulationError, match=r"nodes\.fc\.weight\[1, 1\]: 1e\+39 is not finite in float32"):
        simulate(unchecked, np.ones((2, 1, 2)))
    assert simulate(unchecked, np.ones((2, 1, 2)), dtype=np.float64).output[0, 0, 1] == 1e39 + 3


def test_inputs_that_overflow_float32_are_named():
    x = spikes(4, 2, 64).astype(np.float64)
    x[2, 1, 7] = 1e39
    with pytest.raises(SimulationError, match=r"x\[2, 1, 7\]: must be finite in float32"):
        simulate(mlp(), x, policy=SNNTORCH)
    simulate(mlp(), x, policy=SNNTORCH, dtype=np.float64)


# ----------------------------------------------------------------------------- long graphs


def test_long_chain_carries_a_spike_through_every_node():
    """3000 LIF nodes in a row, each firing on the previous one's spike in the same step."""
    n = 3000
    nodes = {"in": Input(shape=np.array([2]))} | {f"n{i}": lif(2, th=0.5) for i in range(n)} | {"out": Output(shape=np.array([2]))}
    names = list(nodes)
    graph = Graph.model_construct(nodes=nodes, edges=list(zip(names, names[1:])), metadata={}, type="NIRGraph")
    x = np.zeros((4, 1, 2), F32)
    x[1, 0, 0] = 1.0
    y = simulate(graph, x, policy=Policy(dt=1e-4, input="impulse")).output
    np.testing.assert_array_equal(y[:, 0, 0], [0, 1, 0, 0])
    assert not y[:, 0, 1].any()


def test_outputs_and_records_are_sized_before_the_run():
    """A small input and a wide layer: the output for every step would be 8 GB."""
    graph = Graph(
        nodes={"in": Input(shape=np.array([1])), "fc": Linear(weight=np.ones((2_000_000, 1), F32)), "out": Output(shape=np.array([2_000_000]))},
        edges=[("in", "fc"), ("fc", "out")],
    )
    with pytest.raises(ResourceLimitError, match=r"nodes\.out: 1000 steps x 1 samples"):
        simulate(graph, np.ones((1000, 1, 1), F32))
    with pytest.raises(ResourceLimitError, match=r"record\.lif1: 1000 steps x 4 samples"):
        simulate(mlp(), spikes(1000, 4, 64), policy=SNNTORCH, record=["lif1"], max_array_bytes=1_000_000)
