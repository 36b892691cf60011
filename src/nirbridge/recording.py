"""Recorded activity in NIR's own data format (`nir.NIRGraphData`), and runs compared with it.

A recording holds, per node of a graph, named observables over time for a set of samples:

    nir.NIRGraphData(nodes={
        "input": NIRNodeData({"y": TimeGriddedData(x, dt)}),            # what drove the run
        "lif1":  NIRNodeData({"spikes": TimeGriddedData(bool, dt), "v": TimeGriddedData(float, dt)}),
        "sub":   NIRGraphData({"lif": ...}),                             # a nested graph's node "sub.lif"
        "output": NIRNodeData({"y": ...}),
    })

Observables are named as in `SimulationResult`: `spikes` (binary), `v` (membrane potential),
`I` (synaptic current), `y` (the value of a stateless node: Input, Output, Linear, ...).
`TimeGriddedData.data` is shaped (samples, steps, neurons): a state (time, batch, *shape) is
stored transposed, its node shape flattened; reading it back restores the node's shape from the
graph. `EventData` (spike times) is read as well and put on the time grid: an event at time t
falls in step floor(t / dt), rounded to 1e-6 steps so that times written as k * dt stay in
step k (nir 1.0.8's own `to_time_gridded` floors without rounding and moves 6 % of such
events one step early).

`save_recording` writes the layout `nir.write_data` writes (so `nir.read_data` reads it; nir
1.0.8's own writer recurses forever on nested graphs), atomically, like `nirbridge.save`.
`load_recording` reads it as safely as `nirbridge.load` reads graphs: the same walker checks
every link, external storage, virtual datasets, filters and the sizes datasets declare before
any data is read (`nirbridge.io.open_checked`), and every `__type__` and attribute is checked.

`verify_against(src, recording)` runs the NumPy reference on the recording's input and compares
it, node by node, with what was recorded, under the rules and with the report of `verify`.
"""

from __future__ import annotations

import math
import os
from typing import Any

import h5py
import nir
import numpy as np

from .atomic import write_bytes
from .compare import compare, firing_rates
from .conversion import convert
from .errors import NirbridgeError, NirFormatError, Problem, SimulationError
from .io import DEFAULT_MAX_ARRAY_BYTES, DEFAULT_MAX_DEPTH, DEFAULT_MAX_TOTAL_BYTES, hdf5_bytes, open_checked
from .ir import Graph
from .reference import simulate
from .result import SimulationResult
from .semantics import Policy
from .verification import BackendVerification, VerifyReport

#: observables the comparison understands, as in SimulationResult
OBSERVABLES = ("spikes", "v", "I", "y")
_STEP_ROUNDING = 6  # decimals of t / dt kept before flooring event times to steps


# ----------------------------------------------------------------------------- to and from NIR data


def to_nir_data(result: SimulationResult, *, dt: float, graph: Graph | None = None,
                inputs: dict[str, np.ndarray] | np.ndarray | None = None):
    """A `nir.NIRGraphData` of a simulation: every recorded state, every output and, when given,
    the inputs (one array for the graph's single Input, or a dict by Input name), each array
    (time, batch, *shape) stored as `TimeGriddedData` (batch, time, neurons); spikes as bool.
    With `graph`, nodes of nested graphs (dotted names) go into nested `NIRGraphData`."""
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise NirbridgeError(f"dt must be a positive number, got {dt!r}")
    nodes: dict[str, dict[str, np.ndarray]] = {}
    if inputs is not None:
        if not isinstance(inputs, dict):
            names = list(graph.inputs()) if graph is not None else ["input"]
            if len(names) != 1:
                raise SimulationError(f"graph has {len(names)} Input nodes; give the inputs as a dict by name")
            inputs = {names[0]: inputs}
        for name, x in inputs.items():
            nodes.setdefault(name, {})["y"] = np.asarray(x)
    for name, states in result.states.items():
        nodes.setdefault(name, {}).update({var: np.asarray(v) for var, v in states.items()})
    for name, y in result.outputs.items():
        nodes.setdefault(name, {})["y"] = np.asarray(y)
    tree: dict[str, Any] = {}
    for name, observables in nodes.items():
        here = tree
        *outer, leaf = _path(graph, name)
        for part in outer:
            here = here.setdefault(part, {})
        here[leaf] = nir.NIRNodeData({var: _gridded(a, dt, f"{name}.{var}") for var, a in observables.items()})
    return _graph_data(tree)


