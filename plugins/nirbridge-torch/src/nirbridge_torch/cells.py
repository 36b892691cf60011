"""A torch cell for every NIR neuron (I, IF, LI, LIF, CubaLI, CubaLIF) under any Policy.

It steps exactly the equations of docs/semantics.md, so a backend can run a node its own
framework cannot express (a reset timing, threshold rule, v_leak or v_reset it lacks) and
still agree with the NumPy reference. With `a = decay(tau)` and `c = current_gain(tau)`:

    input term of x with gain g:   current: c g x   (I, IF: dt g x)      impulse: g x
    LI/LIF:      v = a v + (input term(x, r) + c v_leak)
    CubaLI/F:    I = a_syn I + input term(x, w_in)
                 v = a_mem v + (c_mem r I + c_mem v_leak)   (I of this step, or the last one
                                                            under `voltage_first`)
    I/IF:        v = v + input term(x, r)
    spikes:      z = v > v_threshold   (`ge`: >=)
    reset:       to_reset v <- v_reset, subtract v <- v - v_threshold, none;
                 `immediate` in the same step, `next_step` after the next step's decay and input.

Per-step constants are computed in float64 and rounded once, and each update rounds after
every operation, as the NumPy reference does. Spikes use a Heaviside forward with an arctan surrogate gradient, so the cell trains.
"""

from __future__ import annotations

import numpy as np
import torch

from nirbridge import ir as g
from nirbridge.semantics import Policy

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
    return torch.nn.Parameter(torch.tensor(np.array(value), dtype=torch.get_default_dtype()))


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
    def _constants(self) -> dict[str, torch.Tensor | None]:
        """Per-step constants from the parameters, computed in float64 and rounded once (as the
        NumPy reference does): decay a, input gain g, leak term, and for CubaLI/F a_syn, c_mem r."""
        dt, dtype = self.dt, torch.get_default_dtype()

        def decay_gain(tau):
            ratio = dt / tau.double()
            if self.integration == "euler":
                return 1 - ratio, ratio
            return torch.exp(-ratio), -torch.expm1(-ratio)

        out: dict[str, torch.Tensor | None] = {"a": None, "leak": None}
        if self.kind in ("I", "IF"):
            out["gain"] = self.r.double() if self.impulse else dt * self.r.double()
        elif self.kind in ("LI", "LIF"):
            a, c = decay_gain(self.tau)
            out["a"] = a
            out["gain"] = self.r.double() if self.impulse else c * self.r.double()
            out["leak"] = c * self.v_leak.double()
        else:
            a_syn, c_syn = decay_gain(self.tau_syn)
            a, c_mem = decay_gain(self.tau_mem)
            out.update(a=a, a_syn=a_syn, c_r=c_mem * self.r.double(), v_leak_term=c_mem * self.v_leak.double())
            out["gain"] = self.w_in.double() if self.impulse else c_syn * self.w_in.double()
        return {k: (v.to(dtype) if v is not None else None) for k, v in out.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self._constants()
        zeros = torch.zeros_like(x)
        v = zeros if self.v is None or self.v.shape != x.shape else self.v
        u = x * k["gain"]
        if k["leak"] is not None:
            u = u + k["leak"]
        if self.kind in ("CubaLI", "CubaLIF"):
            i = zeros if self.i is None or self.i.shape != x.shape else self.i
            if self.voltage_first:  # v sees I[k-1]
                term = i * k["c_r"]
                i = i * k["a_syn"] + u
            else:
                i = i * k["a_syn"] + u
                term = i * k["c_r"]
            u = term + k["v_leak_term"]
            self.i = i
        v = v * k["a"] + u if k["a"] is not None else v + u
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


__all__ = ["PolicyNeuron", "SPIKING"]
