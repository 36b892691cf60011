"""Test models that fire: weights tuned so that every spiking layer of a torch model is
active but not saturated (a silent layer matches anything)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def tune_firing(layers: Sequence[torch.nn.Module], spike_rates: Callable[[], Sequence[float]], lo: float = 0.1, hi: float = 0.6,
                *, zero_bias: bool = True, seed: int = 1) -> None:
    """Weights |w| with a quarter of them negated (biases zeroed unless `zero_bias=False`),
    then each weight layer in order scaled until the spiking layer after it fires at a rate in
    (lo, hi): up while silent, down while too busy, the factor's square root at each turn.
    `spike_rates()` runs the model and returns one rate per spiking layer, in order."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for i, layer in enumerate(layers):
            layer.weight.abs_().mul_(torch.where(torch.rand(layer.weight.shape, generator=gen) < 0.25, -1.0, 1.0))
            if zero_bias and getattr(layer, "bias", None) is not None:
                layer.bias.zero_()
            factor, last = 1.5, 0
            for _ in range(40):
                rates = list(spike_rates())
                if i >= len(rates) or lo < rates[i] < hi:
                    break
                way = 1 if rates[i] <= lo else -1
                factor = factor ** 0.5 if way == -last else factor
                layer.weight.mul_(factor ** way)
                last = way
            else:
                raise AssertionError(f"weight layer {i} could not be scaled to a firing rate in ({lo}, {hi}): {rates}")
