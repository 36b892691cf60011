"""evaluate(): a converted network on a whole dataset, on every backend, against its source.

    ev = nirbridge.evaluate("net.nir", "digits", backends=["norse", "snntorch", "numpy"])
    ev = nirbridge.evaluate(net, loader, backends=["norse"], sample=x, original=run_net)
    ev = nirbridge.evaluate("net.nir", ("x.npy", "y.npy"), engine="ray", address="auto")
    print(ev); ev.to_json(); ev["norse"].accuracy; ev["norse"].layers["lif1"].differing

Models. Every batch runs on:

- `reference`: the NumPy reference simulating the source graph under its policy (the oracle);
  it records every neuron and spiking node;
- `original` (when given): the source model as you run it, a callable x -> output (time,
  batch, classes) or -> `SimulationResult` (e.g. the trained snnTorch network itself);
- each backend of `backends`: the source converted once per worker (`nirbridge.plan(...)`,
  `.build(strict=False)`; non-strict: an approximate conversion is evaluated, its gap report kept; an unsupported
  one is reported and not run), recording the same nodes as the reference;
- each callable of `models` (name -> callable, as `original`): models made any other way.

The source, against which predictions and output spikes are compared, is `original` when given,
else `reference`. Per node, every model is compared with the reference by `verify`'s rules.

Read-out (`readout`), from the outputs over time (time, batch, classes) of a sample:

- `spike_count` (default): class = argmax_c sum_t y[t, c] (for a spiking output, the spike
  count; for a non-spiking one, the summed value);
- `membrane_sum`: argmax_c sum_t v[t, c] of the neuron node that drives the Output;
- `membrane_max`: argmax_c max_t v[t, c] of that node;
- a callable `SimulationResult -> scores (batch, classes)`.

Ties go to the lowest class.

Per model: `accuracy`; `agreement`, the fraction of samples whose prediction equals the
source's; `output_differing` of `output_compared` (time, sample, output neuron) entries, where
exactly one of the model and the source spiked (for a non-spiking output: where they differ
beyond verify's tolerance); `seconds_per_sample`, time inside the model; and per recorded node
`layers[node]`: spikes emitted and firing rate, and against the reference: differing spike
entries, rounding ties (`near_threshold`), the largest potential difference, whether it passes
verify's rules (`ok`), and the first difference (the lowest sample, its first step, its first
neuron, both potentials and the threshold there).

Engines. `engine=None` runs in this process. `engine="ray"` (`pip install 'nirbridge[ray]'`)
shards batches over Ray actors that each convert once and keep their models; see
`nirbridge.ray_engine`. Both merge per-batch results in batch order, so every count and the
first differences are identical whichever engine ran; only times differ. A batch that fails
(bad data, a model raising) is reported with its index and left out of every total, for every
model alike; the rest is evaluated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backends.registry import backends as installed
from .backends.registry import get_backend
from .compare import ATOL, RTOL, compare, recordable
from .conversion import check, convert, plan, run
from .datasets import Batches, batches, check_batch
from .errors import EvaluationError, NirbridgeError
from .ir import Graph
from .reference import simulate
from .result import SimulationResult
from .semantics import Policy
from .table import table

REFERENCE = "reference"
ORIGINAL = "original"
READOUTS = ("spike_count", "membrane_sum", "membrane_max")
ENGINES = (None, "inprocess", "ray")


# ----------------------------------------------------------------------------- per batch


@dataclass(frozen=True)
class Spec:
    """What every worker needs to evaluate batches (picklable, shipped once per worker)."""

    graph: Graph
    policy: Policy
    backends: tuple[str, ...]
    original: Callable | None
    models: dict[str, Callable]
    readout: str | Callable
    layers: tuple[str, ...]
    output: str
    readout_node: str | None
    record: bool

    @property
    def source(self) -> str:
        return ORIGINAL if self.original is not None else REFERENCE


@dataclass
class LayerStats:
    """One node of one model, summed over batches (see the module docstring)."""

    spikes: int = 0
    entries: int = 0
    differing: int = 0
    compared: int = 0
    near_threshold: int = 0
    max_dv: float | None = None
    ok: bool = True
    first_difference: dict | None = None

    @property
    def rate(self) -> float | None:
        return self.spikes / self.entries if self.entries else None

    @property
    def fraction(self) -> float:
        return self.differing / self.compared if self.compared else 0.0

    def add(self, other: LayerStats, offset: int) -> None:
        """Add a later batch's statistics; its sample indices start at `offset`."""
        self.spikes += other.spikes
        self.entries += other.entries
        self.differing += other.differing
        self.compared += other.compared
        self.near_threshold += other.near_threshold
        if other.max_dv is not None:
            self.max_dv = max(self.max_dv or 0.0, other.max_dv)
        self.ok &= other.ok
        if self.first_difference is None and other.first_difference is not None:
            self.first_difference = other.first_difference | {"sample": other.first_difference["sample"] + offset}


