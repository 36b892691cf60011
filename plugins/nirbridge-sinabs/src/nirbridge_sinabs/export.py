"""Sinabs model -> NIR Graph: Sinabs' mapping table for the torch toolkit's export builder.

A Sinabs layer takes a whole sequence: `(batch, time, ...)`, or `(batch*time, ...)` for the
`*Squeeze` layers (and the models `sinabs.from_model` makes); the sample is what the model
takes. Time constants are in steps (tau_nir = tau_steps * dt, dt = 1 in the `sinabs` preset):

    IAF(Squeeze)            IF(r = 1, v_threshold, v_reset = 0)             input impulse
    LIF(Squeeze)            LIF(tau, r = 1, v_leak = 0, ...)                 norm_input=True (default):
                                                                            input current (v += (1 - a) x);
                                                                            False: impulse (v += x)
    LIF(tau_syn=...)        CubaLIF(tau_syn, tau_mem, w_in = alpha_syn, r = 1 or 1/(1 - a))
                                                                            synapse impulse: i = alpha_syn (i + x)
    ExpLeak(Squeeze)        LI(tau, r = 1, v_leak = 0)                      input impulse (or current)
    spike_fn                MultiSpike: spikes multi; SingleSpike: single; MaxSpike(m): max_spikes m
    reset_fn                MembraneSubtract(): subtract; MembraneReset(0): to_reset (v_reset 0)
    min_v_mem               v_min (a number, or "-v_threshold")
    SumPool2d               SumPool2d (LPPool2d with p = 1); torch layers as every torch backend

`train_alphas=True` layers give tau = tau_from_decay(alpha). The fields that differ from the
preset travel as per-node policy overrides. A layer emitting spike counts is not binary, so
a max pool after it is refused.
"""

from __future__ import annotations

import numpy as np
import sinabs.layers as sl
import torch
from sinabs.activation import MaxSpike, MembraneReset, MembraneSubtract, MultiSpike, SingleSpike

from nirbridge import ir as g
from nirbridge.report import Gap
from nirbridge.semantics import Policy, tau_from_decay, unit_gain
from nirbridge_torch.exporting import Framework, Layer, Piece, full
from nirbridge_torch.layers import tau_of_decay, to_array
from nirbridge_torch.tracing import Trace

NEURONS = {sl.IAF: "IF", sl.IAFSqueeze: "IF", sl.LIF: "LIF", sl.LIFSqueeze: "LIF", sl.ExpLeak: "LI", sl.ExpLeakSqueeze: "LI"}
SUGGESTION = "use IAF, LIF, ExpLeak (or their Squeeze forms), SumPool2d and torch Linear/Conv/AvgPool/Flatten layers"
#: Sinabs layers with no NIR form, by class name, and why
UNSUPPORTED = {
    "ALIF": "an adaptive threshold (a second state raising the threshold after each spike); no NIR neuron has one",
    "ALIFSqueeze": "an adaptive threshold (a second state raising the threshold after each spike); no NIR neuron has one",
    "LIFRecurrent": "a recurrent connection inside the layer (rec_connect), which is not exported",
    "IAFRecurrent": "a recurrent connection inside the layer (rec_connect), which is not exported",
    "ALIFRecurrent": "an adaptive threshold and a recurrent connection inside the layer",
    "SpikingMaxPooling2dLayer": "max pooling of cumulative spike counts over time; NIR has no max pooling",
    "NeuromorphicReLU": "a quantized ReLU for training the analog model; convert it with sinabs.from_model first",
    "QuantizeLayer": "rounding; NIR has no rounding node",
    "Cropping2dLayer": "cropping; NIR has no crop node",
    "ChannelShift": "a channel shift; NIR has no such node",
    "Merge": "a sum of two inputs padded to a common shape; NIR adds incoming edges of equal shape only",
    "FlattenTime": "a reshape between (batch, time, ...) and (batch*time, ...): give the model its sequence as the sample",
    "UnflattenTime": "a reshape between (batch*time, ...) and (batch, time, ...): give the model its sequence as the sample",
    "Repeat": "a module applied to (batch*time, ...) inside the sequence: export the wrapped layer",
    "Img2SpikeLayer": "random spike generation from images; NIR graphs are deterministic",
    "Sig2SpikeLayer": "random spike generation from signals; NIR graphs are deterministic",
}