def _graph_data(tree: dict[str, Any]):
    return nir.NIRGraphData({k: v if isinstance(v, nir.NIRNodeData) else _graph_data(v) for k, v in tree.items()})


def _path(graph: Graph | None, name: str) -> list[str]:
    """The keys under which node `name` sits in nested graph data (a nested graph's node
    "sub.lif" -> ["sub", "lif"]; a top-level node whose own name holds dots stays one key)."""
    if graph is None or name in graph.nodes:
        return [name]
    head, sep, rest = name.partition(".")
    while sep:
        sub = graph.nodes.get(head)
        if isinstance(sub, Graph) and sub.resolve(rest):
            return [head, *_path(sub, rest)]
        more, sep, rest = rest.partition(".")
        head = f"{head}.{more}"
    return [name]


def _gridded(a: np.ndarray, dt: float, where: str):
    if a.ndim < 2:
        raise SimulationError(f"{where}: expected an array shaped (time, batch, ...), got shape {a.shape}")
    data = np.moveaxis(a, 1, 0).reshape(a.shape[1], a.shape[0], -1)
    if where.endswith(".spikes"):
        data = data != 0
    return nir.TimeGriddedData(np.ascontiguousarray(data), float(dt))


def from_nir_data(data, graph: Graph, *, dt: float | None = None, name: str = "recording"):
    """The activity of a `nir.NIRGraphData` in simulation form, checked against `graph`:
    returns (result, inputs, dt, problems): a `SimulationResult` (Output nodes in `outputs`,
    other nodes in `states`, arrays (time, batch, *node shape)), the Input nodes' data by name,
    the recording's dt (None when it holds events only; `dt` puts events on a grid), and the
    observables that could not be used (unknown names, unknown nodes), as `Problem`s.
    Shapes that do not fit the graph raise `NirFormatError` naming the node."""
    flat: dict[str, dict[str, Any]] = {}

    def walk(d, prefix: str) -> None:
        for key, node in d.nodes.items():
            if isinstance(node, nir.NIRGraphData):
                walk(node, f"{prefix}{key}.")
            else:
                flat[prefix + key] = dict(node.observables)

    walk(data, "")
    steps = {o.dt for obs in flat.values() for o in obs.values() if isinstance(o, nir.TimeGriddedData)}
    if len(steps) > 1:
        raise NirFormatError(f"observables recorded at different time steps: dt = {sorted(steps)}", file=name)
    found_dt = steps.pop() if steps else None
    grid_dt = dt if dt is not None else found_dt
    outputs, states, inputs, problems = {}, {}, {}, []
    shapes: dict[str, tuple[int, ...]] = {}
    inferred: dict[int, dict] = {}  # shapes of each (sub)graph, inferred once
    for node_name, observables in flat.items():
        resolved = graph.resolve(node_name)
        if resolved is None:
            problems.append(Problem(f"nodes.{node_name}", "no such node in the graph; not compared"))
            continue
        sub, leaf = resolved
        node = sub.nodes[leaf]
        shape = inferred.setdefault(id(sub), sub.shapes())[leaf][1]
        for var, obs in observables.items():
            where = f"nodes.{node_name}.{var}"
            if var not in OBSERVABLES and not (node.type == "Input" and var == "spikes"):
                problems.append(Problem(where, f"unknown observable (known: {', '.join(OBSERVABLES)}); not compared"))
                continue
            array = _time_major(obs, grid_dt, shape, where, name)
            shapes[where] = array.shape[:2]
            if node.type == "Input":
                inputs[node_name] = array.astype(np.float32)
            elif node.type == "Output" and var == "y":
                outputs[node_name] = array
            else:
                states.setdefault(node_name, {})[var] = array
    if len(set(shapes.values())) > 1:
        detail = ", ".join(f"{w}: {s}" for w, s in shapes.items())
        raise NirFormatError(f"observables differ in (steps, samples): {detail}", file=name)
    return SimulationResult(outputs=outputs, states=states), inputs, found_dt, problems


