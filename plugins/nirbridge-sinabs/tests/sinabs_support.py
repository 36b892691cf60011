"""Sinabs models as users write them (sized small), runs that record every spiking layer, and
weights scaled so that every spiking layer fires on a spike input."""

from __future__ import annotations

import numpy as np
import sinabs
import sinabs.layers as sl
import torch
from sinabs.activation import MaxSpike, MembraneReset, SingleSpike
from torch import nn

from nirbridge_torch.testing import tune_firing

B, T = 2, 40
SPIKING = (sl.IAF, sl.LIF)  # ExpLeak is a LIF without spike_fn


def _cnn(pool):
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), sl.IAFSqueeze(batch_size=B), pool(2),
                         nn.Conv2d(4, 6, 3, padding=1), sl.IAFSqueeze(batch_size=B), pool(2),
                         nn.Flatten(), nn.Linear(24, 8), sl.IAFSqueeze(batch_size=B))


def _mlp(neuron, **kw):
    return nn.Sequential(nn.Linear(12, 16), neuron(**kw), nn.Linear(16, 6), neuron(**kw))


def _per_neuron():
    return nn.Sequential(nn.Linear(12, 16), sl.LIFSqueeze(tau_mem=torch.linspace(3, 12, 16), spike_threshold=torch.linspace(0.5, 1.5, 16), batch_size=B),
                         nn.Linear(16, 6), sl.IAFSqueeze(spike_threshold=torch.linspace(0.8, 1.2, 6), min_v_mem=-torch.linspace(0.8, 1.2, 6), batch_size=B))


#: name -> (model factory, features of one step)
MODELS = {
    "IAFSqueeze MLP (defaults: MultiSpike, subtract)": (lambda: _mlp(sl.IAFSqueeze, batch_size=B), (12,)),
    "IAF MLP, (batch, time, ...) input": (lambda: _mlp(sl.IAF), (12,)),
    "LIFSqueeze MLP (default norm_input=True)": (lambda: _mlp(sl.LIFSqueeze, tau_mem=5.0, batch_size=B), (12,)),
    "LIF MLP, norm_input=False, SingleSpike": (lambda: _mlp(sl.LIF, tau_mem=8.0, norm_input=False, spike_fn=SingleSpike), (12,)),
    "LIFSqueeze with tau_syn": (lambda: _mlp(sl.LIFSqueeze, tau_mem=8.0, tau_syn=3.0, batch_size=B), (12,)),
    "LIFSqueeze train_alphas, MaxSpike(2)": (lambda: _mlp(sl.LIFSqueeze, tau_mem=6.0, train_alphas=True, spike_fn=MaxSpike(2), batch_size=B), (12,)),
    "IAFSqueeze MembraneReset(0), SingleSpike, min_v_mem": (
        lambda: _mlp(sl.IAFSqueeze, reset_fn=MembraneReset(0.0), spike_fn=SingleSpike, min_v_mem=-0.5, batch_size=B), (12,)),
    "per-neuron tau, thresholds and floors (-threshold)": (_per_neuron, (12,)),
    "IAFSqueeze -> ExpLeakSqueeze readout": (
        lambda: nn.Sequential(nn.Linear(12, 16), sl.IAFSqueeze(batch_size=B), nn.Linear(16, 6), sl.ExpLeakSqueeze(tau_mem=4.0, batch_size=B)), (12,)),
    "CNN: Conv-IAFSqueeze-SumPool2d x2, Flatten, Linear-IAFSqueeze": (lambda: _cnn(sl.SumPool2d), (2, 8, 8)),
    "CNN with nn.AvgPool2d": (lambda: _cnn(nn.AvgPool2d), (2, 8, 8)),
    "Conv1d-IAFSqueeze, Flatten, Linear-IAFSqueeze": (lambda: nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), sl.IAFSqueeze(batch_size=B), nn.Flatten(),
                                                                           nn.Linear(32, 6), sl.IAFSqueeze(batch_size=B)), (2, 8)),
    "sinabs.from_model(Conv-ReLU-AvgPool x2, Flatten, Linear-ReLU)": (lambda: sinabs.from_model(nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(24, 8), nn.ReLU()), batch_size=B), (2, 8, 8)),
    "sinabs.from_model(Linear-ReLU x2)": (lambda: sinabs.from_model(nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 6), nn.ReLU()), batch_size=B),
                                          (12,)),
}


def squeezed(model: nn.Module) -> bool:
    return any(isinstance(m, sl.SqueezeMixin) for m in model.modules())


def sample(model: nn.Module, x: np.ndarray) -> torch.Tensor:
    """x (time, batch, ...) as the model takes it: (batch*time, ...) or (batch, time, ...)."""
    xt = torch.from_numpy(x).transpose(0, 1)
    return xt.reshape(-1, *xt.shape[2:]) if squeezed(model) else xt


def spiking_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Graph node name -> spiking Sinabs layer."""
    return {name.replace(".", "_"): m for name, m in model.named_modules() if isinstance(m, SPIKING) and m.spike_fn is not None}


def run_native(model: nn.Module, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(output, spike counts of every spiking layer), all (time, batch, ...), from zero state."""
    from nirbridge_sinabs.export import reset_states

    seen: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, n=n: seen.__setitem__(n, out.detach().clone()))
             for n, m in spiking_layers(model).items()]
    reset_states(model)
    try:
        with torch.no_grad():
            out = model(sample(model, x))
    finally:
        for h in hooks:
            h.remove()

    def tbn(a: torch.Tensor) -> np.ndarray:
        return a.reshape(x.shape[1], x.shape[0], *a.shape[1 + (not squeezed(model)):]).transpose(0, 1).numpy()

    return tbn(out), {n: tbn(s) for n, s in seen.items()}


def spike_input(features, seed: int = 0, rate: float = 0.3) -> np.ndarray:
    return (np.random.default_rng(seed).random((T, B, *features)) < rate).astype(np.float32)


def tune(model: nn.Module, x: np.ndarray, lo: float = 0.1, hi: float = 0.6) -> nn.Module:
    """Weights |w| with a quarter of them negated and no biases, then each weight layer scaled
    (in order) until the spiking layer after it fires at a rate in (lo, hi)."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    tune_firing(layers, lambda: [float((s > 0).mean()) for s in run_native(model, x)[1].values()], lo, hi)
    return model


def make(name: str, seed: int = 0) -> tuple[nn.Module, np.ndarray]:
    """Model `name` with tuned weights, and its spike input (time, batch, ...)."""
    factory, features = MODELS[name]
    torch.manual_seed(seed)
    model = factory()
    x = spike_input(features, seed)
    return tune(model, x), x
