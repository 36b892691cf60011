"""Export of Spyx models: what each layer becomes in the graph and its policy, what is refused
(all at once), and that the saved graph is NIR."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import spyx.nn as snn
from flax import nnx
from spyx_support import make, run_native, sample

import nirbridge
from nirbridge import Policy
from nirbridge.errors import GapError
from nirbridge.semantics import step_constants


def export(model, x):
    graph = nirbridge.convert(model, to="nir", sample=sample(x))
    return graph, Policy.from_metadata(graph.metadata)


def test_defaults_are_the_preset_and_each_spiking_layer_gets_its_delay():
    model, x = make("LIF MLP (scalar beta)")
    graph, policy = export(model, x)
    assert policy == Policy.preset("spyx")
    assert {n: v.type for n, v in graph.nodes.items()} == {"input": "Input", "0": "Affine", "1": "LIF", "1_delay": "Delay", "2": "Affine",
                                                           "3": "LIF", "3_delay": "Delay", "output": "Output"}
    assert ("1", "1_delay") in graph.edges and ("1_delay", "2") in graph.edges
    np.testing.assert_array_equal(graph.nodes["1_delay"].delay, 1.0)
    lif = graph.nodes["1"]
    assert np.all(lif.r == 1) and np.all(lif.v_leak == 0) and np.all(lif.v_reset == 0) and np.all(lif.v_threshold == 1)
    np.testing.assert_array_equal(graph.nodes["0"].weight, np.asarray(model.layers[0].kernel[...]).T)


def test_tau_gives_spyx_beta_bit_for_bit():
    model, x = make("LIF MLP (Spyx's per-neuron beta initialisation)")
    graph, policy = export(model, x)
    beta = np.clip(np.asarray(model.layers[1].beta[...]), 0, 1)
    assert beta.min() < 0.5  # Spyx's initialisation spreads beta over [0, 1]
    a = np.asarray(step_constants(graph.nodes["1"], policy.for_node("1", "LIF")).a, np.float64).astype(np.float32)
    np.testing.assert_array_equal(a, beta)
    model, x = make("LIF MLP (scalar beta)")
    graph, policy = export(model, x)
    assert graph.nodes["1"].tau.dtype == np.float32  # float32 where a float32 tau gives the decay
    a = np.float32(step_constants(graph.nodes["1"], policy).a.reshape(-1)[0])
    assert a == np.float32(0.85)


def test_cubalif_current_enters_unscaled_and_recurrent_weights_close_a_cycle():
    model, x = make("RCuBaLIF")
    graph, policy = export(model, x)
    node = graph.nodes["1"]
    assert node.type == "CubaLIF" and np.all(node.w_in == 1)
    k = step_constants(node, policy.for_node("1", "CubaLIF"))
    np.testing.assert_array_equal(np.asarray(k.c_r, np.float64).astype(np.float32), 1.0)
    np.testing.assert_array_equal(graph.nodes["1_rec"].weight, np.asarray(model.layers[1].recurrent_w[...]).T)
    assert {("1", "1_rec"), ("1_rec", "1"), ("1", "1_delay")} <= set(graph.edges)


def test_conv_layout_is_transposed_to_channels_first():
    model, x = make("CNN: Conv-IF-SumPool, Conv-LIF, Flatten, Linear-LIF")
    graph, _ = export(model, x)
    assert tuple(graph.nodes["input"].shape) == (2, 8, 8)
    assert graph.nodes["0"].type == "Conv2d" and graph.nodes["0"].weight.shape == (4, 2, 3, 3)
    assert graph.nodes["2"].type == "SumPool2d" and graph.nodes["5"].type == "Flatten"
    assert tuple(graph.nodes["1"].v_threshold.shape) == (4, 8, 8)
    # Spyx flattens (H, W, C); the graph (C, H, W): the Linear's columns follow
    kernel = np.asarray(model.layers[6].kernel[...])
    assert not np.array_equal(graph.nodes["6"].weight, kernel.T)
    np.testing.assert_array_equal(np.sort(graph.nodes["6"].weight, axis=1), np.sort(kernel.T, axis=1))


def test_psu_lif_is_a_leaky_integrator_and_a_threshold():
    r = nnx.Rngs(0)
    model = snn.Sequential(nnx.Linear(4, 6, rngs=r), snn.PSU_LIF((6,), beta=0.75, threshold=0.5, rngs=r))
    x = (np.random.default_rng(0).random((30, 2, 4)) < 0.4).astype(np.float32)
    graph = nirbridge.convert(model, to="nir", sample=x[0])
    assert graph.nodes["1"].type == "LI" and graph.nodes["1_threshold"].type == "Threshold"
    out, _ = snn.run(model, jnp.asarray(x))
    out = np.asarray(out)
    np.testing.assert_array_equal(nirbridge.simulate(graph, x).output, out)
    assert 0.05 < out.mean() < 0.95


def test_unsupported_layers_are_all_listed_in_one_report():
    r = nnx.Rngs(0)
    model = snn.Sequential(
        nnx.Linear(4, 5, rngs=r), snn.ALIF((5,), beta=0.8, gamma=0.5, rngs=r),
        nnx.Linear(5, 5, rngs=r), snn.ActivityRegularization((5,)),
        nnx.Linear(5, 5, rngs=r), snn.LIF((5,), beta=1.0, rngs=r),
        nnx.Linear(5, 5, rngs=r), nnx.Dropout(0.5, rngs=r),
        nnx.Linear(5, 5, rngs=r), snn.LIF((5,), beta=0.9, rngs=r),
    )
    with pytest.raises(GapError) as caught:
        nirbridge.convert(model, to="nir", sample=np.zeros((1, 4), np.float32))
    reasons = {g.node: g.reason for g in caught.value.report.unsupported}
    assert set(reasons) == {"1", "3", "5", "7"}, reasons
    assert "adaptive threshold" in reasons["1"]
    assert "spike counter" in reasons["3"]
    assert "no leak" in reasons["5"]
    assert "Dropout" in reasons["7"]


def test_a_policy_spyx_cannot_compute_is_refused():
    model, x = make("IF MLP")
    with pytest.raises(GapError, match="threshold='ge'"):
        nirbridge.convert(model, to="nir", sample=sample(x), policy=Policy.preset("spyx", threshold="ge"))
    graph = nirbridge.convert(model, to="nir", sample=sample(x), policy=Policy.preset("spyx", dt=1e-3))
    np.testing.assert_array_equal(graph.nodes["1_delay"].delay, np.float32(1e-3))
    _, spikes = run_native(model, x)
    got = nirbridge.simulate(graph, x, record=list(spikes))
    for n, s in spikes.items():
        np.testing.assert_array_equal(got.states[n]["spikes"], s)


def test_saved_graph_is_nir_and_loads_back(tmp_path):
    import nir

    model, x = make("CNN: Conv-IF-SumPool, Conv-LIF, Flatten, Linear-LIF")
    graph, policy = export(model, x)
    nirbridge.save(graph, tmp_path / "net.nir")
    assert set(nir.read(str(tmp_path / "net.nir")).nodes) == set(graph.nodes)
    back = nirbridge.load(tmp_path / "net.nir")
    assert back == graph and Policy.from_metadata(back.metadata) == policy
