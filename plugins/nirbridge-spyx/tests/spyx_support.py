"""Spyx models as users write them (sized small), Spyx's own run of them with every spiking
layer's spikes, and weights scaled so that every spiking layer fires on a spike input."""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import spyx.nn as snn
from flax import nnx

B, T = 2, 40
SPIKING = (snn.LIF, snn.IF, snn.CuBaLIF, snn.RLIF, snn.RIF, snn.RCuBaLIF)


def _mlp(neuron, n_in=12, hidden=16, n_out=6, **kw):
    r = nnx.Rngs(0)
    return snn.Sequential(nnx.Linear(n_in, hidden, rngs=r), neuron((hidden,), rngs=r, **kw),
                          nnx.Linear(hidden, n_out, rngs=r), neuron((n_out,), rngs=r, **kw))


def _per_neuron():
    r = nnx.Rngs(1)
    lif = snn.LIF((16,), rngs=r)  # beta: Spyx's own per-neuron initialisation (0.5 +- 0.5, clipped)
    lif.beta[...] = jnp.linspace(0.55, 0.95, 16)
    lif.threshold = nnx.data(jnp.linspace(0.5, 1.5, 16))
    cuba = snn.CuBaLIF((6,), rngs=r)
    cuba.alpha[...], cuba.beta[...] = jnp.linspace(0.5, 0.9, 6), jnp.linspace(0.6, 0.95, 6)
    return snn.Sequential(nnx.Linear(12, 16, rngs=r), lif, nnx.Linear(16, 6, use_bias=False, rngs=r), cuba)


def _recurrent(neuron, **kw):
    r = nnx.Rngs(2)
    return snn.Sequential(nnx.Linear(12, 16, rngs=r), neuron((16,), rngs=r, **kw), nnx.Linear(16, 6, rngs=r), snn.LIF((6,), beta=0.8, rngs=r))


def _cnn():
    r = nnx.Rngs(3)
    return snn.Sequential(nnx.Conv(2, 4, (3, 3), padding="SAME", rngs=r), snn.IF((8, 8, 4)), snn.SumPool((2, 2), (2, 2), "VALID"),
                          nnx.Conv(4, 6, (3, 3), padding="VALID", rngs=r), snn.LIF((2, 2, 6), beta=0.7, rngs=r), snn.Flatten(),
                          nnx.Linear(24, 5, rngs=r), snn.LIF((5,), beta=0.9, rngs=r))


#: name -> (model factory, features of one step in NIR layout (channels first))
MODELS = {
    "LIF MLP (scalar beta)": (lambda: _mlp(snn.LIF, beta=0.85), (12,)),
    "LIF MLP (Spyx's per-neuron beta initialisation)": (lambda: _mlp(snn.LIF), (12,)),
    "IF MLP": (lambda: _mlp(snn.IF), (12,)),
    "CuBaLIF MLP": (lambda: _mlp(snn.CuBaLIF, alpha=0.7, beta=0.8), (12,)),
    "per-neuron beta, alpha and thresholds": (_per_neuron, (12,)),
    "RLIF": (lambda: _recurrent(snn.RLIF, beta=0.8), (12,)),
    "RIF": (lambda: _recurrent(snn.RIF), (12,)),
    "RCuBaLIF": (lambda: _recurrent(snn.RCuBaLIF, alpha=0.6, beta=0.85), (12,)),
    "LIF -> LI readout": (lambda: snn.Sequential(nnx.Linear(12, 16, rngs=nnx.Rngs(4)), snn.LIF((16,), beta=0.9, rngs=nnx.Rngs(4)),
                                                 nnx.Linear(16, 6, rngs=nnx.Rngs(5)), snn.LI((6,), beta=0.7, rngs=nnx.Rngs(5))), (12,)),
    "CNN: Conv-IF-SumPool, Conv-LIF, Flatten, Linear-LIF": (_cnn, (2, 8, 8)),
}


def layers(model) -> list:
    return list(model.layers)


def spiking_layers(model) -> dict[str, int]:
    """Graph node name -> index of each spiking Spyx layer."""
    return {str(i): i for i, m in enumerate(layers(model)) if isinstance(m, SPIKING)}


def nhwc(model, x: np.ndarray) -> jnp.ndarray:
    """x (time, batch, ...) in NIR layout as the model takes it (channels last for images)."""
    return jnp.asarray(np.moveaxis(x, 2, -1) if x.ndim == 5 else x)


def run_prefix(model, x: np.ndarray, upto: int) -> np.ndarray:
    """Spyx's own run (`spyx.nn.run`) of the model's first `upto + 1` layers: layer `upto`'s output."""
    out, _ = snn.run(snn.Sequential(*layers(model)[: upto + 1]), nhwc(model, x))
    out = np.asarray(out)
    return np.moveaxis(out, -1, 2) if out.ndim == 5 else out


def run_native(model, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(output, spikes of every spiking layer's neuron node), all (time, batch, ...), from
    Spyx's own run. Spyx emits at step k the spike of the potential after step k-1 (the
    graph's neuron node fires it at k-1, its Delay passes it on at k), so the neuron node's
    spikes are Spyx's of a run one step longer, from its second step on."""
    longer = np.concatenate([x, np.zeros_like(x[:1])])
    out = run_prefix(model, x, len(layers(model)) - 1)
    return out, {name: run_prefix(model, longer, i)[1:] for name, i in spiking_layers(model).items()}


def spike_input(features, seed: int = 0, rate: float = 0.3, steps: int = T) -> np.ndarray:
    return (np.random.default_rng(seed).random((steps, B, *features)) < rate).astype(np.float32)


def tune(model, x: np.ndarray, lo: float = 0.1, hi: float = 0.6):
    """Weights |w| with a quarter of them negated and zero biases, then each weight layer scaled
    (in order) until the spiking layer after it fires at a rate in (lo, hi)."""
    rng = np.random.default_rng(1)
    weights = [i for i, m in enumerate(layers(model)) if isinstance(m, (nnx.Linear, nnx.Conv))]
    spiking = sorted(spiking_layers(model).values())
    for w_index in weights:
        layer = layers(model)[w_index]
        k = np.abs(np.asarray(layer.kernel[...]))
        layer.kernel[...] = jnp.asarray(k * np.where(rng.random(k.shape) < 0.25, -1.0, 1.0), jnp.float32)
        if layer.bias is not None:
            layer.bias[...] = jnp.zeros(layer.bias[...].shape, jnp.float32)
        after = [i for i in spiking if i > w_index]
        if not after:
            continue
        factor, last = 1.5, 0
        for _ in range(40):
            rate = float((run_prefix(model, x, after[0]) > 0).mean())
            if lo < rate < hi:
                break
            way = 1 if rate <= lo else -1
            factor = factor ** 0.5 if way == -last else factor
            layer.kernel[...] = layer.kernel[...] * factor ** way
            last = way
        else:
            raise AssertionError(f"weight layer {w_index} could not be scaled to a firing rate in ({lo}, {hi}): {rate}")
    return model


@functools.lru_cache(maxsize=None)
def make(name: str, seed: int = 0):
    """Model `name` with tuned weights, and its spike input (time, batch, ...) in NIR layout
    (made once per name and seed: tuning compiles Spyx's run many times; do not change them)."""
    factory, features = MODELS[name]
    model = factory()
    x = spike_input(features, seed)
    return tune(model, x), x


def sample(x: np.ndarray) -> np.ndarray:
    """The one-step sample of an export, in the model's own layout."""
    return np.asarray(nhwc(None, x))[0]
