"""NIR -> torch model, and back: the one importer of the torch backends.

`build_model(plan, cls)` makes a `ConvertedModel` (a `GraphModule` that remembers where it came
from) from a conversion's `BuildPlan`: every node's `NodePlan.build()`; a node whose plan says
`Held(owner)` is computed inside its owner's module (snnTorch's RLeaky holds its recurrent
layer) and is not run by itself. `graph_of(model)` gives the graph the model was built from
with its current parameter values: a node whose module changed since it was built (training,
an in-place edit) is read back from the module (`to_node(node, policy)` for neurons and other
modules that define it; weight, bias or scale for torch layers), every other node is the one
the model was built from, bit for bit.

`stateless_handlers()` are the handlers of the stateless node types, shared by every torch
backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nirbridge import ir as g
from nirbridge.backends.base import BuildPlan, Handler, NodePlan, Support, delay_problem
from nirbridge.errors import NirbridgeError
from nirbridge.semantics import Policy

from .executor import GraphModule, module_key, run_sequence
from .layers import build_stateless


@dataclass(frozen=True)
class Held:
    """`NodePlan.detail` of a node computed inside another node's module (`owner`), which
    defines `held_node(name, node)` to give it back."""

    owner: str


class ConvertedModel(GraphModule):
    """A model built from a conversion plan: one time step per call (see `GraphModule`).
    Keeps the graph it was built from (`source_graph`), the `policy` and the conversion's
    `report`; `graph_of(model)` gives the graph back with current parameter values."""

    def __init__(self, plan: BuildPlan, modules: dict[str, torch.nn.Module], held: dict[str, str]):
        graph = plan.graph
        if held:
            kept = {n: v for n, v in graph.nodes.items() if n not in held}
            edges = [(s, d) for s, d in graph.edges if s not in held and d not in held]
            graph = g.Graph.model_construct(nodes=kept, edges=edges, metadata=dict(graph.metadata), type="NIRGraph")
        super().__init__(graph, modules)
        self.source_graph = plan.source
        self.policy = plan.policy
        self.report = plan.report
        self.held = held
        self.built_from = {name: p.node for name, p in plan.nodes.items()}
        self._built = {key: _fingerprint(m) for key, m in self.node_modules.items()}

    def run(self, x, *, record=()):
        """Run a (time, batch, ...) sequence from zero state; see `run_sequence`."""
        return run_sequence(self, x, record=record)

    def changed(self, name: str) -> bool:
        """Whether the module of node `name` changed since it was built."""
        key = module_key(name)
        return key in self.node_modules and _fingerprint(self.node_modules[key]) != self._built[key]


def _fingerprint(module: torch.nn.Module) -> tuple:
    """Identity and in-place version of every tensor of the module: a change of any value
    (training, `mul_`, `copy_`) or a replaced tensor changes it, without copying values."""
    return tuple((name, id(t), t._version) for name, t in module.state_dict(keep_vars=True).items())


def build_model(plan: BuildPlan, cls: type[ConvertedModel] = ConvertedModel) -> ConvertedModel:
    """The model of a plan: each node's piece, held nodes inside their owners."""
    held = {n: p.detail.owner for n, p in plan.nodes.items() if isinstance(p.detail, Held)}
    modules = {n: p.build() for n, p in plan.nodes.items() if p.build is not None}
    return cls(plan, modules, held)


# ----------------------------------------------------------------------------- back to NIR


def like(value, ref: np.ndarray) -> np.ndarray:
    """A tensor's (or array's) values shaped and typed as the graph array `ref`."""
    arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    return np.ascontiguousarray(np.broadcast_to(arr, ref.shape), dtype=ref.dtype)


def node_of(module: torch.nn.Module, node: g.Node, policy: Policy) -> g.Node:
    """`node` with the current parameter values of the module built from it."""
    if hasattr(module, "to_node"):
        return module.to_node(node, policy)
    fields = {"weight": "weight", "bias": "bias", "scale": "scale"}
    update = {f: like(getattr(module, attr), getattr(node, f)) for f, attr in fields.items()
              if f in type(node).model_fields and isinstance(getattr(module, attr, None), torch.Tensor)}
    return node.model_copy(update=update) if update else node


def graph_of(model: ConvertedModel) -> g.Graph:
    """The graph `model` was built from, with its current parameter values (see the module doc)."""

    def current(name: str, node: g.Node) -> g.Node:
        if name in model.held:
            owner = model.held[name]
            return model.module(owner).held_node(name, node) if model.changed(owner) else node
        if not model.changed(name):
            return node
        built = model.built_from.get(name)
        if built is not node and built != node:
            raise NirbridgeError(f"nodes.{name}: the backend runs a rewritten form of this node, so its trained parameters "
                                 "cannot be written back into the original node")
        return node_of(model.module(name), node, model.policy.for_node(name, node.type))

    def rebuild(graph: g.Graph, prefix: str) -> g.Graph:
        nodes = {}
        for name, node in graph.nodes.items():
            if isinstance(node, g.Graph):
                nodes[name] = rebuild(node, f"{prefix}{name}.")
            elif node.type in ("Input", "Output"):
                nodes[name] = node
            else:
                nodes[name] = current(prefix + name, node)
        if all(nodes[n] is graph.nodes[n] for n in nodes):
            return graph
        return g.Graph(nodes=nodes, edges=list(graph.edges), metadata=dict(graph.metadata))

    return rebuild(model.source_graph, "")


# ----------------------------------------------------------------------------- handlers

STATELESS = {
    "Affine": "torch.nn.Linear",
    "Linear": "torch.nn.Linear (no bias)",
    "Scale": "Scale module (nirbridge_torch)",
    "Conv1d": "torch.nn.Conv1d",
    "Conv2d": "torch.nn.Conv2d",
    "Flatten": "torch.nn.Flatten",
    "SumPool2d": "sum pooling (avg_pool2d, divisor 1)",
    "AvgPool2d": "torch.nn.AvgPool2d",
    "Threshold": "Threshold module (nirbridge_torch)",
    "Delay": "Delay module (ring buffer of delay/dt steps)",
}


def _plan_stateless(name: str, node: g.Node, policy: Policy, graph: g.Graph) -> NodePlan:
    support = Support("exact", maps_to=STATELESS[node.type])
    if isinstance(node, g.Delay):
        problem = delay_problem(name, node, policy)
        if problem:
            return NodePlan(name, node, policy, problem)
    return NodePlan(name, node, policy, support, lambda: build_stateless(node, policy=policy, name=name))


def stateless_handlers() -> dict[str, Handler]:
    """Handlers of the stateless NIR node types (torch layers and nirbridge_torch modules)."""
    return {kind: Handler(Support("exact", maps_to=maps_to), plan=_plan_stateless) for kind, maps_to in STATELESS.items()}


__all__ = ["ConvertedModel", "Held", "STATELESS", "build_model", "graph_of", "like", "node_of", "stateless_handlers"]