def is_sinabs_module(module: torch.nn.Module) -> bool:
    return type(module).__module__.startswith("sinabs.layers")


def _uniform(value) -> float | None:
    arr = to_array(value).reshape(-1)
    return float(arr[0]) if arr.size and np.all(arr == arr[0]) else None


def _spikes(module) -> tuple[dict, str]:
    """Policy fields of the layer's spike_fn, or why it has none."""
    fn = module.spike_fn
    if fn is MultiSpike:
        return {"spikes": "multi"}, ""
    if fn is SingleSpike:
        return {"spikes": "single"}, ""
    if isinstance(fn, MaxSpike):
        m = fn.max_num_spikes_per_bin
        return ({"spikes": "multi"} if m is None else {"spikes": "multi", "max_spikes": int(m)}), ""
    return {}, f"spike_fn {getattr(fn, '__name__', fn)!r} (known: MultiSpike, SingleSpike, MaxSpike)"


def _reset(module, threshold: np.ndarray) -> tuple[dict, str]:
    fn = module.reset_fn
    if isinstance(fn, MembraneSubtract):
        value = fn.subtract_value
        if value is None or np.all(np.float32(value) == threshold):
            return {"reset": "subtract"}, ""
        return {}, f"MembraneSubtract(subtract_value={value}) subtracts another value than the threshold"
    if isinstance(fn, MembraneReset):
        if fn.reset_value == 0:
            return {"reset": "to_reset"}, ""
        return {}, (f"MembraneReset(reset_value={fn.reset_value}) adds its value to every neuron at every step "
                    "(Sinabs 3.1.3), which is no reset rule; only MembraneReset(0) resets")
    return {}, f"reset_fn {fn!r} (known: MembraneSubtract, MembraneReset)"


def _floor(module, threshold: np.ndarray | None) -> tuple[dict, str]:
    if module.min_v_mem is None:
        return {"v_min": None}, ""
    if threshold is None:
        return {}, "min_v_mem on a leaky integrator (the Policy floors spiking neurons only)"
    floor = to_array(module.min_v_mem)
    if (value := _uniform(floor)) is not None:
        return {"v_min": value}, ""
    if np.array_equal(np.broadcast_to(floor, threshold.shape), -threshold):
        return {"v_min": "-v_threshold"}, ""
    return {}, "min_v_mem differs between neurons (the Policy's v_min is one number, or -v_threshold)"


def _decay(module, name: str, layer: Layer) -> np.ndarray:
    """tau in the graph's units of a time constant `name` ('mem' or 'syn') of the layer: the
    float32 tau nearest tau_steps * dt (or -dt / ln alpha with train_alphas) whose decay, as
    the reference computes it (exp(-dt/tau) in float64, rounded once), is the float32 alpha
    Sinabs steps with (torch's float32 exp can be one ulp off the correctly rounded value)."""
    dt = layer.policy.dt
    alpha = full(getattr(module, f"alpha_{name}_calculated"), layer.shape, f"{layer.name}.alpha_{name}")
    if module.train_alphas:
        start = np.asarray(tau_from_decay(alpha.astype(np.float64), dt, "exact"), np.float32)
    else:
        start = (full(getattr(module, f"tau_{name}"), layer.shape, f"{layer.name}.tau_{name}").astype(np.float64) * dt).astype(np.float32)
    return tau_of_decay(alpha, start, dt)