@dataclass
class ModelBatch:
    """One model on one batch."""

    predictions: np.ndarray
    seconds: float
    output_differing: int
    output_compared: int
    layers: dict[str, LayerStats]
    recorded: dict[str, dict[str, np.ndarray]] | None = None


@dataclass
class BatchResult:
    """Every model on one batch, or the error that stopped the batch."""

    index: int
    labels: np.ndarray | None = None
    models: dict[str, ModelBatch] = field(default_factory=dict)
    inputs: np.ndarray | None = None
    error: str | None = None


class Evaluator:
    """Converts the source once for every backend and evaluates batches on every model."""

    def __init__(self, spec: Spec):
        self.spec = spec
        layers = spec.layers
        self.runs: dict[str, Callable[[np.ndarray], SimulationResult]] = {
            REFERENCE: lambda x: simulate(spec.graph, x, policy=spec.policy, record=list(layers)),
        }
        if spec.original is not None:
            self.runs[ORIGINAL] = self._wrap(spec.original)
        for name in spec.backends:
            p = plan(spec.graph, name, policy=spec.policy)
            native = p.build(strict=False, warn=False)  # approximations are in the result's gap reports
            self.runs[name] = lambda x, backend=p.backend, native=native: run(backend, native, x, record=layers)
        for label, fn in spec.models.items():
            self.runs[label] = self._wrap(fn)

    def _wrap(self, fn: Callable) -> Callable[[np.ndarray], SimulationResult]:
        output = self.spec.output

        def run(x):
            out = fn(x)
            if isinstance(out, SimulationResult):
                return out
            if isinstance(out, (tuple, list)):  # e.g. (spikes, membranes): the first is the output
                out = out[0]
            if hasattr(out, "detach"):
                out = out.detach().cpu().numpy()
            return SimulationResult(outputs={output: np.asarray(out)})

        return run

    def __call__(self, index: int, x: Any, y: Any) -> BatchResult:
        """Evaluate batch `index`; any failure becomes the batch's `error`."""
        try:
            return self._evaluate(index, *check_batch(x, y))
        except Exception as exc:  # noqa: BLE001 - reported with the batch index, never retried
            return BatchResult(index, error=f"{type(exc).__name__}: {exc}")

    def _evaluate(self, index: int, x: np.ndarray, y: np.ndarray) -> BatchResult:
        spec = self.spec
        results: dict[str, SimulationResult] = {}
        seconds: dict[str, float] = {}
        for name, model in self.runs.items():
            start = time.perf_counter()
            try:
                results[name] = model(x)
            except Exception as exc:  # noqa: BLE001 - the batch fails, naming the model
                return BatchResult(index, error=f"{name}: {type(exc).__name__}: {exc}")
            seconds[name] = time.perf_counter() - start
            out = results[name].outputs.get(spec.output)
            if out is None or out.ndim < 2 or out.shape[:2] != x.shape[:2]:
                found = "none" if out is None else f"shape {out.shape}"
                raise EvaluationError(f"{name}: output {spec.output!r} must be shaped (time {x.shape[0]}, batch {x.shape[1]}, ...), got {found}")
        reference, source = results[REFERENCE], results[spec.source]
        predictions = {name: readout(spec, r, name) for name, r in results.items()}
        batch = BatchResult(index, labels=y, inputs=x if spec.record else None)
        for name, res in results.items():
            differing, compared = output_difference(source.outputs[spec.output], res.outputs[spec.output])
            layers: dict[str, LayerStats] = {}
            nodes = [n for n in spec.layers if n in res.states]
            comparisons = compare(reference, res, spec.graph, nodes) if name != REFERENCE else {}
            for node in [*nodes, spec.output]:
                state = res.states.get(node, {}) if node != spec.output else {"y": res.outputs[spec.output]}
                stats = LayerStats()
                spikes = state.get("spikes", state.get("y") if node == spec.output and _binary(state["y"]) else None)
                if spikes is not None:
                    stats.spikes, stats.entries = int(np.count_nonzero(spikes)), int(np.size(spikes))
                cmp = comparisons.get(node)
                if cmp is not None:
                    stats.differing, stats.compared = cmp.spike_diffs, cmp.spike_total
                    stats.near_threshold, stats.max_dv, stats.ok = cmp.near_threshold, cmp.max_dv, cmp.ok
                    if not cmp.identical:
                        ref_state = reference.states.get(node, {}) if node != spec.output else {"y": reference.outputs[spec.output]}
                        stats.first_difference = first_difference(ref_state, state, spec.graph, node)
                layers[node] = stats
            recorded = None
            if spec.record:
                recorded = {n: dict(s) for n, s in res.states.items()} | {spec.output: {"y": res.outputs[spec.output]}}
            batch.models[name] = ModelBatch(predictions[name], seconds[name], differing, compared, layers, recorded)
        return batch


