"""nirbridge Graph -> torch model of snnTorch neurons, run step by step by
`nirbridge_torch.GraphModule` (nested graphs flattened, cycles broken by the one-step rule).

Neurons become real snnTorch modules where the node's policy is one snnTorch has
(`neurons.native_plan`), else `nirbridge_torch.cells.PolicyNeuron`, a torch cell stepping the
policy's equations. A neuron whose only recurrence is one bias-free Linear, Conv2d ('same'
padding, stride 1) or Scale node (that node reads only the neuron and feeds only it) becomes
an RLeaky/RSynaptic holding that recurrence. Stateless nodes come from
`nirbridge_torch.build_stateless`.
"""

from __future__ import annotations

import numpy as np
import torch

from nirbridge import ir as g
from nirbridge.backends.base import BuildPlan, NodePlan, Support
from nirbridge.report import GapReport
from nirbridge.semantics import Policy, current_gain, tau_from_decay
from nirbridge_torch import GraphModule
from nirbridge_torch.cells import PolicyNeuron

from .neurons import UNIT_TOL, SnnTorchNeuron, build_native, native_plan


class SnnTorchGraphModule(GraphModule):
    """A GraphModule built by `from_nir`: one time step per call. Remembers the graph it came
    from so that `to_nir` gives it back (with current parameter values)."""

    def __init__(self, flat: g.Graph, modules, *, source: g.Graph, policy: Policy, collapsed: dict[str, str],
                 report: GapReport):
        super().__init__(flat, modules)
        self.source_graph = source
        self.policy = policy
        self.collapsed = collapsed  # recurrent node -> neuron holding it
        self.report = report
        self._snapshot = {k: {n: t.detach().clone() for n, t in m.state_dict().items()} for k, m in self.node_modules.items()}

    def run(self, x, *, record=()):
        """Run a (time, batch, ...) sequence from zero state; see `nirbridge_torch.run_sequence`."""
        from nirbridge_torch import run_sequence

        return run_sequence(self, x, record=record)


def _recurrence(flat: g.Graph, name: str) -> str | None:
    """The node closing a cycle on `name` alone, if it reads only `name` and feeds only it."""
    outs = [d for s, d in flat.edges if s == name]
    for r in outs:
        r_in = [s for s, d in flat.edges if d == r]
        r_out = [d for s, d in flat.edges if s == r]
        if r_in == [name] and r_out == [name]:
            return r
    return None


