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

and likewise LIBoxCell and LICell without spikes. The cell's parameters (`tau_mem_inv`,
`v_th`, ...) and the gain are trainable parameters of the adapter, and `to_node` reads them
back into the node. Policies Norse lacks run on the torch toolkit's `PolicyNeuron`.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import torch

with warnings.catch_warnings():  # Norse 1.1 decorates with torch.jit.script, deprecated in torch 2.14
    warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)
    import norse.torch  # noqa: F401
from norse.torch.functional.reset import reset_subtract, reset_value

from nirbridge import ir as g
from nirbridge.semantics import Policy, current_gain
from nirbridge_torch.importing import like
from nirbridge_torch.layers import Scale, compact, tensor

SPIKING = (g.IF, g.LIF, g.CubaLIF)
CURRENT_BASED = (g.CubaLI, g.CubaLIF)


def native_reason(node: g.Node, policy: Policy) -> str:
    """Why a stock Norse cell cannot run `node` under `policy` exactly ("" when it can)."""
    why = []
    if policy.integration != "euler" and not isinstance(node, (g.I, g.IF)):  # I, IF do not decay
        why.append(f"integration {policy.integration!r} (Norse integrates with forward Euler)")
    if policy.initial_v != "zero" and np.any(getattr(node, policy.initial_v, 0)):
        why.append(f"initial_v {policy.initial_v!r} (imported cells start at 0, as NIR does)")
    if isinstance(node, SPIKING):
        if policy.spikes == "multi":
            why.append("spikes 'multi' (Norse emits at most one spike per step)")
        if policy.v_min is not None:
            why.append(f"v_min {policy.v_min!r} (Norse has no floor on the membrane potential)")
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


class NativeCell(torch.nn.Module):
    """A stock Norse cell for one NIR neuron node, with its input gain as an explicit Scale.

    `cell` is the Norse module; `gain` is None when the gain is exactly 1 (then the cell sees
    the input unchanged, bit for bit). `r` divides the recorded current of current-based
    neurons back into NIR units (the Norse current is r times the NIR current)."""

    def __init__(self, node: g.Node, policy: Policy, *, dt: float | None = None):
        super().__init__()
        self.node_type = node.type
        dt = float(policy.dt if dt is None else dt)
        gain = input_gain(node, policy)
        self.scale = None if np.all(gain == 1.0) else Scale(gain)
        self.cell = make_norse_cell(node, policy, dt)
        for field in self.cell.p._fields:  # the cell's tensors, registered so they train and are tracked
            value = getattr(self.cell.p, field)
            if isinstance(value, torch.nn.Parameter):
                self.register_parameter(field, value)
        self.register_buffer("r", tensor(node.r) if isinstance(node, CURRENT_BASED) else None)  # moves with .to(device)
        # per-step state in a plain namespace (no nn.Module.__setattr__ per step); `jump`: the
        # current the membrane update saw, kept for recording (current-based cells only)
        self.now = SimpleNamespace(state=None, jump=None, out=None)

    def reset_state(self) -> None:
        self.now.state = self.now.jump = self.now.out = None

    def _apply(self, fn, *args, **kwargs):
        """`.to(device)`, `.double()`, ...: Norse keeps the cell's tensors in a named tuple that
        torch does not see; put the converted ones back in it (parameters as registered here,
        other tensors such as the surrogate's `alpha` converted the same way)."""
        super()._apply(fn, *args, **kwargs)
        p = self.cell.p
        moved = {}
        for field in p._fields:
            value = getattr(p, field)
            if field in self._parameters:
                moved[field] = self._parameters[field]
            elif isinstance(value, torch.Tensor):
                moved[field] = fn(value)
        self.cell.p = p._replace(**moved)
        self.reset_state()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:
            x = self.scale(x)
        cell, now = self.cell, self.now
        if now.state is None:
            now.state = zero_state(cell, x)
        if self.r is not None:
            now.jump = (now.state.i, x)
        now.out, now.state = cell.activation(x, now.state, cell.p, cell.dt)  # what the cell's forward does, given a state
        return now.out

    def record_state(self) -> dict[str, torch.Tensor]:
        """v, I (in NIR units: the current Norse's membrane update saw, divided by r) and spikes
        of the last step."""
        now = self.now
        state = {"v": now.state.v}
        if self.r is not None:
            state["I"] = (now.jump[0] + now.jump[1]) / self.r
        if self.node_type in ("IF", "LIF", "CubaLIF"):
            state["spikes"] = now.out
        return state

    def to_node(self, node: g.Node, policy: Policy) -> g.Node:
        """`node` with the cell's current parameters (the inverse of `make_norse_cell` and
        `input_gain`)."""
        p = {f: getattr(self.cell.p, f) for f in self.cell.p._fields}
        value = lambda t: t.detach().cpu().numpy().astype(np.float64)  # noqa: E731
        fields = {k: p[n] for k, n in (("v_leak", "v_leak"), ("v_threshold", "v_th"), ("v_reset", "v_reset")) if n in p and k in type(node).model_fields}
        for nir_name, inverse in (("tau", "tau_mem_inv"), ("tau_mem", "tau_mem_inv"), ("tau_syn", "tau_syn_inv")):
            if nir_name in type(node).model_fields:
                fields[nir_name] = 1 / value(p[inverse])
        gain = value(self.scale.scale) if self.scale is not None else np.float64(1.0)
        dt, impulse = float(policy.dt), policy.input == "impulse"
        if isinstance(node, (g.IF, g.I)):
            fields["r"] = gain if impulse else gain / dt
        elif isinstance(node, (g.LI, g.LIF)):
            fields["r"] = gain * current_gain(np.broadcast_to(fields["tau"], np.shape(gain) or (1,)), dt, "euler") if impulse else gain
        else:  # gain = r w_in (impulse) or r c_syn w_in: the gain is carried by w_in, r kept
            r = np.asarray(node.r, dtype=np.float64)
            fields["w_in"] = gain / r if impulse else gain / (r * current_gain(fields["tau_syn"], dt, "euler"))
        return node.model_copy(update={k: like(v, getattr(node, k)) for k, v in fields.items()})


