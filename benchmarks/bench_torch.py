"""Speed of the torch backends (snnTorch, Norse): converting a graph, and running what came out.

    python -m benchmarks.bench_torch [--reps 7] [--threads 1] [--quick] [--no-write]

1. convert: a 784-4096-4096-10 Affine + LIF graph (20M parameters, 80 MB, snnTorch-style
   parameters at dt = 1e-4). `nirbridge.convert(graph, to=...)` against two anchors measured
   in the same run: the framework's own NIR import of the same graph (`snntorch.import_nir.
   import_from_nir`, `norse.torch.from_nir`) and copying every parameter array once
   (`torch.empty(a.shape).copy_(torch.from_numpy(a))`). Targets: convert <= the framework's import, <= 2x the copy.
2. run: models converted from a graph against the same network built natively in the same
   framework, both stepped one time step per call under `torch.no_grad()` from reset state
   (snnTorch: `init_hidden` neurons in `nn.Sequential`; Norse: cells in `SequentialState`).
   Networks: 784-500-10 Linear + LIF, T = 100, batch 32, Bernoulli(0.1) input; a CSNN on
   2x20x20 frames (Conv 2->16 k3 p1, LIF, AvgPool 2, Conv 16->32 k3 p1, LIF, AvgPool 2,
   Flatten, Linear 800->10, LIF), T = 100, batch 32. The converted model's graph is the
   native model's export, and the benchmark checks that both emit the same output spikes.
   Target: converted <= 1.05x native.

Medians over `--reps` repetitions after one warm-up; rows of one table come from one run; the
native and converted models run back to back in each repetition (alternating which goes
first) and the ratio is the median of the per-repetition ratios. Results go to
benchmarks/results/torch.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import nirbridge
from nirbridge.ir import LIF, Affine, Graph, Input, Output

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "torch.md"
DT, BETA = 1e-4, 0.9


def median_ms(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def paired_ms(native, converted, reps: int) -> tuple[float, float, float, float]:
    """(median ms of `native`, of `converted`, median of the per-repetition ratios, ratio of the
    fastest runs): the two run back to back in each repetition, in alternating order, so that a
    change of load on a shared machine hits both sides of a ratio; the fastest runs are the ones
    least disturbed by other processes."""
    native(), converted()
    a, b, ratios = [], [], []
    for i in range(reps):
        pair = {}
        for key in (("native", "converted") if i % 2 == 0 else ("converted", "native")):
            gc.collect()
            start = time.perf_counter()
            (native if key == "native" else converted)()
            pair[key] = time.perf_counter() - start
        a.append(pair["native"])
        b.append(pair["converted"])
        ratios.append(pair["converted"] / pair["native"])
    return 1e3 * statistics.median(a), 1e3 * statistics.median(b), statistics.median(ratios), min(b) / min(a)


# ----------------------------------------------------------------------------- convert


def big_graph(sizes=(784, 4096, 4096, 10), seed: int = 0) -> Graph:
    """An Affine + LIF chain with snnTorch-style LIF parameters (tau = dt/(1 - beta), r = tau/dt)."""
    rng = np.random.default_rng(seed)
    tau = np.float32(DT / (1 - BETA))
    nodes, edges, prev = {"input": Input(shape=np.array([sizes[0]]))}, [], "input"
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), 1):
        w = rng.standard_normal((n_out, n_in), dtype=np.float32) * np.float32(1 / np.sqrt(n_in))
        nodes[f"fc{i}"] = Affine(weight=w, bias=np.zeros(n_out, np.float32))
        nodes[f"lif{i}"] = LIF(tau=np.full(n_out, tau), r=np.full(n_out, tau / np.float32(DT)), v_leak=np.zeros(n_out, np.float32),
                               v_threshold=np.ones(n_out, np.float32), v_reset=np.zeros(n_out, np.float32))
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        prev = f"lif{i}"
    nodes["output"] = Output(shape=np.array([sizes[-1]]))
    edges.append((prev, "output"))
    return Graph(nodes=nodes, edges=edges)


def bench_convert(reps: int, sizes) -> tuple[list[tuple[str, float | None, str]], list[str]]:
    graph = big_graph(sizes)
    arrays = [a for _, node in graph.walk() for a in node.arrays().values() if a.dtype.kind == "f"]
    mb = sum(a.nbytes for a in arrays) / 1e6
    nir_graph = graph.to_nir()
    rows: list[tuple[str, float | None, str]] = []
    copy = median_ms(lambda: [torch.empty(a.shape).copy_(torch.from_numpy(a)) for a in arrays], reps)
    rows.append(("anchor: copy every parameter array once", copy, f"{mb:.0f} MB"))
    notes = [f"graph {'-'.join(map(str, sizes))} Affine + LIF, {graph.parameter_count() / 1e6:.1f}M parameters"]
    for target in ("snntorch", "norse"):
        ours = median_ms(lambda target=target: nirbridge.convert(graph, to=target), reps)
        try:
            native_import = _framework_import(target)
            theirs = median_ms(lambda native_import=native_import: native_import(nir_graph), reps)
            theirs_note = ""
        except Exception as exc:  # an import that fails on this graph is reported, not timed
            theirs, theirs_note = None, f"fails: {type(exc).__name__}: {str(exc)[:80]}"
        rows.append((f"nirbridge.convert(graph, to={target!r})", ours, ""))
        rows.append((f"{target}'s own NIR import", theirs, theirs_note))
        verdicts = [f"convert to {target} / copy: **{ours / copy:.2f}x** (target <= 2x)"]
        if theirs:
            verdicts.append(f"convert to {target} / {target}'s import: **{ours / theirs:.2f}x** (target <= 1x)")
        notes += verdicts
    return rows, notes


def _framework_import(target: str):
    if target == "snntorch":
        from snntorch.import_nir import import_from_nir

        def quiet(graph):  # it prints a line per node; the redirection costs nothing measurable
            with contextlib.redirect_stdout(io.StringIO()):
                return import_from_nir(graph)

        return quiet
    import norse.torch

    return lambda graph: norse.torch.from_nir(graph, ignore_warnings=True)


# ----------------------------------------------------------------------------- run


def _snntorch_mlp():
    import snntorch as snn

    return torch.nn.Sequential(
        torch.nn.Linear(784, 500), snn.Leaky(beta=BETA, init_hidden=True),
        torch.nn.Linear(500, 10), snn.Leaky(beta=BETA, init_hidden=True, output=True),
    )


def _snntorch_csnn():
    import snntorch as snn

    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 16, 3, padding=1), snn.Leaky(beta=BETA, init_hidden=True), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), snn.Leaky(beta=BETA, init_hidden=True), torch.nn.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(800, 10), snn.Leaky(beta=BETA, init_hidden=True, output=True),
    )


def _norse_cell():
    import norse.torch as norse

    return norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.tensor(1 / (DT / (1 - BETA))), v_th=torch.tensor(0.1)), dt=DT)


def _norse_mlp():
    import norse.torch as norse

    return norse.SequentialState(torch.nn.Linear(784, 500), _norse_cell(), torch.nn.Linear(500, 10), _norse_cell())


def _norse_csnn():
    import norse.torch as norse

    return norse.SequentialState(
        torch.nn.Conv2d(2, 16, 3, padding=1), _norse_cell(), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), _norse_cell(), torch.nn.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(800, 10), _norse_cell(),
    )


def _scale_weights(model: torch.nn.Module, gain: float) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                m.weight.mul_(gain)


def _step_snntorch(net):
    import snntorch.utils

    def run(x):
        snntorch.utils.reset(net)
        with torch.no_grad():
            return torch.stack([net(x[t])[0] for t in range(x.shape[0])])  # (spikes, mem) of the output layer

    return run


def _step_norse(net):
    def run(x):
        state, out = None, []
        with torch.no_grad():
            for t in range(x.shape[0]):
                y, state = net(x[t], state)
                out.append(y)
        return torch.stack(out)

    return run


def _step_converted(model):
    def run(x):
        model.reset()
        with torch.no_grad():
            return torch.stack([model(x[t]) for t in range(x.shape[0])])

    return run


def _synchronized(run, device: str):
    """`run`, waiting for the device to finish (CUDA runs asynchronously)."""
    if device == "cpu":
        return run

    def timed(x):
        out = run(x)
        torch.cuda.synchronize()
        return out

    return timed


def bench_run(reps: int, steps: int, batch: int, device: str = "cpu") -> tuple[list[tuple[str, float | None, str]], list[str]]:
    rows: list[tuple[str, float | None, str]] = []
    notes: list[str] = []
    rng = np.random.default_rng(0)
    inputs = {
        "mlp": torch.from_numpy((rng.random((steps, batch, 784)) < 0.1).astype(np.float32)),
        "csnn": torch.from_numpy((rng.random((steps, batch, 2, 20, 20)) < 0.2).astype(np.float32)),
    }
    builders = {
        "snntorch": ({"mlp": _snntorch_mlp, "csnn": _snntorch_csnn}, _step_snntorch, 4.0),
        "norse": ({"mlp": _norse_mlp, "csnn": _norse_csnn}, _step_norse, 4.0),
    }
    for framework, (nets, stepper, gain) in builders.items():
        for net_name, make in nets.items():
            torch.manual_seed(0)
            native = make()
            _scale_weights(native, gain)
            x = inputs[net_name]
            graph = nirbridge.convert(native, to="nir", sample=x[0])
            converted = nirbridge.convert(graph, to=framework)
            if device != "cpu":  # the same models and input, moved with .to(device)
                native, converted, x = native.to(device), converted.to(device), x.to(device)
            run_native, run_converted = _synchronized(stepper(native), device), _synchronized(_step_converted(converted), device)
            a, b = run_native(x), run_converted(x)
            same = bool(torch.equal(a, b))
            native_ms, converted_ms, ratio, fastest = paired_ms(lambda: run_native(x), lambda: run_converted(x), reps)
            label = f"{net_name}, {framework}"
            spiking = [n for n, node in graph.nodes.items() if node.type in ("IF", "LIF", "CubaLIF")]
            rates = nirbridge.simulate(graph, x.cpu().numpy(), record=spiking).states
            rate = ", ".join(f"{rates[n]['spikes'].mean():.3f}" for n in spiking)
            rows.append((f"{label}: native model", native_ms, f"firing rates per layer {rate}"))
            rows.append((f"{label}: converted from its graph", converted_ms, "same output spikes" if same else "OUTPUT SPIKES DIFFER"))
            notes.append(f"{label}: converted / native **{ratio:.3f}x** (median of per-repetition ratios; target <= 1.05x); "
                         f"fastest runs {fastest:.3f}x"
                         + (f"; throughput {steps * batch / converted_ms * 1e3:,.0f} against {steps * batch / native_ms * 1e3:,.0f} "
                            f"sample-steps/s native on {device}" if device != "cpu" else ""))
    return rows, notes


# ----------------------------------------------------------------------------- report


def table(rows) -> list[str]:
    out = ["| what | median ms | note |", "|---|---:|---|"]
    for name, ms, note in rows:
        out.append(f"| {name} | {'—' if ms is None else f'{ms:.1f}'} | {note} |")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 repetitions: a smoke run")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--device", default="auto", help="also run the models on this torch device; auto: cuda when present")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    reps = 3 if args.quick else args.reps
    sizes = (784, 512, 512, 10) if args.quick else (784, 4096, 4096, 10)
    steps, batch = (20, 8) if args.quick else (100, 32)
    lines = ["# Torch backends: convert and run", "", "Written by `benchmarks/bench_torch.py`.", "",
             f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} thread(s); "
             f"load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}; medians of {reps} repetitions.", ""]
    sections = [
        ("Convert a graph", bench_convert(reps, sizes)),
        (f"Run converted models against native ones (T = {steps}, batch {batch})", bench_run(reps, steps, batch)),
    ]
    device = ("cuda" if torch.cuda.is_available() else None) if args.device == "auto" else args.device
    if device and device.startswith("cuda") and not torch.cuda.is_available():
        device = None
    if device and device != "cpu":
        sections.append((f"Run on {device} (T = {steps}, batch {batch}; models moved with .to)", bench_run(reps, steps, batch, device)))
    for title, (rows, notes) in sections:
        lines += [f"## {title}", "", *table(rows), "", *(f"- {n}" for n in notes), ""]
    if not device or device == "cpu":
        lines += ["No CUDA device here: the GPU run was skipped.", ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_write and not args.quick:
        RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
