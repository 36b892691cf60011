"""`PolicyNeuron`: a torch cell for every NIR neuron (I, IF, LI, LIF, CubaLI, CubaLIF) under any
Policy, the one every torch backend uses where its framework lacks the policy.

It steps exactly the equations of docs/semantics.md, in the NumPy reference's form and
operation order, so it agrees with the reference bit for bit:

    I, IF:          v[k] = v[k-1] + g x[k]                   g = dt r (current), r (impulse)
    LI, LIF:        v[k] = a v[k-1] + (g x[k] + c v_leak)    g = c r (current), r (impulse)
    CubaLI/CubaLIF: I[k] = a_syn I[k-1] + g x[k]             g = c_syn w_in (current), w_in (impulse)
                    v[k] = a v[k-1] + (c r I[j] + c v_leak)  j = k (current_first), k-1 (voltage_first)
    z[k] = v[k] > v_threshold   (`ge`: >=), then the reset: to_reset v <- v_reset,
    subtract v <- v - v_threshold, none; in step k (immediate) or after step k+1's decay and
    input (next_step). spikes="multi": z[k] = min(trunc(v[k] / v_threshold), max_spikes) where
    v[k] >= v_threshold (a count; subtract removes z v_threshold). v_min: the step ends with
    v = max(v - m, 0) + m. initial_v: v[-1] = 0, v_leak or v_reset.

The per-step constants (a, c, g, ...) come from `nirbridge.semantics.step_constants`, the
formula the reference uses, evaluated here in torch float64 and rounded once: the parameters
stay NIR fields (`tau`, `r`, `v_threshold`, ...) and train. Constants are computed again only
when a parameter changed or gradients flow. Spikes use a Heaviside forward with an arctan
surrogate gradient.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from nirbridge import ir as g
from nirbridge.semantics import Policy, StepRule, neuron_step, step_constants

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


def _uniform(value: torch.Tensor) -> torch.Tensor:
    """0-d when every element is the same (as the reference's constants: same values)."""
    flat = value.reshape(-1)
    return flat[0] if flat.numel() > 1 and bool((flat == flat[0]).all()) else value


class _Float64:
    """The cell's parameters in float64, as `step_constants` reads a node."""

    def __init__(self, cell: PolicyNeuron):
        self.type, self.float_fields = cell.type, cell.float_fields
        for name in cell.float_fields:
            setattr(self, name, getattr(cell, name).to(torch.float64))


class PolicyNeuron(torch.nn.Module):
    """One NIR neuron node stepped under one node's effective `policy` (overrides applied).

    `forward(x)` takes (batch, *shape) and returns spikes (IF, LIF, CubaLIF) or v (I, LI,
    CubaLI); state is kept until `reset_state()`; `record_state()` gives `v`, `I`, `spikes`;
    `to_node(node, policy)` the node with the current parameter values."""

    def __init__(self, node: g.Node, policy: Policy):
        super().__init__()
        if node.type not in SPIKING:
            raise TypeError(f"{node.type} is not a neuron node")
        self.type = node.type
        self.float_fields = type(node).float_fields
        self.policy = policy
        self.spiking = SPIKING[node.type]
        self.ge = policy.threshold == "ge"
        self.rule = StepRule.of(node.type, policy)
        for name in self.float_fields:
            self.register_parameter(name, torch.nn.Parameter(torch.tensor(np.asarray(getattr(node, name)), dtype=torch.get_default_dtype())))
        self.now = SimpleNamespace(v=None, i=None, z=None, cache=None)  # per-step state: no nn.Module.__setattr__ per step

    # -- state ------------------------------------------------------------------------
    def reset_state(self) -> None:
        self.now.v = self.now.i = self.now.z = None

    def record_state(self) -> dict[str, torch.Tensor]:
        now = self.now
        state = {"v": now.v}
        if self.type in ("CubaLI", "CubaLIF"):
            state["I"] = now.i
        if self.spiking:
            state["spikes"] = now.z
        return state

    # -- maths --------------------------------------------------------------------------
    def constants(self) -> dict[str, torch.Tensor | None]:
        """The per-step constants of the current parameters (`step_constants` in float64,
        rounded once to the parameters' dtype; for spiking nodes also v_threshold, v_reset and
        the floor v_min); zero leak terms and a unit gain are None."""
        params = tuple(getattr(self, name) for name in self.float_fields)
        key = tuple((id(p), p._version) for p in params)
        cache = self.now.cache
        if cache is not None and cache[0] == key and not (torch.is_grad_enabled() and any(p.requires_grad for p in params)):
            return cache[1]
        k = step_constants(_Float64(self), self.policy, xp=torch)
        dtype = params[0].dtype
        out = {name: (None if value is None else _uniform(value.to(dtype))) for name, value in k}
        for name in ("leak", "v_leak_term"):
            if out[name] is not None and not torch.any(out[name] != 0):
                out[name] = None
        if self.spiking:  # what neuron_step's spike test, reset and floor read
            floor = self.policy.v_min
            out |= {"v_threshold": self.v_threshold, "v_reset": getattr(self, "v_reset", None),
                    "v_min": None if floor is None else -self.v_threshold if floor == "-v_threshold" else floor}
        if not torch.is_grad_enabled() or not any(p.requires_grad for p in params):
            if not torch.any(out["gain"] != 1):
                out["gain"] = None
            self.now.cache = (key, out)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, now = self.constants(), self.now
        if now.v is None or now.v.shape != x.shape:
            zeros = torch.zeros_like(x)
            now.v, now.i, now.z = self._initial_v(zeros), zeros, None
        u = x if k["gain"] is None else x * k["gain"]
        if k["leak"] is not None:
            u = u + k["leak"]
        v, now.i, z = neuron_step(torch, self.rule, k, now.v, now.i, now.z, u,
                                  heaviside=lambda d: _Heaviside.apply(d, self.ge), stop=torch.Tensor.detach)
        now.v = v
        if not self.spiking:
            return v
        now.z = z
        return z

    def _initial_v(self, zeros: torch.Tensor) -> torch.Tensor:
        start = {"zero": None, "v_leak": "v_leak", "v_reset": "v_reset"}[self.policy.initial_v]
        if start is None or start not in self.float_fields:
            return zeros
        return zeros + getattr(self, start).detach()

    # -- back to NIR ------------------------------------------------------------------
    def to_node(self, node: g.Node | None = None, policy: Policy | None = None) -> g.Node:
        """The NIR node with the cell's current parameter values (shaped and typed as `node`'s
        fields when given)."""
        cls = g.NODE_TYPES[self.type]
        fields = {}
        for name in cls.float_fields:
            value = getattr(self, name).detach().cpu().numpy()
            ref = getattr(node, name) if node is not None else None
            fields[name] = value.copy() if ref is None else np.ascontiguousarray(np.broadcast_to(value, ref.shape), dtype=ref.dtype)
        return cls(**fields) if node is None else node.model_copy(update=fields)


__all__ = ["PolicyNeuron", "SPIKING"]
