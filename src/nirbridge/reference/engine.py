"""`simulate`: run a graph on inputs shaped (time, batch, *features) under a Policy.

Evaluation follows `topology.schedule` (the cycle rule lives there): the flat graph is cut into
strongly connected blocks, in order. A block of one node outside any cycle is evaluated for all
time steps at once: a stateless node as one map over (time x batch) samples (one GEMM or
convolution), a neuron as its input term for all steps and then one loop over time, a Delay as
one gather. A cyclic block is stepped: at each step k its nodes run in order, each reading its
same-step sources at k and its delayed sources (the edges that close a cycle) at k - 1, zero at
step 0. A node with several incoming edges receives their sum, added in edge order.

`time_batched=False` steps the whole graph this way instead. Both paths do the same elementwise
arithmetic; only BLAS may sum a matrix product in another order when it gets T x B rows instead
of B, so results agree exactly where those sums are exact (e.g. spikes times dyadic weights) and
otherwise to rounding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import Problem, SimulationError
from ..ir import Delay, Graph, Input, Node
from ..result import SimulationResult
from ..semantics import Policy, resolve_policy
from ..topology import Schedule, flatten, schedule
from . import layers
from .delay import DelayLine
from .neurons import NEURONS, Neuron

Shape = tuple[int, ...]


def simulate(
    graph: Graph,
    x: np.ndarray | Mapping[str, np.ndarray],
    *,
    policy: Policy | str | None = None,
    record: Iterable[str] = (),
    dtype: Any = np.float32,
    time_batched: bool = True,
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
    dtype: float32 (default) or float64; inputs and parameters are cast to it.
    time_batched: False steps every node one time step at a time (the plain reference loop).

    Raises SimulationError (bad inputs, shapes, names) or PolicyError (a policy that does not
    fit the graph), each naming the node and field.
    """
    dtype = _check_dtype(dtype)
    if not isinstance(graph, Graph):
        raise SimulationError(problems=[Problem("graph", f"must be a nirbridge.Graph, got {type(graph).__name__} (use Graph.from_nir)")])
    resolved = resolve_policy(graph, policy)
    policy = resolved.policy
    flat = flatten(graph)
    plan = schedule(flat)
    wanted = _check_record(record, flat, graph)
    values, steps, batch = _check_inputs(x, flat, dtype)
    units = _build(flat, plan, policy, dtype, {n: v.shape[2:] for n, v in values.items()}, wanted)
    blocks = plan.blocks if time_batched else (plan.order,)
    for block in blocks:
        block = tuple(n for n in block if not isinstance(flat.nodes[n], Input))
        if not block:
            continue
        if time_batched and not plan.is_cyclic(block):
            name = block[0]
            values[name] = units[name].run(_sum_sources(plan, name, values))
        else:
            _run_steps(block, plan, units, values, steps, batch)
    given = [values[name] for name in flat.inputs()]
    outputs = {name: _detach(values[name], given) for name in flat.outputs()}
    states = {name: {k: _detach(v, given) for k, v in _states(units[name], values[name]).items()} for name in wanted}
    notes = (f"policy {resolved.origin}", *resolved.notes)
    return SimulationResult(outputs=outputs, states=states, policy=policy, notes=list(notes))


def _detach(arr: np.ndarray, given: list[np.ndarray]) -> np.ndarray:
    """A copy of `arr` if it may share memory with an input (Input, Output and Flatten nodes
    pass views along), so results never alias the caller's arrays."""
    return arr.copy() if any(np.may_share_memory(arr, x) for x in given) else arr


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
    """Inputs by Input node, cast to dtype (copied), with the common (time, batch) sizes."""
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
        cast = np.asarray(arr, dtype=dtype)  # no copy when the dtype matches (see _detach)
        if arr.dtype.kind == "f" and not (np.isfinite(cast.min()) and np.isfinite(cast.max())):  # NaN propagates
            idx = tuple(int(i) for i in np.argwhere(~np.isfinite(cast))[0])
            raise SimulationError(problems=[Problem(f"{where}[{', '.join(map(str, idx))}]", f"must be finite, got {arr[idx]}")])
        values[name] = cast
    return values, sizes[0], sizes[1]


# ----------------------------------------------------------------------------- building


