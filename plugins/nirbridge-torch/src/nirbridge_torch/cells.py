"""A torch cell for every NIR neuron (I, IF, LI, LIF, CubaLI, CubaLIF) under any Policy.

It steps exactly the equations of docs/semantics.md, so a backend can run a node its own
framework cannot express (a reset timing, threshold rule, v_leak or v_reset it lacks) and
still agree with the NumPy reference. With `a = decay(tau)` and `c = current_gain(tau)`:

    input term of x with gain g:   current: c g x   (I, IF: dt g x)      impulse: g x
    LI/LIF:      v = v_leak + a (v - v_leak) + input term(x, r)
    CubaLI/F:    I = a_syn I + input term(x, w_in)
                 v = v_leak + a_mem (v - v_leak) + c_mem r I   (I of this step, or the last one
                                                                under `voltage_first`)
    I/IF:        v = v + input term(x, r)
    spikes:      z = v > v_threshold   (`ge`: >=)
    reset:       to_reset v <- v_reset, subtract v <- v - v_threshold, none;
                 `immediate` in the same step, `next_step` after the next step's decay and input.

Spikes use a Heaviside forward with an arctan surrogate gradient, so the cell trains.
"""

from __future__ import annotations

import numpy as np
import torch
from nirbridge import graph as g
from nirbridge.policy import Policy, current_gain, decay

#: node types the cell runs, and whether they spike
SPIKING = {"IF": True, "LIF": True, "CubaLIF": True, "I": False, "LI": False, "CubaLI": False}


class _Heaviside(torch.autograd.Function):
    """z = (x > 0) forward (x >= 0 when `ge`); gradient 1/(1 + (pi x)^2)."""

    @staticmethod
    def forward(ctx, x, ge: bool):
        ctx.save_for_backward(x)
        return ((x >= 0) if ge else (x > 0)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1 + (np.pi * x) ** 2), None


def _param(value) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.as_tensor(np.asarray(value), dtype=torch.get_default_dtype()))


def _const(value) -> torch.Tensor:
    return torch.as_tensor(np.asarray(value), dtype=torch.get_default_dtype())


class PolicyNeuron(torch.nn.Module):
    """One NIR neuron node stepped under one node's effective `policy` (overrides applied).

    Parameters are trainable and kept as NIR fields (`tau`, `r`, `v_threshold`, ...); per-step
    factors are computed from them in each step. `forward(x)` takes (batch, *shape) and returns
    spikes (IF, LIF, CubaLIF) or v (I, LI, CubaLI). `record_state()` gives `v`, `I`, `spikes`.
    """

    def __init__(self, node: g.Node, policy: Policy):
        super().__init__()
        if node.type not in SPIKING:
            raise TypeError(f"{node.type} is not a neuron node")
        self.kind = node.type
        self.dt = float(policy.dt)
        self.integration = policy.integration
        self.reset_rule = policy.reset
        self.reset_timing = policy.reset_timing
        self.ge = policy.threshold == "ge"
        self.voltage_first = policy.current_order == "voltage_first"
        self.impulse = policy.input == "impulse"
        self.spiking = SPIKING[node.type]
        for name in type(node).float_fields:
            setattr(self, name, _param(getattr(node, name)))
        self.reset_state()

    # -- state ------------------------------------------------------------------------
    def reset_state(self) -> None:
        self.v = None
        self.i = None
        self.z = None

    def record_state(self) -> dict[str, torch.Tensor]:
        state = {"v": self.v}
        if self.i is not None:
            state["I"] = self.i
        if self.spiking:
            state["spikes"] = self.z
        return state

    # -- maths --------------------------------------------------------------------------
    def _factors(self, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ratio = self.dt / tau
        if self.integration == "euler":
            return 1 - ratio, ratio
        return torch.exp(-ratio), -torch.expm1(-ratio)

    def _input(self, x: torch.Tensor, gain: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        if self.impulse:
            return gain * x
        if c is None:  # I, IF: a held current integrates for dt
            return self.dt * gain * x
        return c * gain * x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zeros = torch.zeros_like(x)
        v = zeros if self.v is None or self.v.shape != x.shape else self.v
        if self.kind in ("I", "IF"):
            v = v + self._input(x, self.r, None)
        elif self.kind in ("LI", "LIF"):
            a, c = self._factors(self.tau)
            v = self.v_leak + a * (v - self.v_leak) + self._input(x, self.r, c)
        else:
            a_syn, c_syn = self._factors(self.tau_syn)
            a_mem, c_mem = self._factors(self.tau_mem)
            i_last = zeros if self.i is None or self.i.shape != x.shape else self.i
            i = a_syn * i_last + self._input(x, self.w_in, c_syn)
            drive = i_last if self.voltage_first else i
            v = self.v_leak + a_mem * (v - self.v_leak) + c_mem * self.r * drive
            self.i = i
        if not self.spiking:
            self.v = v
            return v
        if self.reset_timing == "next_step" and self.z is not None and self.z.shape == x.shape:
            v = self._reset(v, self.z.detach())
        z = _Heaviside.apply(v - self.v_threshold, self.ge)
        if self.reset_timing == "immediate":
            v = self._reset(v, z.detach())
        self.v, self.z = v, z
        return z

    def _reset(self, v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.reset_rule == "to_reset":
            return torch.where(z > 0, self.v_reset.expand_as(v), v)
        if self.reset_rule == "subtract":
            return v - z * self.v_threshold
        return v

    # -- back to NIR ------------------------------------------------------------------
    def to_node(self) -> g.Node:
        """The NIR node with the cell's current parameter values."""
        cls = g.NODE_TYPES[self.kind]
        fields = {name: getattr(self, name).detach().cpu().numpy().copy() for name in cls.float_fields}
        return cls(**fields)


def factors(node: g.Node, policy: Policy) -> dict[str, np.ndarray]:
    """Per-step decay (`a`) and current gain (`c`) of a node's time constants, as numpy."""
    out = {}
    for field in ("tau", "tau_syn", "tau_mem"):
        if field in type(node).model_fields:
            tau = getattr(node, field)
            out[field] = (decay(tau, policy.dt, policy.integration), current_gain(tau, policy.dt, policy.integration))
    return out


__all__ = ["PolicyNeuron", "SPIKING", "factors"]