def readout(spec: Spec, result: SimulationResult, name: str = "") -> np.ndarray:
    """The predicted class of every sample of a batch (see the module docstring)."""
    if callable(spec.readout):
        scores = np.asarray(spec.readout(result))
    elif spec.readout == "spike_count":
        y = result.outputs[spec.output]
        scores = y.reshape(y.shape[0], y.shape[1], -1).sum(axis=0)
    else:
        v = result.states.get(spec.readout_node, {}).get("v")
        if v is None:
            raise EvaluationError(f"{name}: read-out {spec.readout!r} needs the potential 'v' of node {spec.readout_node!r}, "
                                  "which this model does not record (return a SimulationResult with it)")
        v = v.reshape(v.shape[0], v.shape[1], -1)
        scores = v.sum(axis=0) if spec.readout == "membrane_sum" else v.max(axis=0)
    if scores.ndim != 2:
        raise EvaluationError(f"{name}: read-out scores must be shaped (batch, classes), got {scores.shape}")
    return scores.argmax(axis=1)


def output_difference(source: np.ndarray, other: np.ndarray) -> tuple[int, int]:
    """(differing, compared) entries of two outputs: spikes in only one of them, or, for
    non-spiking outputs, values apart by more than verify's tolerance."""
    a, b = np.asarray(source, np.float64), np.asarray(other, np.float64)
    if a.shape != b.shape:
        raise EvaluationError(f"outputs of different shapes: {a.shape} and {b.shape}")
    if _binary(a) and _binary(b):
        return int(np.count_nonzero((a != 0) != (b != 0))), int(a.size)
    tol = ATOL * max(1.0, float(np.abs(a).max(initial=0.0))) + RTOL * np.abs(a)
    return int(np.count_nonzero(np.abs(a - b) > tol)), int(a.size)


