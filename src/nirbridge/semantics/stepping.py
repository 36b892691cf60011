"""One step of a neuron node under a policy, written once for any array namespace (NumPy,
torch, jax.numpy): the formula of docs/semantics.md in the operation order of
`nirbridge.reference.neurons`, so that every simulator built on it agrees with the reference
bit for bit.

With the per-step constants of `step_constants` rounded to the simulation dtype and the input
term `u = g x + c v_leak` (computed by the caller, elementwise):

    CubaLI/CubaLIF:  I = a_syn I_prev + u;  u = c_r I (c_r I_prev for voltage_first) + v_leak_term
    v = a v_prev + u                  (I, IF: v = v_prev + u)
    next_step:       v = reset(v, z_prev)           (the spikes of the previous step, after decay and input)
    z = heaviside(v - v_threshold)    (v > v_threshold; >= for `ge`)
    multi:           z = min(trunc(v / v_threshold), max_spikes) where v >= v_threshold, else 0
    immediate:       v = reset(v, z)
    reset:           to_reset: v = v_reset where z > 0;  subtract: v = v - v_threshold z;  none
    v_min:           v = max(v - m, 0) + m

Each operation is rounded to the dtype (no fused multiply-add); terms that are zero everywhere
(None) are left out. `heaviside` and `stop` are the hooks of a differentiable simulator (a
surrogate gradient, a detach); their defaults are the plain test and the identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .policy import Policy


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


__all__ = ["StepRule", "neuron_step"]
