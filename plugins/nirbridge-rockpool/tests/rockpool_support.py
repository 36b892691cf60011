"""Rockpool models as users write them (sized small), runs that record every spiking layer, and
weights scaled so that every spiking layer fires on a spike input."""

from __future__ import annotations

import numpy as np
import torch
from rockpool.nn.combinators import Residual, Sequential
from rockpool.nn.modules import ExpSynTorch, LIFNeuronTorch, LIFTorch, LinearTorch

from nirbridge_torch.testing import tune_firing

B, T = 2, 40
SPIKING = (LIFTorch, LIFNeuronTorch)


def _mlp(neuron, **kw):
    return Sequential(LinearTorch((12, 16)), neuron(16, **kw), LinearTorch((16, 6)), neuron(6, **kw))


def _multi_syn():
    tau_syn = torch.tensor([[0.004, 0.015]]).expand(16, 2).contiguous()
    return Sequential(LinearTorch((12, 32)), LIFTorch((32, 16), tau_mem=0.02, tau_syn=tau_syn), LinearTorch((16, 6)), LIFTorch(6, tau_mem=0.03))


#: name -> (model factory, input features)
MODELS = {
    "LIFTorch MLP (defaults: dt 1 ms, tau 20 ms)": (lambda: _mlp(LIFTorch), 12),
    "LIFTorch per-neuron taus and thresholds": (lambda: Sequential(
        LinearTorch((12, 16)), LIFTorch(16, tau_mem=torch.linspace(0.005, 0.05, 16), tau_syn=torch.linspace(0.002, 0.01, 16),
                                         threshold=torch.linspace(0.6, 1.4, 16)),
        LinearTorch((16, 6)), LIFTorch(6, tau_mem=0.01, tau_syn=0.004)), 12),
    "LIFTorch recurrent (w_rec)": (lambda: Sequential(LinearTorch((12, 16)), LIFTorch(16, tau_mem=0.02, tau_syn=0.01, has_rec=True,
                                                                                           w_rec=0.03 * torch.randn(16, 16)),
                                                      LinearTorch((16, 6)), LIFTorch(6)), 12),
    "LIFTorch two synapses per neuron (tau_syn 4 and 15 ms)": (_multi_syn, 12),
    "LIFTorch leak_mode decays, max_spikes_per_dt 2, dt 0.5 ms": (lambda: Sequential(
        LinearTorch((12, 16)), LIFTorch(16, leak_mode="decays", alpha=0.9, beta=0.7, max_spikes_per_dt=2, dt=5e-4),
        LinearTorch((16, 6)), LIFTorch(6, leak_mode="decays", alpha=0.8, beta=0.5, max_spikes_per_dt=2, dt=5e-4)), 12),
    "LIFNeuronTorch MLP": (lambda: _mlp(LIFNeuronTorch, tau_mem=0.01), 12),
    "LinearTorch(has_bias) -> LIFTorch -> ExpSynTorch readout": (lambda: Sequential(
        LinearTorch((12, 16), has_bias=True), LIFTorch(16), LinearTorch((16, 6)), ExpSynTorch(6, tau=0.02)), 12),
    "Residual(LinearTorch, LIFTorch) block": (lambda: Sequential(
        LinearTorch((12, 16)), LIFTorch(16), Residual(LinearTorch((16, 16)), LIFTorch(16, tau_mem=0.01)), LinearTorch((16, 6)), LIFTorch(6)), 12),
}


def sample(x: np.ndarray) -> torch.Tensor:
    """x (time, batch, features) as Rockpool takes it: (batch, time, features)."""
    return torch.from_numpy(x).transpose(0, 1)


def spiking_layers(model) -> dict[str, torch.nn.Module]:
    """Graph node name of the spikes -> spiking Rockpool layer (a LIFTorch with w_rec or several
    synapses is a subgraph whose LIF node is `<name>.lif`)."""
    out = {}
    for name, m in torch.nn.Module.named_modules(model):
        if isinstance(m, SPIKING):
            name = name.replace(".", "_")
            nested = isinstance(m, LIFTorch) and (m._has_rec or m.n_synapses > 1)
            out[f"{name}.lif" if nested else name] = m
    return out


def run_native(model, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(output, spike counts of every spiking layer), all (time, batch, ...), from zero state."""
    from nirbridge_rockpool.backend import simulate_native

    seen: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, n=n: seen.__setitem__(n, out.detach().clone()))
             for n, m in spiking_layers(model).items()]
    try:
        out = simulate_native(model, x).output
    finally:
        for h in hooks:
            h.remove()
    return out, {n: s.transpose(0, 1).numpy() for n, s in seen.items()}


def spike_input(features: int, seed: int = 0, rate: float = 0.3) -> np.ndarray:
    return (np.random.default_rng(seed).random((T, B, features)) < rate).astype(np.float32)


def tune(model, x: np.ndarray, lo: float = 0.1, hi: float = 0.6):
    """Weights |w| with a quarter of them negated and no biases, then each weight layer scaled
    (in order) until the spiking layer after it fires at a rate in (lo, hi)."""
    layers = [m for m in torch.nn.Module.modules(model) if isinstance(m, LinearTorch)]
    tune_firing(layers, lambda: [float((s > 0).mean()) for s in run_native(model, x)[1].values()], lo, hi, zero_bias=False)
    return model


def make(name: str, seed: int = 0):
    """Model `name` with tuned weights, and its spike input (time, batch, features)."""
    factory, features = MODELS[name]
    torch.manual_seed(seed)
    model = factory()
    x = spike_input(features, seed)
    return tune(model, x), x