def first_difference(reference: dict[str, np.ndarray], other: dict[str, np.ndarray], graph: Graph, node: str) -> dict | None:
    """Where a node of one batch first differs from the reference: the lowest sample, then its
    first step, then its first neuron (spikes where both have them, else values beyond verify's
    tolerance); with both potentials and the threshold there when known."""
    key = "spikes" if "spikes" in reference and "spikes" in other else ("y" if "y" in reference and "y" in other else "v")
    if key not in reference or key not in other or np.shape(reference[key]) != np.shape(other[key]):
        return None
    a, b = np.asarray(reference[key], np.float64), np.asarray(other[key], np.float64)
    spikes = key == "spikes" or (_binary(a) and _binary(b))
    bad = (a != 0) != (b != 0) if spikes else np.abs(a - b) > ATOL * max(1.0, float(np.abs(a).max(initial=0.0))) + RTOL * np.abs(a)
    if not bad.any():
        return None
    steps, batch = bad.shape[:2]
    flat = bad.reshape(steps, batch, -1)
    sample = int(np.nonzero(flat.any(axis=(0, 2)))[0][0])
    step = int(np.nonzero(flat[:, sample].any(axis=1))[0][0])
    neuron = int(np.nonzero(flat[step, sample])[0][0])
    index = tuple(int(i) for i in np.unravel_index(neuron, a.shape[2:])) if a.ndim > 2 else ()
    out: dict[str, Any] = {"node": node, "sample": sample, "step": step, "neuron": list(index), "observable": key}
    at = (step, sample, *index)
    if spikes:
        out["spiked"] = "reference" if a[at] else "model"
    if "v" in reference and "v" in other and np.shape(reference["v"]) == a.shape == np.shape(other["v"]):
        out["v_reference"], out["v_model"] = float(reference["v"][at]), float(other["v"][at])
    elif not spikes:
        out["value_reference"], out["value_model"] = float(a[at]), float(b[at])
    found = graph.resolve(node)
    threshold = getattr(found[0].nodes[found[1]], "v_threshold", None) if found else None
    if threshold is not None:
        th = np.asarray(threshold, np.float64)
        out["threshold"] = float(th.reshape(-1)[0] if th.size == 1 else np.broadcast_to(th, a.shape[2:])[index])
    return out


def _binary(a: np.ndarray) -> bool:
    return bool(np.all((a == 0) | (a == 1)))


# ----------------------------------------------------------------------------- results


@dataclass
class ModelResult:
    """One model over the whole dataset (see the module docstring)."""

    name: str
    kind: str  # "reference", "original", "backend" or "model"
    samples: int = 0
    correct: int = 0
    agreeing: int = 0
    output_differing: int = 0
    output_compared: int = 0
    seconds: float = 0.0
    layers: dict[str, LayerStats] = field(default_factory=dict)
    predictions: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    error: str | None = None
    report: Any = None  # the GapReport of a backend's conversion

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.samples if self.samples else None

    @property
    def agreement(self) -> float | None:
        return self.agreeing / self.samples if self.samples else None

    @property
    def output_fraction(self) -> float:
        return self.output_differing / self.output_compared if self.output_compared else 0.0

    @property
    def seconds_per_sample(self) -> float | None:
        return self.seconds / self.samples if self.samples else None

    @property
    def ok(self) -> bool:
        return self.error is None and all(s.ok for s in self.layers.values())


@dataclass
class BatchFailure:
    index: int
    error: str


