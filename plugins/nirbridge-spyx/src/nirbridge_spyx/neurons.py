"""NIR neuron nodes in JAX: the policy neuron (`JaxNeuron`, any policy) and stock Spyx layers
where Spyx computes the node's policy exactly.

`JaxNeuron` steps `nirbridge.semantics.neuron_step` in jax.numpy, the formula the NumPy
reference and the torch `PolicyNeuron` step, with the constants of `step_constants` rounded
once to float32: it agrees with the reference bit for bit.

A stock Spyx neuron fires from its potential before the update, so it is a reference neuron
followed by a one-step Delay (see the `spyx` preset). Where a graph has exactly that (a neuron
whose one consumer is a Delay of one step), the pair runs on the stock layer:

    LIF(next_step, subtract, gt, gain 1, v_leak 0) -> Delay(dt)      spyx.nn.LIF(beta = a)
    IF(next_step, subtract, gt, gain 1)           -> Delay(dt)      spyx.nn.IF
    CubaLIF(immediate, subtract, gt, current_first, w_in gain 1, c_mem r = 1, v_leak 0)
                                                  -> Delay(dt)      spyx.nn.CuBaLIF(alpha = a_syn, beta = a)
    LI(gain 1, v_leak 0)                                            spyx.nn.LI(beta = a)

with single spikes, no floor, a start at 0 and decays in [0, 1] (Spyx clips them). Every
other neuron runs on `JaxNeuron` (named in the report).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import spyx.nn as snn
from flax import nnx

from nirbridge import ir as g
from nirbridge.backends.base import NodePlan, Support
from nirbridge.semantics import Policy, StepRule, delay_steps, neuron_step, step_constants

POLICY_CELL = "nirbridge_spyx JaxNeuron (the policy's equations in JAX, bit for bit the reference)"
LAYERS = {"IF": "spyx.nn.IF", "LIF": "spyx.nn.LIF", "CubaLIF": "spyx.nn.CuBaLIF", "LI": "spyx.nn.LI"}
F32 = np.float32


def _f32(value) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64).astype(F32)
    flat = arr.reshape(-1)
    return flat[0].reshape(()) if arr.ndim and flat.size and np.all(flat == flat[0]) else arr


def _nonzero(value) -> np.ndarray | None:
    arr = _f32(value)
    return None if arr is None or not np.any(arr) else arr


class JaxNeuron:
    """One NIR neuron node under its effective policy, stepped in JAX (see the module doc).
    `init(batch, shape)` gives the state, `step(x, state) -> (output, state)`,
    `record(output, state)` the `v`, `I`, `spikes` of a step."""

    def __init__(self, node: g.Node, policy: Policy):
        self.node, self.policy, self.kind = node, policy, node.type
        self.rule = StepRule.of(node.type, policy)
        k = step_constants(node, policy)
        self.gain = _f32(k.gain)
        self.leak = _nonzero(k.leak)
        consts = {"a": _f32(k.a), "a_syn": _f32(k.a_syn), "c_r": _f32(k.c_r), "v_leak_term": _nonzero(k.v_leak_term)}
        if self.rule.spiking:
            consts["v_threshold"] = _f32(node.v_threshold)
            consts["v_reset"] = _nonzero(node.v_reset)
            floor = policy.v_min
            consts["v_min"] = None if floor is None else _f32(-np.asarray(node.v_threshold) if floor == "-v_threshold" else floor)
        self.k = {n: (None if v is None else jnp.asarray(v)) for n, v in consts.items()}
        start = {"zero": None, "v_leak": getattr(node, "v_leak", None), "v_reset": getattr(node, "v_reset", None)}[policy.initial_v]
        self.v_start = _nonzero(start)

    def init(self, batch: int, shape: tuple[int, ...]):
        zeros = jnp.zeros((batch, *shape), jnp.float32)
        v = zeros if self.v_start is None else zeros + self.v_start
        return (v, zeros, zeros)  # v, I, z of the last step (no spike before the first: a reset of 0 changes nothing)

    def step(self, x, state):
        v, i, z = state
        u = x if np.all(self.gain == 1) else x * self.gain
        if self.leak is not None:
            u = u + self.leak
        v, i, z_new = neuron_step(jnp, self.rule, self.k, v, i, z, u)
        out = v if z_new is None else z_new
        return out, (v, i, z if z_new is None else z_new)

    def record(self, out, state) -> dict:
        v, i, _ = state
        rec = {"v": v}
        if self.rule.synaptic:
            rec["I"] = i
        if self.rule.spiking:
            rec["spikes"] = out
        return rec


class StockNeuron:
    """A stock Spyx layer (`layer`) that also holds the one-step Delay after the node (not for
    LI): its output is Spyx's spikes, the Delay's output; `record` gives the neuron node's
    own `v`, `I` and spikes of the step, as the reference records them."""

    def __init__(self, node: g.Node, policy: Policy, layer: nnx.Module):
        self.node, self.policy, self.kind, self.layer = node, policy, node.type, layer

    def init(self, batch: int, shape: tuple[int, ...]):
        return self.layer.initial_state(batch)

    def step(self, x, state):
        return self.layer(x, state)

    def record(self, out, state) -> dict:
        if self.kind == "LI":
            return {"v": state}
        theta = jnp.asarray(self.layer.threshold, jnp.float32)
        if self.kind == "CubaLIF":
            w, i = jnp.split(state, 2, -1)
            z = (w - theta > 0).astype(jnp.float32)  # the spike the next call emits
            return {"v": w - z * theta, "I": i, "spikes": z}  # v after the (immediate) reset
        z = (state - theta > 0).astype(jnp.float32)
        return {"v": state, "spikes": z}


def _param(value) -> nnx.Param:
    return nnx.Param(jnp.asarray(_f32(value)))


@dataclass(frozen=True)
class Stock:
    """How a node runs on a stock Spyx layer, or `problem`: why it cannot."""

    problem: str = ""
    kwargs: dict | None = None


def stock_problem(node: g.Node, p: Policy, delayed: bool) -> str:
    """Why a stock Spyx layer cannot compute `node` under its effective policy `p` ('' if it
    can); `delayed`: whether the node's one consumer is a one-step Delay."""
    if node.type not in LAYERS:
        return f"Spyx has no {node.type} layer"
    k = step_constants(node, p)
    gain = np.asarray(k.gain, np.float64).astype(F32)
    if np.any(gain != 1):
        return "Spyx adds its input as it is (the node's input gain is not 1)"
    if node.type == "CubaLIF" and np.any(np.asarray(k.c_r).astype(F32) != 1):
        return "Spyx adds the current to v as it is (c_mem r is not 1)"
    leak = k.leak if k.leak is not None else k.v_leak_term
    if leak is not None and np.any(np.asarray(leak).astype(F32) != 0):
        return "Spyx neurons have no v_leak"
    for name, a in (("tau", k.a), ("tau_syn", k.a_syn)):
        if a is not None and np.any((np.asarray(a).astype(F32) < 0) | (np.asarray(a).astype(F32) > 1)):
            return f"Spyx clips its decays to [0, 1] (the decay of {name} is outside)"
    if p.initial_v != "zero" and np.any(getattr(node, p.initial_v, 0)):
        return f"Spyx starts at v = 0 (policy starts at {p.initial_v})"
    if node.type == "LI":
        return ""
    if not delayed:
        return "Spyx fires from the potential before the update: a stock layer is the node followed by a one-step Delay, which this graph does not have"
    timing = "immediate" if node.type == "CubaLIF" else "next_step"
    wanted = {"reset": "subtract", "reset_timing": timing, "threshold": "gt", "spikes": "single", "v_min": None, "current_order": "current_first"}
    for field, value in wanted.items():
        if field == "current_order" and node.type != "CubaLIF":
            continue
        if getattr(p, field) != value:
            return f"Spyx {LAYERS[node.type]} computes {field}={value!r} (policy: {getattr(p, field)!r})"
    return ""


