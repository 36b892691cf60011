"""A NIR graph as JAX pieces (stock Spyx layers, the policy neuron, stateless layers), stepped
under the reference's cycle rule: `SpyxGraph`.

Nested graphs are flattened and cycles broken by `nirbridge.topology.schedule` (a delayed edge
carries its source's value of the previous step, zero at step 0); a node with several incoming
edges receives their sum, added in edge order, as the reference does. Layouts are NIR's
(channels first); arrays are float32.

Steps run op by op (JAX's eager dispatch): XLA's CPU compiler contracts `a * v + u` into one
fused multiply-add inside `jax.jit` / `lax.scan` on CPUs that have FMA (measured here: about a
quarter of float32 elements then differ in the last bit from two rounded operations), and the
reference rounds each operation. Op by op, every operation is rounded, so the model agrees
with the reference bit for bit wherever the reference's own arithmetic order is followed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import lax

from nirbridge import ir as g
from nirbridge.backends.base import BuildPlan
from nirbridge.errors import SimulationError
from nirbridge.result import SimulationResult
from nirbridge.semantics import Policy, delay_steps
from nirbridge.topology import flatten, schedule

F32 = jnp.float32


class Stateless:
    """A stateless node as a function of one step's input (B, *shape)."""

    def __init__(self, node: g.Node, fn):
        self.node, self.kind, self.fn = node, node.type, fn

    def init(self, batch: int, shape):
        return None

    def step(self, x, state):
        return self.fn(x), None

    def record(self, out, state) -> dict:
        return {"y": out}


class DelayLine:
    """`Delay`: y[k] = x[k - d] per element (d whole steps of dt), zero before the start."""

    def __init__(self, name: str, node: g.Delay, policy: Policy):
        self.name, self.node, self.kind, self.dt = name, node, "Delay", policy.dt

    def init(self, batch: int, shape):
        self.steps = delay_steps(self.name, self.node, self.dt, tuple(shape))
        depth = int(self.steps.max()) if self.steps.size else 0
        return jnp.zeros((depth + 1, batch, *shape), F32)

    def step(self, x, state):
        line = jnp.concatenate([x[None], state[:-1]], 0)  # line[j] = x[k - j]
        idx = jnp.asarray(self.steps)[None, None]
        return jnp.take_along_axis(line, jnp.broadcast_to(idx, (1, *x.shape)), 0)[0], line

    def record(self, out, state) -> dict:
        return {"y": out}


def _ints(value, n: int) -> tuple[int, ...]:
    arr = np.asarray(value).reshape(-1).astype(int)
    return tuple(int(v) for v in (np.repeat(arr, n) if arr.size == 1 else arr))