@dataclass
class EvaluationResult:
    """Per model results (`ev[name]`), the batches that failed, and how the run was made."""

    models: dict[str, ModelResult]
    source: str
    labels: np.ndarray
    batches: int
    failed: list[BatchFailure]
    readout: str
    policy: Policy
    engine: str
    data: str
    seconds: float
    recordings: dict[str, Any] | None = None

    def __getitem__(self, name: str) -> ModelResult:
        return self.models[name]

    @property
    def samples(self) -> int:
        return int(len(self.labels))

    @property
    def silent(self) -> list[str]:
        """Spiking nodes of the reference that never fired (a dead network matches anything)."""
        ref = self.models[REFERENCE]
        return [n for n, s in ref.layers.items() if s.entries and s.spikes == 0]

    @property
    def ok(self) -> bool:
        return self.samples > 0 and not self.failed and not self.silent and all(m.ok for m in self.models.values())

    def __str__(self) -> str:
        head = (f"evaluate on {self.samples} samples in {self.batches} batches ({self.data}); engine {self.engine}, "
                f"read-out {self.readout}, source {self.source}: {'OK' if self.ok else 'FAILED'}")
        lines = [head]
        rows = [("model", "accuracy", "agreement", "differing output spikes", "time per sample", "layers vs reference")]
        for m in self.models.values():
            if m.error:
                rows.append((m.name, "-", "-", "-", "-", f"error: {m.error}"))
                continue
            layers = ", ".join(f"{n} {'ok' if s.ok else 'DIFFERENT'} ({s.differing:,} differing)"
                               for n, s in m.layers.items() if s.compared) if m.name != REFERENCE else "(the reference)"
            rows.append((
                m.name, _pct(m.accuracy), "(source)" if m.name == self.source else _pct(m.agreement),
                "(source)" if m.name == self.source else f"{m.output_differing:,} of {m.output_compared:,}",
                "-" if m.seconds_per_sample is None else f"{1e3 * m.seconds_per_sample:.3g} ms", layers,
            ))
        lines.append(table(rows))
        ref = self.models[REFERENCE].layers
        rates = [f"{n} {s.rate:.3f}" for n, s in ref.items() if s.rate is not None]
        if rates:
            lines.append("firing rates (reference): " + ", ".join(rates))
        if self.silent:
            lines.append(f"silent (never fire, so agreement proves nothing): {', '.join(self.silent)}")
        for m in self.models.values():
            for n, s in m.layers.items():
                d = s.first_difference
                if d is not None:
                    lines.append(f"{m.name}: {n} first differs at sample {d['sample']}, step {d['step']}, neuron {tuple(d['neuron'])}"
                                 + (f" ({d['spiked']} spikes" if "spiked" in d else " (")
                                 + (f"; v reference {d['v_reference']:.9g}, {m.name} {d['v_model']:.9g}" if "v_reference" in d else "")
                                 + (f"; threshold {d['threshold']:g}" if "threshold" in d else "") + ")"
                                 + (f"; {s.near_threshold} rounding tie(s)" if s.near_threshold else ""))
        for f in self.failed:
            lines.append(f"batch {f.index} failed: {f.error}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "samples": self.samples, "batches": self.batches, "data": self.data,
            "engine": self.engine, "readout": self.readout, "source": self.source, "seconds": self.seconds,
            "policy": self.policy.model_dump(mode="json"), "silent": self.silent,
            "failed_batches": [{"index": f.index, "error": f.error} for f in self.failed],
            "models": {
                name: {
                    "kind": m.kind, "error": m.error, "ok": m.ok, "samples": m.samples, "accuracy": m.accuracy,
                    "agreement": m.agreement, "output_differing": m.output_differing,
                    "output_compared": m.output_compared, "seconds": m.seconds, "seconds_per_sample": m.seconds_per_sample,
                    "gaps": m.report.to_dict() if m.report is not None else None,
                    "layers": {n: {"spikes": s.spikes, "entries": s.entries, "rate": s.rate, "differing": s.differing,
                                   "compared": s.compared, "near_threshold": s.near_threshold, "max_dv": s.max_dv,
                                   "ok": s.ok, "first_difference": s.first_difference} for n, s in m.layers.items()},
                }
                for name, m in self.models.items()
            },
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def save_recordings(self, folder) -> list[str]:
        """Write each model's recording to `folder/<model>.h5` (NIR data format); returns the paths."""
        import os

        from .recording import save_recording

        if self.recordings is None:
            raise EvaluationError("nothing was recorded: evaluate with record=True")
        os.makedirs(folder, exist_ok=True)
        paths = []
        for name, data in self.recordings.items():
            path = os.path.join(os.fspath(folder), f"{name}.h5")
            save_recording(data, path)
            paths.append(path)
        return paths


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def merge(spec: Spec, results: list[BatchResult], models: dict[str, ModelResult]) -> tuple[np.ndarray, list[BatchFailure], dict | None]:
    """Add per-batch results, in batch order, into `models`; returns the labels of the samples
    evaluated, the failed batches and, with `spec.record`, each model's recording."""
    labels, failed, offset = [], [], 0
    recorded: dict[str, list] = {name: [] for name in models}
    inputs = []
    predictions: dict[str, list[np.ndarray]] = {name: [] for name in models}
    for batch in sorted(results, key=lambda b: b.index):
        if batch.error is not None:
            failed.append(BatchFailure(batch.index, batch.error))
            continue
        source = batch.models[spec.source].predictions
        for name, mb in batch.models.items():
            m = models[name]
            m.samples += len(batch.labels)
            m.correct += int(np.count_nonzero(mb.predictions == batch.labels))
            m.agreeing += int(np.count_nonzero(mb.predictions == source))
            m.output_differing += mb.output_differing
            m.output_compared += mb.output_compared
            m.seconds += mb.seconds
            predictions[name].append(mb.predictions)
            for node, stats in mb.layers.items():
                m.layers.setdefault(node, LayerStats()).add(stats, offset)
            if mb.recorded is not None:
                recorded[name].append(mb.recorded)
        if batch.inputs is not None:
            inputs.append(batch.inputs)
        labels.append(batch.labels)
        offset += len(batch.labels)
    for name, m in models.items():
        if predictions[name]:
            m.predictions = np.concatenate(predictions[name])
    recordings = None
    if spec.record and inputs:
        from .recording import to_nir_data

        x = _stack(inputs)
        recordings = {}
        for name, parts in recorded.items():
            if parts:
                states = {n: {v: _stack([p[n][v] for p in parts]) for v in parts[0][n]} for n in parts[0]}
                out = states.pop(spec.output)
                result = SimulationResult(outputs={spec.output: out["y"]}, states=states)
                recordings[name] = to_nir_data(result, dt=spec.policy.dt, graph=spec.graph, inputs=x)
    return np.concatenate(labels) if labels else np.zeros(0, np.int64), failed, recordings


def _stack(parts: list[np.ndarray]) -> np.ndarray:
    """Batches (T_i, B_i, ...) as one (max T_i, sum B_i, ...), zero after each batch's end."""
    steps = max(p.shape[0] for p in parts)
    return np.concatenate([np.pad(p, [(0, steps - p.shape[0])] + [(0, 0)] * (p.ndim - 1)) for p in parts], axis=1)


# ----------------------------------------------------------------------------- evaluate


def evaluate(
    src: Any,
    data: Any,
    backends: list[str] | None = None,
    *,
    readout: str | Callable = "spike_count",
    original: Callable | None = None,
    models: dict[str, Callable] | None = None,
    policy: Policy | None = None,
    source: str | None = None,
    sample: Any = None,
    batch_size: int = 64,
    record: bool = False,
    engine: str | None = None,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    max_retries: int = 2,
    progress: bool | None = None,
) -> EvaluationResult:
    """Evaluate `src` (anything `convert` takes) on `data` (see `nirbridge.datasets.batches`)
    on every backend of `backends` (default: every installed backend), against the source
    (`original`, else the NumPy reference); see the module docstring.

    `record=True` keeps every model's recorded activity (`result.recordings`, NIR data;
    `result.save_recordings(folder)`). `engine="ray"` runs on Ray: `address` None starts a
    local Ray, "auto" or "ray://host:port" joins a cluster; `workers` actors (default: as many
    as the cluster's CPUs allow), each with `cpus_per_worker` CPUs and `gpus_per_worker` GPUs;
    a batch whose worker dies is retried on another worker up to `max_retries` times.
    `progress`: a progress bar on stderr (None: when stderr is a terminal)."""
    if engine not in ENGINES:
        raise EvaluationError(f"engine must be None, 'inprocess' or 'ray', got {engine!r}")
    if not callable(readout) and readout not in READOUTS:
        raise EvaluationError(f"readout must be one of {', '.join(READOUTS)} or a callable, got {readout!r}")
    started = time.perf_counter()
    graph = convert(src, to="nir", policy=policy, source=source, sample=sample)
    policy = Policy.from_metadata(graph.metadata)
    outputs = list(graph.outputs())
    if len(outputs) != 1:
        raise EvaluationError(f"evaluate needs a graph with one Output node, this one has {len(outputs)}: {', '.join(outputs)}")
    output = outputs[0]
    feeding = [a for a, b in graph.edges if b == output]
    readout_node = feeding[0] if len(feeding) == 1 else None
    layers = tuple(recordable(graph))
    if readout in ("membrane_sum", "membrane_max") and readout_node not in layers:
        raise EvaluationError(f"read-out {readout!r} needs a neuron node feeding the Output {output!r}; "
                              f"{readout_node!r} is {graph.nodes[readout_node].type if readout_node else 'not one node'}")
    models = dict(models or {})
    names = list(installed()) if backends is None else list(backends)
    clash = {REFERENCE, ORIGINAL} & (set(names) | set(models)) or set(names) & set(models)
    if clash:
        raise EvaluationError(f"model names must be unique and not {REFERENCE!r} or {ORIGINAL!r}: {', '.join(sorted(clash))}")
    results = {REFERENCE: ModelResult(REFERENCE, "reference")}
    if original is not None:
        results[ORIGINAL] = ModelResult(ORIGINAL, "original")
    usable = []
    for name in names:
        m = results[name] = ModelResult(name, "backend")
        try:
            m.report = check(graph, to=name, policy=policy)
        except NirbridgeError as exc:
            m.error = str(exc)
            continue
        if m.report.unsupported:
            m.error = "cannot convert: " + "; ".join(f"{g.node}: {g.reason}" for g in m.report.unsupported)
            continue
        if not get_backend(name).can_simulate:
            m.error = f"backend {name} cannot simulate"
            continue
        usable.append(name)
    for label in models:
        results[label] = ModelResult(label, "model")
    spec = Spec(graph, policy, tuple(usable), original, models, readout, layers, output, readout_node, record)
    items = batches(data, batch_size=batch_size)
    if engine == "ray":
        from .ray_engine import run as run_engine

        done = run_engine(spec, items, evaluator=Evaluator, failure=lambda index, error: BatchResult(index, error=error),
                          progress_bar=progress_bar, address=address, workers=workers, cpus_per_worker=cpus_per_worker,
                          gpus_per_worker=gpus_per_worker, max_retries=max_retries, progress=progress)
    else:
        done = run_in_process(spec, items, progress=progress)
    labels, failed, recordings = merge(spec, done, results)
    return EvaluationResult(
        results, spec.source, labels, len(done), failed, readout if isinstance(readout, str) else getattr(readout, "__name__", "callable"),
        policy, engine or "inprocess", items.describe, time.perf_counter() - started, recordings,
    )


def progress_bar(total: int | None, progress: bool | None, desc: str = "evaluate"):
    """A tqdm progress bar on stderr (`progress` None: only when stderr is a terminal)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", disable=None if progress is None else not progress, leave=False)


def run_in_process(spec: Spec, items: Batches, *, progress: bool | None = None) -> list[BatchResult]:
    """Every batch through one `Evaluator` in this process, in order."""
    evaluator = Evaluator(spec)
    done = []
    with progress_bar(items.total, progress) as bar:
        for index, (x, y) in enumerate(items):
            done.append(evaluator(index, x, y))
            bar.update(1)
    return done
