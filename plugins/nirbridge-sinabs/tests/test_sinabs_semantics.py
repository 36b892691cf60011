"""Sinabs 3.1.3 forward semantics, pinned against a hand-written float32 NumPy step loop.

What the installed sources do (sinabs/layers/functional/lif.py `lif_forward_single`,
activation/spike_generation.py, activation/reset_mechanism.py, layers/lif.py, iaf.py,
exp_leak.py, reshape.py, from_torch.py), for one step k of a layer fed x[k]:

    i = alpha_syn * (i + x)            with tau_syn (the input decays in its own step), else i = x
    v = alpha * v + c * i              alpha = exp(-1/tau_mem), tau in steps (dt = 1); IAF: alpha = 1
                                       c = 1 - alpha (norm_input=True: LIF's default) or 1
    n = trunc(v / theta) where v > 0   MultiSpike (the default): n spikes in one step
        [v - theta >= 0]               SingleSpike
        min(trunc(v / theta), m)       MaxSpike(m)
    v = v - n * theta                  MembraneSubtract (the default), in the same step
        v * [n == 0] + reset_value     MembraneReset: reset_value is added to EVERY neuron
    v = relu(v - v_min) + v_min        min_v_mem, after the reset
    output n; recorded v_mem is the value after reset and floor; states start at 0

Every quantity is float32 and rounded after each operation, in this order. The decay factors
are torch's float32 exp(-1/tau) (within one ulp of the correctly rounded value: pinned below);
the loops take them from the layer so that a last-bit difference of exp cannot hide a wrong
equation or fake one.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sinabs = pytest.importorskip("sinabs")
sl = pytest.importorskip("sinabs.layers")
from sinabs.activation import MaxSpike, MembraneReset, MembraneSubtract, MultiSpike, SingleSpike  # noqa: E402

f32 = np.float32
FIXTURES = next((p / "shared/fixtures/nir-paper" for p in Path(__file__).resolve().parents
                 if (p / "shared/fixtures/nir-paper").is_dir()), None)


def decay_of(tau: float) -> np.float32:
    """exp(-1/tau) of the float32 tau, computed in float64 and rounded once."""
    return f32(math.exp(-1.0 / float(f32(tau))))


def alphas(layer):
    """(alpha_mem, alpha_syn) the layer steps with, as float32 (None where absent)."""
    a_syn = layer.alpha_syn_calculated
    return (f32(layer.alpha_mem_calculated.detach().numpy()),
            None if a_syn is None else f32(a_syn.detach().numpy()))


def step_loop(x, *, alpha=1.0, threshold=1.0, norm_input=False, alpha_syn=None, spikes="multi",
              max_spikes=None, reset="subtract", reset_value=0.0, v_min=None):
    """Sinabs' step on x shaped (batch, time, *neurons): returns (spike counts, v after step)."""
    x = np.asarray(x, f32)
    a, th, c = f32(alpha), f32(threshold), f32(1) - f32(alpha)
    v = np.zeros((x.shape[0],) + x.shape[2:], f32)
    i = np.zeros_like(v)
    out_n, out_v = [], []
    for k in range(x.shape[1]):
        xk = x[:, k]
        i = f32(alpha_syn) * (i + xk) if alpha_syn is not None else xk
        v = a * v + (c * i if norm_input else i)
        if spikes == "single":
            n = (v - th >= 0).astype(f32)
        else:
            n = np.where(v > 0, np.trunc(v / th), f32(0)).astype(f32)
            if max_spikes is not None:
                n = np.minimum(n, f32(max_spikes))
        if reset == "subtract":
            v = v - n * th
        else:
            v = v * (n == 0).astype(f32) + f32(reset_value)
        if v_min is not None:
            v = np.maximum(v - f32(v_min), f32(0)) + f32(v_min)
        out_n.append(n)
        out_v.append(v)
    return np.stack(out_n, 1), np.stack(out_v, 1)


def run(layer, x):
    """(output, recorded v_mem) of a Sinabs layer on x shaped (batch, time, *neurons)."""
    layer.record_states = True
    with torch.no_grad():
        out = layer(torch.from_numpy(np.asarray(x, f32)))
    return out.numpy(), layer.recordings["v_mem"].numpy()


def assert_same(out, v, ref_n, ref_v, threshold=1.0):
    """Spike for spike; potentials to float32 rounding."""
    np.testing.assert_array_equal(out, ref_n)
    np.testing.assert_allclose(v, ref_v, rtol=1e-6, atol=1e-6 * max(1.0, abs(threshold)))


