"""Evaluation time in-process vs on Ray with 2 local workers, and Ray's overhead per batch.

    python benchmarks/bench_evaluate.py [--out out/bench] [--repeat 3]

Needs the demo's trained models (`make demo` writes out/transfer/<dataset>/model.nir) and
`nirbridge[ray]`. For each built-in dataset (the whole test split, 360 samples, batches of 64):
`nirbridge.evaluate(model.nir, dataset, backends=["norse", "snntorch", "numpy"])` in this
process and with `engine="ray", workers=2` on a local Ray started once beforehand (its start-up
is reported apart); every count of the two results must be equal. Overhead per batch: the same
graph with no backend (the NumPy reference only) on batches of 1 sample, on Ray with 1 worker
minus in-process, divided by the number of batches. The fastest of `--repeat` runs, 1 torch thread
per process. The table goes to `<out>/evaluate.md` (and, with `--results DIR`, there too).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import nirbridge  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ["norse", "snntorch", "numpy"]


def counts(ev) -> dict:
    def strip(d):
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k not in ("seconds", "seconds_per_sample", "engine")}
        return d

    return strip(ev.to_dict())


def timed(repeat: int, fn):
    """The fastest of `repeat` runs (the least disturbed by other work on the machine) and the
    last result."""
    results, times = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        results.append(fn())
        times.append(time.perf_counter() - start)
    return min(times), results[-1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("out/bench"))
    p.add_argument("--models", type=Path, default=Path("out/transfer"), help="the demo's output folder")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--results", type=Path, help="also copy the table there")
    args = p.parse_args(argv)
    import ray
    import torch

    torch.set_num_threads(1)
    missing = [d for d in ("digits", "digits-dvs") if not (args.models / d / "model.nir").is_file()]
    if missing:
        print(f"no trained model for {', '.join(missing)} under {args.models}: run `make demo` first", file=sys.stderr)
        return 2
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    ray_start = time.perf_counter() - start
    rows = []
    for dataset in ("digits", "digits-dvs"):
        path = args.models / dataset / "model.nir"
        nirbridge.datasets.builtin(dataset)  # build the data once, outside the timings
        here_s, here = timed(args.repeat, lambda: nirbridge.evaluate(path, dataset, backends=BACKENDS, progress=False))
        ray_s, there = timed(args.repeat, lambda: nirbridge.evaluate(path, dataset, backends=BACKENDS, engine="ray",
                                                                   workers=2, progress=False))
        assert counts(here) == counts(there), f"{dataset}: Ray and in-process results differ"
        rows.append((dataset, here.samples, here.batches, here_s, ray_s))
    # overhead per batch: the reference only, one sample per batch; the difference between
    # 360 and 36 batches leaves out what a run costs once (starting the worker, converting)
    path = args.models / "digits" / "model.nir"
    ones = list(nirbridge.datasets.batches("digits", batch_size=1))

    def small(n, engine=None, workers=None):
        return nirbridge.evaluate(path, ones[:n], backends=[], engine=engine, workers=workers, progress=False)

    few, many = len(ones) // 10, len(ones)
    here_few, _ = timed(args.repeat, lambda: small(few))
    here_many, _ = timed(args.repeat, lambda: small(many))
    ray_few, _ = timed(args.repeat, lambda: small(few, "ray", 1))
    ray_many, _ = timed(args.repeat, lambda: small(many, "ray", 1))
    # what a Ray run costs once: 2 workers start (import the frameworks, convert), then one batch of 64
    first = list(nirbridge.datasets.batches("digits", batch_size=64))[:1]
    fixed_s, _ = timed(args.repeat, lambda: nirbridge.evaluate(args.models / "digits" / "model.nir", first, backends=BACKENDS,
                                                               engine="ray", workers=2, progress=False))
    ray.shutdown()
    per_batch_here = (here_many - here_few) / (many - few)
    per_batch_ray = (ray_many - ray_few) / (many - few)
    overhead_ms = 1e3 * (per_batch_ray - per_batch_here)

    lines = [
        "# Evaluation: in-process vs Ray (2 local workers)", "",
        f"Measured by `python benchmarks/bench_evaluate.py` on {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__}, ray {ray.__version__}; 1 torch thread per process; "
        f"fastest of {args.repeat} runs. Models: the demo's trained networks (`out/transfer/<dataset>/model.nir`), "
        f"evaluated on the whole test split on {', '.join(BACKENDS)} plus the NumPy reference; Ray's counts equal "
        f"in-process counts exactly (checked). Ray's start-up ({ray_start:.1f} s) is not included; each Ray run "
        "includes starting its 2 workers (each converts the model once).", "",
        "| dataset | samples | batches | in-process (s) | Ray, 2 workers (s) | speed-up |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for dataset, samples, nb, a, b in rows:
        lines.append(f"| {dataset} | {samples} | {nb} | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
    lines += [
        "", f"What a Ray run costs once: {fixed_s:.1f} s (2 workers start, import the frameworks and convert the "
        "model for the 3 backends, then evaluate one batch of 64).", "",
        f"Overhead per batch: {overhead_ms:.1f} ms (the NumPy reference only, batches of 1 sample, 1 worker: "
        f"{1e3 * per_batch_ray:.2f} ms per batch on Ray against {1e3 * per_batch_here:.2f} ms in-process, "
        f"from the difference between {many} and {few} batches, which leaves out what a run costs once).", "",
    ]
    text = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evaluate.md").write_text(text)
    print(text)
    if args.results:
        args.results.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.out / "evaluate.md", args.results / "evaluate.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
