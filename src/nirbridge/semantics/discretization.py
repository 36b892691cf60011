"""The maths between NIR's time constants and per-step factors, for both integration schemes,
and the per-step constants of every neuron under a policy:

    euler:  a = 1 - dt/tau        tau = dt / (1 - a)       c = dt/tau
    exact:  a = exp(-dt/tau)      tau = -dt / log(a)       c = 1 - exp(-dt/tau)

`a` is a per-step decay factor (snnTorch's `beta` for tau_mem, `alpha` for tau_syn) and `c`
the share of a held current that one step adds (`current_gain`). snnTorch's convention
`r = tau/dt`, `w_in = tau_syn/dt` is the gain that makes one step's input add exactly itself:
`r = 1/c` (`unit_gain`).

Every function computes in float64 and returns the input's float dtype (float32 stays float32);
non-float inputs give float64. Bad values raise `PolicyError` naming the argument.
`step_constants` also runs in another array namespace (torch, jax.numpy): one formula for the
NumPy reference and every simulator built on other arrays, differentiable where they are.
Delays become whole steps with `delay_steps`, the one rule for every simulator. `neuron_step`
is one step of a neuron in any array namespace (at the end).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..errors import PolicyError, Problem, ResourceLimitError, SimulationError
from .fields import Integration
from .policy import Policy, dt_error


def _float_array(name: str, value: Any) -> tuple[np.ndarray, np.dtype]:
    """(value as float64 array, dtype to return): float dtypes are kept, others give float64."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        return arr.astype(np.float64), arr.dtype
    if arr.dtype.kind in "iu":
        return arr.astype(np.float64), np.dtype(np.float64)
    raise PolicyError(problems=[Problem(name, f"must be a real number or array, got dtype {arr.dtype}")])


def _require(name: str, arr: np.ndarray, ok: np.ndarray, rule: str) -> None:
    if not ok.all():
        idx = [int(i) for i in np.argwhere(~ok)[0]] if arr.ndim else []
        where = name + ("[" + ", ".join(map(str, idx)) + "]" if idx else "")
        raise PolicyError(problems=[Problem(where, f"{rule}, got {arr[tuple(idx)]}")])


def _tau(name: str, value: Any) -> tuple[np.ndarray, np.dtype]:
    arr, dtype = _float_array(name, value)
    _require(name, arr, np.isfinite(arr) & (arr > 0), "must be finite and > 0")
    return arr, dtype


def _step(dt: Any, integration: str) -> float:
    if integration not in ("euler", "exact"):
        raise PolicyError(problems=[Problem("integration", f"must be 'euler' or 'exact', got {integration!r}")])
    if error := dt_error(dt):
        raise PolicyError(problems=[Problem("dt", error)])
    return float(dt)


def _out(arr: np.ndarray, dtype: np.dtype):
    out = arr.astype(dtype)
    return out[()] if out.ndim == 0 else out


def _decay(tau: Any, dt: float, integration: str, xp: Any = np) -> Any:
    return 1 - dt / tau if integration == "euler" else xp.exp(-dt / tau)


def _gain(tau: Any, dt: float, integration: str, xp: Any = np) -> Any:
    return dt / tau if integration == "euler" else -xp.expm1(-dt / tau)


def _tau_from_decay(name: str, a: Any, dt: float, integration: str) -> tuple[np.ndarray, np.dtype]:
    arr, dtype = _float_array(name, a)
    if integration == "euler":
        _require(name, arr, np.isfinite(arr) & (arr < 1), "must be finite and < 1 (1 is no leak: tau would be infinite)")
        return dt / (1 - arr), dtype
    _require(name, arr, (arr > 0) & (arr < 1), "must be in (0, 1) (1 is no leak: tau would be infinite)")
    return -dt / np.log(arr), dtype


def decay(tau, dt: float, integration: Integration = "euler"):
    """Per-step decay factor of a time constant: 1 - dt/tau (euler) or exp(-dt/tau) (exact)."""
    dt = _step(dt, integration)
    t, dtype = _tau("tau", tau)
    return _out(_decay(t, dt, integration), dtype)


def tau_from_decay(a, dt: float, integration: Integration = "euler"):
    """Inverse of `decay`: dt/(1 - a) (euler, a < 1) or -dt/log(a) (exact, 0 < a < 1).
    a = 1 (no leak) has no finite tau and is refused."""
    dt = _step(dt, integration)
    return _out(*_tau_from_decay("a", a, dt, integration))


def current_gain(tau, dt: float, integration: Integration = "euler"):
    """c: the share of a held current one step adds: dt/tau (euler), 1 - exp(-dt/tau) (exact)."""
    dt = _step(dt, integration)
    t, dtype = _tau("tau", tau)
    return _out(_gain(t, dt, integration), dtype)


