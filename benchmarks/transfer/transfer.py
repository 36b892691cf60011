"""Transfer of the trained SeedNet: snnTorch -> NIR file -> Norse, snnTorch and the NumPy
reference, each evaluated on the whole test set with the same batches and compared with the
original, spike for spike, together with the naive path's models (``naive.py``), in one
`nirbridge.evaluate` call; then plots.

    graph = nirbridge.convert(net, to="nir", sample=batch)   # policy in graph.metadata
    nirbridge.save(graph, "<out>/<dataset>/model.nir")
    ev = nirbridge.evaluate("<out>/<dataset>/model.nir", loader, backends=["norse", "snntorch", "numpy"],
                            original=run_the_trained_net, models=naive_models)
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import nirbridge
from nirbridge.semantics import Policy

from . import naive
from .compare import SpikeMonitor, first_difference, row
from .datasets import make_loader
from .figures import LAYERS, plot_samples, record_seednet
from .train import as_model_fn

#: backend name -> how the table names it
BACKENDS = {"norse": "Norse", "snntorch": "snnTorch", "numpy": "NumPy reference"}
ORIGINAL = "snnTorch, trained (original)"
#: the naive model's layers (nodes of snnTorch's export of the Sequential), named as SeedNet's
NAIVE_LAYERS = {"lif1": "1", "lif2": "3"}


def export(net, sample, path: Path):
    """``nirbridge.convert(net, to="nir", sample=sample)`` saved to ``path``; returns the graph
    read back from the file and the seconds export + save took."""
    start = time.perf_counter()
    graph = nirbridge.convert(net, to="nir", sample=sample)
    nirbridge.save(graph, path)
    seconds = time.perf_counter() - start
    return nirbridge.load(path), seconds


def transfer_seednet(name: str, net, test_set, folder: Path, *, batch_size: int, progress: bool = True,
                     with_naive: bool = True, plots: int = 3) -> dict:
    """Everything of the module doc for one dataset. Returns ``rows`` (the nirbridge table),
    ``naive`` (the naive table), ``plots`` (paths), ``nir_file``, ``policy`` and ``nodes``.
    The plotted samples' inputs (time, samples, ...) are saved as ``plot_inputs.npy``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    loader = make_loader(test_set, batch_size)
    first = next(iter(loader))[0]
    sample = first[:, :2]

    path = folder / "model.nir"
    graph, export_seconds = export(net, sample, path)
    policy = Policy.from_metadata(graph.metadata)
    say = print if progress else (lambda *a, **k: None)
    say(f"{name}: exported to {path} ({export_seconds:.1f} s); policy: {policy_text(policy, graph)}")

    tried = naive.attempts(net, first) if with_naive else []
    naive_models = {f"naive {i}": naive.model_fn(a.model) for i, a in enumerate(tried) if a.model is not None}
    with SpikeMonitor({n: getattr(net, n) for n in LAYERS}) as monitor:
        ev = nirbridge.evaluate(path, loader, backends=list(BACKENDS), original=as_model_fn(net), models=naive_models,
                                progress=progress)
    output = next(iter(graph.outputs()))
    rows = [row(name, "nirbridge", ORIGINAL, ev["original"], output, route="trained in snnTorch",
                firing_rates=monitor.rates(), is_original=True)]
    for backend, label in BACKENDS.items():
        r = row(name, "nirbridge", f"{label} (nirbridge)", ev[backend], output,
                route=f"NIR file -> nirbridge.convert(to={backend!r})")
        if backend != "numpy" and r["differing_spikes"]:
            r["first_difference"] = first_difference(graph, ev[backend], backend)
        rows.append(r)
    naive_rows, naive_plot_model = [], None
    for i, attempt in enumerate(tried):
        dt = {"dt": attempt.dt} if attempt.dt is not None else {}
        if attempt.model is None:
            naive_rows.append(row(name, "naive", attempt.route, None, route=attempt.route, error=attempt.error, **dt))
            continue
        naive_rows.append(row(name, "naive", attempt.route, ev[f"naive {i}"], output, route=attempt.route,
                              **dt, **attempt.details))
        if naive_plot_model is None and attempt.dt == naive.SNNTORCH_EXPORT_DT:
            naive_plot_model = attempt.model
    say(f"{name}: {len(ev.models)} models evaluated on {ev.samples} test samples in {ev.seconds:.1f} s")

    paths = []
    if plots:
        indices = list(range(min(plots, len(test_set))))
        x = np.stack([test_set[i][0] for i in indices], axis=1)
        labels = [int(test_set.labels[i]) for i in indices]
        np.save(folder / "plot_inputs.npy", x)  # for `nirbridge plot model.nir --input plot_inputs.npy`
        ref = record_seednet(net, x)
        conv = nirbridge.get_backend("norse").simulate(nirbridge.convert(path, to="norse"), x, record=LAYERS)
        paths += plot_samples(ref, conv, x, indices=indices, labels_of=labels, graph=graph,
                              names=("snnTorch (original)", "Norse (nirbridge)"), folder=folder,
                              title=f"{name}, nirbridge: ")
        if naive_plot_model is not None:
            conv = naive.run(naive_plot_model, x[:, :1], record=NAIVE_LAYERS)
            paths += plot_samples(ref, conv, x[:, :1], indices=indices[:1], labels_of=labels[:1],
                                  graph=graph, names=("snnTorch (original)", "Norse (naive, dt=1e-4)"),
                                  folder=folder, suffix="_naive", title=f"{name}, naive path: ")
    return {
        "rows": rows, "naive": naive_rows, "plots": [str(p) for p in paths], "nir_file": str(path),
        "export_seconds": export_seconds, "policy": policy.model_dump(mode="json") if policy else None,
        "nodes": {n: node.type for n, node in graph.nodes.items()},
    }


def policy_text(policy: Policy | None, graph) -> str:
    """dt, integration, and per neuron node its effective reset rule and timing."""
    if policy is None:
        return "none in the file"
    neurons = []
    for node, n in graph.nodes.items():
        if n.type in ("LIF", "CubaLIF", "IF"):
            p = policy.for_node(node, n.type)
            neurons.append(f"{node}: reset {p.reset}, {p.reset_timing}")
    return f"dt={policy.dt:g}, {policy.integration}; " + "; ".join(neurons)