def _conv(node):
    nd = node.ndim
    w = jnp.asarray(np.asarray(node.weight, np.float32))
    kernel = tuple(np.asarray(node.weight).shape[2:])
    stride, dilation = _ints(node.stride, nd), _ints(node.dilation, nd)
    if isinstance(node.padding, str):
        span = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel))
        pads = [(0, 0)] * nd if node.padding == "valid" else [((s - 1) // 2, s - 1 - (s - 1) // 2) for s in span]
    else:
        pads = [(p, p) for p in _ints(node.padding, nd)]
    groups = int(np.asarray(node.groups).reshape(-1)[0])
    bias = np.asarray(node.bias, np.float32)
    b = jnp.asarray(bias).reshape((-1,) + (1,) * nd) if bias.any() else None
    dims = ("NCH", "OIH", "NCH") if nd == 1 else ("NCHW", "OIHW", "NCHW")

    def conv(x):
        y = lax.conv_general_dilated(x, w, stride, pads, rhs_dilation=dilation, feature_group_count=groups,
                                     dimension_numbers=dims, precision=lax.Precision.HIGHEST)
        return y if b is None else y + b

    return conv


def _pool(node):
    kernel, stride, padding = _ints(node.kernel_size, 2), _ints(node.stride, 2), _ints(node.padding, 2)
    area = None if node.type == "SumPool2d" else np.float32(np.prod(kernel))

    def pool(x):
        y = lax.reduce_window(x, np.float32(0), lax.add, (1, 1, *kernel), (1, 1, *stride),
                              [(0, 0), (0, 0)] + [(p, p) for p in padding])
        return y if area is None else y / area

    return pool


def stateless(node: g.Node, policy: Policy) -> Stateless:
    """The JAX function of a stateless node (NIR layout: channels first)."""
    kind = node.type
    if kind in ("Affine", "Linear"):
        w = jnp.asarray(np.asarray(node.weight, np.float32).T)
        bias = np.asarray(node.bias, np.float32) if kind == "Affine" else None
        b = jnp.asarray(bias) if bias is not None and bias.any() else None

        def affine(x):
            y = jnp.matmul(x, w, precision=lax.Precision.HIGHEST)
            return y if b is None else y + b

        return Stateless(node, affine)
    if kind == "Scale":
        s = jnp.asarray(np.asarray(node.scale, np.float32))
        return Stateless(node, lambda x: x * s)
    if kind == "Threshold":
        th = jnp.asarray(np.asarray(node.threshold, np.float32))
        ge = policy.threshold == "ge"
        return Stateless(node, lambda x: ((x >= th) if ge else (x > th)).astype(F32))
    if kind == "Flatten":
        return Stateless(node, lambda x: x.reshape((x.shape[0],) + tuple(int(n) for n in node.output_shape(tuple(x.shape[1:])))))
    if kind in ("Conv1d", "Conv2d"):
        return Stateless(node, _conv(node))
    if kind in ("SumPool2d", "AvgPool2d"):
        return Stateless(node, _pool(node))
    raise SimulationError(f"{kind} is not a stateless node")


class SpyxGraph:
    """A NIR graph as JAX pieces. `run(x, record=...)` steps a (time, batch, ...) sequence from
    zero state. Keeps the graph it was built from (`source_graph`), the `policy`, the
    conversion's `report`, and `pieces` (node name -> piece: a stock Spyx layer in `.layer`, a
    `JaxNeuron`, or a stateless function); `held` maps a Delay run inside its neuron's stock
    layer to that neuron."""

    def __init__(self, plan: BuildPlan, pieces: Mapping[str, Any], held: Mapping[str, str]):
        self.source_graph, self.policy, self.report = plan.source, plan.policy, plan.report
        self.pieces, self.held = dict(pieces), dict(held)
        graph = flatten(plan.graph)
        shapes = graph.shapes()
        self.shapes = {name: tuple(int(n) for n in np.asarray(shapes[name][0]).reshape(-1)) for name in graph.nodes}
        if held:  # the held Delay's consumers read its owner's piece
            owner_of = dict(held)
            edges = [(owner_of.get(s, s), d) for s, d in graph.edges if d not in owner_of]
            nodes = {n: v for n, v in graph.nodes.items() if n not in owner_of}
            graph = g.Graph.model_construct(nodes=nodes, edges=edges, metadata=dict(graph.metadata), type="NIRGraph")
        self.graph = graph
        self.schedule = schedule(graph)
        self.inputs = [n for n in self.schedule.order if isinstance(graph.nodes[n], g.Input)]
        self.outputs = [n for n in self.schedule.order if isinstance(graph.nodes[n], g.Output)]

    def __repr__(self) -> str:
        kinds = ", ".join(f"{n}: {type(getattr(p, 'layer', p)).__name__}" for n, p in self.pieces.items())
        return f"SpyxGraph({kinds})"

    def run(self, x, *, record=()) -> SimulationResult:
        """Step x (time, batch, ...) (or a dict per Input node) from zero state; numpy results."""
        seqs = {self.inputs[0]: x} if not isinstance(x, Mapping) else dict(x)
        seqs = {k: jnp.asarray(np.asarray(v, np.float32)) for k, v in seqs.items()}
        steps, batch = next(iter(seqs.values())).shape[:2]
        order, sources = self.schedule.order, self.schedule.sources
        states = {n: p.init(batch, self.shapes[n]) for n, p in self.pieces.items()}
        previous: dict[str, Any] = {}
        outs: dict[str, list] = {n: [] for n in self.outputs}
        rec: dict[str, dict[str, list]] = {n: {} for n in record}
        where = {n: self.held.get(n, n) for n in record}
        for t in range(steps):
            values: dict[str, Any] = {}
            for name in order:
                node = self.graph.nodes[name]
                if isinstance(node, g.Input):
                    values[name] = seqs[name][t]
                    continue
                total = None
                for source, delayed in sources[name]:
                    value = previous.get(source) if delayed else values[source]
                    if value is not None:
                        total = value if total is None else total + value
                if total is None:
                    total = jnp.zeros((batch, *self.shapes[name]), F32)
                if isinstance(node, g.Output):
                    values[name] = total
                    continue
                piece = self.pieces[name]
                values[name], states[name] = piece.step(total, states[name])
            previous = values
            for name in self.outputs:
                outs[name].append(values[name])
            for name in record:
                owner = where[name]
                if owner != name:  # a held Delay: its output is the stock layer's
                    got = {"y": values[owner]}
                elif name in self.pieces:
                    got = self.pieces[name].record(values[name], states[name])
                else:
                    got = {"y": values[name]}
                for var, value in got.items():
                    rec[name].setdefault(var, []).append(value)
        stack = lambda vs: np.asarray(jnp.stack(vs))  # noqa: E731
        return SimulationResult(outputs={n: stack(v) for n, v in outs.items()},
                                states={n: {var: stack(v) for var, v in s.items()} for n, s in rec.items()})


__all__ = ["DelayLine", "SpyxGraph", "Stateless", "stateless"]
