"""Neuron modules of an imported graph: thin adapters around Norse.

Every adapter runs one time step per call, keeps its state until `reset_state()`, starts from
zero state (as NIR does; stock Norse cells would start at `v_leak` or `v_reset`), and reports
`record_state()` as `v`, `I` (current-based neurons) and `spikes`.

`NativeCell` drives a stock Norse cell (`LIFBoxCell`, `LIFCell`, `LIBoxCell`, `LICell`,
`IAFCell`) with an explicit state; the node's input gain (`r`, `w_in`, and `dt/tau` or `dt`
depending on the input convention) is an explicit `Scale` in front of it, because the Norse
cells have no such parameter:

    LIFBoxCell:  v <- v + dt/tau (g x + v_leak - v)              g = r (current), r tau/dt (impulse)
    IAFCell:     v <- v + g x                                     g = dt r (current), r (impulse)
    LIFCell:     I' = I + g x;  v <- v + dt/tau_mem (v_leak - v + I');  I <- I' (1 - dt/tau_syn)
                                                                  g = r w_in dt/tau_syn (current), r w_in (impulse)

and likewise LIBoxCell and LICell without spikes. `PolicyCell` reproduces any `Policy` (exact
integration, subtractive or delayed reset, `ge` threshold, voltage-first current order)
with the equations of docs/semantics.md, using Norse's `threshold` (surrogate gradients) and
`reset_value`/`reset_subtract`.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

with warnings.catch_warnings():  # Norse 1.1 decorates with torch.jit.script, deprecated in torch 2.14
    warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)
    import norse.torch  # noqa: F401
from norse.torch.functional.reset import reset_subtract, reset_value
from norse.torch.functional.threshold import threshold as norse_threshold

from nirbridge import ir as g
from nirbridge.semantics import Policy, current_gain, step_constants

SPIKING = (g.IF, g.LIF, g.CubaLIF)
CURRENT_BASED = (g.CubaLI, g.CubaLIF)


def native_reason(node: g.Node, policy: Policy) -> str:
    """Why a stock Norse cell cannot run `node` under `policy` exactly ("" when it can)."""
    why = []
    if policy.integration != "euler" and not isinstance(node, (g.I, g.IF)):  # I, IF do not decay
        why.append(f"integration {policy.integration!r} (Norse integrates with forward Euler)")
    if isinstance(node, SPIKING):
        if policy.threshold != "gt":
            why.append(f"threshold {policy.threshold!r} (Norse spikes when v > v_th)")
        if policy.reset_timing != "immediate":
            why.append(f"reset_timing {policy.reset_timing!r} (Norse resets in the step of the spike)")
        allowed = ("to_reset", "subtract") if isinstance(node, g.LIF) else ("to_reset",)
        if policy.reset not in allowed:
            cell = {g.IF: "IAFCell", g.LIF: "LIFBoxCell", g.CubaLIF: "LIFCell"}[type(node)]
            why.append(f"reset {policy.reset!r} ({cell} resets to v_reset only)" if policy.reset == "subtract" else f"reset {policy.reset!r}")
    if isinstance(node, CURRENT_BASED) and policy.current_order != "current_first":
        why.append(f"current_order {policy.current_order!r} (Norse's membrane sees this step's current)")
    if isinstance(node, g.I):
        why.append("Norse has no plain integrator")
    return "; ".join(why)


def input_gain(node: g.Node, policy: Policy) -> np.ndarray:
    """The factor (float64) a stock Norse cell needs in front of it to run `node` under the
    euler `policy`: its input enters Norse's cells as `dt/tau * x` (LIFBox, LIBox), `x` (IAF)
    or as a jump of the current (LIF, LI)."""
    dt = float(policy.dt)
    p = {f: np.asarray(getattr(node, f), dtype=np.float64) for f in node.float_fields}
    impulse = policy.input == "impulse"
    if isinstance(node, (g.IF, g.I)):
        return p["r"] if impulse else dt * p["r"]
    if isinstance(node, (g.LI, g.LIF)):
        return p["r"] / current_gain(p["tau"], dt, "euler") if impulse else p["r"]
    syn = p["w_in"] if impulse else current_gain(p["tau_syn"], dt, "euler") * p["w_in"]
    return p["r"] * syn


class _Stateful(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.state = None
        self.last: dict[str, torch.Tensor] = {}

    def reset_state(self) -> None:
        self.state = None
        self.last = {}

    def record_state(self) -> dict[str, torch.Tensor]:
        return dict(self.last)


class NativeCell(_Stateful):
    """A stock Norse cell for one NIR neuron node, with its input gain as an explicit Scale.

    `cell` is the Norse module; `gain` is None when the gain is exactly 1 (then the cell sees
    the input unchanged, bit for bit). `r` divides the recorded current of current-based
    neurons back into NIR units (the Norse current is r times the NIR current)."""

    def __init__(self, node: g.Node, policy: Policy, *, dt: float | None = None):
        super().__init__()
        from nirbridge_torch.layers import Scale

        self.node_type = node.type
        dt = float(policy.dt if dt is None else dt)
        gain = input_gain(node, policy)
        self.scale = None if np.all(gain == 1.0) else Scale(gain)
        self.cell = make_norse_cell(node, policy, dt)
        self.r = _const(node.r) if isinstance(node, CURRENT_BASED) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:
            x = self.scale(x)
        if self.state is None:
            self.state = zero_state(self.cell, x)
        previous = self.state
        out, self.state = self.cell(x, previous)
        last = {"v": self.state.v}
        if isinstance(self.state, tuple) and hasattr(self.state, "i"):
            current = previous.i + x  # the current Norse's membrane update saw (before decay)
            last["I"] = current / self.r
        if self.node_type in ("IF", "LIF", "CubaLIF"):
            last["spikes"] = out
        self.last = last
        return out


def make_norse_cell(node: g.Node, policy: Policy, dt: float) -> torch.nn.Module:
    """The stock Norse cell of a NIR neuron node (parameters as float32 tensors)."""
    import norse.torch as norse

    if isinstance(node, g.LIF):
        p = norse.LIFBoxParameters(
            tau_mem_inv=_const(1.0 / np.asarray(node.tau, dtype=np.float64)),
            v_leak=_const((node.v_leak)),
            v_th=_const((node.v_threshold)),
            v_reset=_const((node.v_reset)),
            method="super",
            reset_method=reset_subtract if policy.reset == "subtract" else reset_value,
        )
        return norse.LIFBoxCell(p, dt=dt)
    if isinstance(node, g.IF):
        p = norse.IAFParameters(v_th=_const((node.v_threshold)), v_reset=_const((node.v_reset)), method="super")
        return norse.IAFCell(p, dt=dt)
    if isinstance(node, g.LI):
        p = norse.LIBoxParameters(tau_mem_inv=_const(1.0 / np.asarray(node.tau, dtype=np.float64)), v_leak=_const((node.v_leak)))
        return norse.LIBoxCell(p, dt=dt)
    if isinstance(node, g.CubaLIF):
        p = norse.LIFParameters(
            tau_syn_inv=_const(1.0 / np.asarray(node.tau_syn, dtype=np.float64)),
            tau_mem_inv=_const(1.0 / np.asarray(node.tau_mem, dtype=np.float64)),
            v_leak=_const((node.v_leak)),
            v_th=_const((node.v_threshold)),
            v_reset=_const((node.v_reset)),
            method="super",
        )
        return norse.LIFCell(p, dt=dt)
    if isinstance(node, g.CubaLI):
        p = norse.LIParameters(
            tau_syn_inv=_const(1.0 / np.asarray(node.tau_syn, dtype=np.float64)),
            tau_mem_inv=_const(1.0 / np.asarray(node.tau_mem, dtype=np.float64)),
            v_leak=_const((node.v_leak)),
        )
        return norse.LICell(p, dt=dt)
    raise TypeError(f"no Norse cell for {node.type}")


def zero_state(cell: torch.nn.Module, x: torch.Tensor):
    """The all-zero state of a stock Norse cell for input `x` (NIR starts at zero)."""
    import norse.torch as norse

    zeros = torch.zeros_like(x)
    if isinstance(cell, norse.LIFBoxCell):
        return norse.LIFBoxFeedForwardState(v=zeros)
    if isinstance(cell, norse.IAFCell):
        return norse.IAFFeedForwardState(v=zeros)
    if isinstance(cell, norse.LIBoxCell):
        return norse.LIBoxState(v=zeros)
    if isinstance(cell, norse.LIFCell):
        return norse.LIFFeedForwardState(v=zeros, i=torch.zeros_like(x))
    if isinstance(cell, norse.LICell):
        return norse.LIState(v=zeros, i=torch.zeros_like(x))
    raise TypeError(f"no zero state for {type(cell).__name__}")


class PolicyCell(_Stateful):
    """One NIR neuron node under any Policy, step by step, in the form and operation order of
    the NumPy reference (docs/semantics.md; constants in float64, rounded once):

        I, IF:          v[k] = v[k-1] + g x[k]                   g = dt r (current), r (impulse)
        LI, LIF:        v[k] = a v[k-1] + (g x[k] + c v_leak)    g = c r (current), r (impulse)
        CubaLI/CubaLIF: I[k] = a_syn I[k-1] + g x[k]             g = c_syn w_in (current), w_in (impulse)
                        v[k] = a v[k-1] + (c r I[j] + c v_leak)  j = k (current_first), k-1 (voltage_first)
        z[k] = Theta(v[k] - v_th)      (Norse `threshold`; `ge` also fires at v == v_th)
        reset with Norse `reset_value` / `reset_subtract`, in step k (immediate) or k+1 (next_step)

    with the constants of `nirbridge.semantics.step_constants`, shared with the reference."""

    def __init__(self, node: g.Node, policy: Policy):
        super().__init__()
        self.node_type = node.type
        self.policy = policy
        self.spiking = isinstance(node, SPIKING)
        self.cuba = isinstance(node, CURRENT_BASED)
        k = step_constants(node, policy)
        if self.cuba:
            self.register_buffer("a_syn", _const(k.a_syn))
            self.register_buffer("c_r", _const(k.c_r))
            self.register_buffer("v_leak_term", _optional(k.v_leak_term))
            self.voltage_first = policy.current_order == "voltage_first"
        a, gain, leak = k.a, k.gain, k.leak
        self.register_buffer("a", None if a is None else _const(a))
        self.register_buffer("g", None if np.all(gain == 1) else _const(gain))
        self.register_buffer("leak", _optional(leak))
        if self.spiking:
            self.register_buffer("v_th", _const(node.v_threshold))
            self.register_buffer("v_reset", _const(node.v_reset))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        policy = self.policy
        if self.state is None:
            zeros = torch.zeros_like(x)
            self.state = {"v": zeros, "I": zeros, "z": zeros}
        v, current, pending = self.state["v"], self.state["I"], self.state["z"]
        u = x if self.g is None else x * self.g
        if self.leak is not None:
            u = u + self.leak
        last = {}
        if self.cuba:
            if self.voltage_first:
                term = current * self.c_r
                current = current * self.a_syn + u
            else:
                current = current * self.a_syn + u
                term = current * self.c_r
            if self.v_leak_term is not None:
                term = term + self.v_leak_term
            u = term
            last["I"] = current
        v = u + (v if self.a is None else v * self.a)
        z = pending
        if self.spiking:
            if policy.reset_timing == "next_step":
                v = self._reset(pending, v)
            z = norse_threshold(v - self.v_th, "super", torch.as_tensor(100.0))
            if policy.threshold == "ge":
                z = torch.where(v == self.v_th, torch.ones_like(z), z)
            last["spikes"] = z
            if policy.reset_timing == "immediate":
                v = self._reset(z, v)
        last["v"] = v  # after the reset (immediate) or before the pending one (next_step)
        self.state = {"v": v, "I": current, "z": z}
        self.last = last
        return z if self.spiking else v

    def _reset(self, z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.policy.reset == "to_reset":
            return reset_value(z, v, self.v_reset, self.v_th)
        if self.policy.reset == "subtract":
            return reset_subtract(z, v, self.v_reset, self.v_th)
        return v


def _const(value) -> torch.Tensor:
    """A float64 constant rounded once to the simulation dtype."""
    return torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=torch.get_default_dtype())


def _optional(value) -> torch.Tensor | None:
    """A constant term, or None when it is zero everywhere."""
    return None if value is None or not np.any(value) else _const(value)
