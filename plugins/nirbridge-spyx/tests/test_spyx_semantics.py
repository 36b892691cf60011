"""What Spyx 1.0.0 computes, pinned against hand-written loops: each neuron run by Spyx's own
`spyx.nn.run` (a `jax.lax.scan`) on random input, and the small cases worked by hand. These
facts are the `spyx` preset (nirbridge.semantics.presets._spyx)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import spyx.axn as axn
import spyx.nn as snn
from flax import nnx

import nirbridge
from nirbridge import Policy

f32 = np.float32


def run(layer, x):
    """(outputs, final state) of one Spyx layer over x (time, batch, *neurons)."""
    out, state = snn.run(layer, jnp.asarray(np.asarray(x, f32)))
    return np.asarray(out), np.asarray(state)


def drive(seed=0, shape=(80, 2, 16), lo=-0.3, hi=1.0):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(f32)


def loop(x, beta=None, threshold=1.0, alpha=None, w_rec=None, reset_first=False):
    """Spyx's step as written in spyx/nn.py: spikes from the stored V, then the update."""
    v = np.zeros(x.shape[1:], f32)
    i = np.zeros(x.shape[1:], f32)
    th = f32(threshold)
    out = []
    for k in range(x.shape[0]):
        s = (v - th > 0).astype(f32)
        fb = s @ w_rec if w_rec is not None else None
        if alpha is not None:  # CuBaLIF: reset, then I = alpha I + x (+ fb), V = beta V + I
            v = v - s * th
            i = f32(alpha) * i + x[k]
            if fb is not None:
                i = i + fb
            v = f32(beta) * v + i
        else:
            v = (v if beta is None else f32(beta) * v) + x[k]
            if fb is not None:
                v = v + fb
            v = v - s * th
        out.append(s)
    return np.stack(out), v


def test_lif_fires_from_the_potential_before_the_update():
    # V = 0 -> x 1.5 at step 0: V 1.5 (no spike yet: the test reads the stored 0); step 1 fires
    # from 1.5 and subtracts in the same update: V = 0.5*1.5 + 0 - 1 = -0.25
    out, v = run(snn.LIF((1,), beta=0.5, rngs=nnx.Rngs(0)), [[[1.5]], [[0.0]], [[0.0]]])
    assert out[:, 0, 0].tolist() == [0, 1, 0]
    assert v[0, 0] == f32(f32(0.5) * f32(-0.25))


@pytest.mark.parametrize("beta", [0.6, 0.9, 0.97])
def test_lif_is_beta_per_step_with_the_same_step_subtraction(beta):
    x = drive(1)
    out, v = run(snn.LIF((16,), beta=beta, rngs=nnx.Rngs(0)), x)
    ref_s, ref_v = loop(x, beta)
    np.testing.assert_array_equal(out, ref_s)
    np.testing.assert_allclose(v, ref_v, rtol=1e-6, atol=1e-6)
    assert 0.05 < out.mean() < 0.8


@pytest.mark.parametrize("given,runs", [(1.3, 1.0), (-0.2, 0.0), (1.0, 1.0)])
def test_beta_is_clipped_to_zero_one(given, runs):
    x = drive(2, hi=0.6)
    out, _ = run(snn.LIF((16,), beta=given, rngs=nnx.Rngs(0)), x)
    np.testing.assert_array_equal(out, loop(x, runs)[0])


def test_threshold_is_strictly_greater():
    # V lands exactly on 1 after step 0: no spike at step 1; 1 + 0.25 fires at step 2
    out, _ = run(snn.IF((1,)), [[[1.0]], [[0.25]], [[0.0]]])
    assert out[:, 0, 0].tolist() == [0, 0, 1]


def test_if_adds_its_input_and_subtracts_the_threshold():
    x = drive(3, hi=0.8)
    out, v = run(snn.IF((16,), threshold=1.5), x)
    ref_s, ref_v = loop(x, None, 1.5)
    np.testing.assert_array_equal(out, ref_s)
    np.testing.assert_allclose(v, ref_v, rtol=1e-6, atol=1e-6)


def test_li_outputs_this_steps_potential():
    x = drive(4)
    out, _ = run(snn.LI((16,), beta=0.7, rngs=nnx.Rngs(0)), x)
    v, ref = np.zeros(x.shape[1:], f32), []
    for k in range(x.shape[0]):
        v = f32(0.7) * v + x[k]
        ref.append(v)
    np.testing.assert_allclose(out, np.stack(ref), rtol=1e-6, atol=1e-6)


