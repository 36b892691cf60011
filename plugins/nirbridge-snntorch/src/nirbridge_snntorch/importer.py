"""nirbridge Graph -> torch model of snnTorch neurons: snnTorch's neuron table for the torch
toolkit's importer (`nirbridge_torch.importing`), run step by step by its executor (nested
graphs flattened, cycles broken by the one-step rule).

Neurons become real snnTorch modules where the node's policy is one snnTorch has
(`neurons.native_plan`), else `nirbridge_torch.cells.PolicyNeuron`, a torch cell stepping the
policy's equations. A neuron whose only recurrence is one bias-free Linear, Conv2d ('same'
padding, stride 1) or Scale node (that node reads only the neuron and feeds only it) becomes
an RLeaky/RSynaptic holding that recurrence.
"""

from __future__ import annotations

import numpy as np
import torch

from nirbridge import ir as g
from nirbridge.backends.base import NodePlan, Support
from nirbridge.semantics import Policy
from nirbridge_torch.cells import PolicyNeuron
from nirbridge_torch.importing import ConvertedModel, Held, graph_of
from nirbridge_torch.layers import tensor

from .neurons import UNIT_TOL, build_native, native_plan


class SnnTorchGraphModule(ConvertedModel):
    """A model built by `from_nir`: one time step per call. `to_nir` (or `graph_of`) gives
    back the graph it came from, with current parameter values."""


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
    if isinstance(node, g.Linear) or (isinstance(node, g.Affine) and not np.any(node.bias)):
        n_out, n_in = node.weight.shape
        if n_out != n_in:
            return None
        layer = torch.nn.Linear(n_in, n_out, bias=False, device="meta")
        layer.weight = torch.nn.Parameter(tensor(node.weight))
        return layer
    if isinstance(node, g.Scale):
        return tensor(np.broadcast_to(node.scale, shape))
    if isinstance(node, g.Conv2d) and not isinstance(node.padding, str) and not np.any(node.bias):
        k = node.weight.shape[2:]
        pad = tuple(int(v) for v in np.broadcast_to(node.padding, (2,)))
        if (np.all(node.stride == 1) and np.all(node.dilation == 1) and int(node.groups) == 1
                and all(kk % 2 == 1 and p == kk // 2 for kk, p in zip(k, pad)) and node.weight.shape[0] == node.weight.shape[1]):
            layer = torch.nn.Conv2d(node.weight.shape[1], node.weight.shape[0], tuple(k), padding=pad, bias=False, device="meta")
            layer.weight = torch.nn.Parameter(tensor(node.weight))
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
        plans[rec_name] = NodePlan(rec_name, owner.node, owner.policy, Support("exact", maps_to=f"recurrent layer of {name}"), None, detail=Held(name))
    return plans


__all__ = ["SnnTorchGraphModule", "collapse_recurrences", "graph_of", "plan_neuron"]
