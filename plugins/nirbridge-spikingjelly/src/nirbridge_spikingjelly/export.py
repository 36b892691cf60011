"""SpikingJelly model -> NIR Graph: SpikingJelly's mapping table for the torch toolkit's export
builder. Single-step models (`step_mode='s'`) are traced on one step `(N, ...)`, multi-step
ones on a sequence `(T, N, ...)`; both give the same graph. Time constants are in steps
(tau_nir = tau * dt), and `v0` is `v_reset` (hard reset) or 0 (soft reset, `v_reset=None`):

    IFNode             IF(r = 1/dt, v_threshold, v_reset = v0)                 h = v + x
    LIFNode            LIF(tau dt, r = 1 (decay_input) or tau, v_leak = v0, ...)
                                                                           h = v + (x - (v - v0))/tau
    ParametricLIFNode  LIF as LIFNode with tau = 1/sigmoid(w)
    CUBALIFNode        CubaLIF(tau_syn = dt/(1 - c_decay), tau_mem = dt/(1 - v_decay),
                               w_in = tau_syn/dt, r = tau_mem/dt, v_leak = 0)  I = c_decay I + x; h = v_decay v + I
    v_reset=None       reset subtract (one threshold per spike); otherwise to_reset
    layer.Linear, Conv1d/2d, AvgPool2d, Flatten, MaxPool2d after spikes (SumPool2d + Threshold),
    Dropout in eval mode: per step (multi-step wrappers fold time into the batch)

(r as written for the `current` input of the `spikingjelly` preset; `impulse` writes the
per-step gain.) Every node is exported with `initial_v="v_reset"`: SpikingJelly starts v there.
"""

from __future__ import annotations

import numpy as np
import torch
from spikingjelly.activation_based import base, neuron
from spikingjelly.activation_based import layer as sj_layer

from nirbridge import ir as g
from nirbridge.report import Gap
from nirbridge.semantics import Policy, synaptic_to_nir
from nirbridge_torch.exporting import Framework, Layer, Piece, torch_piece
from nirbridge_torch.tracing import Trace

SUGGESTION = "use IFNode, LIFNode, ParametricLIFNode, CUBALIFNode and the layer.* wrappers (Linear, Conv, AvgPool2d, MaxPool2d after spikes, Flatten)"
NEURONS = (neuron.IFNode, neuron.LIFNode, neuron.ParametricLIFNode, neuron.CUBALIFNode)


def is_sj_module(module: torch.nn.Module) -> bool:
    return type(module).__module__.startswith("spikingjelly.")


def _surrogate_problem(module) -> str | None:
    probe = torch.tensor([-1.0, -1e-6, 0.0, 1e-6, 1.0])
    with torch.no_grad():
        out = module.surrogate_function(probe.clone())
    if not torch.equal(torch.as_tensor(out, dtype=probe.dtype), (probe >= 0).to(probe.dtype)):
        return f"surrogate_function {type(module.surrogate_function).__name__}'s forward is not the step h - v_threshold >= 0"
    return None


def _neuron(layer: Layer) -> Piece:
    module, name, shape, policy = layer.module, layer.name, layer.shape, layer.policy
    eff = policy.for_node(name, "CubaLIF" if isinstance(module, neuron.CUBALIFNode) else "LIF")
    if problem := _surrogate_problem(module):
        return Piece.refused(name, layer.kind, problem, SUGGESTION)
    full = lambda v: np.full(shape, v, np.float32)  # noqa: E731
    hard = module.v_reset is not None
    v0 = full(module.v_reset if hard else 0.0)
    limits = dict(v_threshold=full(module.v_threshold), v_reset=v0)
    fields = {"reset": "to_reset" if hard else "subtract", "initial_v": "v_reset"}
    impulse = eff.input == "impulse"
    dt = policy.dt
    if isinstance(module, neuron.IFNode):
        node: g.Node = g.IF(r=full(1.0 if impulse else 1 / dt), **limits)
    elif isinstance(module, neuron.CUBALIFNode):
        c_decay, v_decay = float(module.c_decay), float(module.v_decay)
        tau_syn, tau_mem, r, w_in = synaptic_to_nir(np.float64(c_decay), np.float64(v_decay), dt, "euler")
        node = g.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(r), w_in=full(1.0 if impulse else w_in),
                         v_leak=full(0.0), **limits)
    else:
        if isinstance(module, neuron.ParametricLIFNode):
            q = torch.sigmoid(module.w.detach()).double().cpu().numpy()
            per_tau = np.broadcast_to(q, shape).astype(np.float64)
        else:
            per_tau = np.full(shape, 1 / float(module.tau))  # 1/tau, in steps
        step_gain = per_tau if module.decay_input else np.ones(shape)
        r = step_gain if impulse else step_gain / per_tau  # c = dt/tau_nir = 1/tau
        node = g.LIF(tau=(dt / per_tau).astype(np.float32), r=r.astype(np.float32), v_leak=v0, **limits)
    piece = Piece.node(name, node, layer.kind, binary=True)
    piece.overrides = {name: fields}
    return piece


def piece(layer: Layer) -> Piece | None:
    """SpikingJelly's mapping table: its neurons, and its stateless wrappers mapped per step."""
    module = layer.module
    if type(module) in NEURONS:
        return _neuron(layer)
    if isinstance(module, sj_layer.Dropout):
        if module.training and module.p > 0:
            return Piece.refused(layer.name, layer.kind, "Dropout in training mode zeroes random elements", "call model.eval() before exporting")
        return Piece.passing(layer.name, layer.kind, "Dropout in eval mode", binary=layer.binary_input)
    if isinstance(module, base.StepModule) and isinstance(module, torch.nn.Module) and not isinstance(module, base.MemoryModule):
        mapped = torch_piece(layer, lead=1)  # a wrapper acts on each step (multi-step: time folded into the batch)
        if mapped is not None:
            return mapped
    if is_sj_module(module):
        what = "a SpikingJelly neuron NIR has no node for" if isinstance(module, neuron.BaseNode) else "no NIR equivalent"
        return Piece.refused(layer.name, layer.kind, f"{layer.kind} has {what}", SUGGESTION)
    return None


def is_leaf(module: torch.nn.Module) -> bool:
    """SpikingJelly's neurons, wrappers and containers (a container is judged as one layer)."""
    return is_sj_module(module)


def multi_step(model: torch.nn.Module) -> bool:
    return any(getattr(m, "step_mode", "s") == "m" for m in model.modules() if is_sj_module(m))


def _policy(model: torch.nn.Module, tr: Trace, given: Policy | None) -> tuple[Policy, list[Gap]]:
    """The given policy, else the `spikingjelly` preset; SpikingJelly's fixed rules must hold in it."""
    base_policy = given if given is not None else Policy.preset("spikingjelly")
    gaps = [Gap("(policy)", "Policy", "unsupported", reason=f"{f}={getattr(base_policy, f)!r}: SpikingJelly nodes compute {value!r}",
                suggestion="export without a policy (the spikingjelly preset) or with another dt only")
            for f, value in (("integration", "euler"), ("reset_timing", "immediate"), ("threshold", "ge"), ("spikes", "single"),
                             ("v_min", None), ("current_order", "current_first")) if getattr(base_policy, f) != value]
    return base_policy, gaps


def _reset(model: torch.nn.Module) -> None:
    from spikingjelly.activation_based import functional

    functional.reset_net(model)


FRAMEWORK = Framework("spikingjelly", is_leaf, piece, _policy, hidden_state=True, prepare=_reset,
                      lead=lambda model: 2 if multi_step(model) else 1, suggestion=SUGGESTION)
