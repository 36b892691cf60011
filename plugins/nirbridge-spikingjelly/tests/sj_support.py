"""SpikingJelly models as users write them (sized small), in single- and multi-step mode; runs
that record every spiking layer; weights scaled so that every spiking layer fires."""

from __future__ import annotations

import numpy as np
import torch
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

from nirbridge_torch.testing import tune_firing

B, T = 2, 40


def _mlp(node, **kw):
    return nn.Sequential(layer.Linear(12, 16), node(**kw), layer.Linear(16, 6), node(**kw))


def _cnn(pool):
    return nn.Sequential(layer.Conv2d(2, 4, 3, padding=1), neuron.IFNode(), pool(2),
                         layer.Conv2d(4, 6, 3, padding=1), neuron.LIFNode(tau=2.0), pool(2),
                         layer.Flatten(), layer.Linear(24, 8), neuron.LIFNode(tau=2.0))


#: name -> (model factory, features of one step)
MODELS = {
    "IFNode MLP (hard reset to 0)": (lambda: _mlp(neuron.IFNode), (12,)),
    "IFNode MLP, soft reset (v_reset=None)": (lambda: _mlp(neuron.IFNode, v_reset=None), (12,)),
    "LIFNode MLP (defaults: tau 2, decay_input)": (lambda: _mlp(neuron.LIFNode), (12,)),
    "LIFNode(tau 3, decay_input=False) MLP": (lambda: _mlp(neuron.LIFNode, tau=3.0, decay_input=False), (12,)),
    "LIFNode(tau 2, v_reset=-0.2) MLP (starts at v_reset)": (lambda: _mlp(neuron.LIFNode, tau=2.0, v_reset=-0.2), (12,)),
    "LIFNode soft reset, v_threshold 0.7": (lambda: _mlp(neuron.LIFNode, tau=4.0, v_reset=None, v_threshold=0.7), (12,)),
    "ParametricLIFNode MLP": (lambda: _mlp(neuron.ParametricLIFNode, init_tau=3.0), (12,)),
    "CUBALIFNode MLP": (lambda: _mlp(neuron.CUBALIFNode), (12,)),
    "CNN: Conv-IF-AvgPool, Conv-LIF-AvgPool, Flatten, Linear-LIF": (lambda: _cnn(layer.AvgPool2d), (2, 8, 8)),
    "CNN with MaxPool2d after spikes": (lambda: _cnn(layer.MaxPool2d), (2, 8, 8)),
    "Conv1d-IF, Flatten, Linear-LIF": (lambda: nn.Sequential(layer.Conv1d(2, 4, 3, padding=1), neuron.IFNode(), layer.Flatten(), layer.Linear(32, 6),
                                                           neuron.LIFNode()), (2, 8)),
    "LIFNode MLP with Dropout (eval)": (lambda: nn.Sequential(layer.Linear(12, 16), neuron.LIFNode(), layer.Dropout(0.5), layer.Linear(16, 6),
                                                              neuron.LIFNode()).eval(), (12,)),
}
NODES = (neuron.IFNode, neuron.LIFNode, neuron.ParametricLIFNode, neuron.CUBALIFNode)


def multi(model: nn.Module) -> bool:
    return any(getattr(m, "step_mode", "s") == "m" for m in model.modules())


def sample(model: nn.Module, x: np.ndarray) -> torch.Tensor:
    """What one call of the model takes: the sequence (multi-step) or its first step."""
    return torch.from_numpy(x) if multi(model) else torch.from_numpy(x[0])


def spiking_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {name.replace(".", "_"): m for name, m in model.named_modules() if isinstance(m, NODES)}


def run_native(model: nn.Module, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(output, spikes of every spiking layer), all (time, batch, ...), from the initial state."""
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, n=n: seen.setdefault(n, []).append(out.detach().clone()))
             for n, m in spiking_layers(model).items()]
    functional.reset_net(model)
    xt = torch.from_numpy(x)
    try:
        with torch.no_grad():
            out = model(xt) if multi(model) else torch.stack([model(step) for step in xt])
    finally:
        for h in hooks:
            h.remove()
    return out.numpy(), {n: torch.cat(v).numpy() if multi(model) else torch.stack(v).numpy() for n, v in seen.items()}


def tune(model: nn.Module, x: np.ndarray, lo: float = 0.1, hi: float = 0.6) -> nn.Module:
    """Weights |w| with a quarter of them negated and no biases, then each weight layer scaled
    (in order) until the spiking layer after it fires at a rate in (lo, hi)."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    tune_firing(layers, lambda: [float(s.mean()) for s in run_native(model, x)[1].values()], lo, hi)
    return model


def make(name: str, step_mode: str, seed: int = 0) -> tuple[nn.Module, np.ndarray]:
    """Model `name` in `step_mode` with tuned weights, and its spike input (time, batch, ...)."""
    factory, features = MODELS[name]
    torch.manual_seed(seed)
    model = factory()
    functional.set_step_mode(model, step_mode)
    x = (np.random.default_rng(seed).random((T, B, *features)) < 0.3).astype(np.float32)
    return tune(model, x), x