def drive(seed=0, shape=(2, 120, 16), lo=-0.3, hi=1.0):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(f32)


# ----------------------------------------------------------------------------- time constant


@pytest.mark.parametrize("tau", [2.0, 3.0, 5.5, 20.0, 25.0, 100.0])
def test_decay_is_exp_of_minus_one_over_tau_in_steps(tau):
    alpha_mem, alpha_syn = alphas(sl.LIF(tau_mem=tau, tau_syn=tau))
    for alpha in (alpha_mem, alpha_syn):
        np.testing.assert_array_max_ulp(alpha, decay_of(tau), maxulp=1)
        assert alpha != f32(1 - 1 / tau)  # not forward Euler


def test_one_input_then_pure_decay_by_hand():
    # LIF tau 4 (norm_input=False): v = 1, e^-1/4, e^-2/4, ...
    _, v = run(sl.LIF(tau_mem=4.0, norm_input=False, spike_threshold=10.0), [[[1.0], [0.0], [0.0]]])
    np.testing.assert_allclose(v[0, :, 0], [1.0, math.exp(-0.25), math.exp(-0.5)], rtol=1e-6)


@pytest.mark.parametrize("norm_input", [True, False])
@pytest.mark.parametrize("spikes", ["multi", "single"])
def test_lif_matches_step_loop(norm_input, spikes):
    tau, theta = 6.0, 0.5
    x = drive(1, hi=1.2 if not norm_input else 4.0)
    layer = sl.LIF(tau_mem=tau, spike_threshold=theta, norm_input=norm_input,
                   spike_fn=MultiSpike if spikes == "multi" else SingleSpike)
    out, v = run(layer, x)
    ref_n, ref_v = step_loop(x, alpha=alphas(layer)[0], threshold=theta, norm_input=norm_input, spikes=spikes)
    assert_same(out, v, ref_n, ref_v, theta)
    assert 0.05 < (out > 0).mean() < 0.8


def test_lif_default_normalises_input_by_one_minus_alpha():
    layer = sl.LIF(tau_mem=4.0, spike_threshold=10.0)
    assert layer.norm_input is True
    _, v = run(layer, [[[1.0]]])
    assert v[0, 0, 0] == pytest.approx(1 - math.exp(-0.25), rel=1e-6)


# ----------------------------------------------------------------------------- spikes


def test_multispike_emits_trunc_v_over_theta_and_subtracts_each():
    # IAF theta 1: v 3.5 -> 3 spikes, 0.5; +0 -> 0.5; +0.7 -> 1.2 -> 1 spike, 0.2; +0.3 -> 0.5;
    # +2.0 -> 2.5 -> 2 spikes, 0.5; -0.4 -> 0.1
    out, v = run(sl.IAF(), [[[3.5], [0.0], [0.7], [0.3], [2.0], [-0.4]]])
    assert out[0, :, 0].tolist() == [3, 0, 1, 0, 2, 0]
    np.testing.assert_allclose(v[0, :, 0], [0.5, 0.5, 0.2, 0.5, 0.5, 0.1], atol=1e-6)


def test_multispike_counts_from_the_rounded_float32_quotient():
    # theta = float32(0.1) = 0.10000000149..., v = 0.5: v < 5 theta exactly, but
    # float32(0.5 / theta) == 5.0, so 5 spikes (not floor(v/theta) = 4), residual 0.
    theta = f32(0.1)
    assert float(f32(0.5)) < 5 * float(theta) and f32(f32(0.5) / theta) == 5
    out, v = run(sl.IAF(spike_threshold=torch.tensor(theta)), [[[0.5]]])
    assert out[0, 0, 0] == 5 and v[0, 0, 0] == 0


def test_threshold_is_ge_for_single_and_multi_spike():
    theta = f32(0.75)
    below = np.nextafter(theta, f32(0))
    for fn in (SingleSpike, MultiSpike):
        out, _ = run(sl.IAF(spike_threshold=torch.tensor(theta), spike_fn=fn), [[[theta], [0.0]], [[below], [0.0]]])
        assert out[:, 0, 0].tolist() == [1, 0]


