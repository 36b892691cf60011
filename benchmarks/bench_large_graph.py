"""Large graphs: a chain of N nodes through save, load (with validation) and simulate.

    python -m benchmarks.bench_large_graph [--nodes 10000,100000] [--write]

The chain: Input(4) -> N nodes alternating Linear(4 x 4) and LIF(4) -> Output, every node its
own parameter arrays (as a file holds them). For each N one process builds and validates the
graph in memory (`Graph(...)`) and writes it with `nirbridge.save`; a fresh process then does
what a user does with the file: `nirbridge.load` (which validates) and simulate for T = 10
steps, batch 2, with the `nir` preset and impulse input, so that a spike at the input crosses
the whole chain within the step (the output fires: every node computed something). Times are
single runs of each stage; the peak resident memory is that second process's `ru_maxrss`. A
third process runs simulate alone on the chain built in memory, for its own time and memory. Targets (issue 10): for
N = 100,000, load + validate + simulate under 10 s, memory under 10x the file size; time
near-linear in N (compare the per-node times of the two sizes). `--write` (what `make bench`
passes) writes benchmarks/results/large_graph.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import ROOT, environment, write

WIDTH, STEPS, BATCH = 4, 10, 2


def chain(n: int):
    from nirbridge.ir import LIF, Graph, Input, Linear, Output

    nodes = {"in": Input(shape=np.array([WIDTH]))}
    for i in range(n):
        if i % 2 == 0:
            nodes[f"n{i}"] = Linear(weight=np.eye(WIDTH, dtype=np.float32))
        else:
            full = lambda v: np.full(WIDTH, v, np.float32)  # noqa: E731
            nodes[f"n{i}"] = LIF(tau=full(1e-3), r=full(1.0), v_leak=full(0), v_threshold=full(0.5), v_reset=full(0))
    nodes["out"] = Output(shape=np.array([WIDTH]))
    names = list(nodes)
    return Graph(nodes=nodes, edges=list(zip(names, names[1:])))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def simulate_only(n: int) -> dict:
    """The chain built in memory, then simulate alone: its time and the memory it adds."""
    import nirbridge

    graph = chain(n)
    x = np.zeros((STEPS, BATCH, WIDTH), np.float32)
    x[2, 0, 0] = 1.0
    before = _rss()
    start = time.perf_counter()
    nirbridge.simulate(graph, x, policy=nirbridge.Policy.preset("nir", dt=1e-4, input="impulse"))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "added": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before, "before": before}


def write_file(n: int, path: str) -> dict:
    """Build and validate the chain in memory, save it to `path`: the times of both stages."""
    import nirbridge

    times = {}
    start = time.perf_counter()
    graph = chain(n)
    times["build + validate"] = time.perf_counter() - start
    start = time.perf_counter()
    nirbridge.save(graph, path)
    times["save"] = time.perf_counter() - start
    return {"times": times, "file": os.path.getsize(path)}


def load_and_simulate(path: str) -> dict:
    """What a user does with the file, in a fresh process: load (validating), simulate; the
    times and the peak resident memory of the whole process."""
    import nirbridge

    times = {}
    start = time.perf_counter()
    loaded = nirbridge.load(path)
    times["load + validate"] = time.perf_counter() - start
    x = np.zeros((STEPS, BATCH, WIDTH), np.float32)
    x[2, 0, 0] = 1.0
    start = time.perf_counter()
    result = nirbridge.simulate(loaded, x, policy=nirbridge.Policy.preset("nir", dt=1e-4, input="impulse"))
    times["simulate"] = time.perf_counter() - start
    assert result.output[2, 0, 0] == 1 and result.output.sum() == 1, "the spike must cross the chain"
    return {"times": times, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _child(*args: str, timeout: float) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_large_graph", *args],
                         cwd=ROOT, capture_output=True, text=True, check=True, timeout=timeout)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="10000,100000")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per size before it is reported as not finished")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/large_graph.md (the refresh step, make bench)")
    parser.add_argument("--write-file", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--load-and-simulate", help=argparse.SUPPRESS)
    parser.add_argument("--simulate-only", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_file:
        print(json.dumps(write_file(int(args.write_file[0]), args.write_file[1])))
        return
    if args.load_and_simulate:
        print(json.dumps(load_and_simulate(args.load_and_simulate)))
        return
    if args.simulate_only:
        print(json.dumps(simulate_only(args.simulate_only)))
        return
    rows = []
    for n in (int(s) for s in args.nodes.split(",")):
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "chain.nir")
                written = _child("--write-file", str(n), path, timeout=args.timeout)
                used = _child("--load-and-simulate", path, timeout=args.timeout)
            rows.append({"nodes": n, "times": written["times"] | used["times"], "file": written["file"], "peak": used["peak"],
                         "alone": _child("--simulate-only", str(n), timeout=args.timeout)})
        except subprocess.TimeoutExpired:
            rows.append({"nodes": n, "timeout": args.timeout})
        except subprocess.CalledProcessError as exc:
            rows.append({"nodes": n, "error": exc.stderr.strip().splitlines()[-1]})
    stages = ("build + validate", "save", "load + validate", "simulate")
    lines = ["# Large graphs", "", "Written by `python -m benchmarks.bench_large_graph --write` (`make bench`). A chain of N nodes "
             f"(Linear {WIDTH}x{WIDTH} and LIF({WIDTH}) alternating), each N in a fresh process; simulate: T = {STEPS}, batch {BATCH}. "
             "Single runs of each stage, seconds; peak RSS: the process that loads and simulates.", "",
             "| N | " + " | ".join(stages) + " | load + simulate | target | file MB | peak RSS MB | peak / file |",
             "|---:|" + "---:|" * (len(stages) + 6)]
    for r in rows:
        if "times" not in r:
            lines.append(f"| {r['nodes']:,} | " + (f"not finished in {r['timeout']:.0f} s" if "timeout" in r else f"failed: {r['error']}") + " |")
            continue
        t = r["times"]
        total = t["load + validate"] + t["simulate"]
        target = "< 10 s" if r["nodes"] >= 100_000 else ""
        lines.append(f"| {r['nodes']:,} | " + " | ".join(f"{t[s]:.2f}" for s in stages) + f" | **{total:.2f}** | {target} | "
                     f"{r['file'] / 2**20:.1f} | {r['peak'] / 2**20:.0f} | {r['peak'] / r['file']:.1f} |")
    done = [r for r in rows if "times" in r]
    lines.append("")
    for r in done:
        alone = r["alone"]
        lines.append(f"- simulate alone, N = {r['nodes']:,} (graph built in memory, fresh process): {alone['seconds']:.2f} s, "
                     f"{alone['added'] / 2**20:.0f} MB added to the {alone['before'] / 2**20:.0f} MB before it")
    if len(done) > 1:
        for stage in stages:
            per_node = ", ".join(f"{1e6 * r['times'][stage] / r['nodes']:.0f} us at N = {r['nodes']:,}" for r in done)
            lines.append(f"- {stage} per node: {per_node}")
    lines += [""] + environment() + [""]
    write("large_graph.md", "\n".join(lines), args.write)


if __name__ == "__main__":
    main()
