"""Exact rewrites, each proven by simulation on spike inputs: AvgPool2d = SumPool2d + Scale,
r folded into an inserted Scale, max pool on spikes = SumPool2d + Threshold(0.5); and the
choice of rewrites per backend."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nirbridge
from nirbridge import GapError, Graph, Policy
from nirbridge.backends.base import exact
from nirbridge.backends.numpy import NumpyBackend
from nirbridge.compare import compare
from nirbridge.conversion import check, convert, plan
from nirbridge.ir import AvgPool2d
from nirbridge.reference import simulate
from nirbridge.rewrite import alternatives, avgpool_to_sumpool, emits_binary, fold_r, lower, maxpool2d
from nirbridge.testing import build_case, neuron_params

SETTINGS = settings(max_examples=int(os.environ.get("NIRBRIDGE_EXAMPLES", "25")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
PRESETS = st.sampled_from(["nir", "snntorch", "norse", "sinabs", "nir-paper"])
F = np.float32


pytestmark = pytest.mark.usefixtures("builtin_backends_only")


def shape(*dims):
    return np.asarray(dims, dtype=np.int64)


def spikes(rng, steps, batch, dims, rate=0.4):
    return (rng.random((steps, batch, *dims)) < rate).astype(F)


def assert_same_behaviour(a: Graph, b: Graph, x, policy, nodes):
    """`b` behaves like `a`: identical spikes (rounding ties excepted), potentials equal up to
    float32 rounding. The rewrites multiply in another order, and these tests drive neurons
    to several times their threshold, so potentials carry a few ulps of that scale: the
    absolute tolerance is 1e-5 * max(1, scale) instead of verify()'s 1e-6."""
    ra = simulate(a, x, policy=policy, record=nodes)
    rb = simulate(b, x, policy=policy, record=nodes)
    result = compare(ra, rb, a, nodes, atol=1e-5)
    bad = {n: c for n, c in result.items() if not c.ok}
    assert not bad, bad
    return ra


# ----------------------------------------------------------------------------- AvgPool2d