def unit_gain(tau, dt: float, integration: Integration = "euler"):
    """1/c: the r (or w_in) with which one step's input x adds exactly x (snnTorch's
    convention): tau/dt (euler), 1/(1 - exp(-dt/tau)) (exact)."""
    dt = _step(dt, integration)
    t, dtype = _tau("tau", tau)
    return _out(1 / _gain(t, dt, integration) if integration == "exact" else t / dt, dtype)


def exact_unit_gain(tau, dt: float, integration: Integration = "euler", ulps: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(r, found): the r nearest `unit_gain(tau)` (in tau's float dtype, within `ulps` steps,
    the lower one first at each distance) with which the reference's input term c r (c =
    `current_gain(tau)` in float64, rounded once to float32) is exactly 1, so that a current
    enters v unscaled; `unit_gain`'s value where `found` is False."""
    t = np.asarray(tau)
    kind = t.dtype.type if t.dtype in (np.float32, np.float64) else np.float32
    c = np.asarray(current_gain(t.astype(np.float64), dt, integration), np.float64)
    r = np.asarray(unit_gain(t.astype(np.float64), dt, integration), np.float64).astype(kind)
    found = np.zeros(r.shape, bool)
    below = above = r
    for _ in range(ulps):
        for cand in (below, above):
            ok = ~found & ((c * cand.astype(np.float64)).astype(np.float32) == 1)
            r, found = np.where(ok, cand, r), found | ok
        if found.all():
            break
        below, above = np.nextafter(below, kind(0)), np.nextafter(above, kind(np.inf))
    return r, found


