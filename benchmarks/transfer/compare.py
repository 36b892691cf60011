"""Run models over the same test batches and compare them with an original.

``run_model`` wraps ``evaluate``: it keeps the output spikes and counts the entries actually
simulated (sum over batches of steps x batch size x classes; event batches are padded to their
longest sample and every model sees the same padded batch). ``compare`` gives

- ``agreement``: the fraction of test samples whose prediction equals the original's;
- ``differing_spikes``: the number of (sample, step, neuron) entries of the output spike trains
  where exactly one of the two models spiked, and ``differing_fraction`` = that number divided by
  ``compared_spikes``, the number of entries compared.

``SpikeMonitor`` counts the spikes named layers emit while a model runs, for firing rates.
"""

from __future__ import annotations

import numpy as np

from .evaluate import evaluate


class SpikeMonitor:
    """Forward hooks counting the spikes of named modules (the first element of their output).

    ``with SpikeMonitor({"lif1": net.lif1}) as m: ...`` then ``m.rates()`` gives, per name, the
    mean of the spike tensor over every call (steps), batch entry and neuron."""

    def __init__(self, modules: dict):
        self.modules = dict(modules)
        self.spikes = {name: 0.0 for name in self.modules}
        self.entries = {name: 0 for name in self.modules}
        self._handles = []

    def _hook(self, name):
        def hook(module, args, output):
            spikes = output[0] if isinstance(output, tuple) else output
            self.spikes[name] += float(spikes.detach().sum())
            self.entries[name] += spikes.numel()

        return hook

    def __enter__(self) -> SpikeMonitor:
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self.modules.items()]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def rates(self) -> dict[str, float]:
        return {n: self.spikes[n] / self.entries[n] if self.entries[n] else 0.0 for n in self.modules}


def run_model(model_fn, loader, *, as_numpy: bool = False, progress: bool = True, desc: str = "evaluate") -> dict:
    """``evaluate(model_fn, loader, keep_spikes=True)`` plus ``simulated``: the number of output
    entries (steps x batch x classes) the model computed over all batches."""
    simulated = [0]

    def counted(x):
        out = model_fn(x)
        simulated[0] += int(np.prod(out.shape))
        return out

    result = evaluate(counted, loader, as_numpy=as_numpy, keep_spikes=True, progress=progress, desc=desc)
    result["simulated"] = simulated[0]
    return result


def compare(original: dict, other: dict) -> dict:
    """Prediction agreement and differing output spikes of ``other`` against ``original``
    (both from ``run_model`` on the same loader)."""
    a, b = original["output_spikes"], other["output_spikes"]
    if a.shape != b.shape:
        raise ValueError(f"output spikes of different shapes: {a.shape} vs {b.shape}")
    if not np.array_equal(original["labels"], other["labels"]):
        raise ValueError("the two runs saw different samples")
    differing = int(np.count_nonzero((a != 0) != (b != 0)))
    return {
        "agreement": float((original["predictions"] == other["predictions"]).mean()),
        "differing_spikes": differing,
        "compared_spikes": int(original["simulated"]),
        "differing_fraction": differing / original["simulated"] if original["simulated"] else 0.0,
    }


def row(dataset: str, table: str, model: str, result: dict | None, original: dict | None, **extra) -> dict:
    """One table row: ``result`` is a ``run_model`` result (None when the model never ran,
    then ``extra`` should hold ``error``); ``original`` what it is compared with."""
    out = {"dataset": dataset, "table": table, "model": model}
    if result is not None:
        out["accuracy"] = result["accuracy"]
        out["samples"] = int(len(result["labels"]))
        out["seconds_per_sample"] = result["seconds_per_sample"]
        out["output_spike_rate"] = float(result["output_spikes"].sum() / result["simulated"]) if result["simulated"] else 0.0
        if original is not None:
            out.update(compare(original, result))
    out.update(extra)
    return out