@st.composite
def pools(draw):
    k = draw(st.integers(1, 3))
    stride = draw(st.integers(1, k))
    pad = draw(st.integers(0, k // 2))
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(k, 7)), draw(st.integers(k, 7))
    return c, h, w, k, stride, pad


@SETTINGS
@given(pool=pools(), preset=PRESETS, seed=st.integers(0, 2**16))
def test_avgpool_equals_sumpool_then_scale(pool, preset, seed):
    c, h, w, k, stride, pad = pool
    rng = np.random.default_rng(seed)
    policy = Policy.preset(preset)
    node = {"type": "AvgPool2d", "kernel_size": shape(k, k), "stride": shape(stride, stride), "padding": shape(pad, pad)}
    out = AvgPool2d(**{key: v for key, v in node.items() if key != "type"}).output_shape((c, h, w))
    n = int(np.prod(out))
    params = neuron_params("LIF", (n,), policy, rng)
    params["r"] = (params["r"] * k * k).astype(F)  # the pool averages: scale back up to fire
    g = Graph.from_dict(
        {
            "nodes": {
                "input": {"type": "Input", "shape": shape(c, h, w)},
                "pool": node,
                "flat": {"type": "Flatten", "start_dim": 0, "end_dim": -1, "input_type": shape(*out)},
                "lif": {"type": "LIF", **params},
                "output": {"type": "Output", "shape": shape(n)},
            },
            "edges": [("input", "pool"), ("pool", "flat"), ("flat", "lif"), ("lif", "output")],
        }
    )
    rewritten = avgpool_to_sumpool(g)
    assert rewritten.nodes["pool"].type == "SumPool2d" and rewritten.nodes["pool_scale"].type == "Scale"
    assert ("pool", "pool_scale") in rewritten.edges and ("pool_scale", "flat") in rewritten.edges
    np.testing.assert_array_equal(rewritten.nodes["pool_scale"].scale, np.full(out, 1 / (k * k), F))
    x = spikes(rng, 25, 2, (c, h, w))
    ra = assert_same_behaviour(g, rewritten, x, policy, ["lif"])
    assert ra.states["lif"]["spikes"].any()
    ya = simulate(g, x, policy=policy, record=["pool"]).states["pool"]["y"]
    yb = simulate(rewritten, x, policy=policy, record=["pool_scale"]).states["pool_scale"]["y"]
    np.testing.assert_allclose(yb, ya, rtol=1e-6, atol=0)


# ----------------------------------------------------------------------------- r folding


@SETTINGS
@given(
    kind=st.sampled_from(["I", "IF", "LI", "LIF"]),
    recurrent=st.booleans(),
    preset=PRESETS,
    seed=st.integers(0, 2**16),
)
def test_fold_r_into_a_scale_is_exact(kind, recurrent, preset, seed):
    rng = np.random.default_rng(seed)
    policy = Policy.preset(preset)
    params = neuron_params(kind, (5,), policy, rng)
    params["r"] = (params["r"] * rng.uniform(0.7, 3.0, 5)).astype(F)
    if "v_leak" in params:
        params["v_leak"] = rng.uniform(-0.2, 0.2, 5).astype(F)
    nodes = {
        "input": {"type": "Input", "shape": shape(4)},
        "fc": {"type": "Linear", "weight": rng.uniform(-0.2, 1.0, (5, 4)).astype(F)},
        "n": {"type": kind, **params},
        "output": {"type": "Output", "shape": shape(5)},
    }
    edges = [("input", "fc"), ("fc", "n"), ("n", "output")]
    if recurrent and kind != "I":  # an integrator in a loop grows without bound: nothing to test
        nodes["rec"] = {"type": "Linear", "weight": rng.uniform(-0.3, 0.3, (5, 5)).astype(F)}
        edges += [("n", "rec"), ("rec", "n")]
    g = Graph.from_dict({"nodes": nodes, "edges": edges})
    folded = fold_r(g)
    np.testing.assert_array_equal(folded.nodes["n"].r, np.ones(5, F))
    np.testing.assert_array_equal(folded.nodes["n_r"].scale, params["r"])
    assert folded.nodes["fc"] == g.nodes["fc"]  # nobody else's weights change
    if "rec" in nodes:
        assert folded.nodes["rec"] == g.nodes["rec"] and ("rec", "n_r") in folded.edges
    x = spikes(rng, 30, 2, (4,), rate=0.5)
    ra = assert_same_behaviour(g, folded, x, policy, ["n"])
    if kind in ("IF", "LIF"):
        assert ra.states["n"]["spikes"].any()
    assert np.abs(ra.states["n"]["v"]).max() > 0


def test_fold_r_is_limited_to_nodes_where_it_changes_no_state():
    g = build_case("cubalif", Policy.preset("nir"))
    assert fold_r(g) == g  # r scales CubaLIF's current I: folding it would change that state
    assert fold_r(g, types={"CubaLIF"}).nodes.keys() != g.nodes.keys()


def test_fold_r_leaves_unit_r_alone_and_reaches_nested_graphs():
    g = build_case("nested_recurrent", Policy.preset("nir"))
    folded = fold_r(g)
    inner = folded.nodes["sub"]
    assert set(inner.nodes) == {"input", "lif", "lif_r", "w_rec", "output"}
    assert ("input", "lif_r") in inner.edges and ("w_rec", "lif_r") in inner.edges and ("lif_r", "lif") in inner.edges
    x = spikes(np.random.default_rng(0), 30, 2, (4,))
    assert_same_behaviour(g, folded, x, Policy.preset("nir"), ["sub.lif"])
    unit = build_case("lif", Policy.preset("sinabs"))
    unit = Graph(nodes=unit.nodes | {"lif": unit.nodes["lif"].model_copy(update={"r": np.ones(4, F)})}, edges=unit.edges)
    assert fold_r(unit).nodes.keys() == unit.nodes.keys()


def test_inserted_names_do_not_clash():
    g = build_case("lif", Policy.preset("nir"))
    taken = Graph(
        nodes=g.nodes | {"lif_r": {"type": "Scale", "scale": np.ones(4, F)}},
        edges=[("input", "lif_r"), ("lif_r", "lif"), ("lif", "output")],
    )
    folded = fold_r(taken)
    assert "lif_r_1" in folded.nodes and ("lif_r", "lif_r_1") in folded.edges


# ----------------------------------------------------------------------------- max pooling


def maxpool_reference(x, k, stride, pad):
    """Max pool over (time, batch, C, H, W) with -inf padding, written out directly."""
    t, b, c, h, w = x.shape
    padded = np.full((t, b, c, h + 2 * pad, w + 2 * pad), -np.inf)
    padded[..., pad : pad + h, pad : pad + w] = x
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = np.empty((t, b, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[..., i, j] = padded[..., i * stride : i * stride + k, j * stride : j * stride + k].max(axis=(-1, -2))
    return out


@SETTINGS
@given(pool=pools(), preset=PRESETS, seed=st.integers(0, 2**16))
def test_maxpool_on_spikes_is_sumpool_then_threshold(pool, preset, seed):
    c, h, w, k, stride, pad = pool
    rng = np.random.default_rng(seed)
    policy = Policy.preset(preset)
    rw = maxpool2d("pool", kernel_size=k, stride=stride, padding=pad, input_shape=(c, h, w), binary_input=True)
    assert rw.gap.status == "exact" and rw.input == "pool_sum" and rw.output == "pool"
    out_shape = rw.nodes["pool"].threshold.shape
    nodes = {"input": {"type": "Input", "shape": shape(c, h, w)}, "lif": {"type": "LIF", **neuron_params("LIF", (c, h, w), policy, rng)}}
    nodes |= rw.nodes
    nodes["output"] = {"type": "Output", "shape": shape(*out_shape)}
    g = Graph.from_dict({"nodes": nodes, "edges": [("input", "lif"), ("lif", rw.input), *rw.edges, (rw.output, "output")]})
    x = spikes(rng, 20, 2, (c, h, w), rate=0.5)
    result = simulate(g, x, policy=policy, record=["lif"])
    lif_spikes = result.states["lif"]["spikes"]
    assert 0 < lif_spikes.mean() < 1
    np.testing.assert_array_equal(result.outputs["output"], maxpool_reference(lif_spikes, k, stride, pad))


@pytest.mark.parametrize("k", [2, 3])
def test_maxpool_stride_defaults_to_the_kernel_size(k):
    """As in torch.nn.MaxPool2d: no stride means stride = kernel_size (7 x 7 -> 3 x 3 for k = 2,
    2 x 2 for k = 3), and the rewrite computes that max pool on spikes."""
    rw = maxpool2d("pool", kernel_size=k, input_shape=(2, 7, 7), binary_input=True)
    np.testing.assert_array_equal(rw.nodes["pool_sum"].stride, [k, k])
    out_shape = rw.nodes["pool"].threshold.shape
    assert out_shape == (2, 7 // k, 7 // k)
    nodes = {"input": {"type": "Input", "shape": shape(2, 7, 7)}} | rw.nodes | {"output": {"type": "Output", "shape": shape(*out_shape)}}
    g = Graph.from_dict({"nodes": nodes, "edges": [("input", rw.input), *rw.edges, (rw.output, "output")]})
    x = spikes(np.random.default_rng(k), 6, 2, (2, 7, 7), rate=0.2)
    np.testing.assert_array_equal(simulate(g, x).output, maxpool_reference(x, k, k, 0))


def test_maxpool_on_non_binary_input_is_unsupported():
    rw = maxpool2d("mp", kernel_size=2, input_shape=(1, 4, 4), binary_input=False)
    assert rw.nodes == {} and rw.gap.status == "unsupported" and rw.gap.node_type == "MaxPool2d"
    assert "not binary spikes" in rw.gap.reason
    assert "after a spiking layer" in rw.gap.suggestion


@pytest.mark.parametrize("extra, words", [({"dilation": 2}, "dilation (2, 2)"), ({"ceil_mode": True}, "ceil_mode=True")])
def test_maxpool_options_without_nir_equivalent_are_unsupported(extra, words):
    rw = maxpool2d("mp", kernel_size=2, input_shape=(1, 5, 5), binary_input=True, **extra)
    assert rw.gap.status == "unsupported" and words in rw.gap.reason


def test_maxpool_on_a_wrong_input_shape_names_the_node():
    with pytest.raises(nirbridge.GraphValidationError, match="nodes.mp: max pool: expects \\(channels, height, width\\)"):
        maxpool2d("mp", kernel_size=2, input_shape=(4, 4), binary_input=True)


def test_emits_binary_follows_shape_only_nodes():
    g = build_case("conv_net", Policy.preset("nir"))
    assert emits_binary(g, "if1") and not emits_binary(g, "pool") and not emits_binary(g, "conv")
    lif = build_case("maxpool_on_spikes", Policy.preset("nir"))
    assert emits_binary(lif, "pool") and not emits_binary(lif, "pool_sum") and not emits_binary(lif, "input")
    flat = Graph.from_dict(
        {
            "nodes": {
                "input": {"type": "Input", "shape": shape(2, 2)},
                "th": {"type": "Threshold", "threshold": np.full((2, 2), 0.5, F)},
                "flat": {"type": "Flatten", "start_dim": 0, "end_dim": -1, "input_type": shape(2, 2)},
                "output": {"type": "Output", "shape": shape(4)},
            },
            "edges": [("input", "th"), ("th", "flat"), ("flat", "output")],
        }
    )
    assert emits_binary(flat, "flat")


# ----------------------------------------------------------------------------- per backend


class NoAvgPool(NumpyBackend):
    name = "no-avgpool"
    handlers = {t: h for t, h in NumpyBackend.handlers.items() if t != "AvgPool2d"}


class UnitR(NumpyBackend):
    name = "unit-r"
    unit_r = frozenset({"LIF"})


class UnitRNoScale(UnitR):
    name = "unit-r-no-scale"
    handlers = {t: h for t, h in NumpyBackend.handlers.items() if t != "Scale"}


class Flat(NumpyBackend):
    name = "flat"
    handlers = {t: h for t, h in NumpyBackend.handlers.items() if t != "NIRGraph"}


def test_backend_without_avgpool_gets_the_rewrite():
    g = build_case("avgpool2d", Policy.preset("nir"))
    assert alternatives(NoAvgPool())["AvgPool2d"] == "SumPool2d + Scale"
    p = plan(g, NoAvgPool())
    assert p.report.ok and p.report["avgpool2d"].maps_to == "SumPool2d + Scale(1/4) (exact rewrite)"
    assert [p.graph.nodes[n].type for n in ("avgpool2d", "avgpool2d_scale")] == ["SumPool2d", "Scale"]
    assert "rewrites applied for no-avgpool: avgpool2d (SumPool2d + Scale)" in p.report.notes


def test_backend_lacking_r_gets_a_scale_in_front():
    g = build_case("network", Policy.preset("nir"))
    p = plan(g, UnitR())
    assert p.report.ok
    assert {"lif1_r", "lif2_r"} <= set(p.graph.nodes) and p.graph.nodes["fc2"] == g.nodes["fc2"]
    assert "r = 1 (exact rewrite)" in p.report["lif1"].maps_to
    model = convert(g, to=UnitR())
    x = spikes(np.random.default_rng(1), 30, 2, (5,))
    assert_same_behaviour(g, model.graph, x, Policy.preset("nir"), ["lif1", "lif2"])


def test_backend_lacking_r_and_scale_reports_unsupported():
    report = check(build_case("lif", Policy.preset("nir")), to=UnitRNoScale())
    gap = report["lif"]
    assert gap.status == "unsupported" and "r = 1 only" in gap.reason and "Scale" in gap.reason
    with pytest.raises(GapError):
        convert(build_case("lif", Policy.preset("nir")), to=UnitRNoScale())


def test_backend_without_nested_graphs_gets_them_inlined():
    g = build_case("nested_recurrent", Policy.preset("nir"))
    p = plan(g, Flat())
    assert p.report.ok and p.report["sub"].maps_to.startswith("inlined")
    assert not any(isinstance(n, Graph) for n in p.graph.nodes.values())
    assert {"sub.lif", "sub.w_rec"} <= set(p.graph.nodes)
    x = spikes(np.random.default_rng(2), 30, 2, (4,))
    assert_same_behaviour(g, p.graph, x, Policy.preset("nir"), ["sub.lif"])


def test_lower_returns_the_graph_unchanged_when_something_is_unsupported():
    g = build_case("avgpool2d", Policy.preset("nir"))

    class Nothing(NumpyBackend):
        name = "nothing"
        handlers = {"Scale": exact("gain")}

    lowering = lower(g, Nothing(), Policy.preset("nir"))
    assert lowering.graph is g and lowering.rewritten == {}
    assert [x.status for x in lowering.gaps if x.node == "avgpool2d"] == ["unsupported"]