def stock_layer(node: g.Node, p: Policy) -> nnx.Module:
    """The stock Spyx layer of `node` (see `stock_problem`), state shaped as the node."""
    k = step_constants(node, p)
    rngs = nnx.Rngs(0)
    shape = tuple(np.shape(node.v_threshold if hasattr(node, "v_threshold") else node.tau))
    if node.type == "LI":
        layer = snn.LI(shape, beta=0.5, rngs=rngs)
        layer.beta = _param(k.a)
        return layer
    theta = jnp.asarray(_f32(node.v_threshold))
    if node.type == "IF":
        return snn.IF(shape, threshold=theta)
    if node.type == "LIF":
        layer = snn.LIF(shape, beta=0.5, threshold=theta, rngs=rngs)
        layer.beta = _param(k.a)
        return layer
    layer = snn.CuBaLIF(shape, alpha=0.5, beta=0.5, threshold=theta, rngs=rngs)
    layer.alpha, layer.beta = _param(k.a_syn), _param(k.a)
    return layer


def one_step_delay(name: str, graph: g.Graph, policy: Policy) -> str | None:
    """The Delay node that is the one consumer of neuron `name` and delays by one step
    everywhere (its only input being the neuron), or None."""
    outs = [d for s, d in graph.edges if s == name]
    if len(outs) != 1 or "." in name:
        return None
    target = graph.nodes.get(outs[0])
    if not isinstance(target, g.Delay) or [s for s, d in graph.edges if d == outs[0]] != [name]:
        return None
    try:
        steps = delay_steps(outs[0], target, policy.for_node(outs[0], "Delay").dt, np.shape(target.delay))
    except Exception:  # noqa: BLE001 - a delay that is not whole steps is not this pattern
        return None
    return outs[0] if np.all(steps == 1) else None


def plan_neuron(name: str, node: g.Node, policy: Policy, graph: g.Graph, delay: str | None) -> NodePlan:
    """A stock Spyx layer where Spyx computes the node's policy, else the policy neuron."""
    problem = stock_problem(node, policy, delay is not None)
    if problem:
        support = Support("exact", maps_to=POLICY_CELL, reason=f"not native to Spyx: {problem}")
        return NodePlan(name, node, policy, support, lambda: JaxNeuron(node, policy))
    held = node.type != "LI"
    text = LAYERS[node.type] + (f" (holds the one-step Delay {delay!r})" if held else "")
    return NodePlan(name, node, policy, Support("exact", maps_to=text),
                    lambda: StockNeuron(node, policy, stock_layer(node, policy)), detail=delay if held else None)


__all__ = ["JaxNeuron", "StockNeuron", "plan_neuron", "one_step_delay", "stock_problem", "stock_layer", "POLICY_CELL"]