def test_cubalif_subtracts_before_the_decay():
    # I = x; V: step 0 -> 2.0; step 1 fires from 2.0: V = 0.5 (2.0 - 1) + 0 = 0.5 (a reset after
    # the decay would give 0.5*2 - 1 = 0)
    out, state = run(snn.CuBaLIF((1,), alpha=0.0, beta=0.5, rngs=nnx.Rngs(0)), [[[2.0]], [[0.0]]])
    assert out[:, 0, 0].tolist() == [0, 1]
    assert state[0, 0] == 0.5
    x = drive(5, hi=0.5)
    out, state = run(snn.CuBaLIF((16,), alpha=0.6, beta=0.85, rngs=nnx.Rngs(0)), x)
    ref_s, ref_v = loop(x, 0.85, alpha=0.6)
    np.testing.assert_array_equal(out, ref_s)
    np.testing.assert_allclose(state[:, :16], ref_v, rtol=1e-6, atol=1e-6)
    assert 0.05 < out.mean() < 0.9


@pytest.mark.parametrize("kind", ["RLIF", "RIF", "RCuBaLIF"])
def test_recurrent_layers_feed_back_the_spikes_they_emit_this_step(kind):
    x = drive(6, hi=0.7)
    kw = {"RLIF": {"beta": 0.8}, "RIF": {}, "RCuBaLIF": {"alpha": 0.5, "beta": 0.8}}[kind]
    layer = getattr(snn, kind)((16,), rngs=nnx.Rngs(0), **kw)
    w = np.asarray(layer.recurrent_w[...]) * f32(0.3)
    layer.recurrent_w[...] = jnp.asarray(w)
    out, _ = run(layer, x)
    ref_s, _ = loop(x, kw.get("beta"), alpha=kw.get("alpha"), w_rec=w)
    np.testing.assert_array_equal(out, ref_s)
    assert 0.05 < out.mean() < 0.9


@pytest.mark.parametrize("activation", [axn.superspike(), axn.tanh(), axn.arctan(), axn.triangular()])
def test_the_surrogate_does_not_change_the_forward_pass(activation):
    x = drive(7)
    out, _ = run(snn.LIF((16,), beta=0.8, activation=activation, rngs=nnx.Rngs(0)), x)
    np.testing.assert_array_equal(out, loop(x, 0.8)[0])


def test_state_starts_at_zero():
    assert not np.any(np.asarray(snn.LIF((3,), beta=0.5, rngs=nnx.Rngs(0)).initial_state(2)))
    assert not np.any(np.asarray(snn.CuBaLIF((3,), alpha=0.5, beta=0.5, rngs=nnx.Rngs(0)).initial_state(2)))


# ----------------------------------------------------------------------------- the preset


def _lif_graph(beta: float, delay: bool, kind: str = "LIF"):
    """One neuron node under the spyx preset (dt 1, impulse input), optionally with the Delay."""
    n = 16
    ones, zeros = np.ones(n, f32), np.zeros(n, f32)
    tau = np.full(n, 1 / (1 - np.float64(beta)), f32)
    node = {"LIF": {"type": "LIF", "tau": tau, "r": ones, "v_leak": zeros, "v_threshold": ones, "v_reset": zeros},
            "CubaLIF": {"type": "CubaLIF", "tau_syn": np.full(n, 1 / (1 - np.float64(0.6)), f32), "tau_mem": tau, "r": tau,
                        "w_in": ones, "v_leak": zeros, "v_threshold": ones, "v_reset": zeros}}[kind]
    nodes = {"input": {"type": "Input", "shape": np.array([n])}, "lif": node, "output": {"type": "Output", "shape": np.array([n])}}
    edges = [("input", "lif"), ("lif", "output")]
    if delay:
        nodes["d"] = {"type": "Delay", "delay": ones}
        edges = [("input", "lif"), ("lif", "d"), ("d", "output")]
    return nirbridge.Graph.from_dict({"nodes": nodes, "edges": edges})


@pytest.mark.parametrize("kind", ["LIF", "CubaLIF"])
def test_spyx_is_the_reference_under_its_preset_followed_by_a_one_step_delay(kind):
    x = drive(8, hi=0.6)
    layer = snn.LIF((16,), beta=0.8, rngs=nnx.Rngs(0)) if kind == "LIF" else snn.CuBaLIF((16,), alpha=0.6, beta=0.8, rngs=nnx.Rngs(0))
    out, _ = run(layer, x)
    policy = Policy.preset("spyx")
    delayed = nirbridge.simulate(_lif_graph(0.8, True, kind), x, policy=policy).output
    np.testing.assert_array_equal(delayed, out)
    undelayed = nirbridge.simulate(_lif_graph(0.8, False, kind), x, policy=policy).output
    np.testing.assert_array_equal(undelayed[:-1], out[1:])  # the neuron itself fires one step earlier
    assert not np.array_equal(undelayed, out) and 0.05 < out.mean() < 0.9
    # the immediate reset (LIF) or the next-step one (CubaLIF) would not do
    other = "immediate" if kind == "LIF" else "next_step"
    wrong = nirbridge.simulate(_lif_graph(0.8, True, kind), x, policy=policy.with_type_override(kind, reset_timing=other)).output
    assert not np.array_equal(wrong, out)