def make_norse_cell(node: g.Node, policy: Policy, dt: float) -> torch.nn.Module:
    """The stock Norse cell of a NIR neuron node (parameters as float32 tensors)."""
    import norse.torch as norse

    if isinstance(node, g.LIF):
        p = norse.LIFBoxParameters(
            tau_mem_inv=_param(1.0 / np.asarray(node.tau, dtype=np.float64)),
            v_leak=_param(node.v_leak),
            v_th=_param(node.v_threshold),
            v_reset=_param(node.v_reset),
            method="super",
            reset_method=reset_subtract if policy.reset == "subtract" else reset_value,
        )
        return norse.LIFBoxCell(p, dt=dt)
    if isinstance(node, g.IF):
        p = norse.IAFParameters(v_th=_param(node.v_threshold), v_reset=_param(node.v_reset), method="super")
        return norse.IAFCell(p, dt=dt)
    if isinstance(node, g.LI):
        p = norse.LIBoxParameters(tau_mem_inv=_param(1.0 / np.asarray(node.tau, dtype=np.float64)), v_leak=_param(node.v_leak))
        return norse.LIBoxCell(p, dt=dt)
    if isinstance(node, g.CubaLIF):
        p = norse.LIFParameters(
            tau_syn_inv=_param(1.0 / np.asarray(node.tau_syn, dtype=np.float64)),
            tau_mem_inv=_param(1.0 / np.asarray(node.tau_mem, dtype=np.float64)),
            v_leak=_param(node.v_leak),
            v_th=_param(node.v_threshold),
            v_reset=_param(node.v_reset),
            method="super",
        )
        return norse.LIFCell(p, dt=dt)
    if isinstance(node, g.CubaLI):
        p = norse.LIParameters(
            tau_syn_inv=_param(1.0 / np.asarray(node.tau_syn, dtype=np.float64)),
            tau_mem_inv=_param(1.0 / np.asarray(node.tau_mem, dtype=np.float64)),
            v_leak=_param(node.v_leak),
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


def _param(value) -> torch.nn.Parameter:
    """A trainable cell parameter (float64 value rounded once; 0-d when all elements are equal)."""
    return torch.nn.Parameter(compact(np.asarray(value, dtype=np.float64)))
