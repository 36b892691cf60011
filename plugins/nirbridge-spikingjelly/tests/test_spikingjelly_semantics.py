"""SpikingJelly 2.0.0 forward semantics, pinned against a hand-written float32 NumPy step loop.

What the installed sources do on CPU (spikingjelly/_ops/lif/cpu.py and if_/cpu.py, plif/cpu.py
`_forward_impl`, the kernels `activation_based.functional.lif_multi_step` dispatches to;
_ops/lif/reference.py and _ops/reset.py say the same; neuron/base_node.py for the state), for
one step k of a node fed x[k], with r0 = v_reset (hard reset) or 0 (soft reset, v_reset=None):

    LIFNode  decay_input=True:   h = v + (x - (v - r0)) / tau      tau in steps (> 1), forward Euler
             decay_input=False:  h = v - (v - r0) / tau + x
    PLIF     as LIF with 1/tau replaced by q = sigmoid(w), w = -log(init_tau - 1)
    IFNode                       h = v + x
    spike    s = [h >= v_threshold]                               (threshold rounded to float32)
    reset    hard: v = s * v_reset + (1 - s) * h;  soft: v = h - s * v_threshold   (same step)
    CUBALIF  I = c_decay * I + x;  h = v_decay * v + I;  then spike and reset as above

The state v starts at v_reset (hard reset) or 0 (soft), I at 0; it persists across calls until
`functional.reset_net`. Multi-step mode ([T, N, ...] input) and single-step mode (one [N, ...]
per call) compute the same. Every quantity is float32, rounded after each operation, in this
order (tau is rounded to float32 and divided by, not multiplied by its reciprocal).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("spikingjelly")
from spikingjelly.activation_based import functional, layer, neuron  # noqa: E402

f32 = np.float32


def step_loop(x, *, kind="LIF", tau=2.0, decay_input=True, v_threshold=1.0, v_reset=0.0, q=None,
              c_decay=None, v_decay=None):
    """SpikingJelly's step on x shaped (time, *neurons): returns (spikes, v after each step)."""
    x = np.asarray(x, f32)
    r0, th = f32(0.0 if v_reset is None else v_reset), f32(v_threshold)
    v = np.full(x.shape[1:], r0, f32)
    i = np.zeros(x.shape[1:], f32)
    out_s, out_v = [], []
    for xk in x:
        if kind == "IF":
            h = v + xk
        elif kind == "CUBALIF":
            i = f32(c_decay) * i + xk
            h = f32(v_decay) * v + i
        elif q is not None:  # PLIF: multiply by sigmoid(w)
            h = v + (xk - (v - r0)) * f32(q) if decay_input else v - (v - r0) * f32(q) + xk
        else:
            h = v + (xk - (v - r0)) / f32(tau) if decay_input else v - (v - r0) / f32(tau) + xk
        s = (h >= th).astype(f32)
        v = h - s * th if v_reset is None else s * r0 + (f32(1) - s) * h
        out_s.append(s)
        out_v.append(v)
    return np.stack(out_s), np.stack(out_v)


def run(node, x):
    """(spikes, v after each step) of a node run in multi-step mode on x shaped (time, ...)."""
    functional.reset_net(node)
    node.step_mode = "m"
    node.store_v_seq = True
    with torch.no_grad():
        out = node(torch.from_numpy(np.asarray(x, f32)))
    return out.numpy(), node.v_seq.numpy()


def assert_same(out, v, ref_s, ref_v, threshold=1.0):
    """Spike for spike; potentials to float32 rounding."""
    np.testing.assert_array_equal(out, ref_s)
    np.testing.assert_allclose(v, ref_v, rtol=1e-6, atol=1e-6 * max(1.0, abs(threshold)))


def drive(seed=0, shape=(150, 24), lo=-0.5, hi=2.5):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(f32)


# ----------------------------------------------------------------------------- LIF


@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("v_reset", [0.0, -0.3, None])
@pytest.mark.parametrize("tau", [2.0, 3.0, 7.3])
def test_lif_matches_step_loop(decay_input, v_reset, tau):
    x = drive(1, hi=3.5 if decay_input else 1.2)
    out, v = run(neuron.LIFNode(tau=tau, decay_input=decay_input, v_reset=v_reset), x)
    assert_same(out, v, *step_loop(x, tau=tau, decay_input=decay_input, v_reset=v_reset))
    assert 0.05 < out.mean() < 0.8


def test_lif_tau_is_in_steps_and_forward_euler_by_hand():
    # tau 4, decay_input=False: one input of 1, then v = 1, 3/4, 9/16 (Euler 1 - 1/tau, not e^-1/4)
    _, v = run(neuron.LIFNode(tau=4.0, decay_input=False, v_threshold=10.0), [[1.0], [0.0], [0.0]])
    assert v[:, 0].tolist() == [1.0, 0.75, 0.5625]
    # decay_input=True divides the input by tau too: 1/4, then 3/16
    _, v = run(neuron.LIFNode(tau=4.0, decay_input=True, v_threshold=10.0), [[1.0], [0.0]])
    assert v[:, 0].tolist() == [0.25, 0.1875]