def _neuron(layer: Layer, kind: str) -> Piece:
    module, name, shape = layer.module, layer.name, layer.shape
    ones, zeros = np.ones(shape, np.float32), np.zeros(shape, np.float32)
    problems, fields = [], {"input": "current" if kind != "IF" and module.norm_input else "impulse"}
    synapse = module.alpha_syn_calculated is not None
    if kind == "IF" and synapse:
        return Piece.refused(name, layer.kind, "IAF with tau_syn is a current-based IF; NIR's CubaLIF needs a finite tau_mem", "use LIF(tau_syn=...)")
    threshold = None if kind == "LI" else full(module.spike_threshold, shape, f"{name}.spike_threshold")
    parts = [_floor(module, threshold)] + ([] if kind == "LI" else [_spikes(module), _reset(module, threshold)])
    for part, problem in parts:
        fields |= part
        problems += [problem] if problem else []
    if threshold is not None and fields.get("spikes") == "multi" and np.any(threshold <= 0):
        problems.append("a threshold <= 0 with multiple spikes per step (the count trunc(v / threshold) needs a positive threshold)")
    if problems:
        return Piece.refused(name, layer.kind, "; ".join(problems), SUGGESTION)
    limits = {} if threshold is None else {"v_threshold": threshold, "v_reset": zeros}
    if kind == "IF":
        node: g.Node = g.IF(r=ones, **limits)
    elif kind == "LI":
        node = g.LI(tau=_decay(module, "mem", layer), r=ones, v_leak=zeros)
    elif not synapse:
        node = g.LIF(tau=_decay(module, "mem", layer), r=ones, v_leak=zeros, **limits)
    else:  # i = alpha_syn (i + x): w_in = alpha_syn under impulse; v += c i with c = 1 - a (norm_input) or 1
        tau_mem, tau_syn = _decay(module, "mem", layer), _decay(module, "syn", layer)
        w_in = full(module.alpha_syn_calculated, shape, f"{name}.alpha_syn")
        r = ones if module.norm_input else np.asarray(unit_gain(tau_mem.astype(np.float64), layer.policy.dt, "exact"), np.float32)
        node = g.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=r, w_in=w_in, v_leak=zeros, **limits)
        fields["input"] = "impulse"
    piece = Piece.node(name, node, layer.kind, binary=kind != "LI" and fields.get("spikes") == "single")
    piece.overrides = {name: fields}
    return piece


def piece(layer: Layer) -> Piece | None:
    """Sinabs' mapping table (torch layers and Sinabs' SumPool2d, an LPPool2d(1), are the shared ones)."""
    module = layer.module
    kind = NEURONS.get(type(module))
    if kind is not None:
        return _neuron(layer, kind)
    if is_sinabs_module(module) and not isinstance(module, sl.SumPool2d):
        return Piece.refused(layer.name, layer.kind, f"{layer.kind} has {UNSUPPORTED.get(layer.kind, 'no NIR equivalent')}", SUGGESTION)
    return None


def _policy(model: torch.nn.Module, tr: Trace, given: Policy | None) -> tuple[Policy, list[Gap]]:
    """The given policy, else the `sinabs` preset; Sinabs' fixed rules must hold in it."""
    base = given if given is not None else Policy.preset("sinabs")
    gaps = [Gap("(policy)", "Policy", "unsupported", reason=f"{f}={getattr(base, f)!r}: Sinabs layers compute {value!r}",
                suggestion="export without a policy (the sinabs preset) or with another dt only")
            for f, value in (("integration", "exact"), ("reset_timing", "immediate"), ("threshold", "ge"),
                             ("current_order", "current_first"), ("initial_v", "zero")) if getattr(base, f) != value]
    return base, gaps


def reset_states(model: torch.nn.Module) -> None:
    """Empty every Sinabs state, so that the next call starts from zeros of its own shape."""
    for module in model.modules():
        if isinstance(module, sl.StatefulLayer):
            for name, buffer in list(module.named_buffers(recurse=False)):
                module.register_buffer(name, torch.zeros(0, device=buffer.device))


def lead(model: torch.nn.Module) -> int:
    """1: the model takes (batch*time, ...) (Squeeze layers); 2: (batch, time, ...)."""
    return 1 if any(isinstance(m, sl.SqueezeMixin) for m in model.modules()) else 2


FRAMEWORK = Framework("sinabs", is_sinabs_module, piece, _policy, prepare=reset_states, lead=lead, suggestion=SUGGESTION)
