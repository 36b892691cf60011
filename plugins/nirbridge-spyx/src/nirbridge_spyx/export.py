"""Spyx model -> NIR Graph. A `spyx.nn.Sequential` (or one Spyx layer) is read layer by layer
from a one-step sample `(batch, *features)` in the model's own layout (Flax NNX convolutions
are channels-last; NIR is channels-first, so the graph's spatial arrays are transposed and a
Linear after a Flatten gets its input columns reordered). Under the `spyx` preset (dt 1):

    nnx.Linear                Affine (Linear without bias), weight = kernel.T
    nnx.Conv (HWIO)           Conv2d (OIHW), stride, explicit symmetric or VALID padding
    spyx.nn.SumPool (VALID)   SumPool2d
    spyx.nn.Flatten           Flatten
    LIF(beta, threshold)      LIF(tau, r = 1, v_leak = 0, v_reset = 0) -> Delay(dt) "<i>_delay"
    IF(threshold)             IF(r = 1, v_reset = 0) -> Delay(dt)
    CuBaLIF(alpha, beta)      CubaLIF(tau_syn, tau_mem, w_in = 1, r = tau_mem/dt, v_leak = 0) -> Delay(dt)
    LI(beta)                  LI(tau, r = 1, v_leak = 0)            (no delay: v is this step's)
    PSU_LIF(beta, threshold)  LI(tau, r = 1, v_leak = 0) -> Threshold (reset-free, no delay)
    RLIF/RIF/RCuBaLIF         the neuron with a Linear "<i>_rec" (weight recurrent_w.T) from its
                              spikes back to its input (the cycle rule delays it one step),
                              then the Delay

tau is the float32 whose decay 1 - dt/tau (euler; exp(-dt/tau) under `exact`), computed in
float64 and rounded once as the reference does, is Spyx's float32 `clip(beta, 0, 1)` exactly;
where float32 taus are too coarse for that (decays below about 1/2 at dt = 1), the node's time
constant is stored in float64 (a torch backend, whose parameters are float32, then steps a
decay that can differ in the last bit).
Every layer Spyx has but NIR cannot carry is listed in one `GapError`.
"""

from __future__ import annotations

import numpy as np
import spyx.nn as snn
from flax import nnx

from nirbridge import ir as g
from nirbridge.errors import GapError
from nirbridge.report import Gap, GapReport
from nirbridge.semantics import Policy, exact_unit_gain, with_policy

F32 = np.float32
SUGGESTION = "use LIF, IF, LI, CuBaLIF, RLIF, RIF, RCuBaLIF, PSU_LIF, SumPool (VALID), Flatten and nnx.Linear / nnx.Conv in a spyx.nn.Sequential"
#: Spyx layers with no NIR form, by class name, and why
UNSUPPORTED = {
    "ALIF": "an adaptive threshold (a second state raising the threshold after each spike); no NIR neuron has one",
    "ActivityRegularization": "a spike counter for regularisation, not part of the computation: leave it out of the exported model",
    "ResonateFire": "a complex (oscillating) state; NIR neurons are real-valued",
}
#: the Policy fields Spyx layers compute (dt and integration are free: they only set tau)
FIXED = {"reset": "subtract", "threshold": "gt", "current_order": "current_first", "input": "impulse", "spikes": "single",
         "v_min": None, "initial_v": "zero"}


def _array(value, shape) -> np.ndarray:
    """A Spyx parameter (scalar or per neuron, channels-last) as a float32 array of the NIR shape."""
    arr = np.asarray(value[...] if isinstance(value, nnx.Variable) else value, dtype=F32)
    if arr.ndim == 0:
        return np.full(shape, arr, F32)
    if arr.ndim == 3 and len(shape) == 3 and arr.shape != tuple(shape):  # (H, W, C) -> (C, H, W)
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(np.broadcast_to(arr, shape), dtype=F32)


