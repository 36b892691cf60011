"""File I/O speed: nirbridge.save / nirbridge.load against nir.write / nir.read.

The graph is 784-4096-4096-10, Affine + LIF per layer, float32 (about 20M parameters, 80 MB).
Every timing is taken in this one process, the operations interleaved in each repetition so
that machine load hits both sides alike; the table reports medians and ratios (nir time /
nirbridge time). Targets: save >= 5x faster than nir.write; load >= 1.5x faster than nir.read,
each reading the file its own writer produced. The rows reading one and the same file show
where the difference comes from (nir.write compresses with gzip; nirbridge.save does not).

    .venv/bin/python benchmarks/bench_io.py [--reps 5] [--check]

Writes the table to benchmarks/results/io.md; --check exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import nir
import numpy as np

import nirbridge
from nirbridge.io import load, save
from nirbridge.ir import LIF, Affine, Graph, Input, Output

SIZES = (784, 4096, 4096, 10)
RESULTS = Path(__file__).resolve().parent / "results" / "io.md"


def build_graph() -> Graph:
    rng = np.random.default_rng(0)
    nodes: dict = {"input": Input(shape=np.array([SIZES[0]]))}
    edges, prev = [], "input"
    for i, (n_in, n_out) in enumerate(zip(SIZES, SIZES[1:])):
        full = lambda v: np.full(n_out, v, np.float32)  # noqa: E731
        nodes[f"fc{i}"] = Affine(
            weight=rng.standard_normal((n_out, n_in), dtype=np.float32) / np.float32(np.sqrt(n_in)),
            bias=rng.standard_normal(n_out, dtype=np.float32) * np.float32(0.01),
        )
        nodes[f"lif{i}"] = LIF(tau=full(0.01), r=full(1.0), v_leak=full(0.0), v_threshold=full(1.0), v_reset=full(0.0))
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        prev = f"lif{i}"
    nodes["output"] = Output(shape=np.array([SIZES[-1]]))
    edges.append((prev, "output"))
    return Graph(nodes=nodes, edges=edges)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions per operation (median reported)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target ratio is missed")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the Markdown table")
    args = parser.parse_args()

    graph = build_graph()
    nir_graph = graph.to_nir()
    runs: dict[str, list[float]] = {}

    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = Path(tmp) / "nirbridge.nir", Path(tmp) / "nir.nir"
        ops = {
            "save": lambda: save(graph, ours),
            "nir.write": lambda: nir.write(theirs, nir_graph),
            "load own": lambda: load(ours),
            "nir.read own": lambda: nir.read(theirs),
            "load nir file": lambda: load(theirs),
            "nir.read nirbridge file": lambda: nir.read(ours),
            "save gzip": lambda: save(graph, Path(tmp) / "gzip.nir", compression="gzip"),
        }
        for fn in ops.values():  # warm up: page cache, imports, first-touch allocations
            fn()
        for _ in range(args.reps):
            for name, fn in ops.items():
                runs.setdefault(name, []).append(timed(fn))
        sizes = {p.name: p.stat().st_size for p in (ours, theirs)}

    med = {name: statistics.median(values) for name, values in runs.items()}
    rows = [
        ("save (nirbridge: no compression, fsync + rename; nir.write: gzip)", "save", "nir.write", 5.0),
        ("load (each reads its own writer's file)", "load own", "nir.read own", 1.5),
        ("load the file nir.write wrote (gzip)", "load nir file", "nir.read own", None),
        ("load the file nirbridge.save wrote", "load own", "nir.read nirbridge file", None),
        ('save(compression="gzip") vs nir.write', "save gzip", "nir.write", None),
    ]
    params = graph.parameter_count()
    lines = [
        "# File I/O benchmark",
        "",
        f"Graph {'-'.join(map(str, SIZES))}, Affine + LIF, float32: {params:,} parameters; "
        f"file sizes: nirbridge.save {sizes['nirbridge.nir'] / 1e6:.1f} MB, nir.write {sizes['nir.nir'] / 1e6:.1f} MB.",
        f"Median of {args.reps} interleaved repetitions after one warm-up, in one process. "
        f"Python {platform.python_version()}, nir {nir.__version__}, h5py {h5py.__version__} "
        f"(HDF5 {h5py.version.hdf5_version}), nirbridge {nirbridge.__version__}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}.",
        "",
        "| operation | nirbridge (s) | nir (s) | nir / nirbridge | target |",
        "|---|---:|---:|---:|---:|",
    ]
    missed = []
    for label, mine, other, target in rows:
        ratio = med[other] / med[mine]
        lines.append(f"| {label} | {med[mine]:.3f} | {med[other]:.3f} | {ratio:.1f}x | {f'>= {target}x' if target else '-'} |")
        if target and ratio < target:
            missed.append(f"{label}: {ratio:.2f}x < {target}x")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    for line in missed:
        print("target missed:", line, file=sys.stderr)
    return 1 if (missed and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
