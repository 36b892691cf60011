"""Speed of the NumPy reference simulator against snnTorch and Norse step loops, same run.

    python benchmarks/bench_simulator.py [--reps 7] [--threads 1,default] [--no-write]

Networks:
  mlp  784-500-10, Linear + LIF, snnTorch-style parameters (beta 0.9: tau = dt/(1 - beta),
       r = tau/dt, dt = 1e-4), T = 100, batch 32, Bernoulli(0.1) input spikes.
  cnn  the NIR paper's `02_cnn/cnn_sinabs.nir` (IF neurons, sinabs preset), T = 50, batch 4,
       Bernoulli(0.1) event frames (skipped when the fixture is absent).

Rows: the reference simulator time-batched (default) and step by step (`time_batched=False`);
snnTorch (`snn.Leaky` per layer) and Norse (`LIFBoxCell` / `IAFCell`) running the same layers
one step at a time under `torch.no_grad()` (absent when not installed); and the anchor: the
network's matrix products (or convolutions and pooling) alone, batched over all time steps, in
NumPy. Times are medians over `--reps` repetitions after one warm-up run; ratios are to the
time-batched reference. Each thread setting (`--threads`, default: 1 thread, then the
libraries' defaults) runs in its own process. Results go to benchmarks/results/simulator.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import nirbridge
from nirbridge.ir import LIF, Graph, Input, Linear, Output
from nirbridge.reference import layers as reference_layers
from nirbridge.reference import simulate
from nirbridge.semantics import Policy

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "nir-paper"
RESULTS = ROOT / "benchmarks" / "results" / "simulator.md"
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
THREADS: int | None = None  # set in a child run: torch threads (BLAS threads come from its env)


def median_ms(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    if THREADS:
        torch.set_num_threads(THREADS)
    return torch


def _snntorch():
    try:
        import snntorch
    except ImportError:
        return None
    return snntorch


def _norse():
    try:
        import norse.torch
    except ImportError:
        return None
    return norse.torch


# ----------------------------------------------------------------------------- 784-500-10


def mlp(seed: int = 0):
    dt, beta = 1e-4, 0.9
    tau = dt / (1 - beta)
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.1, (500, 784)).astype(np.float32)
    w2 = rng.normal(0, 0.3, (10, 500)).astype(np.float32)

    def lif(n):
        return LIF(
            tau=np.full(n, tau, np.float32), r=np.full(n, tau / dt, np.float32), v_leak=np.zeros(n, np.float32),
            v_threshold=np.ones(n, np.float32), v_reset=np.zeros(n, np.float32),
        )

    graph = Graph(
        nodes={"in": Input(shape=np.array([784])), "fc1": Linear(weight=w1), "lif1": lif(500), "fc2": Linear(weight=w2), "lif2": lif(10), "out": Output(shape=np.array([10]))},
        edges=[("in", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "out")],
    )
    x = (rng.random((100, 32, 784)) < 0.1).astype(np.float32)
    return graph, x, w1, w2, beta, tau / dt


def bench_mlp(reps: int) -> tuple[list[tuple[str, float | None, str]], list[str]]:
    graph, x, w1, w2, beta, r = mlp()
    policy = Policy.preset("snntorch")  # euler, subtract, next_step: what snn.Leaky computes
    rows: list[tuple[str, float | None, str]] = []
    notes: list[str] = []
    ref = simulate(graph, x, policy=policy, record=["lif1"])
    hidden = ref.states["lif1"]["spikes"]
    notes.append(f"mlp firing rates: hidden {hidden.mean():.3f}, output {ref.output.mean():.3f}")
    rows.append(("NumPy reference, time-batched", median_ms(lambda: simulate(graph, x, policy=policy), reps), ""))
    rows.append(("NumPy reference, step by step", median_ms(lambda: simulate(graph, x, policy=policy, time_batched=False), reps), ""))
    flat_x, flat_h = x.reshape(-1, 784), hidden.reshape(-1, 500)
    rows.append(("anchor: the two matmuls alone (batched)", median_ms(lambda: (flat_x @ w1.T, flat_h @ w2.T), reps), ""))

    torch, snn, norse = _torch(), _snntorch(), _norse()
    if torch is None:
        rows += [("snnTorch (snn.Leaky step loop)", None, "torch absent"), ("Norse (LIFBoxCell step loop)", None, "torch absent")]
        return rows, notes
    tx = torch.from_numpy(x)
    fc1, fc2 = torch.nn.Linear(784, 500, bias=False), torch.nn.Linear(500, 10, bias=False)
    with torch.no_grad():
        fc1.weight.copy_(torch.from_numpy(w1))
        fc2.weight.copy_(torch.from_numpy(w2))

    if snn is None:
        rows.append(("snnTorch (snn.Leaky step loop)", None, "snntorch absent"))
    else:
        lif1, lif2 = snn.Leaky(beta=beta), snn.Leaky(beta=beta)  # subtract, reset_delay=True

        def run_snntorch():
            with torch.no_grad():
                m1, m2 = lif1.reset_mem(), lif2.reset_mem()
                out = []
                for t in range(tx.shape[0]):
                    s1, m1 = lif1(fc1(tx[t]), m1)
                    s2, m2 = lif2(fc2(s1), m2)
                    out.append(s2)
                return torch.stack(out)

        same = (run_snntorch().numpy() == ref.output).mean()
        rows.append(("snnTorch (snn.Leaky step loop)", median_ms(run_snntorch, reps), f"{100 * same:.2f} % of output spikes equal to the reference (snntorch preset)"))

    if norse is None:
        rows.append(("Norse (LIFBoxCell step loop)", None, "norse absent"))
    else:
        p = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(1 / (1e-4 * r)), v_th=torch.tensor(1.0), v_reset=torch.tensor(0.0))
        cell1, cell2 = norse.LIFBoxCell(p, dt=1e-4), norse.LIFBoxCell(p, dt=1e-4)

        def run_norse():
            with torch.no_grad():
                s1 = s2 = None
                out = []
                for t in range(tx.shape[0]):
                    z1, s1 = cell1(r * fc1(tx[t]), s1)  # r x: Norse's LIF has no r
                    z2, s2 = cell2(r * fc2(z1), s2)
                    out.append(z2)
                return torch.stack(out)

        norse_ref = simulate(graph, x, policy=Policy.preset("norse", dt=1e-4))
        same = (run_norse().numpy() == norse_ref.output).mean()
        rows.append(("Norse (LIFBoxCell step loop)", median_ms(run_norse, reps), f"{100 * same:.2f} % of output spikes equal to the reference (norse preset, dt 1e-4)"))
    return rows, notes


# ----------------------------------------------------------------------------- CNN


def _pair(value) -> tuple[int, int]:
    return tuple(int(v) for v in np.broadcast_to(np.asarray(value), (2,)))


def _chain(graph: Graph) -> list[str]:
    """Node names from the Input to the Output of a chain graph."""
    nxt = dict(graph.edges)
    name = next(iter(graph.inputs()))
    order = []
    while name in nxt:
        name = nxt[name]
        order.append(name)
    return order[:-1]


def bench_cnn(reps: int) -> tuple[list[tuple[str, float | None, str]], list[str]]:
    path = FIXTURES / "02_cnn" / "cnn_sinabs.nir"
    if not path.exists():
        return [("cnn_sinabs.nir", None, f"fixture absent ({path})")], []
    import nir

    graph = Graph.from_nir(nir.read(str(path)))
    policy = Policy.preset("sinabs")
    rng = np.random.default_rng(0)
    x = (rng.random((50, 4, 2, 34, 34)) < 0.1).astype(np.float32)
    order = _chain(graph)
    ifs = [n for n in order if graph.nodes[n].type == "IF"]
    ref = simulate(graph, x, policy=policy, record=ifs)
    notes = ["cnn firing rates: " + ", ".join(f"{n} {ref.states[n]['spikes'].mean():.3f}" for n in ifs)]
    rows: list[tuple[str, float | None, str]] = [
        ("NumPy reference, time-batched", median_ms(lambda: simulate(graph, x, policy=policy), reps), ""),
        ("NumPy reference, step by step", median_ms(lambda: simulate(graph, x, policy=policy, time_batched=False), reps), ""),
    ]
    # anchor: every stateless layer alone, batched over time, on the spikes it sees in the run
    prev_shape = tuple(int(s) for s in graph.nodes["input"].shape)
    layer_inputs, maps = [], []
    source = x.reshape((-1,) + prev_shape)
    for name in order:
        node = graph.nodes[name]
        if node.type == "IF":
            source = ref.states[name]["spikes"].reshape((-1,) + prev_shape)
            continue
        fn, prev_shape = reference_layers.build(name, node, policy, prev_shape, np.float32)
        layer_inputs.append(source)
        maps.append(fn)
        source = fn(source)
    rows.append(("anchor: conv/pool/dense layers alone (batched)", median_ms(lambda: [f(a) for f, a in zip(maps, layer_inputs)], reps), ""))

    torch, snn, norse = _torch(), _snntorch(), _norse()
    if torch is None:
        return rows + [("snnTorch", None, "torch absent"), ("Norse", None, "torch absent")], notes
    layers = []
    for name in order:
        node = graph.nodes[name]
        if node.type == "Conv2d":
            conv = torch.nn.Conv2d(node.weight.shape[1], node.weight.shape[0], node.weight.shape[2:], 
                                   stride=_pair(node.stride), padding=_pair(node.padding), dilation=_pair(node.dilation))
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(node.weight))
                conv.bias.copy_(torch.from_numpy(node.bias))
            layers.append(conv)
        elif node.type == "SumPool2d":
            k = tuple(int(v) for v in node.kernel_size)
            layers.append(lambda t, k=k: torch.nn.functional.avg_pool2d(t, k) * (k[0] * k[1]))
        elif node.type == "Flatten":
            layers.append(torch.nn.Flatten())
        elif node.type == "Affine":
            lin = torch.nn.Linear(node.weight.shape[1], node.weight.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(node.weight))
                lin.bias.copy_(torch.from_numpy(node.bias))
            layers.append(lin)
        else:
            layers.append("IF")
    tx = torch.from_numpy(x)

    def stepper(make_neuron, call):
        def run():
            with torch.no_grad():
                neurons = [make_neuron() if layer == "IF" else None for layer in layers]
                states = [None] * len(layers)
                for t in range(tx.shape[0]):
                    h = tx[t]
                    for i, layer in enumerate(layers):
                        if neurons[i] is None:
                            h = layer(h)
                        else:
                            h, states[i] = call(neurons[i], h, states[i])
        return run

    if snn is None:
        rows.append(("snnTorch (snn.Leaky, beta 1, step loop)", None, "snntorch absent"))
    else:
        def leaky_call(cell, h, mem):
            return cell(h, cell.reset_mem() if mem is None else mem)

        run = stepper(lambda: snn.Leaky(beta=1.0, reset_mechanism="subtract"), leaky_call)
        rows.append(("snnTorch (snn.Leaky, beta 1, step loop)", median_ms(run, reps), "IF as a Leaky without decay"))
    if norse is None:
        rows.append(("Norse (IAFCell step loop)", None, "norse absent"))
    else:
        run = stepper(lambda: norse.IAFCell(norse.IAFParameters(v_th=torch.tensor(1.0))), lambda cell, h, s: cell(h, s))
        rows.append(("Norse (IAFCell step loop)", median_ms(run, reps), ""))
    return rows, notes


# ----------------------------------------------------------------------------- report


def table(title: str, rows) -> list[str]:
    base = rows[0][1]
    lines = [f"### {title}", "", "| implementation | median ms | ratio to NumPy time-batched | note |", "|---|---:|---:|---|"]
    for name, ms, note in rows:
        if ms is None:
            lines.append(f"| {name} | absent | | {note} |")
        else:
            lines.append(f"| {name} | {ms:.1f} | {ms / base:.2f} | {note} |")
    return lines


def verdict(rows) -> list[str]:
    times = {name: ms for name, ms, _ in rows}
    ours = times["NumPy reference, time-batched"]
    anchor = next(ms for name, ms, _ in rows if name.startswith("anchor"))
    frameworks = [ms for name, ms, _ in rows if name.startswith(("snnTorch", "Norse")) and ms is not None]
    lines = [f"- NumPy time-batched / matmul anchor: **{ours / anchor:.2f}x** (target <= 2x)"]
    if frameworks:
        lines.append(f"- faster of snnTorch and Norse / NumPy time-batched: **{min(frameworks) / ours:.2f}x** (target >= 2x)")
    else:
        lines.append("- snnTorch and Norse absent: no framework comparison")
    return lines


def environment() -> list[str]:
    torch = _torch()
    versions = [f"numpy {np.__version__}", f"nirbridge {nirbridge.__version__}"]
    if torch is not None:
        versions.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    for name, mod in (("snntorch", _snntorch()), ("norse", sys.modules.get("norse"))):
        if mod is not None:
            versions.append(f"{name} {getattr(mod, '__version__', '?')}")
    blas = os.environ.get("OPENBLAS_CORETYPE")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return [
        f"- machine: {platform.machine()}, {os.cpu_count()} cores visible, Python {platform.python_version()};"
        f" load average at the end (1, 5, 15 min): {load}",
        f"- versions: {', '.join(versions)}" + (f"; OPENBLAS_CORETYPE={blas}" if blas else ""),
    ]


def section(reps: int) -> str:
    """One configuration's tables (run in a child process, so BLAS threads are fixed at start)."""
    mlp_rows, mlp_notes = bench_mlp(reps)
    cnn_reps = max(3, reps - 2)
    cnn_rows, cnn_notes = bench_cnn(cnn_reps)
    threads = f"{THREADS} thread(s) for BLAS and torch" if THREADS else "the libraries' default threads"
    lines = [f"## {threads}", "", f"Medians of {reps} repetitions (CNN: {cnn_reps}), one warm-up each; all rows of a table in the same run.", ""]
    lines += table("784-500-10 Linear + LIF, T = 100, batch 32, Bernoulli(0.1) input", mlp_rows) + [""] + verdict(mlp_rows)
    lines += [f"- {n}" for n in mlp_notes] + [""]
    lines += table("cnn_sinabs.nir (NIR paper), T = 50, batch 4, Bernoulli(0.1) event frames", cnn_rows) + [""]
    if len(cnn_rows) > 1:
        lines += verdict(cnn_rows)
    lines += [f"- {n}" for n in cnn_notes] + [""] + environment() + [""]
    return "\n".join(lines)


def main() -> None:
    global THREADS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", default="1,default", help="comma list of thread counts for BLAS and torch; 'default' keeps the libraries' own (default: 1,default)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write benchmarks/results/simulator.md")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        THREADS = None if args.threads == "default" else int(args.threads)
        print(section(args.reps))
        return
    parts = ["# Simulator speed", "", "Written by `benchmarks/bench_simulator.py`; the machine may be shared (see the load averages).", ""]
    for threads in args.threads.split(","):
        env = dict(os.environ)
        if threads != "default":
            env.update({var: threads for var in THREAD_VARS})
        run = subprocess.run(
            [sys.executable, __file__, "--child", "--threads", threads, "--reps", str(args.reps)],
            env=env, capture_output=True, text=True, check=True,
        )
        print(run.stdout)
        parts.append(run.stdout)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("\n".join(parts).rstrip() + "\n")
        print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