def test_maxspike_clamps_the_count_but_subtracts_only_what_it_emitted():
    out, v = run(sl.IAF(spike_fn=MaxSpike(max_num_spikes_per_bin=2)), [[[5.0], [0.0], [0.0]]])
    assert out[0, :, 0].tolist() == [2, 2, 1]
    np.testing.assert_allclose(v[0, :, 0], [3.0, 1.0, 0.0], atol=1e-6)
    x = drive(2, hi=3.0)
    out, v = run(sl.IAF(spike_fn=MaxSpike(max_num_spikes_per_bin=2)), x)
    assert_same(out, v, *step_loop(x, max_spikes=2))


# ----------------------------------------------------------------------------- reset and floor


def test_subtract_reset_acts_in_the_same_step_and_v_is_recorded_after_it():
    out, v = run(sl.IAF(spike_fn=SingleSpike), [[[1.25], [0.0]]])
    assert out[0, :, 0].tolist() == [1, 0]
    np.testing.assert_allclose(v[0, :, 0], [0.25, 0.25], atol=1e-7)
    # SingleSpike subtracts theta once even when v stays above threshold: it fires again next step
    out, v = run(sl.IAF(spike_fn=SingleSpike), [[[2.5], [0.0], [0.0]]])
    assert out[0, :, 0].tolist() == [1, 1, 0]
    np.testing.assert_allclose(v[0, :, 0], [1.5, 0.5, 0.5], atol=1e-7)


def test_membrane_reset_to_zero_matches_step_loop():
    x = drive(3, hi=1.5)
    out, v = run(sl.IAF(reset_fn=MembraneReset(reset_value=0.0)), x)
    assert_same(out, v, *step_loop(x, reset="to_value"))
    assert (out > 1).any()  # multi-spike counts, then v = 0


def test_membrane_reset_adds_its_value_to_every_neuron_every_step():
    # reset_value 0.25, zero input: the fire test sees 0, 0.25, 0.5, 0.75, 1.0 (spike), 0.25, ...
    # and 0.25 is added after it, so v is recorded at 1.0 one step before the spike
    out, v = run(sl.IAF(spike_fn=SingleSpike, reset_fn=MembraneReset(reset_value=0.25)), np.zeros((1, 9, 1)))
    assert out[0, :, 0].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 1]
    np.testing.assert_allclose(v[0, :, 0], [0.25, 0.5, 0.75, 1.0, 0.25, 0.5, 0.75, 1.0, 0.25], atol=1e-7)
    x = drive(4)
    out, v = run(sl.IAF(spike_fn=SingleSpike, reset_fn=MembraneReset(reset_value=0.1)), x)
    assert_same(out, v, *step_loop(x, spikes="single", reset="to_value", reset_value=0.1))


def test_min_v_mem_floors_after_the_reset():
    # v_min -0.5: -2 -> -0.5; +0.3 -> -0.2; +1.6 -> 1.4 -> spike -> 0.4
    out, v = run(sl.IAF(spike_fn=SingleSpike, min_v_mem=-0.5), [[[-2.0], [0.3], [1.6]]])
    assert out[0, :, 0].tolist() == [0, 0, 1]
    np.testing.assert_allclose(v[0, :, 0], [-0.5, -0.2, 0.4], atol=1e-6)
    # a reset to -1 is floored in the same step: the floor comes after the reset
    out, v = run(sl.IAF(spike_fn=SingleSpike, reset_fn=MembraneReset(reset_value=-1.0), min_v_mem=-0.5), [[[1.0]]])
    assert out[0, 0, 0] == 1 and v[0, 0, 0] == -0.5


def test_min_v_mem_rounds_potentials_it_does_not_clip():
    # relu(v - m) + m is not v in float32: 0.3 + 1 - 1 = 0.29999995
    expected = f32(f32(f32(0.3) + f32(1.0)) - f32(1.0))
    assert expected != f32(0.3)
    _, v = run(sl.IAF(spike_threshold=10.0, min_v_mem=-1.0), [[[0.3]]])
    assert v[0, 0, 0] == expected


def test_lif_with_floor_matches_step_loop():
    x = drive(5, lo=-1.5, hi=1.5)
    layer = sl.LIF(tau_mem=5.0, spike_threshold=0.8, norm_input=False, min_v_mem=-0.6)
    out, v = run(layer, x)
    ref = step_loop(x, alpha=alphas(layer)[0], threshold=0.8, v_min=-0.6)
    assert_same(out, v, *ref, threshold=0.8)
    assert (v == f32(-0.6)).any()  # the floor acted


# ----------------------------------------------------------------------------- neuron types


