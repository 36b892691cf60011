"""`evaluate(..., engine="ray")`: batches sharded over Ray actors.

Imported only when that engine is asked for (`pip install 'nirbridge[ray]'`).

- Cluster: when Ray is already initialised in this process, it is used as it is. Otherwise
  `address=None` starts a local Ray on this machine (shut down again at the end), and
  `address="auto"` (a cluster this machine belongs to, started with `ray start`) or
  `"ray://host:10001"` (Ray Client) joins an existing cluster, whose nodes need nirbridge and
  the backends' frameworks installed.
- Workers: `workers` actors (default: as many as the cluster's CPUs allow), each reserving
  `cpus_per_worker` CPUs and `gpus_per_worker` GPUs. Each builds an `Evaluator` once: it
  converts the source for every backend and keeps the models for all its batches.
- Scheduling: the driver reads the data lazily, one batch per idle worker, so only the
  batches in flight are held; each result is kept under its batch index and the results are
  merged in batch order by `nirbridge.evaluation.merge`, exactly as in-process.
- Faults: a batch whose worker dies (killed process, lost node) goes to another worker, and a
  new worker replaces the dead one; a batch is retried at most `max_retries` times, then
  reported as failed with its index. A batch that fails by itself (bad data, a model raising)
  is reported at once, never retried. No batch is counted twice: a batch's result is taken
  only from the attempt that returned it.
"""

from __future__ import annotations

import os
from collections import deque

import ray
from ray.exceptions import RayActorError, RayError, WorkerCrashedError

from .datasets import Batches
from .errors import EvaluationError


class Worker:
    """One Ray actor: builds its evaluator once (which converts the source for every backend)
    and evaluates the batches it is given."""

    def __init__(self, evaluator, spec):
        self.evaluator = evaluator(spec)

    def pid(self) -> int:
        return os.getpid()

    def evaluate(self, index: int, batch):
        x, y = batch
        return self.evaluator(index, x, y)


def run(spec, items: Batches, *, evaluator, failure, progress_bar, address: str | None = None,
        workers: int | None = None, cpus_per_worker: float = 1, gpus_per_worker: float = 0,
        max_retries: int = 2, progress: bool | None = None) -> list:
    """Every batch of `items` evaluated on Ray actors, in batch order. `evaluator(spec)` makes
    a worker's evaluator (`nirbridge.evaluation.Evaluator`), `failure(index, error)` the result
    of a batch that failed, `progress_bar(total, progress, desc)` the progress bar; they come
    from `nirbridge.evaluation`, which imports this module only when Ray is asked for."""
    if workers is not None and workers < 1:
        raise EvaluationError(f"workers must be at least 1, got {workers}")
    if max_retries < 0:
        raise EvaluationError(f"max_retries must be >= 0, got {max_retries}")
    started = connect(address, workers, cpus_per_worker)
    try:
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1) // max(cpus_per_worker, 1e-9)))
        pool = Pool(evaluator, spec, workers, cpus_per_worker, gpus_per_worker)
        return pool.run(items, max_retries, progress, failure, progress_bar)
    finally:
        if started:
            ray.shutdown()


def connect(address: str | None, workers: int | None, cpus_per_worker: float) -> bool:
    """Join or start Ray unless this process already has it; True when Ray was started or
    joined here (and is to be shut down at the end)."""
    if ray.is_initialized():
        return False
    options = {"include_dashboard": False, "logging_level": "error", "log_to_driver": False}
    if address is None:
        # a local Ray: enough CPUs for the workers asked for, even on a small machine
        wanted = int(-(-(workers or 0) * cpus_per_worker // 1))
        ray.init(num_cpus=max(os.cpu_count() or 1, wanted), **options)
    else:
        ray.init(address=address, **options)
    return True


class Pool:
    """Actors, the batches waiting for one, and the batches in flight."""

    def __init__(self, evaluator, spec, workers: int, cpus: float, gpus: float):
        self.actor_class = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=0, max_task_retries=0)(Worker)
        self.evaluator, self.spec_ref = evaluator, ray.put(spec)
        self.actors = [self.actor_class.remote(evaluator, self.spec_ref) for _ in range(workers)]
        try:  # every worker converts once here; a conversion that fails fails the run
            ray.get([a.pid.remote() for a in self.actors])
        except RayError as exc:
            raise EvaluationError(f"Ray workers could not start: {exc}") from None
        self.replacements = workers * 4  # new actors allowed for dead ones

    def run(self, items: Batches, max_retries: int, progress: bool | None, failure, progress_bar) -> list:
        source = enumerate(items)
        waiting: deque = deque()  # (index, batch ref, attempts so far)
        flying: dict = {}  # task ref -> (actor, index, batch ref, attempts)
        idle = list(self.actors)
        done: dict = {}
        exhausted = False
        with progress_bar(items.total, progress, "evaluate (ray)") as bar:
            while True:
                while idle and (waiting or not exhausted):
                    if not waiting:
                        try:
                            index, batch = next(source)
                        except StopIteration:
                            exhausted = True
                            break
                        waiting.append((index, ray.put(batch), 0))
                    index, ref, attempts = waiting.popleft()
                    actor = idle.pop()
                    flying[actor.evaluate.remote(index, ref)] = (actor, index, ref, attempts)
                if not flying:
                    if waiting:  # every worker died and none could replace them
                        raise EvaluationError(f"no Ray worker left; batches {sorted(i for i, _, _ in waiting)} not evaluated")
                    break
                finished, _ = ray.wait(list(flying), num_returns=1)
                for task in finished:
                    actor, index, ref, attempts = flying.pop(task)
                    try:
                        done[index] = ray.get(task)
                    except (RayActorError, WorkerCrashedError) as exc:
                        # the worker died: its batch goes to another worker, a new worker joins
                        if self.replacements > 0:
                            self.replacements -= 1
                            idle.append(self.actor_class.remote(self.evaluator, self.spec_ref))
                        if attempts + 1 > max_retries:
                            done[index] = failure(index, f"the worker evaluating it died {attempts + 1} times "
                                                         f"(last: {type(exc).__name__}); not retried again")
                        else:
                            waiting.appendleft((index, ref, attempts + 1))
                            continue
                    except RayError as exc:  # failed outside the evaluator's own handling
                        done[index] = failure(index, f"{type(exc).__name__}: {exc}")
                        idle.append(actor)
                    else:
                        idle.append(actor)
                    bar.update(1)
        return [done[i] for i in sorted(done)]
