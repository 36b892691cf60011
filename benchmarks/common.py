"""What the benchmarks share: interleaved timing with medians and spread, the machine's
description, and writing a results file (only when asked: `make bench` passes --write)."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Timing:
    """Seconds of one implementation over the repetitions of a run: wall-clock `times` and the
    process's CPU time `cpu` (all its threads; on a shared machine, waiting for a core counts
    in the first and not in the second)."""

    times: tuple[float, ...]
    cpu: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    def ms(self) -> str:
        """`median (min-max)` in milliseconds."""
        return f"{1e3 * self.median:.1f} ({1e3 * min(self.times):.1f}-{1e3 * max(self.times):.1f})"


def interleaved(fns: dict[str, Callable[[], object]], reps: int) -> dict[str, Timing]:
    """Time every function `reps` times, one after the other within each repetition (so load
    on a shared machine hits all of them alike), after one warm-up call each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: Timing(tuple(times[name]), tuple(cpu[name])) for name in fns}


def environment(extra: list[str] = ()) -> list[str]:
    """Markdown lines describing the machine, the load and the library versions."""
    import nirbridge

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    versions = [f"numpy {np.__version__}", f"nirbridge {nirbridge.__version__}", *extra]
    return [
        f"- machine: {platform.machine()}, {os.cpu_count()} cores visible, Python {platform.python_version()};"
        f" load average when written (1, 5, 15 min): {load} (the cores are shared with other work)",
        f"- versions: {', '.join(versions)}",
    ]


def write(name: str, text: str, enabled: bool) -> None:
    """Print `text`; write it to benchmarks/results/<name> when `enabled` (the refresh step)."""
    print(text)
    if enabled:
        path = RESULTS / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.rstrip() + "\n")
        print(f"written to {path.relative_to(ROOT)}", file=sys.stderr)
