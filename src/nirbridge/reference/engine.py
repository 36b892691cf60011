"""`simulate`: run a graph on inputs shaped (time, batch, *features) under a Policy.

Evaluation follows `topology.schedule` (the cycle rule lives there): the flat graph is cut into
strongly connected blocks, in order. Time is processed in chunks of steps, and within a chunk
the blocks run in order. A block of one node outside any cycle is evaluated for all steps of
the chunk at once: a stateless node as one map over (steps x batch) samples (one GEMM or
convolution), a neuron as its input term for all steps and then one loop over the steps, a
Delay as one gather. A cyclic block is stepped: at each step k its nodes run in order, each
reading its same-step sources at k and its delayed sources (the edges that close a cycle) at
k - 1, zero at step 0. A node with several incoming edges receives their sum, added in edge
order.

Every node carries its state from one chunk to the next (a neuron's v, I and pending reset, a
Delay's past inputs, the last value of each source of a delayed edge), and a chunk's values are
dropped once its outputs and recorded states are copied out: memory is the input, the outputs,
the recorded states and a bounded amount per node, whatever the number of steps. The chunk
size changes no elementwise operation; only BLAS may sum a matrix product in another order
when it gets more or fewer rows (steps x batch), so results agree exactly where those sums are
exact (e.g. spikes times dyadic weights) and otherwise to rounding. `chunk_steps=1` is the
plain reference loop: every node stepped one time step at a time.

A state that becomes NaN or infinite (a neuron's v or I, the output of an arithmetic node)
raises `SimulationError` naming the node and the first step (`check_finite=False` returns
such values instead). Sizes are checked before anything large is allocated: no single array
of one step may exceed `max_array_bytes` (`ResourceLimitError` naming the node and field).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from math import prod
from typing import Any

import numpy as np

from ..errors import Problem, ResourceLimitError, SimulationError
from ..io import DEFAULT_MAX_ARRAY_BYTES
from ..ir import Delay, Graph, Input, Node, Threshold
from ..result import SimulationResult
from ..semantics import Policy, resolve_policy
from ..topology import Schedule, flatten, schedule
from . import layers
from .delay import DelayLine
from .neurons import NEURONS, Neuron

Shape = tuple[int, ...]

#: default chunk size (see `_chunk_steps`): the bytes one node works on in a chunk, and the
#: bytes of all nodes' arrays for a chunk
CACHE_BYTES = 4 << 20
CHUNK_BYTES = 64 << 20


def simulate(
    graph: Graph,
    x: np.ndarray | Mapping[str, np.ndarray],
    *,
    policy: Policy | str | None = None,
    record: Iterable[str] = (),
    dtype: Any = np.float32,
    chunk_steps: int | None = None,
    check_finite: bool = True,
    max_array_bytes: int = DEFAULT_MAX_ARRAY_BYTES,
) -> SimulationResult:
    """Run `graph` on `x` and return its outputs and the recorded node states.

    x: an array (time, batch, *shape) for a graph with one Input node, or a dict mapping each
        Input node's name to such an array (all with the same time and batch sizes).
    policy: the discretization (a `nirbridge.Policy` or a preset name); default: chosen as
        every entry point chooses it (`nirbridge.semantics.resolve_policy`: the graph's metadata,
        else the `nir` preset at the inferred dt). `result.policy` and `result.notes` say which
        policy ran and why. Per-node and per-type overrides apply.
    record: node names (dotted inside nested graphs) whose states to return in
        `result.states[name]`: `v`, `I` (CubaLI, CubaLIF) and `spikes` (IF, LIF, CubaLIF) for
        neurons, `y` (the node's output) for every other node; each (time, batch, *shape).
        Only these nodes (and the outputs) are kept for the whole run.
    dtype: float32 (default) or float64; inputs and parameters are cast to it.
    chunk_steps: time steps evaluated together (default: a few MB per node, at most 64 MB in
        all); 1 steps every node one time step at a time.
    check_finite: raise SimulationError when a state becomes NaN or infinite (default); False
        returns such values.
    max_array_bytes: the largest array allocated: an output or recorded state for all steps,
        or what one node needs for one step (state, output, padded input, delay history);
        checked before anything runs.

    Raises SimulationError (bad inputs, shapes, names, non-finite states), PolicyError (a
    policy that does not fit the graph) or ResourceLimitError, each naming the node and field.
    """
    dtype = _check_dtype(dtype)
    if not isinstance(graph, Graph):
        raise SimulationError(problems=[Problem("graph", f"must be a nirbridge.Graph, got {type(graph).__name__} (use Graph.from_nir)")])
    resolved = resolve_policy(graph, policy)
    policy = resolved.policy
    flat = flatten(graph)
    plan = schedule(flat)
    wanted = _check_record(record, flat, graph)
    inputs, steps, batch = _check_inputs(x, flat, dtype)
    shapes = {name: arr.shape[2:] for name, arr in inputs.items()}
    units = _build(flat, plan, policy, dtype, shapes, steps, batch, max_array_bytes)
    chunk = _chunk_steps(chunk_steps, units, shapes, steps, batch, dtype)
    for unit in units.values():
        if unit is not None:
            unit.reset(batch)
    blocks = [(b, plan.is_cyclic(b)) for b in (tuple(n for n in block if units[n] is not None) for block in plan.blocks) if b]
    watched = _watched(flat, plan, units, wanted)
    last = {s: np.zeros((batch,) + units[s].out_shape, dtype) for s, _ in plan.delayed}  # step -1: zero
    for where, name in [("nodes", n) for n in flat.outputs()] + [("record", n) for n in wanted]:  # kept for every step
        shape = shapes[name] if units[name] is None else units[name].out_shape
        if steps * batch * prod(shape) * dtype.itemsize > max_array_bytes:
            raise ResourceLimitError(
                problems=[Problem(f"{where}.{name}", f"{steps} steps x {batch} samples x {shape} values need"
                                  f" {steps * batch * prod(shape) * dtype.itemsize:,} bytes, over the"
                                  f" {max_array_bytes:,}-byte limit (max_array_bytes)")]
            )
    outputs = {name: np.empty((steps, batch) + units[name].out_shape, dtype) for name in flat.outputs()}
    states: dict[str, dict[str, np.ndarray]] = {}
    for start in range(0, steps, chunk):
        stop = min(start + chunk, steps)
        values = {name: np.asarray(arr[start:stop], dtype=dtype) for name, arr in inputs.items()}
        for block, cyclic in blocks:
            if cyclic:
                _run_steps(block, plan, units, values, last, stop - start)
            else:
                values[block[0]] = units[block[0]].run(_sum_sources(plan, block[0], values))
        if check_finite and not _finite(watched, units, values):
            _raise_first_nonfinite(plan.order, units, start)
        for name, out in outputs.items():
            out[start:stop] = values[name]
        for name in wanted:
            kept = states.setdefault(name, {})
            for key, value in ({"y": values[name]} if units[name] is None else units[name].states()).items():
                if key not in kept:
                    kept[key] = np.empty((steps,) + value.shape[1:], dtype)
                kept[key][start:stop] = value
        for source in last:
            last[source] = values[source][-1].copy()
    notes = (f"policy {resolved.origin}", *resolved.notes)
    return SimulationResult(outputs=outputs, states={name: states[name] for name in wanted}, policy=policy, notes=list(notes))


def _chunk_steps(chunk_steps: int | None, units: dict[str, Any], in_shapes: dict[str, Shape], steps: int, batch: int, dtype: np.dtype) -> int:
    """`chunk_steps` checked, or the default: as many steps as keep the arrays one node works
    on within CACHE_BYTES (so they stay in the processor's cache while a node runs its chunk)
    and those of all nodes, which are kept between chunks, within CHUNK_BYTES."""
    if chunk_steps is not None:
        if isinstance(chunk_steps, bool) or not isinstance(chunk_steps, (int, np.integer)) or chunk_steps < 1:
            raise SimulationError(problems=[Problem("chunk_steps", f"must be a positive integer, got {chunk_steps!r}")])
        return min(int(chunk_steps), steps)
    per_node = [unit.step_bytes(batch) for unit in units.values() if unit is not None]
    per_node += [batch * prod(shape) * dtype.itemsize for shape in in_shapes.values()]  # the inputs cast to dtype
    chunk = min(CACHE_BYTES // max(max(per_node), 1), CHUNK_BYTES // max(sum(per_node), 1))
    return max(1, min(steps, chunk))


# ----------------------------------------------------------------------------- checks


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise SimulationError(problems=[Problem("dtype", f"must be float32 or float64, got {dtype!r}")])
    return dt


def _check_record(record: Iterable[str] | None, flat: Graph, graph: Graph) -> tuple[str, ...]:
    if record is None:
        record = ()
    elif isinstance(record, str):
        record = (record,)
    elif not isinstance(record, (list, tuple, set, frozenset)) or not all(isinstance(n, str) for n in record):
        raise SimulationError(problems=[Problem("record", f"must be node names (a list of str), got {record!r}")])
    names = []
    for name in record:
        if name not in flat.nodes:
            inlined = graph.resolve(name) is not None  # a nested graph, or its Input/Output
            hint = " (inlined when nested graphs are flattened: record the nodes inside)" if inlined else ""
            raise SimulationError(
                problems=[Problem(f"record.{name}", f"no such node{hint} (nodes: {', '.join(sorted(flat.nodes))})")]
            )
        names.append(name)
    return tuple(dict.fromkeys(names))


def _check_inputs(x: Any, flat: Graph, dtype: np.dtype) -> tuple[dict[str, np.ndarray], int, int]:
    """Inputs by Input node (as given: each chunk is cast to dtype when it runs), with the
    common (time, batch) sizes. Every value must be finite in dtype."""
    inputs = flat.inputs()
    if not inputs:
        raise SimulationError(problems=[Problem("graph", "has no Input node")])
    if isinstance(x, Mapping):
        missing = [n for n in inputs if n not in x]
        unknown = [n for n in x if n not in inputs]
        if missing or unknown:
            raise SimulationError(
                problems=[Problem(f"x.{n}", "missing") for n in missing]
                + [Problem(f"x.{n}", f"no such Input node (inputs: {', '.join(inputs)})") for n in unknown]
            )
        given = dict(x)
    elif len(inputs) == 1:
        given = {next(iter(inputs)): x}
    else:
        raise SimulationError(problems=[Problem("x", f"the graph has {len(inputs)} Input nodes ({', '.join(inputs)}): pass a dict")])
    values: dict[str, np.ndarray] = {}
    sizes: tuple[int, int] | None = None
    for name, node in inputs.items():
        where = f"x.{name}" if isinstance(x, Mapping) else "x"
        arr = given[name]
        if not isinstance(arr, np.ndarray):
            try:
                arr = np.asarray(arr)
            except (ValueError, TypeError) as exc:
                raise SimulationError(problems=[Problem(where, f"not an array: {exc}")]) from None
        if arr.dtype.kind not in "biuf":
            raise SimulationError(problems=[Problem(where, f"must hold real numbers, got dtype {arr.dtype}")])
        shape = tuple(int(n) for n in np.atleast_1d(node.shape))
        if arr.ndim != 2 + len(shape) or tuple(arr.shape[2:]) != shape:
            raise SimulationError(
                problems=[Problem(where, f"must be shaped (time, batch, {', '.join(map(str, shape))}), got {arr.shape}")]
            )
        if arr.shape[0] < 1 or arr.shape[1] < 1:
            raise SimulationError(problems=[Problem(where, f"needs at least one time step and one sample, got {arr.shape}")])
        if sizes is not None and arr.shape[:2] != sizes:
            raise SimulationError(problems=[Problem(where, f"(time, batch) = {arr.shape[:2]} differs from the other inputs' {sizes}")])
        sizes = arr.shape[:2]
        big = np.finfo(dtype).max
        if arr.dtype.kind == "f" and arr.size and not _fits(arr, big):
            idx = tuple(int(i) for i in np.argwhere(~(np.abs(arr) <= big))[0])
            raise SimulationError(
                problems=[Problem(f"{where}[{', '.join(map(str, idx))}]", f"must be finite in {dtype} (|x| <= {big:.4g}), got {arr[idx]}")]
            )
        values[name] = arr
    return values, sizes[0], sizes[1]


def _fits(arr: np.ndarray, big: float) -> bool:
    """Whether every value of a float array is finite and within +-big: one sum when the
    dtype cannot exceed big (NaN and infinity make it non-finite; if the sum overflows, the
    values decide), else the extremes."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.finfo(arr.dtype).max <= big:
            return bool(np.isfinite(arr.sum()) or np.isfinite(arr).all())
        return bool(-big <= arr.min() and arr.max() <= big)  # NaN fails both


# ----------------------------------------------------------------------------- building


def _build(flat: Graph, plan: Schedule, policy: Policy, dtype, in_shapes: dict[str, Shape], steps: int, batch: int, max_bytes: int) -> dict[str, Any]:
    """One evaluator per node, built in schedule order so each knows its input shape (the
    output shape of its first same-step source, else of the node's own parameters). Each
    one's arrays for one step are checked against `max_bytes` before anything runs."""
    out_shapes: dict[str, Shape] = dict(in_shapes)
    units: dict[str, Any] = {}
    by_type: dict[str, Policy] = {}  # the effective policy of nodes without an override of their own
    neurons: dict[tuple, Neuron] = {}  # neurons with the same type, parameters and policy share constants
    for name in plan.order:
        node = flat.nodes[name]
        if isinstance(node, Input):
            units[name] = None
            continue
        known = [s for s, _ in plan.sources[name] if s in out_shapes]
        in_shape = out_shapes[known[0]] if known else node.input_shape()
        if in_shape is None:
            raise SimulationError(problems=[Problem(f"nodes.{name}", "input shape unknown: no source before it and no shape in its parameters")])
        in_shape = tuple(in_shape)
        if name in policy.overrides:
            unit = _unit(name, node, policy.for_node(name, node.type), in_shape, dtype, steps)
        else:
            if node.type not in by_type:
                by_type[node.type] = policy.for_node(name, node.type)
            if isinstance(node, NEURONS):
                key = (node.type, in_shape) + tuple(_content(getattr(node, f)) for f in node.float_fields)
                if key not in neurons:
                    neurons[key] = Neuron(name, node, by_type[node.type], in_shape, dtype)
                unit = _NeuronUnit(neurons[key].renamed(name))
                unit.in_shape = in_shape
            else:
                unit = _unit(name, node, by_type[node.type], in_shape, dtype, steps)
        for field, nbytes in unit.sizes(batch):
            if nbytes > max_bytes:
                raise ResourceLimitError(
                    problems=[Problem(f"nodes.{name}" + (f".{field}" if field else ""),
                                      f"needs an array of {nbytes:,} bytes for one step of {batch} samples, over the"
                                      f" {max_bytes:,}-byte limit (max_array_bytes; output shape {unit.out_shape})")]
                )
        units[name] = unit
        out_shapes[name] = unit.out_shape
    for name in plan.order:  # every edge, delayed ones included, must carry the shape its target takes
        for source, _ in plan.sources[name]:
            if units[name] is not None and out_shapes[source] != units[name].in_shape:
                raise SimulationError(
                    problems=[Problem(f"nodes.{name}", f"receives shape {out_shapes[source]} from {source} but takes {units[name].in_shape}")]
                )
    return units


class _Stateless:
    """A stateless node: `map` applied to all (steps x batch) samples of a chunk at once, or to
    one step."""

    def __init__(self, name: str, node: Node, policy: Policy, in_shape: Shape, dtype):
        self.layer = layers.build(name, node, policy, in_shape, dtype)
        self.out_shape, self.dtype = self.layer.out_shape, dtype
        self.arithmetic = isinstance(node, layers.ARITHMETIC)

    def sizes(self, batch: int) -> list[tuple[str, int]]:
        return [(field, batch * n * self.dtype.itemsize) for field, n in self.layer.arrays]

    def step_bytes(self, batch: int) -> int:
        return sum(n for _, n in self.sizes(batch))

    def reset(self, batch: int) -> None:
        self.batch = batch

    def run(self, x: np.ndarray) -> np.ndarray:
        steps, batch = x.shape[:2]
        y = self.layer.map(x.reshape((steps * batch,) + x.shape[2:]))
        self.output = y.reshape((steps, batch) + self.out_shape)
        return self.output

    def begin(self, steps: int) -> None:
        self.output = np.empty((steps, self.batch) + self.out_shape, self.dtype)

    def step(self, k: int, x: np.ndarray) -> None:
        self.output[k] = self.layer.map(x)

    def checked(self) -> dict[str, np.ndarray]:
        return {"y": self.output} if self.arithmetic else {}

    def states(self) -> dict[str, np.ndarray]:
        return {"y": self.output}


def _content(value: Any) -> tuple:
    arr = np.asarray(value)
    return arr.dtype.str, arr.shape, arr.tobytes()


class _NeuronUnit:
    """A neuron node: its output is its spikes (IF, LIF, CubaLIF) or its v."""

    def __init__(self, neuron: Neuron):
        self.neuron = neuron
        self.out_shape, self.dtype = neuron.shape, neuron.dtype
        self.hint = neuron.hint

    def sizes(self, batch: int) -> list[tuple[str, int]]:
        return [("", batch * prod(self.out_shape) * self.dtype.itemsize)]

    def step_bytes(self, batch: int) -> int:
        return 3 * self.sizes(batch)[0][1]  # input term, v (and I), spikes

    def reset(self, batch: int) -> None:
        self.neuron.reset(batch)

    def run(self, x: np.ndarray) -> np.ndarray:
        self.neuron.run(x)
        self.output = self.neuron.spikes if self.neuron.spiking else self.neuron.v_trace
        return self.output

    def begin(self, steps: int) -> None:
        self.neuron.begin(steps)
        self.output = self.neuron.spikes if self.neuron.spiking else self.neuron.v_trace

    def step(self, k: int, x: np.ndarray) -> None:
        self.neuron.step(k, self.neuron.drive(x))

    def checked(self) -> dict[str, np.ndarray]:
        return self.neuron.checked()

    def states(self) -> dict[str, np.ndarray]:
        out = dict(self.neuron.checked())
        if self.neuron.spiking:
            out["spikes"] = self.output
        return out


class _DelayUnit:
    def __init__(self, name: str, node: Delay, policy: Policy, in_shape: Shape, dtype, steps: int):
        self.line = DelayLine(name, node, policy, in_shape, dtype, steps)
        self.out_shape, self.dtype = tuple(in_shape), dtype

    def sizes(self, batch: int) -> list[tuple[str, int]]:
        return [("delay", self.line.buffer_bytes(batch)), ("", batch * prod(self.out_shape) * self.dtype.itemsize)]

    def step_bytes(self, batch: int) -> int:
        return 3 * batch * prod(self.out_shape) * self.dtype.itemsize  # two gathers and their selection

    def reset(self, batch: int) -> None:
        self.batch = batch
        self.line.reset(batch)

    def run(self, x: np.ndarray) -> np.ndarray:
        self.output = self.line.run(x)
        return self.output

    def begin(self, steps: int) -> None:
        self.output = np.empty((steps, self.batch) + self.out_shape, self.dtype)

    def step(self, k: int, x: np.ndarray) -> None:
        self.output[k] = self.line.run(x[None])[0]

    def checked(self) -> dict[str, np.ndarray]:
        return {}  # its values come from its source, checked there

    def states(self) -> dict[str, np.ndarray]:
        return {"y": self.output}


def _unit(name: str, node: Node, policy: Policy, in_shape: Shape, dtype, steps: int):
    if isinstance(node, NEURONS):
        unit = _NeuronUnit(Neuron(name, node, policy, in_shape, dtype))
    elif isinstance(node, Delay):
        unit = _DelayUnit(name, node, policy, in_shape, dtype, steps)
    elif isinstance(node, layers.STATELESS):
        unit = _Stateless(name, node, policy, in_shape, dtype)
    else:
        raise SimulationError(problems=[Problem(f"nodes.{name}", f"node type {node.type} cannot be simulated")])
    unit.in_shape = in_shape
    return unit


# ----------------------------------------------------------------------------- running


def _sum_sources(plan: Schedule, name: str, values: dict[str, np.ndarray]) -> np.ndarray:
    """The summed input of `name` (outside cycles) for all steps of the chunk, in edge order."""
    total = None
    for source, _ in plan.sources[name]:
        total = values[source] if total is None else total + values[source]
    return total


def _run_steps(block: tuple[str, ...], plan: Schedule, units, values, last: dict[str, np.ndarray], steps: int) -> None:
    """Step the nodes of `block` together, one time step of the chunk at a time, in block
    order; a delayed source is read at the step before (from `last` at the chunk's first)."""
    for name in block:
        units[name].begin(steps)
        values[name] = units[name].output
    for k in range(steps):
        for name in block:
            total = None
            for source, delayed in plan.sources[name]:
                if delayed:
                    value = values[source][k - 1] if k else last[source]
                else:
                    value = values[source][k]
                total = value if total is None else total + value
            units[name].step(k, total)


def _watched(flat: Graph, plan: Schedule, units: dict[str, Any], record: tuple[str, ...]) -> tuple[str, ...]:
    """The nodes whose chunk values show every NaN or infinity of a run. A non-finite value
    reaches every node downstream of where it appears (products, sums and pools keep it,
    neuron states keep it for good) until a Threshold turns it into 0 or 1: so the outputs,
    the sources of Thresholds and the neurons' last states (checked in `_finite`) see it; the
    recorded nodes are returned, so they are watched too."""
    names = set(flat.outputs()) | set(record)
    for name, node in flat.nodes.items():
        if isinstance(node, Threshold):
            names.update(s for s, _ in plan.sources[name])
    return tuple(n for n in plan.order if n in names and isinstance(units[n], (_Stateless, _DelayUnit)))


def _finite(watched: tuple[str, ...], units: dict[str, Any], values: dict[str, np.ndarray]) -> bool:
    """Whether the chunk left every watched value and every neuron state finite (one sum each:
    a NaN or infinity makes it non-finite; a sum that overflows is checked element by element)."""
    arrays = [values[n] for n in watched]
    arrays += [a for unit in units.values() if isinstance(unit, _NeuronUnit) for a in unit.neuron.state()]
    with np.errstate(over="ignore", invalid="ignore"):
        return all(np.isfinite(a.sum()) or np.isfinite(a).all() for a in arrays)


def _raise_first_nonfinite(order: tuple[str, ...], units: dict[str, Any], start: int) -> None:
    """Raise SimulationError for the first step of the chunk (first node in schedule order at
    that step) where a state or an arithmetic node's output is NaN or infinite."""
    first = None
    for rank, name in enumerate(order):
        if units[name] is None:
            continue
        for key, value in units[name].checked().items():
            bad = ~np.isfinite(value)
            if not bad.any():
                continue
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            if first is None or (idx[0], rank) < (first[0][0], first[1]):
                first = (idx, rank, name, key, value[idx])
    idx, _, name, key, bad = first
    where = f"sample {idx[1]}" + (f", element {list(idx[2:])}" if len(idx) > 2 else "")
    hint = getattr(units[name], "hint", "")
    raise SimulationError(
        problems=[
            Problem(
                f"nodes.{name}.{key}",
                f"became {bad} at step {start + idx[0]} ({where}){hint}; pass check_finite=False to return non-finite values",
            )
        ]
    )
