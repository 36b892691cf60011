"""Peak memory of the NumPy reference simulator against the number of time steps.

    python -m benchmarks.bench_memory [--steps 100,1000,10000] [--write]

Speech-like input (the shape of the Spiking Heidelberg Digits): 700 channels, batch 64,
Bernoulli(0.05) spikes held as bool (1 byte per value; each chunk of steps is cast to float32
when it runs); network 700-256-20, Linear + LIF (snnTorch-style parameters), nothing recorded.
Each T runs in a fresh process, which reports its resident memory before `simulate` (Python,
numpy, the graph and the input) and its peak (`ru_maxrss`). Target (issue 15): the peak beyond
the memory before and the output does not grow with T; a row with `record=["lif1"]` shows that
recording keeps that node (its v and spikes, 2 x T x 64 x 256 float32) and nothing else.
`--write` (what `make bench` passes) writes benchmarks/results/memory.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

from benchmarks.common import ROOT, environment, write

MB = 1 << 20


def _rss() -> int:
    """Current resident memory in bytes (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def child(steps: int, record: bool) -> dict:
    from nirbridge.ir import LIF, Graph, Input, Linear, Output
    from nirbridge.reference import simulate
    from nirbridge.semantics import Policy

    rng = np.random.default_rng(0)

    def lif(n):
        full = lambda v: np.full(n, v, np.float32)  # noqa: E731
        return LIF(tau=full(1e-3), r=full(10.0), v_leak=full(0), v_threshold=full(1), v_reset=full(0))

    nodes = {"in": Input(shape=np.array([700])), "fc1": Linear(weight=rng.normal(0, 0.3, (256, 700)).astype(np.float32)),
             "lif1": lif(256), "fc2": Linear(weight=rng.normal(0, 0.3, (20, 256)).astype(np.float32)), "lif2": lif(20),
             "out": Output(shape=np.array([20]))}
    names = list(nodes)
    graph = Graph(nodes=nodes, edges=list(zip(names, names[1:])))
    x = np.empty((steps, 64, 700), bool)
    for t in range(0, steps, 100):  # no float temporary as large as the input: the peak is simulate's
        x[t : t + 100] = rng.random(x[t : t + 100].shape) < 0.05
    before = _rss()
    start = time.perf_counter()
    result = simulate(graph, x, policy=Policy.preset("snntorch"), record=["lif1"] if record else ())
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    kept = result.output.nbytes + sum(a.nbytes for s in result.states.values() for a in s.values())
    return {"steps": steps, "record": record, "input": x.nbytes, "before": before, "peak": peak, "kept": kept,
            "seconds": seconds, "rate": float(result.output.mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="100,1000,10000")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/memory.md (the refresh step, make bench)")
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], bool(args.child[1]))))
        return
    steps = [int(s) for s in args.steps.split(",")]
    runs = [(t, 0) for t in steps] + [(steps[len(steps) // 2], 1)]
    rows = []
    for t, record in runs:
        out = subprocess.run([sys.executable, "-m", "benchmarks.bench_memory", "--child", str(t), str(record)],
                             cwd=ROOT, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout))
    lines = ["# Simulator memory", "", "Written by `python -m benchmarks.bench_memory --write` (`make bench`). Speech-like input: 700 channels,"
             " batch 64, Bernoulli(0.05) spikes as bool; network 700-256-20 Linear + LIF; each T in a fresh process. *before*: resident"
             " memory before `simulate` (Python, numpy, graph, input); *peak*: `ru_maxrss`; *kept*: the outputs and recorded states"
             " `simulate` returns.", "",
             "| T | record | input (bool) MB | before simulate MB | peak RSS MB | outputs + records MB | peak - before - kept MB | simulate s |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        extra = (r["peak"] - r["before"] - r["kept"]) / MB
        lines.append(f"| {r['steps']:,} | {'lif1' if r['record'] else '-'} | {r['input'] / MB:.1f} | {r['before'] / MB:.0f} | {r['peak'] / MB:.0f} | "
                     f"{r['kept'] / MB:.1f} | {extra:.0f} | {r['seconds']:.2f} |")
    plain = [r for r in rows if not r["record"]]
    extras = [(r["peak"] - r["before"] - r["kept"]) / MB for r in plain]
    lines += ["", f"- simulate's own memory (peak - before - outputs) from T = {plain[0]['steps']:,} to {plain[-1]['steps']:,}: "
              f"{extras[0]:.0f} MB to {extras[-1]:.0f} MB (target: independent of T)",
              f"- output firing rate {plain[-1]['rate']:.3f}", ""] + environment() + [""]
    write("memory.md", "\n".join(lines), args.write)


if __name__ == "__main__":
    main()
