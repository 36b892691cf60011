"""Rockpool 3.1.0 forward semantics, pinned against hand-written float32 NumPy step loops.

What the installed sources do (rockpool/nn/modules/torch/lif_torch.py `LIFTorch.forward`,
`StepPWL`; lif_neuron_torch.py; exp_syn_torch.py; nir.py), for one step k of a layer fed x[k]:

    LIFNeuronTorch   v = alpha v;  v = v + x;  v = v + bias
    LIFTorch         i = i + x;  i = i + w_rec s[k-1];  v = alpha v;  i = beta i;  v = v + sum_syn i + bias
    ExpSynTorch      i = i + x;  i = beta i                                 output i
    spikes           n = (v >= theta) floor(v / theta), capped at max_spikes_per_dt (2**16)
    reset            v = v - n theta, in the same step
    alpha = exp(-dt/tau_mem), beta = exp(-dt/tau_syn) in torch float32; dt a module parameter
    (1 ms), taus in seconds; states start at 0

which is the `rockpool` preset: dt 1e-3, exact, impulse, ge, multi (max 65536), subtract,
immediate, current_first, initial_v zero. The loops take alpha and beta from the module so that
a last-bit difference of torch's exp cannot hide a wrong equation or fake one; that difference
is pinned on its own.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from rockpool.nn.modules import ExpSynTorch, LIFNeuronTorch, LIFTorch

import nirbridge
from nirbridge import Policy

f32 = np.float32


def run(module, x: np.ndarray) -> np.ndarray:
    """Rockpool's own run of x (batch, time, n) from zero state, through the torch API."""
    module.reset_state()
    with torch.no_grad():
        return torch.nn.Module.__call__(module, torch.from_numpy(x)).numpy()


def spikes_of(v, theta, cap=2**16):
    n = np.where(v >= theta, np.floor(v / theta), f32(0)).astype(f32)
    return np.minimum(n, f32(cap))


def lif_loop(x, alpha, theta, bias=0.0, cap=2**16):
    v = np.zeros((x.shape[0], x.shape[2]), f32)
    out = []
    for k in range(x.shape[1]):
        v = alpha * v
        v = v + x[:, k]
        v = v + f32(bias)
        n = spikes_of(v, theta, cap)
        v = v - n * theta
        out.append(n)
    return np.stack(out, 1)


def lif_torch_loop(x, alpha, beta, theta, w_rec=None, bias=0.0, syn=1):
    b, t, _ = x.shape
    n_out = x.shape[2] // syn
    xs = x.reshape(b, t, n_out, syn)
    v, i, s = np.zeros((b, n_out), f32), np.zeros((b, n_out, syn), f32), np.zeros((b, n_out), f32)
    out = []
    for k in range(t):
        i = i + xs[:, k]
        if w_rec is not None:
            i = i + (s @ w_rec).reshape(b, n_out, syn)
        v = alpha * v
        i = beta * i
        v = v + i.sum(2) + f32(bias)
        s = spikes_of(v, theta)
        v = v - s * theta
        out.append(s)
    return np.stack(out, 1)


def drive(shape, seed=0, scale=0.6):
    return (np.random.default_rng(seed).random(shape) * scale).astype(f32)


def test_defaults_are_the_preset():
    lif = LIFTorch(4)
    p = Policy.preset("rockpool")
    assert lif.dt == p.dt == 1e-3 and float(lif.max_spikes_per_dt) == p.max_spikes == 2**16
    assert (p.integration, p.input, p.threshold, p.spikes, p.reset, p.reset_timing, p.current_order, p.initial_v) == (
        "exact", "impulse", "ge", "multi", "subtract", "immediate", "current_first", "zero")
    assert float(lif.tau_mem.reshape(-1)[0]) == pytest.approx(0.02) and float(LIFNeuronTorch(2).dt) == 1e-3


def test_lif_neuron_step():
    m = LIFNeuronTorch(5, tau_mem=torch.linspace(0.005, 0.05, 5), threshold=torch.linspace(0.5, 1.5, 5), bias=0.01)
    x = drive((2, 30, 5), scale=2.0)
    alpha = np.exp(-1e-3 / m.tau_mem.detach().numpy().astype(f32)).astype(f32)
    alpha_torch = torch.exp(-m.dt / m.tau_mem).detach().numpy()
    # torch's float32 exp is within one ulp of the correctly rounded decay
    assert np.all(np.abs(alpha_torch.view(np.int32) - alpha.view(np.int32)) <= 1)
    want = lif_loop(x, alpha_torch, m.threshold.detach().numpy(), bias=0.01)
    np.testing.assert_array_equal(run(m, x), want)
    assert want.max() >= 2  # several spikes in one step happen


def test_ge_threshold_and_subtract_reset():
    m = LIFNeuronTorch(1, tau_mem=1e9, threshold=0.5)  # alpha 1 in float32: an integrator
    x = np.array([[[0.25], [0.25], [0.0], [1.75], [0.0]]], f32)
    # v: 0.25, 0.5 -> fires (>=), 0; 0; 1.75 -> 3 spikes, 0.25; 0.25
    np.testing.assert_array_equal(run(m, x)[0, :, 0], [0, 1, 0, 3, 0])