def _build(flat: Graph, plan: Schedule, policy: Policy, dtype, in_shapes: dict[str, Shape], record) -> dict[str, Any]:
    """One evaluator per node, built in schedule order so each knows its input shape (the
    output shape of its first same-step source, else of the node's own parameters)."""
    out_shapes: dict[str, Shape] = dict(in_shapes)
    units: dict[str, Any] = {}
    for name in plan.order:
        node = flat.nodes[name]
        if isinstance(node, Input):
            units[name] = None
            continue
        known = [s for s, _ in plan.sources[name] if s in out_shapes]
        in_shape = out_shapes[known[0]] if known else node.input_shape()
        if in_shape is None:
            raise SimulationError(problems=[Problem(f"nodes.{name}", "input shape unknown: no source before it and no shape in its parameters")])
        unit = _unit(name, node, policy.for_node(name, node.type), tuple(in_shape), dtype, name in record)
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
    """A stateless node: `map` applied to all (time x batch) samples at once or to one step."""

    def __init__(self, name: str, node: Node, policy: Policy, in_shape: Shape, dtype):
        self.map, self.out_shape = layers.build(name, node, policy, in_shape, dtype)
        self.dtype = dtype

    def run(self, x: np.ndarray) -> np.ndarray:
        steps, batch = x.shape[:2]
        y = self.map(x.reshape((steps * batch,) + x.shape[2:]))
        return y.reshape((steps, batch) + self.out_shape)

    def start(self, steps: int, batch: int) -> None:
        self.output = np.empty((steps, batch) + self.out_shape, self.dtype)

    def advance(self, k: int, x: np.ndarray) -> None:
        self.output[k] = self.map(x)


class _NeuronUnit:
    def __init__(self, name: str, node: Node, policy: Policy, in_shape: Shape, dtype, record: bool):
        self.neuron = Neuron(name, node, policy, in_shape, dtype, record)
        self.out_shape = in_shape

    def run(self, x: np.ndarray) -> np.ndarray:
        u = self.neuron.drive(x)  # input term of every step at once
        self.neuron.start(*x.shape[:2])
        for k in range(x.shape[0]):
            self.neuron.advance(k, u[k])
        return self.neuron.output

    def start(self, steps: int, batch: int) -> None:
        self.neuron.start(steps, batch)
        self.output = self.neuron.output

    def advance(self, k: int, x: np.ndarray) -> None:
        self.neuron.advance(k, self.neuron.drive(x))


class _DelayUnit(DelayLine):
    def __init__(self, name: str, node: Delay, policy: Policy, in_shape: Shape, dtype):
        super().__init__(name, node, policy, in_shape, dtype)
        self.out_shape = tuple(in_shape)


def _unit(name: str, node: Node, policy: Policy, in_shape: Shape, dtype, record: bool):
    if isinstance(node, NEURONS):
        unit = _NeuronUnit(name, node, policy, in_shape, dtype, record)
    elif isinstance(node, Delay):
        unit = _DelayUnit(name, node, policy, in_shape, dtype)
    elif isinstance(node, layers.STATELESS):
        unit = _Stateless(name, node, policy, in_shape, dtype)
    else:
        raise SimulationError(problems=[Problem(f"nodes.{name}", f"node type {node.type} cannot be simulated")])
    unit.in_shape = in_shape
    return unit


# ----------------------------------------------------------------------------- running


def _sum_sources(plan: Schedule, name: str, values: dict[str, np.ndarray]) -> np.ndarray:
    """The summed input of `name` for all steps (delayed sources shifted by one step)."""
    total = None
    for source, delayed in plan.sources[name]:
        value = values[source]
        if delayed:
            value = np.concatenate([np.zeros_like(value[:1]), value[:-1]])
        total = value if total is None else total + value
    return total


def _run_steps(block: tuple[str, ...], plan: Schedule, units, values, steps: int, batch: int) -> None:
    """Step the nodes of `block` together, one time step at a time, in block order."""
    for name in block:
        units[name].start(steps, batch)
        values[name] = units[name].output
    zeros: dict[str, np.ndarray] = {}
    for k in range(steps):
        for name in block:
            total = None
            for source, delayed in plan.sources[name]:
                if delayed:
                    if k == 0:
                        value = zeros.setdefault(source, np.zeros_like(values[source][0]))
                    else:
                        value = values[source][k - 1]
                else:
                    value = values[source][k]
                total = value if total is None else total + value
            units[name].advance(k, total)


def _states(unit, output: np.ndarray) -> dict[str, np.ndarray]:
    if unit is None or not isinstance(unit, _NeuronUnit):
        return {"y": output}
    return unit.neuron.states()