def tau_of(a: np.ndarray, dt: float, integration: str) -> np.ndarray | None:
    """The float32 taus whose decay, computed as the reference does, is `a` exactly; None when
    some element has none near dt/(1 - a)."""
    a = np.asarray(a, F32)
    a64 = a.astype(np.float64)
    with np.errstate(divide="ignore"):
        start = (dt / (1 - a64) if integration == "euler" else -dt / np.log(a64)).astype(F32)
    found = np.zeros(a.shape, bool)
    tau = start.copy()
    decay = (lambda t: 1 - dt / t) if integration == "euler" else (lambda t: np.exp(-dt / t))
    below, above = start.copy(), start.copy()
    for i in range(64):
        for cand in ((start,) if i == 0 else (below, above)):
            ok = ~found & np.isfinite(cand) & (cand > 0) & (decay(cand.astype(np.float64)).astype(F32) == a)
            tau[ok], found = cand[ok], found | ok
        if found.all():
            return tau
        below, above = np.nextafter(below, F32(0)), np.nextafter(above, F32(np.inf))
    # float32 taus are too coarse for some decays (below about 1/2 at dt = 1): float64 then
    with np.errstate(divide="ignore"):
        wide = dt / (1 - a64) if integration == "euler" else -dt / np.log(a64)
    if np.all(np.isfinite(wide) & (wide > 0)) and np.array_equal(decay(wide).astype(F32), a):
        return wide
    return None


class Builder:
    def __init__(self, policy: Policy):
        self.policy, self.dt = policy, policy.dt
        self.nodes: dict[str, g.Node] = {}
        self.edges: list[tuple[str, str]] = []
        self.gaps: list[Gap] = []
        self.prev = "input"

    def refuse(self, name: str, kind: str, reason: str) -> None:
        self.gaps.append(Gap(name, kind, "unsupported", reason=reason, suggestion=SUGGESTION))

    def add(self, name: str, node: g.Node, source: str | None = None) -> str:
        self.nodes[name] = node
        self.edges.append((source or self.prev, name))
        self.prev = name
        return name

    def tau(self, name: str, kind: str, field: str, value, shape) -> np.ndarray | None:
        a = np.clip(_array(value, shape), F32(0), F32(1))  # Spyx clips in every call
        if np.any(a == 1):
            self.refuse(name, kind, f"{field} = 1 (no leak): NIR's time constant would be infinite; use IF / a decay below 1")
            return None
        tau = tau_of(a, self.dt, self.policy.integration)
        if tau is None:
            self.refuse(name, kind, f"no float32 time constant gives {field} exactly at dt={self.dt:g} (integration {self.policy.integration})")
        return tau


def _neuron(b: Builder, i: int, layer, kind: str, shape: tuple[int, ...]) -> None:
    name = str(i)
    zeros = np.zeros(shape, F32)
    ones = np.ones(shape, F32)
    base = kind.removeprefix("R") if kind.startswith("R") else kind
    if base == "LI":
        tau = b.tau(name, kind, "beta", layer.beta, shape)
        if tau is not None:
            b.add(name, g.LI(tau=tau, r=ones, v_leak=zeros))
        return
    theta = _array(layer.threshold, shape)
    if kind == "PSU_LIF":
        tau = b.tau(name, kind, "beta", layer.beta, shape)
        if tau is not None:
            b.add(name, g.LI(tau=tau, r=ones, v_leak=zeros))
            b.add(f"{name}_threshold", g.Threshold(threshold=theta))
        return
    limits = {"v_threshold": theta, "v_reset": zeros}
    if base == "IF":
        node: g.Node = g.IF(r=ones, **limits)
    elif base == "LIF":
        tau = b.tau(name, kind, "beta", layer.beta, shape)
        if tau is None:
            return
        node = g.LIF(tau=tau, r=ones, v_leak=zeros, **limits)
    else:
        tau_syn = b.tau(name, kind, "alpha", layer.alpha, shape)
        tau_mem = b.tau(name, kind, "beta", layer.beta, shape)
        if tau_syn is None or tau_mem is None:
            return
        r, found = exact_unit_gain(tau_mem, b.dt, b.policy.integration)
        if not found.all():
            b.refuse(name, kind, f"no float32 r makes the current enter v unscaled (c_mem r = 1) at dt={b.dt:g}")
            return
        node = g.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=r, w_in=ones, v_leak=zeros, **limits)
    b.add(name, node)
    if kind.startswith("R"):
        w = np.asarray(layer.recurrent_w[...], F32)
        if w.shape != (int(np.prod(shape)),) * 2 or len(shape) != 1:
            b.refuse(name, kind, f"recurrent weights {w.shape} on neurons shaped {shape}")
            return
        b.nodes[f"{name}_rec"] = g.Linear(weight=np.ascontiguousarray(w.T))
        b.edges += [(name, f"{name}_rec"), (f"{name}_rec", name)]
    b.prev = name
    b.add(f"{name}_delay", g.Delay(delay=np.full(shape, b.dt, F32)))  # Spyx emits the spike a step later


