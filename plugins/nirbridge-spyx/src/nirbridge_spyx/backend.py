"""`SpyxBackend`: the `spyx` backend of nirbridge, the Backend API in JAX (no torch).

Import (`build`) makes a `SpyxGraph`: stock Spyx layers where Spyx computes a node's policy
exactly (a spiking neuron then also runs the one-step Delay after it, see `neurons`), the JAX
policy neuron elsewhere, JAX functions for the stateless nodes. Export reads a
`spyx.nn.Sequential` (see `export`) or gives back the graph a `SpyxGraph` was built from.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import spyx.nn as snn
from flax import nnx

from nirbridge import ir as g
from nirbridge.backends.base import Backend, BuildPlan, Handler, NodePlan, Support, delay_problem
from nirbridge.errors import GapError
from nirbridge.ir import Graph
from nirbridge.result import SimulationResult
from nirbridge.semantics import Policy, with_policy

from . import export as exporting
from .model import DelayLine, SpyxGraph, stateless
from .neurons import LAYERS, POLICY_CELL, one_step_delay, plan_neuron
from .plugin import DESCRIPTION

STATELESS = {
    "Affine": "flax.nnx.Linear-like matmul (+ bias) in JAX",
    "Linear": "matmul in JAX",
    "Scale": "elementwise product in JAX",
    "Conv1d": "jax.lax.conv_general_dilated (NCH)",
    "Conv2d": "jax.lax.conv_general_dilated (NCHW)",
    "Flatten": "reshape (as spyx.nn.Flatten)",
    "SumPool2d": "jax.lax.reduce_window sum (as spyx.nn.SumPool)",
    "AvgPool2d": "jax.lax.reduce_window sum / kernel area",
    "Threshold": "x > threshold in JAX",
    "Delay": "ring buffer of delay/dt steps in JAX",
}
NEURON_MAPS = {
    "I": POLICY_CELL,
    "IF": f"{LAYERS['IF']} with the one-step Delay after it, where Spyx has the policy; else {POLICY_CELL}",
    "LI": f"{LAYERS['LI']} where Spyx has the policy; else {POLICY_CELL}",
    "LIF": f"{LAYERS['LIF']} with the one-step Delay after it, where Spyx has the policy; else {POLICY_CELL}",
    "CubaLI": POLICY_CELL,
    "CubaLIF": f"{LAYERS['CubaLIF']} with the one-step Delay after it, where Spyx has the policy; else {POLICY_CELL}",
}


def _plan_stateless(name: str, node: g.Node, policy: Policy, graph: Graph) -> NodePlan:
    support = Support("exact", maps_to=STATELESS[node.type])
    if isinstance(node, g.Delay):
        problem = delay_problem(name, node, policy)
        if problem:
            return NodePlan(name, node, policy, problem)
        return NodePlan(name, node, policy, support, lambda: DelayLine(name, node, policy))
    return NodePlan(name, node, policy, support, lambda: stateless(node, policy))


class SpyxBackend(Backend):
    """Spyx 1.0 models <-> NIR, in JAX (see the module doc)."""

    name = "spyx"
    preset = "spyx"
    description = DESCRIPTION
    handlers = {
        **{t: Handler(Support("exact", maps_to=m), plan=_plan_stateless) for t, m in STATELESS.items()},
        **{t: Handler(Support("exact", maps_to=m), plan=lambda n, node, p, graph: plan_neuron(n, node, p, graph, None))
           for t, m in NEURON_MAPS.items()},
    }

    def plan_graph(self, graph: Graph, policy: Policy) -> dict[str, NodePlan]:
        """Every node's plan; a spiking neuron whose one consumer is a one-step Delay runs on a
        stock Spyx layer holding that Delay, where Spyx computes the neuron's policy."""
        plans = super().plan_graph(graph, policy)
        for name, node in graph.nodes.items():
            if node.type not in ("IF", "LIF", "CubaLIF"):
                continue
            delay = one_step_delay(name, graph, policy)
            if delay is None:
                continue
            plan = plan_neuron(name, node, policy.for_node(name, node.type), graph, delay)
            if plan.detail == delay:
                plans[name] = plan
                held = plans[delay]
                plans[delay] = NodePlan(delay, held.node, held.policy, Support("exact", maps_to=f"inside {LAYERS[node.type]} of {name!r}"),
                                        None, detail=("held by", name))
        return plans

    def build(self, plan: BuildPlan) -> SpyxGraph:
        held = {n: p.detail[1] for n, p in plan.nodes.items() if isinstance(p.detail, tuple) and p.detail[:1] == ("held by",)}
        pieces = {n: p.build() for n, p in plan.nodes.items() if p.build is not None}
        return SpyxGraph(plan, pieces, held)

    def accepts(self, obj: Any) -> bool:
        if isinstance(obj, SpyxGraph):
            return True
        return isinstance(obj, nnx.Module) and any(type(m).__module__.startswith("spyx") for m in exporting.layers_of(obj))

    def export(self, obj: Any, *, policy: Policy | None = None, sample: Any = None):
        """The graph of a `SpyxGraph` (the one it was built from), or of a Spyx model read with
        a one-step `sample`; `GapError` listing every layer that cannot be exported."""
        if isinstance(obj, SpyxGraph):
            return with_policy(obj.source_graph, policy or obj.policy), []
        graph, report = exporting.export(obj, sample, policy)
        if graph is None or report.unsupported:
            raise GapError(report)
        return graph, report.approximate

    def simulate(self, native: Any, x: np.ndarray, *, record: tuple[str, ...] = ()) -> SimulationResult:
        if isinstance(native, SpyxGraph):
            return native.run(x, record=tuple(record))
        return simulate_native(native, x)

    def supports_policy(self, policy: Policy, graph: Graph | None = None) -> Support:
        """Every policy is exact: stock Spyx layers where they compute it, the JAX policy neuron elsewhere."""
        return Support("exact", maps_to=f"Spyx layers where Spyx has the policy, {POLICY_CELL} elsewhere; dt={policy.dt:g}")


def simulate_native(model: nnx.Module, x: np.ndarray) -> SimulationResult:
    """Spyx's own run of a user's model: `spyx.nn.run` (a `jax.lax.scan`) over x (time, batch,
    ...) in NIR layout (channels first; transposed for a convolutional model), from zero state."""
    seq = jnp.asarray(exporting.transpose_in(model, np.asarray(x, np.float32)))
    model = model if isinstance(model, snn.Sequential) else snn.Sequential(model)
    out, _ = snn.run(model, seq)
    return SimulationResult(outputs={"output": exporting.transpose_out(model, np.asarray(out))})