def test_lif_divides_by_float32_tau_rather_than_multiplying_by_its_reciprocal():
    x = drive(2, hi=3.0)
    out, v = run(neuron.LIFNode(tau=3.0), x)
    t = f32(3.0)
    v_mul = np.zeros(x.shape[1], f32)
    mul = []
    for xk in x:  # the same equation with * (1/tau)
        h = v_mul + (xk - v_mul) * f32(1 / 3.0)
        s = (h >= 1).astype(f32)
        v_mul = (1 - s) * h
        mul.append(v_mul)
    np.testing.assert_array_equal(v, step_loop(x, tau=float(t))[1])
    assert not np.array_equal(v, np.stack(mul))


def test_tau_must_be_a_float_above_one():
    for bad in (1.0, 0.5, 2):
        with pytest.raises(AssertionError):
            neuron.LIFNode(tau=bad)
    with pytest.raises(AssertionError):
        neuron.LIFNode(v_threshold=1)  # thresholds and resets are Python floats too


# ----------------------------------------------------------------------------- reset and state


def test_hard_reset_sets_v_reset_and_the_state_starts_there():
    # v_reset -0.2, no input: v starts at -0.2 and leaks towards -0.2, so it stays
    _, v = run(neuron.LIFNode(tau=2.0, v_reset=-0.2), np.zeros((3, 1)))
    assert v[:, 0].tolist() == [f32(-0.2)] * 3
    # IF, v_reset -0.2: -0.2 + 0.7 = 0.5; + 0.6 = 1.1 -> spike -> -0.2
    out, v = run(neuron.IFNode(v_reset=-0.2), [[0.7], [0.6], [0.0]])
    assert out[:, 0].tolist() == [0, 1, 0]
    np.testing.assert_allclose(v[:, 0], [0.5, -0.2, -0.2], atol=1e-7)


def test_soft_reset_subtracts_the_threshold_and_starts_at_zero():
    # IF soft: 0.7; 1.9 -> spike -> 0.9; 0.9 + 1.5 = 2.4 -> spike -> 1.4 (one spike per step)
    out, v = run(neuron.IFNode(v_reset=None), [[0.7], [1.2], [1.5]])
    assert out[:, 0].tolist() == [0, 1, 1]
    np.testing.assert_allclose(v[:, 0], [0.7, 0.9, 1.4], atol=1e-6)
    # LIF soft: leaks towards 0, not towards a reset value
    _, v = run(neuron.LIFNode(tau=2.0, decay_input=False, v_reset=None, v_threshold=10.0), [[1.0], [0.0]])
    assert v[:, 0].tolist() == [1.0, 0.5]


def test_threshold_is_ge_after_rounding_it_to_float32():
    out, _ = run(neuron.IFNode(v_threshold=0.75), [[0.75], [0.0]])
    assert out[:, 0].tolist() == [1, 0]
    below = np.nextafter(f32(0.75), f32(0))
    out, _ = run(neuron.IFNode(v_threshold=0.75), [[below]])
    assert out[0, 0] == 0
    # float32(0.7) < 0.7: a potential of float32(0.7) fires on a threshold given as 0.7
    assert float(f32(0.7)) < 0.7
    out, _ = run(neuron.IFNode(v_threshold=0.7), [[f32(0.7)]])
    assert out[0, 0] == 1


def test_fire_and_reset_happen_in_the_charging_step_and_v_is_recorded_after_reset():
    node = neuron.LIFNode(tau=2.0, decay_input=False, step_mode="s")
    with torch.no_grad():
        s = node(torch.tensor([1.5]))
    assert s.item() == 1 and node.v.item() == 0.0  # charged 1.5, fired, reset, all in one call


@pytest.mark.parametrize("v_reset", [0.0, None])
def test_if_matches_step_loop(v_reset):
    x = drive(3, hi=1.0)
    out, v = run(neuron.IFNode(v_reset=v_reset, v_threshold=1.5), x)
    assert_same(out, v, *step_loop(x, kind="IF", v_reset=v_reset, v_threshold=1.5), 1.5)
    assert 0.05 < out.mean() < 0.8


# ----------------------------------------------------------------------------- PLIF, CUBA-LIF