def test_iaf_has_no_leak_and_adds_its_input():
    x = drive(6, hi=0.8)
    layer = sl.IAF(spike_threshold=1.5)
    assert float(layer.alpha_mem_calculated) == 1.0
    out, v = run(layer, x)
    assert_same(out, v, *step_loop(x, threshold=1.5), threshold=1.5)


def test_synaptic_current_is_decayed_in_the_step_it_arrives():
    # IAF tau_syn 2: i = e^-1/2 (0 + 1), v = i: the input reaches v already decayed
    _, v = run(sl.IAF(tau_syn=2.0, spike_threshold=10.0), [[[1.0], [0.0]]])
    a = math.exp(-0.5)
    np.testing.assert_allclose(v[0, :, 0], [a, a + a * a], rtol=1e-6)


@pytest.mark.parametrize("kind", ["IAF", "LIF"])
def test_synaptic_layers_match_step_loop(kind):
    x = drive(7, hi=0.6)
    if kind == "IAF":
        layer, norm = sl.IAF(tau_syn=3.0), False
    else:
        layer, norm = sl.LIF(tau_mem=8.0, tau_syn=3.0, spike_threshold=0.3), True
    alpha, alpha_syn = alphas(layer)
    theta = float(layer.spike_threshold)
    out, v = run(layer, x)
    assert_same(out, v, *step_loop(x, alpha=alpha, alpha_syn=alpha_syn, threshold=theta, norm_input=norm), theta)
    assert 0.05 < (out > 0).mean() < 0.9


def test_expleak_is_a_leaky_integrator_without_spikes():
    x = drive(8)
    layer = sl.ExpLeak(tau_mem=3.0)
    assert layer.norm_input is False and layer.spike_fn is None
    out, v = run(layer, x)
    np.testing.assert_array_equal(out, v)  # the output is v
    ref_v = []
    acc = np.zeros((x.shape[0], x.shape[2]), f32)
    for k in range(x.shape[1]):
        acc = alphas(layer)[0] * acc + x[:, k]
        ref_v.append(acc)
    np.testing.assert_allclose(v, np.stack(ref_v, 1), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- state and shapes


def test_state_starts_at_zero_and_persists_across_calls_until_reset_states():
    x = drive(9)
    layer = sl.LIF(tau_mem=5.0, spike_threshold=0.5, norm_input=False)
    whole, _ = run(layer, x)
    layer.reset_states()
    first, _ = run(layer, x[:, :50])
    second, _ = run(layer, x[:, 50:])  # continues from the state left by the first call
    np.testing.assert_array_equal(np.concatenate([first, second], 1), whole)
    layer.reset_states()
    again, _ = run(layer, x[:, 50:])
    assert not np.array_equal(again, second)
    assert_same(again, layer.recordings["v_mem"].numpy(),
                *step_loop(x[:, 50:], alpha=alphas(layer)[0], threshold=0.5), threshold=0.5)


@pytest.mark.parametrize("squeeze", [{"batch_size": 2}, {"num_timesteps": 40}])
def test_squeeze_layers_read_batch_major_folded_input(squeeze):
    x = drive(10, shape=(2, 40, 3, 2, 2), hi=1.5)
    ref, _ = run(sl.IAF(), x)
    with torch.no_grad():
        out = sl.IAFSqueeze(**squeeze)(torch.from_numpy(x.reshape(80, 3, 2, 2))).numpy()
    np.testing.assert_array_equal(out.reshape(2, 40, 3, 2, 2), ref)
    assert (ref > 0).any()


# ----------------------------------------------------------------------------- from_model


def test_from_model_turns_each_relu_into_a_multispike_iaf_with_floor_minus_one():
    torch.manual_seed(0)
    ann = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3), torch.nn.ReLU())
    with torch.no_grad():
        ann[2].weight.abs_()
    net = sinabs.from_model(ann, batch_size=2)
    snn = net.spiking_model
    assert [type(m).__name__ for m in snn] == ["Linear", "IAFSqueeze", "Linear", "IAFSqueeze"]
    assert isinstance(ann[1], torch.nn.ReLU)  # the ANN is copied, not changed
    for m in (snn[1], snn[3]):
        assert m.spike_fn is MultiSpike and isinstance(m.reset_fn, MembraneSubtract)
        assert float(m.spike_threshold) == 1.0 and float(m.min_v_mem) == -1.0
    B, T = 2, 60
    x = np.random.default_rng(11).uniform(-1, 3, (B, T, 4)).astype(f32)
    with torch.no_grad():
        out = net(torch.from_numpy(x.reshape(B * T, 4))).numpy().reshape(B, T, 3)
        h = torch.from_numpy(x) @ ann[0].weight.T + ann[0].bias
    n1, _ = step_loop(h.numpy(), v_min=-1.0)
    with torch.no_grad():
        h2 = torch.from_numpy(n1) @ snn[2].weight.T + snn[2].bias
    n2, _ = step_loop(h2.numpy(), v_min=-1.0)
    np.testing.assert_array_equal(out, n2)
    assert n1.max() > 1 and (n1 > 0).mean() > 0.1 and (n2 > 0).mean() > 0.1