def _time_major(obs, dt: float | None, shape, where: str, name: str) -> np.ndarray:
    """One observable as (time, batch, *shape)."""
    if isinstance(obs, nir.TimeGriddedData):
        grid = np.asarray(obs.data)
    else:
        if dt is None:
            raise NirFormatError(problems=[Problem(where, "event data needs a time step to compare: pass dt")], file=name)
        grid = events_to_grid(obs, dt, where=where, name=name)
    neurons = math.prod(shape) if shape is not None else grid.shape[2]
    if grid.shape[2] != neurons:
        raise NirFormatError(problems=[Problem(where, f"{grid.shape[2]} neurons recorded, the node has {neurons} (shape {shape})")], file=name)
    array = np.moveaxis(grid, 0, 1)
    array = array.reshape(array.shape[:2] + (tuple(shape) if shape is not None else (neurons,)))
    return array.astype(np.float32) if array.dtype == bool else array


def events_to_grid(events, dt: float, *, where: str = "", name: str | None = None) -> np.ndarray:
    """`EventData` (or `ValuedEventData`) on a time grid: (samples, round(t_max / dt), neurons),
    1 (or the event's value) where an event falls in step floor(t / dt)."""
    idx, time = np.asarray(events.idx), np.asarray(events.time, dtype=np.float64)
    steps_total = int(round(events.t_max / dt))
    valued = isinstance(events, nir.ValuedEventData)
    grid = np.zeros((idx.shape[0], steps_total, int(events.n_neurons)), dtype=np.float64 if valued else bool)
    valid = (idx != -1) & np.isfinite(time)
    step = np.floor(np.round(time / dt, _STEP_ROUNDING)).astype(np.int64)
    sample = np.broadcast_to(np.arange(idx.shape[0])[:, None], idx.shape)
    bad = valid & ((idx < 0) | (idx >= events.n_neurons) | (step < 0) | (step >= steps_total))
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        msg = f"event {list(i)} (neuron {int(idx[i])}, t = {time[i]:g}) lies outside {int(events.n_neurons)} neurons x [0, t_max = {events.t_max:g})"
        raise NirFormatError(problems=[Problem(where, msg)], file=name)
    grid[sample[valid], step[valid], idx[valid]] = np.asarray(events.value)[valid] if valued else True
    return grid


def _gridded_dt(data) -> float | None:
    """The time step of a recording's time-gridded data (None when it holds events only)."""
    def walk(d):
        for node in d.nodes.values():
            if isinstance(node, nir.NIRGraphData):
                yield from walk(node)
            else:
                yield from (o.dt for o in node.observables.values() if isinstance(o, nir.TimeGriddedData))

    return next(walk(data), None)


# ----------------------------------------------------------------------------- files


def save_recording(data, path: str | os.PathLike, *, compression: str | None = None) -> None:
    """Write a `nir.NIRGraphData` to `path` atomically in the layout of `nir.write_data`
    (`nir.read_data` reads it). `compression`: None (default) or "gzip"."""
    if not isinstance(data, nir.NIRGraphData):
        raise TypeError(f"save_recording() takes a nir.NIRGraphData, got {type(data).__name__} (see to_nir_data)")
    options = {"compression": compression} if compression else {}
    write_bytes(path, hdf5_bytes(lambda f: _write_graph(f, data, options)))  # HDF5 never writes to disk itself (see hdf5_bytes)


def _write_graph(group: h5py.Group, data, options: dict) -> None:
    group.attrs["__type__"] = "NIRGraphData"
    nodes = group.create_group("nodes", track_order=True)
    for key, node in data.nodes.items():
        _check_key(key)
        sub = nodes.create_group(key, track_order=True)
        if isinstance(node, nir.NIRGraphData):
            _write_graph(sub, node, options)
            continue
        sub.attrs["__type__"] = "NIRNodeData"
        observables = sub.create_group("observables", track_order=True)
        for var, obs in node.observables.items():
            _check_key(var)
            g = observables.create_group(var)
            g.attrs["__type__"] = type(obs).__name__
            if isinstance(obs, nir.TimeGriddedData):
                g.create_dataset("data", data=np.asarray(obs.data), **options)
                g.attrs["dt"] = float(obs.dt)
            else:
                for field in ("idx", "time") + (("value",) if isinstance(obs, nir.ValuedEventData) else ()):
                    g.create_dataset(field, data=np.asarray(getattr(obs, field)), **options)
                g.attrs["n_neurons"] = int(obs.n_neurons)
                g.attrs["t_max"] = float(obs.t_max)


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not key or "/" in key or key == "." or "\x00" in key:
        raise NirbridgeError(f"recording: node and observable names must be non-empty strings without '/' or NUL, got {key!r}")