class StepConstants(BaseModel):
    """Per-step constants of one neuron node under its effective policy, float64, as
    docs/semantics.md writes them (a = decay, c = current_gain):

        I, IF:          v = v + gain x                         gain = dt r (current), r (impulse)
        LI, LIF:        v = a v + (gain x + leak)              gain = c r or r; leak = c v_leak
        CubaLI/CubaLIF: I = a_syn I + gain x                   gain = c_syn w_in or w_in
                        v = a v + (c_r I + v_leak_term)        c_r = c_mem r; v_leak_term = c_mem v_leak

    Fields a node type does not use are None. Every simulator of these equations (the NumPy
    reference, the torch cells) takes its constants from here, rounded once to its dtype."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    a: Any = None
    gain: Any
    leak: Any = None
    a_syn: Any = None
    c_r: Any = None
    v_leak_term: Any = None


def step_constants(node, policy: Policy, xp: Any = np) -> StepConstants:
    """The `StepConstants` of a neuron node (I, IF, LI, LIF, CubaLI, CubaLIF) under `policy`,
    the node's effective policy (`policy.for_node(name, node.type)`).

    `node`: a NIR node, or any object with its `type`, `float_fields` and those fields as
    attributes (a torch module holding them as parameters). `xp`: the array namespace the
    arithmetic runs in. With NumPy (the default) fields are read as float64 arrays and time
    constants checked (`PolicyError`); other namespaces (torch, jax.numpy) take the fields as
    they are (pass float64 arrays) and compute the same formula on them, with gradients."""
    if xp is np:
        p = {f: np.asarray(getattr(node, f), dtype=np.float64) for f in node.float_fields}
        for name in ("tau", "tau_mem", "tau_syn"):
            if name in p:
                _tau(name, p[name])
    else:
        p = {f: getattr(node, f) for f in node.float_fields}
    dt, integration, impulse = _step(policy.dt, policy.integration), policy.integration, policy.input == "impulse"
    decay_of = lambda tau: _decay(tau, dt, integration, xp)  # noqa: E731
    gain_of = lambda tau: _gain(tau, dt, integration, xp)  # noqa: E731
    if node.type in ("I", "IF"):
        return StepConstants(gain=p["r"] if impulse else dt * p["r"])
    if node.type in ("LI", "LIF"):
        c = gain_of(p["tau"])
        return StepConstants(a=decay_of(p["tau"]), gain=p["r"] if impulse else c * p["r"], leak=c * p["v_leak"])
    c_mem, c_syn = gain_of(p["tau_mem"]), gain_of(p["tau_syn"])
    return StepConstants(
        a=decay_of(p["tau_mem"]),
        gain=p["w_in"] if impulse else c_syn * p["w_in"],
        a_syn=decay_of(p["tau_syn"]),
        c_r=c_mem * p["r"],
        v_leak_term=c_mem * p["v_leak"],
    )


#: the longest delay, in steps, a backend without a known run length is asked to hold
MAX_DELAY_STEPS = 1 << 24


def delay_steps(name: str, node, dt: float, in_shape: tuple[int, ...], limit: int | None = None) -> np.ndarray:
    """The delay of every element of a Delay node in whole steps of `dt`, shaped `in_shape`
    (int64). `delay / dt` must be a whole number >= 0 up to the rounding of the stored delay (16
    ulps of its dtype, relative), so a 0.01 s delay stored in float32 is 100 steps at dt = 1e-4;
    otherwise `PolicyError` names the node and element. A run of `limit` steps only ever reads
    zeros from a delay of `limit` or more, so such delays are cut to `limit` (1e30 s included);
    without a limit, a delay over MAX_DELAY_STEPS raises `ResourceLimitError`."""
    delay = np.asarray(node.delay)
    try:
        delay = np.broadcast_to(delay, in_shape)
    except ValueError:
        raise SimulationError(
            problems=[Problem(f"nodes.{name}.delay", f"shape {delay.shape} does not fit the input shape {tuple(in_shape)}")]
        ) from None
    eps = np.finfo(delay.dtype if delay.dtype.kind == "f" else np.float64).eps
    with np.errstate(over="ignore"):
        exact = delay.astype(np.float64) / dt
    whole = np.rint(exact)
    whole_enough = (np.abs(exact - whole) <= 16 * eps * np.maximum(1.0, np.abs(exact))) | np.isposinf(exact)
    bad = ~whole_enough | (whole < 0)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f"nodes.{name}.delay" + ("[" + ", ".join(map(str, idx)) + "]" if idx else "")
        raise PolicyError(
            problems=[Problem(where, f"{delay[idx]} s is not a whole number >= 0 of steps of dt = {dt} s ({exact[idx]} steps)")]
        )
    if limit is not None:
        return np.minimum(whole, limit).astype(np.int64)
    if whole.size and whole.max() > MAX_DELAY_STEPS:
        idx = tuple(int(i) for i in np.argwhere(whole > MAX_DELAY_STEPS)[0])
        where = f"nodes.{name}.delay" + ("[" + ", ".join(map(str, idx)) + "]" if idx else "")
        raise ResourceLimitError(problems=[Problem(where, f"{delay[idx]} s is {exact[idx]:.3g} steps of dt = {dt} s, "
                                                          f"over the {MAX_DELAY_STEPS:,} steps a delay line may hold")])
    return whole.astype(np.int64)


def _to_nir(name: str, a: Any, dt: float, integration: str):
    tau, dtype = _tau_from_decay(name, a, dt, integration)
    tau_out = _out(tau, dtype)
    # r from the rounded tau, as an exporter writing tau then r = tau/dt does
    t = np.asarray(tau_out, np.float64)
    return tau_out, _out(t / dt if integration == "euler" else 1 / _gain(t, dt, integration), dtype)


def _from_nir(names: tuple[str, str], tau: Any, gain: Any, dt: float, integration: str):
    t, t_dtype = _tau(names[0], tau)
    g, g_dtype = _float_array(names[1], gain)
    _require(names[1], g, np.isfinite(g), "must be finite")
    return _out(_decay(t, dt, integration), t_dtype), _out(_gain(t, dt, integration) * g, np.result_type(t_dtype, g_dtype))


def leaky_to_nir(beta, dt: float, integration: Integration = "euler"):
    """(tau, r) of a neuron stepping `v = beta v + x` (snnTorch `Leaky`):
    tau = tau_from_decay(beta), r = unit_gain(tau) (tau/dt for euler)."""
    dt = _step(dt, integration)
    return _to_nir("beta", beta, dt, integration)


def leaky_from_nir(tau, r, dt: float, integration: Integration = "euler"):
    """(beta, gain) of a LIF/LI node stepped with input `current`: `v = beta v + gain x`
    (v_leak = 0), beta = decay(tau), gain = c r: 1 under snnTorch's r = tau/dt."""
    dt = _step(dt, integration)
    return _from_nir(("tau", "r"), tau, r, dt, integration)


def synaptic_to_nir(alpha, beta, dt: float, integration: Integration = "euler"):
    """(tau_syn, tau_mem, r, w_in) of `I = alpha I + x; v = beta v + I` (snnTorch `Synaptic`):
    w_in = unit_gain(tau_syn), r = unit_gain(tau_mem)."""
    dt = _step(dt, integration)
    tau_syn, w_in = _to_nir("alpha", alpha, dt, integration)
    tau_mem, r = _to_nir("beta", beta, dt, integration)
    return tau_syn, tau_mem, r, w_in


def synaptic_from_nir(tau_syn, tau_mem, r, w_in, dt: float, integration: Integration = "euler"):
    """(alpha, beta, gain_syn, gain_mem) of a CubaLIF/CubaLI node stepped with input
    `current`, current_first: `I = alpha I + gain_syn x`, `v = beta v + gain_mem I`."""
    dt = _step(dt, integration)
    alpha, gain_syn = _from_nir(("tau_syn", "w_in"), tau_syn, w_in, dt, integration)
    beta, gain_mem = _from_nir(("tau_mem", "r"), tau_mem, r, dt, integration)
    return alpha, beta, gain_syn, gain_mem