def test_from_model_floor_is_absolute_not_relative_to_the_threshold():
    net = sinabs.from_model(torch.nn.Sequential(torch.nn.ReLU()), spike_threshold=torch.tensor(4.0), batch_size=1)
    layer = net.spiking_model[0]
    assert float(layer.spike_threshold) == 4.0 and float(layer.min_v_mem) == -1.0


# ----------------------------------------------------------------------------- sinabs.nir


def test_to_nir_writes_the_same_lif_whatever_norm_input():
    from sinabs.nir import to_nir

    graphs = []
    for norm in (True, False):
        model = torch.nn.Sequential(torch.nn.Linear(2, 3), sl.LIFSqueeze(tau_mem=4.0, norm_input=norm, batch_size=1))
        graphs.append(to_nir(model, torch.zeros(1, 2)))
    lifs = [next(n for n in g.nodes.values() if type(n).__name__ == "LIF") for g in graphs]
    for lif in lifs:
        np.testing.assert_array_equal(lif.r, 1.0)
        np.testing.assert_array_equal(lif.tau, 4.0)  # in steps: no dt anywhere


def test_from_nir_builds_multispike_iaf_with_floor_minus_threshold_ignoring_r_and_v_reset():
    import nir
    from sinabs.nir import from_nir

    graph = nir.NIRGraph.from_list(nir.IF(r=np.array([2.0]), v_threshold=np.array([0.5]), v_reset=np.array([0.3])))
    module = from_nir(graph, batch_size=1)
    iaf = next(m for m in module.modules() if isinstance(m, sl.IAFSqueeze))
    assert iaf.spike_fn is MultiSpike and isinstance(iaf.reset_fn, MembraneSubtract)
    assert float(iaf.spike_threshold) == 0.5 and float(iaf.min_v_mem) == -0.5
    with torch.no_grad():
        out = iaf(torch.tensor([[1.2], [0.0]]))
    assert out[:, 0].tolist() == [2.0, 0.0]  # r = 2 ignored: 1.2 adds 1.2; two spikes, no v_reset


@pytest.mark.skipif(FIXTURES is None, reason="NIR paper fixtures (shared/fixtures/nir-paper) not present")
def test_nir_paper_lif_trace_is_from_nir_with_tau_in_steps_and_input_scaled_by_dt_over_tau():
    """The paper's Sinabs run (01_lif/lif_sim_sinabs.ipynb): from_nir(lif_norse.nir), tau_mem /= dt,
    input column already x dt/tau = 0.04. Exact decay with that Euler-sized jump fires one input
    pulse earlier (450, 500) than the exact solution (460, 510)."""
    import nir
    from sinabs.nir import from_nir

    data = np.loadtxt(FIXTURES / "01_lif" / "lif_sinabs.csv", delimiter=",")
    model = from_nir(nir.read(str(FIXTURES / "01_lif" / "lif_norse.nir")), batch_size=1)
    lif = next(m for m in model.modules() if isinstance(m, sl.LIFSqueeze))
    assert lif.norm_input is False and lif.spike_fn is MultiSpike
    lif.tau_mem.data /= 1e-4
    lif.record_states = True
    with torch.no_grad():
        out = model(torch.tensor(data[:, :1], dtype=torch.float32))
    out = (out[0] if isinstance(out, tuple) else out).numpy()[:, 0]
    v = lif.recordings["v_mem"].numpy()[0, :, 0]
    assert np.nonzero(out)[0].tolist() == np.nonzero(data[:, 2])[0].tolist() == [450, 500, 710, 760]
    np.testing.assert_array_equal(v, data[:, 1].astype(f32))
    ref_n, ref_v = step_loop(data[None, :, :1], alpha=alphas(lif)[0], threshold=f32(0.1))
    np.testing.assert_array_equal(ref_n[0, :, 0], out)
    np.testing.assert_array_equal(ref_v[0, :, 0], v)