def load_recording(
    path: str | os.PathLike,
    *,
    max_array_bytes: int = DEFAULT_MAX_ARRAY_BYTES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
):
    """Read a NIR data file (`nir.write_data`'s layout) into a `nir.NIRGraphData`, refusing
    unsafe or oversized files before reading any data (`UnsafeFileError`,
    `ResourceLimitError`) and malformed ones with the place named (`NirFormatError`)."""
    name = os.fspath(path)
    with open_checked(name, max_array_bytes=max_array_bytes, max_total_bytes=max_total_bytes,
                      max_levels=3 * max_depth + 8) as tree:
        return _Decoder(name, max_depth).graph(tree, "", 0)


class _Decoder:
    def __init__(self, name: str, max_depth: int):
        self.name, self.max_depth = name, max_depth

    def fail(self, where: str, msg: str):
        raise NirFormatError(problems=[Problem(where or "(root)", msg)], file=self.name)

    def attr(self, obj, key: str, where: str):
        try:
            return obj.attribute(key)
        except NirFormatError as exc:
            self.fail(where, str(exc))

    def kind(self, obj, where: str, allowed: tuple[str, ...]) -> str:
        kind = self.attr(obj, "__type__", where)
        if kind not in allowed:
            found = "no __type__ attribute" if kind is None else f"__type__ {kind!r}"
            self.fail(where, f"expected {' or '.join(allowed)}, found {found}" + ("" if where else " (not a NIR data file?)"))
        return kind

    def group(self, obj, key: str, where: str):
        item = obj.children.get(key) if obj.children is not None else None
        if item is None or item.children is None:
            self.fail(f"{where}.{key}".lstrip("."), "missing group")
        return item

    def graph(self, obj, where: str, level: int):
        if level > self.max_depth:
            self.fail(where, f"graph data nested deeper than {self.max_depth} levels (max_depth)")
        self.kind(obj, where, ("NIRGraphData",))
        self.only(obj, where, ("nodes",))
        nodes = {}
        for key, item in self.group(obj, "nodes", where).children.items():
            at = f"{where}.nodes.{key}".lstrip(".")
            if item.children is None:
                self.fail(at, "must be a group, found a dataset")
            if self.kind(item, at, ("NIRNodeData", "NIRGraphData")) == "NIRGraphData":
                nodes[key] = self.graph(item, at, level + 1)
            else:
                self.only(item, at, ("observables",))
                observables = {}
                for var, obs in self.group(item, "observables", at).children.items():
                    observables[var] = self.observable(obs, f"{at}.observables.{var}")
                nodes[key] = nir.NIRNodeData(observables)
        return nir.NIRGraphData(nodes)

    def only(self, obj, where: str, keys: tuple[str, ...]) -> None:
        for key in obj.children:
            if key not in keys:
                self.fail(f"{where}.{key}".lstrip("."), f"unknown key (expected {', '.join(keys)})")

    def observable(self, obj, where: str):
        if obj.children is None:
            self.fail(where, "must be a group, found a dataset")
        kind = self.kind(obj, where, ("TimeGriddedData", "EventData", "ValuedEventData"))
        if kind == "TimeGriddedData":
            self.only(obj, where, ("data",))
            data = self.array(obj, "data", where, "biuf", 3)
            return nir.TimeGriddedData(data, self.number(obj, "dt", where, positive=True))
        fields = ("idx", "time") + (("value",) if kind == "ValuedEventData" else ())
        self.only(obj, where, fields)
        idx = self.array(obj, "idx", where, "iu", 2)
        time = self.array(obj, "time", where, "f", 2)
        n_neurons = self.number(obj, "n_neurons", where, integer=True)
        t_max = self.number(obj, "t_max", where)
        arrays = {"idx": idx, "time": time}
        if kind == "ValuedEventData":
            arrays["value"] = self.array(obj, "value", where, "biuf", 2)
        if len({a.shape for a in arrays.values()}) != 1:
            self.fail(where, "idx, time" + (" and value" if "value" in arrays else "") + " must have the same shape, got "
                      + ", ".join(f"{k} {a.shape}" for k, a in arrays.items()))
        if kind == "ValuedEventData":
            return nir.ValuedEventData(idx, time, n_neurons, t_max, arrays["value"])
        return nir.EventData(idx, time, n_neurons, t_max)

    def array(self, obj, key: str, where: str, kinds: str, ndim: int) -> np.ndarray:
        item = obj.children.get(key)
        at = f"{where}.{key}"
        if item is None:
            self.fail(at, "missing")
        if item.children is not None or item.shape is None or item.is_string or item.dtype.kind not in kinds:
            found = "a group" if item.children is not None else f"{item.dtype} of shape {item.shape}"
            self.fail(at, f"must be a numeric array, got {found}")
        if len(item.shape) != ndim:
            self.fail(at, f"must have {ndim} dimensions, got shape {item.shape}")
        data = item.read()
        if data.dtype.kind == "f" and key != "time" and not np.isfinite(data).all():
            index = [int(i) for i in np.argwhere(~np.isfinite(data))[0]]
            self.fail(f"{at}{index}", f"must be finite, got {data[tuple(index)]}")
        return data

    def number(self, obj, key: str, where: str, *, positive: bool = False, integer: bool = False):
        value = self.attr(obj, key, f"{where}.{key}")
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ok and integer:
            ok = float(value).is_integer() and value >= 0
        if ok and positive:
            ok = value > 0
        if not ok:
            want = "a non-negative integer" if integer else ("a positive number" if positive else "a finite number")
            self.fail(f"{where}.{key}", f"attribute must be {want}, got {value!r}")
        return int(value) if integer else float(value)