NEURONS = {snn.LIF: "LIF", snn.IF: "IF", snn.LI: "LI", snn.CuBaLIF: "CubaLIF", snn.RLIF: "RLIF", snn.RIF: "RIF",
           snn.RCuBaLIF: "RCubaLIF", snn.PSU_LIF: "PSU_LIF"}


def layers_of(model) -> list:
    return list(model.layers) if isinstance(model, nnx.Sequential) else [model]


def is_conv_model(model) -> bool:
    return any(isinstance(m, nnx.Conv) for m in layers_of(model))


def check_policy(given: Policy | None) -> tuple[Policy, list[Gap]]:
    """The given policy, else the `spyx` preset; Spyx's fixed rules must hold in it."""
    policy = given if given is not None else Policy.preset("spyx")
    gaps = []
    for kind, timing in (("LIF", "next_step"), ("IF", "next_step"), ("CubaLIF", "immediate")):
        p = policy.for_node("", kind)
        wanted = FIXED | {"reset_timing": timing}
        gaps += [Gap("(policy)", "Policy", "unsupported", reason=f"{kind}: {f}={getattr(p, f)!r}: Spyx layers compute {v!r}",
                     suggestion="export without a policy (the spyx preset) or with another dt or integration only")
                 for f, v in wanted.items() if getattr(p, f) != v]
    return policy, gaps