def test_max_spikes_per_dt_caps_the_count():
    x = np.array([[[1e6]]], f32)
    assert run(LIFNeuronTorch(1, threshold=1.0), x)[0, 0, 0] == 2**16
    assert run(LIFNeuronTorch(1, threshold=1.0, max_spikes_per_dt=3), x)[0, 0, 0] == 3


def test_dt_is_a_module_parameter_and_decay_is_exact():
    x = np.zeros((1, 2, 1), f32)
    x[0, 0, 0] = 0.5
    for dt in (1e-3, 1e-4):
        m = LIFTorch(1, tau_mem=0.01, tau_syn=0.005, dt=dt, threshold=10.0)
        m.reset_state()
        with torch.no_grad():
            _, _, rec = m.evolve(torch.from_numpy(x), record=True)
        beta, alpha = math.exp(-dt / 0.005), math.exp(-dt / 0.01)
        v = rec["vmem"][0, :, 0].numpy()
        assert v[0] == pytest.approx(beta * 0.5, rel=1e-6)  # the input is decayed in its own step
        assert v[1] == pytest.approx(alpha * beta * 0.5 + beta**2 * 0.5, rel=1e-6)


@pytest.mark.parametrize("rec", [False, True])
def test_lif_torch_step(rec):
    torch.manual_seed(0)
    m = LIFTorch(6, tau_mem=torch.linspace(0.005, 0.04, 6), tau_syn=0.004, threshold=0.8, bias=0.02, has_rec=rec,
                 **({"w_rec": 0.3 * torch.randn(6, 6)} if rec else {}))
    x = drive((2, 30, 6), scale=0.8)
    want = lif_torch_loop(x, m.alpha.detach().numpy(), m.beta.detach().numpy().reshape(-1, 1), f32(0.8),
                          w_rec=m.w_rec.detach().numpy() if rec else None, bias=0.02)
    np.testing.assert_array_equal(run(m, x), want)
    assert want.sum() > 0


def test_lif_torch_several_synapses_per_neuron():
    tau_syn = torch.tensor([[0.002, 0.01, 0.03]]).expand(4, 3).contiguous()
    m = LIFTorch((12, 4), tau_mem=0.02, tau_syn=tau_syn, threshold=0.7)
    x = drive((2, 25, 12))
    want = lif_torch_loop(x, m.alpha.detach().numpy(), m.beta.detach().numpy(), f32(0.7), syn=3)
    np.testing.assert_array_equal(run(m, x), want)
    assert want.sum() > 0


def test_exp_syn_step():
    m = ExpSynTorch(3, tau=torch.tensor([0.002, 0.01, 0.05]))
    x = drive((2, 20, 3))
    beta = torch.exp(-m.dt / m.tau).detach().numpy()
    i, want = np.zeros((2, 3), f32), []
    for k in range(20):
        i = beta * (i + x[:, k])
        want.append(i)
    np.testing.assert_array_equal(run(m, x), np.stack(want, 1))


def test_the_graph_under_the_preset_is_rockpools_run():
    """The preset's reference, on the exported graph, is the hand loop's (and Rockpool's) spikes."""
    m = LIFNeuronTorch(5, tau_mem=0.01, threshold=0.9)
    x = drive((2, 30, 5), scale=0.7)
    graph = nirbridge.convert(m, to="nir", sample=torch.from_numpy(x))
    assert Policy.from_metadata(graph.metadata) == Policy.preset("rockpool")
    res = nirbridge.simulate(graph, x.transpose(1, 0, 2))
    np.testing.assert_array_equal(res.output.transpose(1, 0, 2), run(m, x))


def test_rockpools_nir_export_writes_r_and_its_import_guesses_dt():
    """Rockpool's to_nir writes r = tau exp(-dt/tau)/dt and v_leak 0 (the bias is dropped);
    from_nir takes dt = min(tau/(1 + r)), which is not the dt the file was written at."""
    pytest.importorskip("nirtorch")
    from rockpool.nn.modules.torch.nir import from_nir, to_nir

    dt, tau_mem, tau_syn = 1e-3, 0.02, 0.005
    lif = LIFTorch(3, tau_mem=tau_mem, tau_syn=tau_syn, bias=0.1, dt=dt)
    graph = to_nir(lif, torch.zeros(1, 4, 3))
    node = next(n for n in graph.nodes.values() if type(n).__name__ == "CubaLIF")
    np.testing.assert_allclose(node.r, tau_mem * math.exp(-dt / tau_mem) / dt, rtol=1e-6)
    assert np.all(node.v_leak == 0) and np.all(node.w_in == 1)
    back = from_nir(graph)
    imported = next(m for m in torch.nn.Module.modules(back) if isinstance(m, LIFTorch))
    guessed = tau_mem / (1 + tau_mem * math.exp(-dt / tau_mem) / dt)
    assert imported.dt == pytest.approx(guessed, rel=1e-6) and abs(imported.dt - dt) > 1e-6