# ----------------------------------------------------------------------------- one step
# One step of a neuron node under a policy, written once for any array namespace (NumPy,
# torch, jax.numpy): the formula of docs/semantics.md in the operation order of
# `nirbridge.reference.neurons`, so that every simulator built on it agrees with the reference
# bit for bit.
#
# With the per-step constants of `step_constants` rounded to the simulation dtype and the input
# term `u = g x + c v_leak` (computed by the caller, elementwise):
#
#     CubaLI/CubaLIF:  I = a_syn I_prev + u;  u = c_r I (c_r I_prev for voltage_first) + v_leak_term
#     v = a v_prev + u                  (I, IF: v = v_prev + u)
#     next_step:       v = reset(v, z_prev)           (the spikes of the previous step, after decay and input)
#     z = heaviside(v - v_threshold)    (v > v_threshold; >= for `ge`)
#     multi:           z = min(trunc(v / v_threshold), max_spikes) where v >= v_threshold, else 0
#     immediate:       v = reset(v, z)
#     reset:           to_reset: v = v_reset where z > 0;  subtract: v = v - v_threshold z;  none
#     v_min:           v = max(v - m, 0) + m
#
# Each operation is rounded to the dtype (no fused multiply-add); terms that are zero everywhere
# (None) are left out. `heaviside` and `stop` are the hooks of a differentiable simulator (a
# surrogate gradient, a detach); their defaults are the plain test and the identity.


@dataclass(frozen=True)
class StepRule:
    """The choices of a node's effective policy that one step needs (not the constants)."""

    kind: str
    threshold: str = "gt"
    reset: str = "to_reset"
    next_step: bool = False
    multi: bool = False
    max_spikes: int | None = None
    voltage_first: bool = False

    @property
    def spiking(self) -> bool:
        return self.kind in ("IF", "LIF", "CubaLIF")

    @property
    def synaptic(self) -> bool:
        return self.kind in ("CubaLI", "CubaLIF")

    @classmethod
    def of(cls, kind: str, policy: Policy) -> StepRule:
        """The rule of a `kind` node under its effective `policy`."""
        return cls(kind, policy.threshold, policy.reset, policy.reset_timing == "next_step", policy.spikes == "multi",
                   policy.max_spikes, policy.current_order == "voltage_first")


def _reset(xp: Any, rule: StepRule, v, z, k: dict[str, Any]):
    if rule.reset == "to_reset":
        v_reset = k.get("v_reset")
        return xp.where(z > 0, xp.zeros_like(v) if v_reset is None else v_reset + xp.zeros_like(v), v)
    if rule.reset == "subtract":
        return v - z * k["v_threshold"]
    return v


def neuron_step(xp: Any, rule: StepRule, k: dict[str, Any], v, i, z_prev, u, *,
                heaviside: Callable[[Any], Any] | None = None, stop: Callable[[Any], Any] | None = None):
    """One step: (v, I, z) from the previous (v, I, z_prev) and the input term `u` (see the
    module doc). `k`: the constants `a`, `a_syn`, `c_r`, `v_leak_term` (from `step_constants`),
    `v_threshold`, `v_reset`, `v_min` (the floor m, or None), each in the simulation dtype or
    None where absent or zero. I is None for non-synaptic nodes, z None for non-spiking ones
    (and z_prev None at the first step)."""
    stop = stop or (lambda t: t)
    if rule.synaptic:
        if rule.voltage_first:  # v sees I[k-1]
            term = i * k["c_r"]
            i = i * k["a_syn"] + u
        else:
            i = i * k["a_syn"] + u
            term = i * k["c_r"]
        u = term if k.get("v_leak_term") is None else term + k["v_leak_term"]
    v = v + u if k.get("a") is None else v * k["a"] + u
    if not rule.spiking:
        return v, i, None
    theta = k["v_threshold"]
    if rule.next_step and z_prev is not None:
        v = _reset(xp, rule, v, stop(z_prev), k)
    diff = v - theta
    if heaviside is not None:
        z = heaviside(diff)
    else:
        z = (diff >= 0 if rule.threshold == "ge" else diff > 0) * xp.ones_like(v)
    if rule.multi:  # the count forward; a differentiable z keeps its gradient
        count = xp.trunc(stop(v) / theta) * stop(z)
        if rule.max_spikes is not None:
            count = xp.minimum(count, rule.max_spikes * xp.ones_like(count))
        z = z + (count - stop(z))
    if not rule.next_step:
        v = _reset(xp, rule, v, stop(z), k)
    if k.get("v_min") is not None:
        m = k["v_min"]
        d = v - m
        v = xp.maximum(d, xp.zeros_like(d)) + m
    return v, i, z
