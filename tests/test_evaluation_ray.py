"""evaluate(engine="ray") on a local Ray with 2 workers on this machine: the same answer as
in-process, a worker killed mid-run (its batch retried elsewhere, no sample lost or counted
twice), a batch that kills every worker it meets, and a bad batch reported once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from test_evaluation import BS, CLASSES, POLICY, N, T, _net, as_batches  # noqa: E402

from nirbridge.evaluation import evaluate  # noqa: E402
from nirbridge.io import save  # noqa: E402
from nirbridge.reference import simulate  # noqa: E402
from nirbridge.semantics import Policy  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("builtin_backends_only")]
WORKERS = 2


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    return (rng.random((T, N, 6)) < 0.35).astype(np.float32), rng.integers(0, CLASSES, N)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (2 workers of 1 CPU each); evaluate uses it as it is."""
    os.environ["NIRBRIDGE_DISABLE_PLUGINS"] = "1"  # workers inherit the driver's environment
    ray.init(num_cpus=WORKERS, include_dashboard=False, logging_level="warning", log_to_driver=False)
    for module in (sys.modules[__name__], sys.modules[as_batches.__module__]):  # test code travels by value
        ray.cloudpickle.register_pickle_by_value(module)
    yield
    ray.shutdown()
    os.environ.pop("NIRBRIDGE_DISABLE_PLUGINS", None)


def counts(ev) -> dict:
    """Everything of a result but the times."""
    def strip(d):
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k not in ("seconds", "seconds_per_sample", "engine")}
        return d

    return strip(ev.to_dict()) | {"predictions": {n: m.predictions.tolist() for n, m in ev.models.items()}}


class Flipper:
    """The reference with one output spike flipped in batch 2 (so counts and first differences
    have something to find); optionally kills the worker process running batch `kill` the
    first `times` times it gets it (SIGKILL, as a crash or the OOM killer would)."""

    def __init__(self, graph, marker: Path | None = None, kill: int | None = None, times: int = 1):
        self.graph, self.marker, self.kill, self.times = graph, marker, kill, times
        self.calls = 0

    def __call__(self, x):
        res = simulate(self.graph, x, policy=POLICY, record=["lif1", "lif2"])
        first = x[:, 0].tobytes()
        if first == self.kill_key:
            tries = len(list(self.marker.parent.glob(self.marker.name + "*")))
            if tries < self.times:
                self.marker.with_name(f"{self.marker.name}.{tries}").touch()
                os.kill(os.getpid(), signal.SIGKILL)
        if first == self.flip_key:
            res.states["lif2"]["spikes"][4, 3, 1] = 1 - res.states["lif2"]["spikes"][4, 3, 1]
            res.outputs["out"][4, 3, 1] = res.states["lif2"]["spikes"][4, 3, 1]
        return res


def flipper(graph, x, marker=None, kill=None, times=1) -> Flipper:
    f = Flipper(graph, marker, kill, times)
    f.flip_key = x[:, 2 * BS].tobytes()  # batch 2, identified by its data (workers see any batch)
    f.kill_key = x[:, kill * BS].tobytes() if kill is not None else None
    return f


def test_ray_gives_the_in_process_answer(local_ray, data):
    x, y = data
    graph = _net()
    args = dict(backends=["numpy"], policy=POLICY, models={"flipped": flipper(graph, x)}, record=True)
    here = evaluate(graph, as_batches(x, y), **args)
    there = evaluate(graph, as_batches(x, y), engine="ray", workers=WORKERS, **args)
    assert there.engine == "ray" and here.engine == "inprocess"
    assert counts(there) == counts(here)
    assert there["flipped"].layers["lif2"].first_difference["sample"] == 2 * BS + 3
    for name in here.recordings:
        a = here.recordings[name].nodes["lif1"].observables["spikes"].data
        np.testing.assert_array_equal(there.recordings[name].nodes["lif1"].observables["spikes"].data, a)