# ----------------------------------------------------------------------------- verify against


def verify_against(src: Any, recording: Any, *, policy=None, dt: float | None = None,
                   inputs: np.ndarray | dict | None = None, source: str | None = None, sample: Any = None,
                   label: str | None = None):
    """Compare a recording (a path, or a `nir.NIRGraphData`) with the NumPy reference running
    `src` (anything `convert` takes) on the recording's input, node by node, under the rules of
    `verify`; returns a `VerifyReport` whose one result is the recording.

    Semantics: `policy` (else the one `convert` chooses for `src`), stepped at the recording's
    dt (its time-gridded data) unless `dt` is given. The input is the recording's Input node
    data unless `inputs` is given. Only the recorded observables are compared; recorded nodes
    the graph lacks, and a dt that differs from the recording's, are listed in `notes`."""
    name = os.fspath(recording) if isinstance(recording, (str, os.PathLike)) else "recording"
    data = load_recording(recording) if isinstance(recording, (str, os.PathLike)) else recording
    graph = convert(src, to="nir", policy=policy, source=source, sample=sample)
    policy = Policy.from_metadata(graph.metadata)
    step = dt or _gridded_dt(data) or policy.dt
    result, recorded_inputs, found_dt, problems = from_nir_data(data, graph, dt=step, name=name)
    if step != policy.dt:
        policy = Policy(**{**policy.model_dump(), "dt": step})
    if inputs is None:
        if not recorded_inputs:
            raise NirFormatError(f"holds no input (no observable of {', '.join(graph.inputs()) or 'an Input node'}); pass the input", file=name)
        inputs = recorded_inputs if len(recorded_inputs) > 1 else next(iter(recorded_inputs.values()))
    nodes = [n for n in result.states if n not in result.outputs]
    reference = simulate(graph, inputs, policy=policy, record=nodes)
    wanted = SimulationResult(
        outputs={k: v for k, v in reference.outputs.items() if k in result.outputs},
        states={n: {k: v for k, v in reference.states[n].items() if k in result.states[n]} for n in nodes},
    )
    missing = [f"{n}.{k}" for n in nodes for k in result.states[n] if k not in reference.states[n]]
    problems += [Problem(f"nodes.{m}", "the reference has no such state; not compared") for m in missing]
    label = label or os.path.basename(name)
    res = BackendVerification(label, nodes=compare(wanted, result, graph, nodes))
    rates = {n: r for n, r in firing_rates(reference, graph).items() if n in nodes}
    x = inputs if not isinstance(inputs, dict) else next(iter(inputs.values()))
    if found_dt is not None and not math.isclose(found_dt, policy.dt, rel_tol=1e-9):
        problems.insert(0, Problem("", f"recorded at dt = {found_dt:g}, compared with the reference at dt = {policy.dt:g}"))
    silent = [n for n, r in rates.items() if r == 0]
    return VerifyReport({label: res}, rates, silent, tuple(np.shape(x)), None, policy, 0, [str(p) for p in problems])
