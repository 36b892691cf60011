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


def spiking_nodes(graph) -> list[str]:
    """The graph's spiking neuron nodes, in graph order."""
    return [name for name, node in graph.nodes.items() if node.type in ("LIF", "CubaLIF", "IF")]


def first_difference(graph, backend: str, native, reference, loader) -> dict | None:
    """Where a converted model first departs from the NumPy reference: the earliest step (then
    the earliest layer) at which some neuron spikes in one and not the other, with both membrane
    potentials there and the threshold. ``native``: the model of ``backend``; ``reference``: the
    ``numpy`` model of the same graph; ``loader``: the batches the table used. None when every
    neuron of every sample spikes alike."""
    import nirbridge

    neurons = spiking_nodes(graph)
    impl, ref_impl = nirbridge.get_backend(backend), nirbridge.get_backend("numpy")
    offset = 0
    for x, _ in loader:
        x = np.asarray(x, dtype=np.float32)
        got = impl.simulate(native, x, record=tuple(neurons))
        want = ref_impl.simulate(reference, x, record=tuple(neurons))
        found = None
        for order, name in enumerate(neurons):
            diff = np.argwhere((got.states[name]["spikes"] != 0) != (want.states[name]["spikes"] != 0))
            if len(diff) and (found is None or (diff[0][0], order) < (found[1][0], found[2])):
                found = (name, tuple(int(i) for i in diff[0]), order)
        if found is None:
            offset += x.shape[1]
            continue
        name, (step, b, *neuron), _ = found
        thr = np.asarray(graph.nodes[name].v_threshold, dtype=float)
        shape = want.states[name]["v"].shape[2:]
        threshold = float(thr.reshape(-1)[0] if thr.size == 1 else np.broadcast_to(thr, shape)[tuple(neuron)])
        ref_spiked = bool(want.states[name]["spikes"][(step, b, *neuron)])
        return {
            "node": name, "sample": offset + b, "step": step, "neuron": neuron, "threshold": threshold,
            "v_reference": float(want.states[name]["v"][(step, b, *neuron)]),
            "v_converted": float(got.states[name]["v"][(step, b, *neuron)]),
            "spiked": "reference" if ref_spiked else backend,
        }
    return None


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