def test_a_killed_worker_loses_no_sample_and_counts_none_twice(local_ray, data, tmp_path):
    x, y = data
    graph = _net()
    here = evaluate(graph, as_batches(x, y), backends=["numpy"], policy=POLICY, models={"flipped": flipper(graph, x)})
    marker = tmp_path / "killed"
    there = evaluate(graph, as_batches(x, y), backends=["numpy"], policy=POLICY, engine="ray", workers=WORKERS,
                     models={"flipped": flipper(graph, x, marker, kill=3)})
    assert len(list(tmp_path.glob("killed*"))) == 1  # the worker with batch 3 was killed once
    assert not there.failed and there.samples == N
    assert counts(there) == counts(here)


def test_a_batch_that_kills_every_worker_is_reported_after_its_retries(local_ray, data, tmp_path):
    x, y = data
    graph = _net()
    marker = tmp_path / "deadly"
    ev = evaluate(graph, as_batches(x, y), backends=[], policy=POLICY, engine="ray", workers=WORKERS, max_retries=1,
                  models={"flipped": flipper(graph, x, marker, kill=1, times=100)})
    assert len(list(tmp_path.glob("deadly*"))) == 2  # tried twice: once and one retry
    assert [f.index for f in ev.failed] == [1] and "died 2 times" in ev.failed[0].error
    assert ev.samples == N - BS and not ev.ok
    np.testing.assert_array_equal(ev.labels, np.concatenate([y[:BS], y[2 * BS:]]))


def test_a_bad_batch_fails_once_and_is_not_retried(local_ray, data, tmp_path):
    x, y = data
    items = as_batches(x, y)
    items[3] = (x[:, 24:32, :5], y[24:32])
    calls = tmp_path / "calls"
    calls.mkdir()

    def counting(batch):  # leaves one file per call, so retries would show
        (calls / f"{batch.shape[2]}-{len(list(calls.iterdir()))}").touch()
        return simulate(_net(), batch, policy=POLICY)

    ev = evaluate(_net(), items, backends=["numpy"], policy=POLICY, engine="ray", workers=WORKERS,
                  models={"counting": counting})
    assert [f.index for f in ev.failed] == [3] and "reference:" in ev.failed[0].error
    assert ev.samples == N - BS
    assert not any(p.name.startswith("5-") for p in calls.iterdir())  # the reference failed first; never retried


def test_evaluate_starts_and_stops_a_local_ray_itself(data, tmp_path):
    """Without a Ray in the process, `engine="ray"` starts a local one and shuts it down; the
    CLI does the same (`--engine ray`) and prints the same counts as in-process."""
    x, y = data
    save(_net().model_copy(update={"metadata": POLICY.to_metadata()}), tmp_path / "net.nir")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    cli = [sys.executable, "-m", "nirbridge.cli", "evaluate", str(tmp_path / "net.nir"), "--data", str(tmp_path / "x.npy"),
           "--labels", str(tmp_path / "y.npy"), "--backends", "numpy", "--batch-size", str(BS), "--json"]
    env = os.environ | {"NIRBRIDGE_DISABLE_PLUGINS": "1"}
    here = subprocess.run(cli, capture_output=True, text=True, env=env)
    there = subprocess.run([*cli, "--engine", "ray", "--workers", "2"], capture_output=True, text=True, env=env)
    assert here.returncode == there.returncode == 0, there.stderr
    import json

    a, b = json.loads(here.stdout), json.loads(there.stdout)
    assert b["engine"] == "ray" and a["samples"] == b["samples"] == N
    strip = lambda d: {k: v for k, v in d.items() if k not in ("seconds", "seconds_per_sample")}  # noqa: E731
    assert {n: strip(m) for n, m in a["models"].items()} == {n: strip(m) for n, m in b["models"].items()}
    assert Policy.model_validate(b["policy"]) == POLICY