@pytest.mark.parametrize("init_tau", [2.0, 3.0, 5.5])
@pytest.mark.parametrize("decay_input", [True, False])
def test_parametric_lif_steps_with_sigmoid_of_w(init_tau, decay_input):
    node = neuron.ParametricLIFNode(init_tau=init_tau, decay_input=decay_input)
    q = f32(torch.sigmoid(node.w.detach()).numpy())
    assert node.w.item() == pytest.approx(-math.log(init_tau - 1), rel=1e-6)
    np.testing.assert_array_max_ulp(q, f32(1 / init_tau), maxulp=2)
    x = drive(4, hi=3.5 if decay_input else 1.2)
    out, v = run(node, x)
    assert_same(out, v, *step_loop(x, q=q, decay_input=decay_input))
    assert 0.05 < out.mean() < 0.8


def test_cuba_lif_matches_step_loop():
    x = drive(5, lo=-0.3, hi=0.6)
    node = neuron.CUBALIFNode(c_decay=0.5, v_decay=0.75)
    assert node.v_threshold == 0.5
    out, v = run(node, x)
    assert_same(out, v, *step_loop(x, kind="CUBALIF", c_decay=0.5, v_decay=0.75, v_threshold=0.5), 0.5)
    assert 0.05 < out.mean() < 0.8


# ----------------------------------------------------------------------------- step modes


def test_single_and_multi_step_are_the_same_and_state_persists_until_reset_net():
    x = drive(6, hi=3.0)
    node = neuron.LIFNode(tau=3.0, step_mode="s")
    with torch.no_grad():
        single = np.stack([node(torch.from_numpy(xk)).numpy() for xk in x])
    multi, _ = run(node, x)
    np.testing.assert_array_equal(single, multi)
    node.step_mode = "m"
    functional.reset_net(node)
    with torch.no_grad():
        first = node(torch.from_numpy(x[:70])).numpy()
        second = node(torch.from_numpy(x[70:])).numpy()  # continues from the state of the first call
    np.testing.assert_array_equal(np.concatenate([first, second]), multi)
    functional.reset_net(node)
    with torch.no_grad():
        fresh = node(torch.from_numpy(x[70:])).numpy()
    np.testing.assert_array_equal(fresh, step_loop(x[70:], tau=3.0)[0])
    assert not np.array_equal(fresh, second)


def test_multi_step_stateless_wrappers_act_on_each_step():
    torch.manual_seed(0)
    T, B = 12, 2
    net = torch.nn.Sequential(
        layer.Conv2d(2, 4, 3, padding=1), neuron.IFNode(), layer.MaxPool2d(2), layer.AvgPool2d(2),
        layer.Flatten(), layer.Linear(16, 5), neuron.LIFNode(tau=2.0),
    )
    with torch.no_grad():
        net[0].weight.abs_().mul_(2)
        net[5].weight.abs_().mul_(3)
    functional.set_step_mode(net, "m")
    x = (torch.rand(T, B, 2, 8, 8) < 0.5).float()
    with torch.no_grad():
        out = net(x)
        functional.reset_net(net)
        functional.set_step_mode(net, "s")
        stepped = torch.stack([net(xk) for xk in x])
    np.testing.assert_array_equal(out.numpy(), stepped.numpy())
    # the same with plain torch layers applied per step and the NumPy loops for the neurons
    with torch.no_grad():
        h = torch.stack([torch.nn.functional.conv2d(xk, net[0].weight, net[0].bias, padding=1) for xk in x])
        s1, _ = step_loop(h.numpy())
        p = torch.nn.functional.avg_pool2d(torch.nn.functional.max_pool2d(torch.from_numpy(s1).flatten(0, 1), 2), 2)
        h2 = torch.nn.functional.linear(p.flatten(1), net[5].weight, net[5].bias).unflatten(0, (T, B))
    s2, _ = step_loop(h2.numpy(), tau=2.0)
    np.testing.assert_array_equal(out.numpy(), s2)
    assert s1.mean() > 0.05 and s2.mean() > 0.05


# ----------------------------------------------------------------------------- nir_exchange


def test_export_writes_lif_as_euler_current_with_v_leak_equal_to_v_reset():
    from spikingjelly.activation_based.nir_exchange import export_to_nir

    for decay_input, r in ((True, 1.0), (False, 4.0)):
        net = torch.nn.Sequential(layer.Linear(2, 3), neuron.LIFNode(tau=4.0, decay_input=decay_input, v_reset=-0.1))
        graph = export_to_nir(net, torch.zeros(1, 2), dt=1e-3)
        lif = next(n for n in graph.nodes.values() if type(n).__name__ == "LIF")
        np.testing.assert_allclose(lif.tau, 4e-3)  # tau * dt
        np.testing.assert_array_equal(lif.r, r)
        np.testing.assert_array_equal(lif.v_leak, -0.1)
        np.testing.assert_array_equal(lif.v_reset, -0.1)


def test_export_refuses_soft_reset():
    from spikingjelly.activation_based.nir_exchange import export_to_nir

    net = torch.nn.Sequential(layer.Linear(2, 3), neuron.IFNode(v_reset=None))
    with pytest.raises(NotImplementedError, match="soft reset"):
        export_to_nir(net, torch.zeros(1, 2))
