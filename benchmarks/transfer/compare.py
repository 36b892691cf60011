"""Table rows from `nirbridge.evaluate` results, firing rates of a native model, and where a
converted model first departs from the NumPy reference.

Every table of the study is one `nirbridge.evaluate` call per dataset: the original model (the
source), the backends converted from the saved NIR file, and other models (the naive path),
all on the same batches. A row gives

- ``agreement``: the fraction of test samples whose prediction equals the original's;
- ``differing_spikes``: the number of (sample, step, neuron) entries of the output spike trains
  where exactly one of the two models spiked, and ``differing_fraction`` = that number divided by
  ``compared_spikes``, the number of entries compared (event batches are padded to their
  longest sample and every model sees the same padded batch).

``SpikeMonitor`` counts the spikes named layers of a native model emit while it runs, for firing
rates.
"""

from __future__ import annotations


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


def row(dataset: str, table: str, model: str, result, output: str | None = None, **extra) -> dict:
    """One table row: ``result`` is a model's `nirbridge.evaluation.ModelResult` against the
    original (None when the model never ran, then ``extra`` should hold ``error``); ``output``
    the graph's Output node."""
    out = {"dataset": dataset, "table": table, "model": model}
    if result is not None:
        rate = result.layers[output].rate if output in result.layers else None
        out.update({
            "accuracy": result.accuracy, "samples": result.samples, "seconds_per_sample": result.seconds_per_sample,
            "output_spike_rate": rate or 0.0, "agreement": result.agreement, "differing_spikes": result.output_differing,
            "compared_spikes": result.output_compared, "differing_fraction": result.output_fraction,
        })
    out.update(extra)
    return out


def spiking_nodes(graph) -> list[str]:
    """The graph's spiking neuron nodes, in graph order."""
    return [name for name, node in graph.nodes.items() if node.type in ("LIF", "CubaLIF", "IF")]


def first_difference(graph, result, label: str) -> dict | None:
    """Where a model of a `nirbridge.evaluate` result first departs from the NumPy reference:
    over its spiking layers, the lowest sample, then the earliest step, then the earliest layer,
    with both membrane potentials there and the threshold. ``label``: who spiked when the
    reference did not. None when every neuron of every sample spikes alike."""
    found = []
    for order, name in enumerate(spiking_nodes(graph)):
        d = result.layers.get(name) and result.layers[name].first_difference
        if d:
            found.append(((d["sample"], d["step"], order), d))
    if not found:
        return None
    d = min(found, key=lambda item: item[0])[1]
    return {"node": d["node"], "sample": d["sample"], "step": d["step"], "neuron": d["neuron"],
            "threshold": d["threshold"], "v_reference": d["v_reference"], "v_converted": d["v_model"],
            "spiked": "reference" if d["spiked"] == "reference" else label}


def difference_text(model: str, d: dict) -> str:
    """One sentence for the report about a ``first_difference``."""
    silent_v = d["v_converted"] if d["spiked"] == "reference" else d["v_reference"]
    silent = "the converted model" if d["spiked"] == "reference" else "the NumPy reference"
    spiked = "the NumPy reference" if d["spiked"] == "reference" else "the converted model"
    gap = d["threshold"] - silent_v
    rounding = abs(gap) <= 1e-5 * max(1.0, abs(d["threshold"]))
    return (f"{model}: first differing spike at node `{d['node']}`, neuron {tuple(d['neuron'])}, test sample "
            f"{d['sample']}, step {d['step']}: {spiked} spikes; {silent} stays at v = {silent_v:.9g}, "
            f"{gap:.2g} below the threshold {d['threshold']:g}"
            + (" (within float32 rounding of the threshold; the difference then propagates to later steps "
               "and layers)" if rounding else ""))
