"""Speed of the NumPy reference simulator against snnTorch and Norse on the same networks.

    python -m benchmarks.bench_simulator [--reps 11] [--threads 1,default] [--write]

Networks (issue 15), float32, the same weights everywhere:
  mlp   784-500-10, Linear + LIF, snnTorch-style parameters (beta 0.9: tau = dt/(1 - beta),
        r = tau/dt, dt = 1e-4); T = 100, batch 32, Bernoulli(0.1) input spikes.
  csnn  Conv2d(2, 8, 3, padding 1) -> LIF -> MaxPool2d(2) -> Conv2d(8, 16, 3, padding 1) -> LIF
        -> MaxPool2d(2) -> Flatten -> Linear(400, 10) -> LIF (the transfer demo's CSNN), on
        2 x 20 x 20 frames of Bernoulli(0.1) events; T = 100, batch 32. In NIR each max pool
        is SumPool2d(2) + Threshold(0.5), which is the same on spikes.

Rows: the reference (default chunks of steps) and the reference step by step
(`chunk_steps=1`); snnTorch (`snn.Leaky` per layer) and Norse (`LIFBoxCell`) running the same
layers one step at a time under `torch.no_grad()`, as their users write it; and an anchor: the
network's matrix products (or convolutions) alone in NumPy, batched over all steps. Each
repetition runs every row once, one after the other, so machine load hits them alike; the
tables give the median and the spread (min-max) over the repetitions. Each thread setting
(`--threads`: 1 thread for BLAS and torch, then the libraries' defaults, with a third of the
repetitions: there torch's and OpenBLAS's threads contend for the 2 cores, and the frameworks
slow down by an order of magnitude on the CSNN) runs in its own process. Targets (issue 15): reference / faster of snnTorch and Norse <= 0.25 on the mlp,
<= 0.5 on the csnn. `--write` (what `make bench` passes) writes benchmarks/results/simulator.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np

from benchmarks.common import ROOT, THREAD_VARS, environment, interleaved, write
from nirbridge.ir import LIF, Conv2d, Flatten, Graph, Input, Linear, Output, SumPool2d, Threshold
from nirbridge.reference import simulate
from nirbridge.semantics import Policy

DT, BETA = 1e-4, 0.9
TAU = DT / (1 - BETA)
R = TAU / DT
TARGETS = {"mlp": 0.25, "csnn": 0.5}
THREADS: int | None = None  # set in a child run (torch threads; BLAS threads come from its env)


def _lif(shape) -> LIF:
    full = lambda v: np.full(shape, v, np.float32)  # noqa: E731
    return LIF(tau=full(TAU), r=full(R), v_leak=full(0), v_threshold=full(1), v_reset=full(0))


def _chain(nodes: dict) -> Graph:
    names = list(nodes)
    return Graph(nodes=nodes, edges=list(zip(names, names[1:])))


def mlp(seed: int = 0):
    """(graph, input, {layer: weight})."""
    rng = np.random.default_rng(seed)
    w = {"fc1": rng.normal(0, 0.1, (500, 784)).astype(np.float32), "fc2": rng.normal(0, 0.3, (10, 500)).astype(np.float32)}
    graph = _chain({"in": Input(shape=np.array([784])), "fc1": Linear(weight=w["fc1"]), "lif1": _lif(500),
                    "fc2": Linear(weight=w["fc2"]), "lif2": _lif(10), "out": Output(shape=np.array([10]))})
    x = (rng.random((100, 32, 784)) < 0.1).astype(np.float32)
    return graph, x, w


def csnn(seed: int = 0):
    rng = np.random.default_rng(seed)
    w = {
        "conv1": rng.normal(0, 0.5, (8, 2, 3, 3)).astype(np.float32), "b1": rng.normal(0, 0.05, 8).astype(np.float32),
        "conv2": rng.normal(0, 0.35, (16, 8, 3, 3)).astype(np.float32), "b2": rng.normal(0, 0.05, 16).astype(np.float32),
        "fc": rng.normal(0, 0.15, (10, 400)).astype(np.float32),
    }

    def conv(weight, bias):
        one = np.array([1, 1])
        return Conv2d(weight=weight, bias=bias, stride=one, padding=one, dilation=one, groups=np.array(1))

    def pool():
        return SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))

    graph = _chain({
        "in": Input(shape=np.array([2, 20, 20])),
        "conv1": conv(w["conv1"], w["b1"]), "lif1": _lif((8, 20, 20)), "pool1": pool(), "max1": Threshold(threshold=np.full((8, 10, 10), 0.5, np.float32)),
        "conv2": conv(w["conv2"], w["b2"]), "lif2": _lif((16, 10, 10)), "pool2": pool(), "max2": Threshold(threshold=np.full((16, 5, 5), 0.5, np.float32)),
        "flat": Flatten(start_dim=0, end_dim=-1), "fc": Linear(weight=w["fc"]), "lif3": _lif(10), "out": Output(shape=np.array([10])),
    })
    x = (rng.random((100, 32, 2, 20, 20)) < 0.1).astype(np.float32)
    return graph, x, w


# ----------------------------------------------------------------------------- frameworks


def _torch():
    try:
        import torch
    except ImportError:
        return None
    if THREADS:
        torch.set_num_threads(THREADS)
    return torch


def _import(name):
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        return None


def torch_layers(torch, net: str, w: dict):
    """The stateless layers of `net` as torch modules, in order, with None where a neuron goes."""
    def load(module, weight, bias=None):
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(weight))
            if bias is not None:
                module.bias.copy_(torch.from_numpy(bias))
        return module

    nn = torch.nn
    if net == "mlp":
        return [load(nn.Linear(784, 500, bias=False), w["fc1"]), None, load(nn.Linear(500, 10, bias=False), w["fc2"]), None]
    return [
        load(nn.Conv2d(2, 8, 3, padding=1), w["conv1"], w["b1"]), None, nn.MaxPool2d(2),
        load(nn.Conv2d(8, 16, 3, padding=1), w["conv2"], w["b2"]), None, nn.MaxPool2d(2),
        nn.Flatten(), load(nn.Linear(400, 10, bias=False), w["fc"]), None,
    ]


def step_loop(torch, layers, x, make_neuron, call):
    """A function running `layers` one time step at a time, neurons from `make_neuron()`
    stepped by `call(neuron, input, state) -> (spikes, state)`; returns the output spikes."""
    tx = torch.from_numpy(x)

    def run():
        with torch.no_grad():
            neurons = [make_neuron() if layer is None else None for layer in layers]
            states = [None] * len(layers)
            out = []
            for t in range(tx.shape[0]):
                h = tx[t]
                for i, layer in enumerate(layers):
                    if layer is None:
                        h, states[i] = call(neurons[i], h, states[i])
                    else:
                        h = layer(h)
                out.append(h)
            return torch.stack(out).numpy()

    return run


def frameworks(net: str, x: np.ndarray, w: dict, graph: Graph):
    """{row name: (function, note)} for snnTorch and Norse, each checked against the reference."""
    torch, snn, norse = _torch(), _import("snntorch"), _import("norse.torch")
    rows = {}
    if torch is None:
        return rows
    layers = torch_layers(torch, net, w)
    if snn is not None:
        def leaky(cell, h, mem):  # snn.Leaky: subtract reset, one step late (the snntorch preset)
            return cell(h, cell.reset_mem() if mem is None else mem)

        run = step_loop(torch, layers, x, lambda: snn.Leaky(beta=BETA), leaky)
        same = (run() == simulate(graph, x, policy=Policy.preset("snntorch")).output).mean()
        rows["snnTorch (snn.Leaky step loop)"] = (run, f"{100 * same:.2f} % of output spikes equal to the reference (snntorch preset)")
    if norse is not None:
        p = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(1 / TAU), v_th=torch.tensor(1.0), v_reset=torch.tensor(0.0))

        def box(cell, h, state):  # Norse's LIF has no r: the input is scaled by it
            return cell(R * h, state)

        run = step_loop(torch, layers, x, lambda: norse.LIFBoxCell(p, dt=DT), box)
        same = (run() == simulate(graph, x, policy=Policy.preset("norse", dt=DT)).output).mean()
        rows["Norse (LIFBoxCell step loop)"] = (run, f"{100 * same:.2f} % of output spikes equal to the reference (norse preset, dt 1e-4)")
    return rows


def anchor(net: str, x: np.ndarray, w: dict, graph: Graph):
    """The products alone, batched over all steps, on the inputs they see in the run."""
    ref = simulate(graph, x, policy=Policy.preset("snntorch"), record=list(graph.nodes))
    rows = lambda name: ref.states[name]["y"].reshape(-1, *ref.states[name]["y"].shape[2:])  # noqa: E731
    if net == "mlp":
        a, b = x.reshape(-1, 784), ref.states["lif1"]["spikes"].reshape(-1, 500)
        return lambda: (a @ w["fc1"].T, b @ w["fc2"].T)
    from nirbridge.reference import layers

    maps = [(layers.build(n, graph.nodes[n], Policy(), shape, np.float32).map, inp) for n, shape, inp in (
        ("conv1", (2, 20, 20), x.reshape(-1, 2, 20, 20)), ("conv2", (8, 10, 10), rows("max1")), ("fc", (400,), rows("flat")))]
    return lambda: [f(a) for f, a in maps]


# ----------------------------------------------------------------------------- report


def section(reps: int) -> str:
    """One thread setting's tables (a child process, so BLAS threads are fixed at start)."""
    torch = _torch()
    lines = [f"## {f'{THREADS} thread for BLAS and torch' if THREADS else 'the libraries default threads'}", ""]
    for net, build in (("mlp", mlp), ("csnn", csnn)):
        graph, x, w = build()
        policy = Policy.preset("snntorch")
        spiking = [n for n, node in graph.nodes.items() if node.type == "LIF"]
        probe = simulate(graph, x, policy=policy, record=spiking)
        fns = {
            "NumPy reference": (lambda: simulate(graph, x, policy=policy), ""),  # noqa: B023
            "NumPy reference, step by step": (lambda: simulate(graph, x, policy=policy, chunk_steps=1), "chunk_steps=1"),  # noqa: B023
            **frameworks(net, x, w, graph),
            "anchor: the products alone (NumPy, batched)": (anchor(net, x, w, graph), ""),
        }
        times = interleaved({name: fn for name, (fn, _) in fns.items()}, reps)
        base = times["NumPy reference"].median
        title = "784-500-10 Linear + LIF" if net == "mlp" else "CSNN: 2 convolutions on 2 x 20 x 20 frames"
        cpu_base = times["NumPy reference"].cpu_median
        lines += [f"### {net}: {title}, T = 100, batch 32 ({reps} repetitions)", "",
                  "| implementation | wall ms: median (min-max) | / reference | CPU ms: median | / reference | note |",
                  "|---|---:|---:|---:|---:|---|"]
        lines += [f"| {name} | {t.ms()} | {t.median / base:.2f} | {1e3 * t.cpu_median:.1f} | {t.cpu_median / cpu_base:.2f} | {note} |"
                  for name, (_, note) in fns.items() for t in (times[name],)]
        peers = [name for name in times if name.startswith(("snnTorch", "Norse"))]
        lines.append("")
        if peers:
            ratio = base / min(times[p].median for p in peers)
            cpu_ratio = cpu_base / min(times[p].cpu_median for p in peers)
            lines.append(f"- **reference / faster framework: {ratio:.2f}** wall, {cpu_ratio:.2f} CPU time (target <= {TARGETS[net]}: "
                         f"{'met' if ratio <= TARGETS[net] else 'missed'})")
        lines.append(f"- reference / anchor: {base / times['anchor: the products alone (NumPy, batched)'].median:.2f}")
        lines.append("- firing rates: " + ", ".join(f"{n} {probe.states[n]['spikes'].mean():.3f}" for n in spiking))
        lines.append("")
    extra = [f"torch {torch.__version__} ({torch.get_num_threads()} threads)"] if torch is not None else []
    extra += [f"{m} {getattr(_import(m), '__version__', '?')}" for m in ("snntorch", "norse") if _import(m) is not None]
    return "\n".join(lines + environment(extra) + [""])


def main() -> None:
    global THREADS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=11)
    parser.add_argument("--threads", default="1,default", help="comma list of thread counts for BLAS and torch; 'default' keeps the libraries' own")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/simulator.md (the refresh step, make bench)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        THREADS = None if args.threads == "default" else int(args.threads)
        print(section(args.reps))
        return
    parts = ["# Simulator speed", "", "Written by `python -m benchmarks.bench_simulator --write` (`make bench`).", ""]
    for threads in args.threads.split(","):
        env = dict(os.environ)
        if threads != "default":
            env.update({var: threads for var in THREAD_VARS})
        reps = args.reps if threads != "default" else max(3, args.reps // 3)  # torch and BLAS threads contend: slow
        run = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_simulator", "--child", "--threads", threads, "--reps", str(reps)],
            env=env, cwd=ROOT, capture_output=True, text=True, check=True,
        )
        parts.append(run.stdout)
    write("simulator.md", "\n".join(parts), args.write)


if __name__ == "__main__":
    main()