def _recurrent_module(node: g.Node, shape) -> torch.nn.Module | torch.Tensor | None:
    dtype = torch.get_default_dtype()
    if isinstance(node, g.Linear) or (isinstance(node, g.Affine) and not np.any(node.bias)):
        n_out, n_in = node.weight.shape
        if n_out != n_in:
            return None
        layer = torch.nn.Linear(n_in, n_out, bias=False)
        with torch.no_grad():
            layer.weight.copy_(torch.as_tensor(node.weight, dtype=dtype))
        return layer
    if isinstance(node, g.Scale):
        return torch.as_tensor(np.broadcast_to(node.scale, shape).copy(), dtype=dtype)
    if isinstance(node, g.Conv2d) and not isinstance(node.padding, str) and not np.any(node.bias):
        k = node.weight.shape[2:]
        pad = tuple(int(v) for v in np.broadcast_to(node.padding, (2,)))
        if (np.all(node.stride == 1) and np.all(node.dilation == 1) and int(node.groups) == 1
                and all(kk % 2 == 1 and p == kk // 2 for kk, p in zip(k, pad)) and node.weight.shape[0] == node.weight.shape[1]):
            layer = torch.nn.Conv2d(node.weight.shape[1], node.weight.shape[0], tuple(k), padding=pad, bias=False)
            with torch.no_grad():
                layer.weight.copy_(torch.as_tensor(node.weight, dtype=dtype))
            return layer
    return None


CELL = "torch cell stepping the policy (not an snnTorch module)"


def plan_neuron(name: str, node: g.Node, policy: Policy, graph: g.Graph) -> NodePlan:
    """A real snnTorch neuron where snnTorch computes the node's policy (`native_plan`), else
    the policy cell."""
    native = native_plan(node, policy)
    if native.problem:
        return NodePlan(name, node, policy, Support("exact", maps_to=CELL, reason=native.problem), lambda: PolicyNeuron(node, policy))
    return NodePlan(name, node, policy, Support("exact", maps_to=_native_text(native)), lambda: build_native(native), detail=native)


def _native_text(native, recurrence: str | None = None) -> str:
    text = native.text if recurrence is None else native.text.replace("Leaky", "RLeaky").replace("Synaptic", "RSynaptic")
    extra = []
    if native.gain is not None and not np.allclose(native.gain, 1, rtol=0, atol=UNIT_TOL):
        extra.append("input gain")
    if native.bias is not None and np.any(native.bias):
        extra.append("v_leak as input bias")
    if recurrence is not None:
        extra.append(f"recurrence {recurrence}")
    return text + (f" ({', '.join(extra)})" if extra else "")


def collapse_recurrences(graph: g.Graph, plans: dict[str, NodePlan]) -> dict[str, NodePlan]:
    """Plans where a native neuron whose only recurrence is one bias-free Linear, Conv2d
    ('same', stride 1) or Scale node (reading only the neuron, feeding only it) becomes an
    RLeaky/RSynaptic holding that layer; the layer's own plan then builds nothing."""
    shapes = None
    plans = dict(plans)
    for name, plan in list(plans.items()):
        native = plan.detail
        if native is None or getattr(native, "cls", None) is None:
            continue
        rec_name = _recurrence(graph, name)
        unit = native.gain is None or np.allclose(native.gain, 1, rtol=0, atol=UNIT_TOL)
        no_bias = native.bias is None or not np.any(native.bias)
        if rec_name is None or not unit or not no_bias or (native.cls.__name__ == "Synaptic" and not native.kwargs["reset_delay"]):
            continue  # RSynaptic ignores reset_delay=False
        shapes = shapes or graph.shapes()
        rec = _recurrent_module(graph.nodes[rec_name], shapes[name][0])
        if rec is None:
            continue
        plans[name] = NodePlan(name, plan.node, plan.policy, Support("exact", maps_to=_native_text(native, rec_name)),
                               lambda native=native, rec=rec: build_native(native, rec), detail=native)
        owner = plans[rec_name]
        plans[rec_name] = NodePlan(rec_name, owner.node, owner.policy, Support("exact", maps_to=f"recurrent layer of {name}"), None, detail=name)
    return plans


def build_model(plan: BuildPlan) -> SnnTorchGraphModule:
    """The model of a plan: each node's piece, recurrences held by their neurons."""
    graph = plan.graph
    collapsed = {n: p.detail for n, p in plan.nodes.items() if p.build is None and isinstance(p.detail, str)}
    modules = {n: p.build() for n, p in plan.nodes.items() if p.build is not None}
    flat = graph
    if collapsed:
        kept = {n: v for n, v in graph.nodes.items() if n not in collapsed}
        edges = [(s, d) for s, d in graph.edges if s not in collapsed and d not in collapsed]
        flat = g.Graph.model_construct(nodes=kept, edges=edges, metadata=dict(graph.metadata), type="NIRGraph")
    return SnnTorchGraphModule(flat, modules, source=plan.source, policy=plan.policy, collapsed=collapsed, report=plan.report)


# ----------------------------------------------------------------------------- back to NIR


def _changed(model: SnnTorchGraphModule, key: str) -> bool:
    now = model.node_modules[key].state_dict()
    then = model._snapshot[key]
    return now.keys() != then.keys() or any(not torch.equal(now[k], then[k]) for k in now)


def _np(t: torch.Tensor, like: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(t.detach().cpu().numpy(), like.shape), dtype=like.dtype)


def _neuron_node(module: SnnTorchNeuron, node: g.Node, p: Policy) -> g.Node:
    n = module.neuron
    gain = module.gain.detach().cpu().numpy().astype(np.float64) if module.gain is not None else 1.0
    bias = module.bias.cpu().numpy().astype(np.float64) if module.bias is not None else 0.0
    fields = {}
    if node.type in ("LIF", "LI"):
        tau = tau_from_decay(n.beta.detach().clamp(0, 1).cpu().numpy().astype(np.float64), p.dt, p.integration)
        c = current_gain(tau, p.dt, p.integration)
        fields = dict(tau=tau, r=gain if p.input == "impulse" else gain / c, v_leak=bias / c)
    elif node.type in ("IF", "I"):
        fields = dict(r=gain if p.input == "impulse" else gain / p.dt)
    else:
        tau_syn = tau_from_decay(n.alpha.detach().clamp(0, 1).cpu().numpy().astype(np.float64), p.dt, p.integration)
        tau_mem = tau_from_decay(n.beta.detach().clamp(0, 1).cpu().numpy().astype(np.float64), p.dt, p.integration)
        c_syn, c_mem = current_gain(tau_syn, p.dt, p.integration), current_gain(tau_mem, p.dt, p.integration)
        fields = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=1 / c_mem,
                      w_in=gain if p.input == "impulse" else gain / c_syn)
    if "v_threshold" in type(node).model_fields:
        fields["v_threshold"] = n.threshold.detach().cpu().numpy().astype(np.float64)
    out = {}
    for key, value in fields.items():
        ref = getattr(node, key)
        value = value.cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        out[key] = np.ascontiguousarray(np.broadcast_to(value, ref.shape), dtype=ref.dtype)
    return node.model_copy(update=out)


def _current_node(model: SnnTorchGraphModule, name: str, node: g.Node) -> g.Node:
    from nirbridge_torch.executor import _key

    if name in model.collapsed:
        owner = _key(model.collapsed[name])
        if not _changed(model, owner):
            return node
        rec = model.node_modules[owner].neuron.recurrent
        if isinstance(node, g.Scale):
            return node.model_copy(update={"scale": _np(rec.V, node.scale)})
        return node.model_copy(update={"weight": _np(rec.weight, node.weight)})
    key = _key(name)
    if key not in model.node_modules or not _changed(model, key):
        return node
    module = model.node_modules[key]
    p = model.policy.for_node(name, node.type)
    if isinstance(module, PolicyNeuron):
        fresh = module.to_node()
        return node.model_copy(update={k: _np(torch.as_tensor(getattr(fresh, k)), getattr(node, k)) for k in type(node).float_fields})
    if isinstance(module, SnnTorchNeuron):
        return _neuron_node(module, node, p)
    if isinstance(node, g.Scale):
        return node.model_copy(update={"scale": _np(module.scale, node.scale)})
    if isinstance(node, (g.Affine, g.Linear, g.Conv1d, g.Conv2d)):
        update = {"weight": _np(module.weight, node.weight)}
        if "bias" in type(node).model_fields and module.bias is not None:
            update["bias"] = _np(module.bias, node.bias)
        return node.model_copy(update=update)
    return node


def graph_of(model: SnnTorchGraphModule) -> g.Graph:
    """The graph `model` was built from, with its current parameter values."""

    def rebuild(graph: g.Graph, prefix: str) -> g.Graph:
        nodes = {}
        for name, node in graph.nodes.items():
            if isinstance(node, g.Graph):
                nodes[name] = rebuild(node, f"{prefix}{name}.")
            elif node.type in ("Input", "Output"):
                nodes[name] = node
            else:
                nodes[name] = _current_node(model, prefix + name, node)
        if all(nodes[n] is graph.nodes[n] for n in nodes):
            return graph
        return g.Graph(nodes=nodes, edges=list(graph.edges), metadata=dict(graph.metadata))

    return rebuild(model.source_graph, "")