def export(model, sample, policy: Policy | None = None) -> tuple[g.Graph | None, GapReport]:
    """The graph of a Spyx model (see the module doc) and the report of what it cannot carry."""
    policy, gaps = check_policy(policy)
    b = Builder(policy)
    b.gaps += gaps
    if sample is None:
        raise GapError(GapReport([Gap("(sample)", "sample", "unsupported", reason="a Spyx export needs a one-step sample (batch, *features) to know the input shape",
                                      suggestion="pass sample=x[0] (one step, the model's own layout)")]))
    features = tuple(int(n) for n in np.shape(sample)[1:])
    spatial = len(features) == 3 and is_conv_model(model)
    shape = (features[2], features[0], features[1]) if spatial else features  # NIR: channels first
    b.nodes["input"] = g.Input(shape=np.asarray(shape, np.int64))
    perm = None  # pending column order after flattening a channels-last tensor
    for i, layer in enumerate(layers_of(model)):
        name, kind = str(i), type(layer).__name__
        if isinstance(layer, nnx.Linear):
            kernel = np.asarray(layer.kernel[...], F32)
            if perm is not None:
                kernel, perm = kernel[perm], None
            weight = np.ascontiguousarray(kernel.T)
            bias = None if layer.bias is None else np.asarray(layer.bias[...], F32)
            b.add(name, g.Linear(weight=weight) if bias is None else g.Affine(weight=weight, bias=bias))
            shape = shape[:-1] + (weight.shape[0],)
        elif isinstance(layer, nnx.Conv):
            if len(shape) != 3:
                b.refuse(name, kind, f"nnx.Conv on an input shaped {shape}: only 2-d convolutions (H, W, C) are exported")
                continue
            kernel = np.asarray(layer.kernel[...], F32)  # HWIO
            pad = layer.padding
            if isinstance(pad, str) and pad.upper() == "VALID":
                padding = (0, 0)
            elif isinstance(pad, str):
                span = kernel.shape[:2]
                if any((k - 1) % 2 for k in span) or any(s != 1 for s in np.atleast_1d(layer.strides or 1)):
                    b.refuse(name, kind, f"padding {pad!r} with an even kernel or a stride pads unevenly (NIR pads symmetrically)")
                    continue
                padding = tuple((k - 1) // 2 for k in span)
            else:
                pairs = [tuple(p) if np.ndim(p) else (int(p), int(p)) for p in pad]
                if any(lo != hi for lo, hi in pairs):
                    b.refuse(name, kind, f"asymmetric padding {pad!r}")
                    continue
                padding = tuple(int(lo) for lo, _ in pairs)
            dilation = np.atleast_1d(layer.kernel_dilation or 1)
            if np.any(dilation != 1) or (layer.input_dilation not in (None, 1)) or layer.feature_group_count != 1:
                b.refuse(name, kind, "dilated or grouped convolutions are not exported")
                continue
            stride = tuple(int(s) for s in np.broadcast_to(np.atleast_1d(layer.strides or 1), (2,)))
            bias = np.zeros(kernel.shape[3], F32) if layer.bias is None else np.asarray(layer.bias[...], F32)
            node = g.Conv2d(weight=np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), bias=bias, stride=np.asarray(stride, np.int64),
                            padding=np.asarray(padding, np.int64), dilation=np.ones(2, np.int64), groups=np.int64(1),
                            input_shape=np.asarray(shape[1:], np.int64))
            b.add(name, node)
            h, w = ((n + 2 * p - k) // s + 1 for n, p, k, s in zip(shape[1:], padding, kernel.shape[:2], stride))
            shape = (kernel.shape[3], h, w)
        elif isinstance(layer, snn.SumPool):
            if len(shape) != 3 or str(layer.padding).upper() != "VALID" or layer.channel_axis not in (-1, 3):
                b.refuse(name, kind, f"SumPool with padding {layer.padding!r}, channel_axis {layer.channel_axis} on {shape}: only VALID pooling of channels-last images")
                continue
            k = tuple(int(v) for v in np.broadcast_to(np.atleast_1d(layer.window_shape), (2,)))
            s = tuple(int(v) for v in np.broadcast_to(np.atleast_1d(layer.strides), (2,)))
            b.add(name, g.SumPool2d(kernel_size=np.asarray(k, np.int64), stride=np.asarray(s, np.int64), padding=np.zeros(2, np.int64)))
            shape = (shape[0], (shape[1] - k[0]) // s[0] + 1, (shape[2] - k[1]) // s[1] + 1)
        elif isinstance(layer, snn.Flatten):
            if len(shape) == 3 and spatial:  # Spyx flattens (H, W, C); NIR (C, H, W)
                c, h, w = shape
                perm = np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)
            b.add(name, g.Flatten(start_dim=0, end_dim=-1, input_type=np.asarray(shape, np.int64)))
            shape = (int(np.prod(shape)),)
        elif type(layer) in NEURONS:
            if perm is not None and any(np.ndim(getattr(layer, f, 0)) for f in ("beta", "alpha", "threshold")):
                b.refuse(name, kind, "per-neuron parameters right after flattening a convolution's output")
                continue
            _neuron(b, i, layer, NEURONS[type(layer)], shape)
        else:
            b.refuse(name, kind, f"{kind} has {UNSUPPORTED.get(kind, 'no NIR equivalent')}")
    report = GapReport(b.gaps)
    if report.unsupported:
        return None, report
    b.nodes["output"] = g.Output(shape=np.asarray(shape, np.int64))
    b.edges.append((b.prev, "output"))
    graph = g.Graph(nodes=b.nodes, edges=b.edges)
    return with_policy(graph, policy), report


def transpose_in(model, x: np.ndarray) -> np.ndarray:
    """x (time, batch, C, H, W) in NIR layout as a conv model takes it (time, batch, H, W, C)."""
    return np.moveaxis(x, 2, -1) if is_conv_model(model) and np.ndim(x) == 5 else x


def transpose_out(model, y: np.ndarray) -> np.ndarray:
    return np.moveaxis(y, -1, 2) if is_conv_model(model) and np.ndim(y) == 5 else y


__all__ = ["export", "tau_of", "check_policy", "transpose_in", "transpose_out"]
