"""Neurons (I, IF, LI, LIF, CubaLI, CubaLIF): constants from the NIR parameters and the
Policy, and the update of one time step, exactly as docs/semantics.md writes it.

Every neuron is stepped in the same form. With `a` the decay of v (1 for I and IF) and `u[k]`
the input term of `x[k]` (`drive`, elementwise, so it can be computed for all steps at once):

    I, IF, LI, LIF:   v[k] = a v[k-1] + u[k]
                      u = g x + c v_leak          (g = c r for `current` (dt r for I, IF),
                                                   g = r for `impulse`; c = 1 - a)
    CubaLI, CubaLIF:  I[k] = a_syn I[k-1] + u[k]    (u = g x with gain w_in, c_syn for current)
                      v[k] = beta v[k-1] + (c_mem r I[j] + c_mem v_leak)
                      j = k (current_first) or k - 1 (voltage_first)

then, for IF, LIF, CubaLIF, the spike test `z[k] = v[k] > v_threshold` (`>=` for `ge`) and
the reset, with z as 0/1 (for finite v the same values as "where z"):

    to_reset:  v = v (1 - z) + v_reset z          subtract:  v = v - v_threshold z

applied right after the test (`immediate`) or in step k+1 after its decay and input
(`next_step`, with z = z[k-1]). With `spikes="multi"` z is a count,
`z = min(trunc(fl(v / v_threshold)), max_spikes)` where v >= v_threshold, else 0, subtract
removes `v_threshold z`, and to_reset uses `z > 0` for z. With `v_min`, the step ends with
`v = max(v - m, 0) + m` (m = v_min, or -v_threshold). `initial_v` sets v before step 0 (0,
v_leak or v_reset); I starts at 0.

Arithmetic order, per step and element, each operation rounded to the simulation dtype (no
fused multiply-add): `v = a * v_prev`, then `v = v + u` (I, IF: `v = v_prev + u`); for
CubaLI/CubaLIF first `I = a_syn * I_prev`, `I = I + u`, `term = c_r * I` (`c_r * I_prev` for
voltage_first), `term = term + c_mem v_leak`, and `term` is the u of v; the reset computes
`1 - z`, `v * (1 - z)`, `v_reset z` and adds it (to_reset), or `v_threshold z` and subtracts
it (subtract); terms that are zero everywhere (v_leak, v_reset) are left out, and a factor of
exactly 1 (gain, threshold) is not multiplied. Constants are computed in float64 (through
`nirbridge.semantics`) and rounded once to the simulation dtype. States start at zero and carry
over from one chunk of steps to the next.
"""

from __future__ import annotations

import copy

import numpy as np

from ..errors import Problem, SimulationError
from ..ir import IF, LI, LIF, CubaLI, CubaLIF, I, Node
from ..semantics import Policy, step_constants
from .layers import cast

NEURONS = (I, IF, LI, LIF, CubaLI, CubaLIF)
Shape = tuple[int, ...]


def _constant(name: str, field: str, value: np.ndarray, dtype) -> np.ndarray:
    """Cast to dtype (it must stay finite: SimulationError names `nodes.name.field`); an array
    whose elements are all equal becomes a 0-d array (same values, faster broadcasting)."""
    arr = cast(name, field, value, dtype)
    if arr.ndim and arr.size and (arr == arr.reshape(-1)[0]).all():
        return arr.reshape(-1)[0].copy().reshape(())
    return arr


def _divergence_hint(decays: dict[str, np.ndarray | None]) -> str:
    """Why a state may grow without bound: a decay factor below -1 (forward Euler, dt > 2 tau)."""
    for field, a in decays.items():
        if a is not None and (np.asarray(a) < -1).any():
            return (
                f" (its decay per step from {field} is {float(np.min(a)):g}: forward Euler diverges when"
                f" dt > 2 {field}; use integration='exact' or a smaller dt)"
            )
    return ""


class Neuron:
    """One neuron node: `drive(x)` is the input term of x (any leading dimensions); `reset(B)`
    zeroes the state; `begin(steps)` and `step(k, u_k)` compute a chunk of steps from their
    input terms (or `run(u)` all at once) into the traces `v_trace`, `i_trace`, `spikes`."""

    def __init__(self, name: str, node: Node, policy: Policy, in_shape: Shape, dtype):
        self.name, self.kind, self.dtype = name, node.type, np.dtype(dtype)
        self.shape = tuple(int(n) for n in in_shape)
        self.spiking = isinstance(node, (IF, LIF, CubaLIF))
        self.synaptic = isinstance(node, (CubaLI, CubaLIF))
        for field in node.float_fields:
            self._check_shape(field, getattr(node, field))
        k = step_constants(node, policy)
        if self.synaptic:
            self.a_syn = _constant(name, "tau_syn", k.a_syn, dtype)
            self.c_r = _constant(name, "r", k.c_r, dtype)  # the current always drives v as a current
            self.v_leak_term = self._optional("v_leak", k.v_leak_term)
            self.voltage_first = policy.current_order == "voltage_first"
        a, gain, leak = k.a, k.gain, k.leak
        tau = "tau_mem" if self.synaptic else "tau"
        self.hint = _divergence_hint({tau: a, "tau_syn": k.a_syn if self.synaptic else None})
        self.a = None if a is None else _constant(name, tau, a, dtype)
        self.gain = _constant(name, "w_in" if self.synaptic else "r", gain, dtype)
        self.leak = self._optional("v_leak", leak)
        self.gain_is_one = self.gain.ndim == 0 and self.gain == 1
        start = {"zero": None, "v_leak": getattr(node, "v_leak", None), "v_reset": getattr(node, "v_reset", None)}[policy.initial_v]
        self.v_start = self._optional(policy.initial_v, None if start is None else np.asarray(start, dtype=np.float64))
        if self.spiking:
            self.v_threshold = _constant(name, "v_threshold", node.v_threshold, dtype)
            self.v_reset = self._optional("v_reset", np.asarray(node.v_reset, dtype=np.float64))
            self.multi, self.max_spikes = policy.spikes == "multi", policy.max_spikes
            if self.multi and not (np.asarray(node.v_threshold) > 0).all():
                raise SimulationError(problems=[Problem(f"nodes.{name}.v_threshold", "spikes='multi' counts v / v_threshold spikes: thresholds must be > 0")])
            floor = policy.v_min
            if floor == "-v_threshold":
                floor = -np.asarray(node.v_threshold, dtype=np.float64)
            self.v_min = None if floor is None else _constant(name, "v_min", np.asarray(floor, dtype=np.float64), dtype)
            self.threshold_is_one = self.v_threshold.ndim == 0 and self.v_threshold == 1
            self.one = np.asarray(1, dtype=dtype)
            self.test = np.greater if policy.threshold == "gt" else np.greater_equal
            self.reset_rule = policy.reset
            self.next_step = policy.reset_timing == "next_step"

    def renamed(self, name: str) -> Neuron:
        """A neuron with these constants (never changed in place) under another name; its
        state starts at `reset`."""
        other = copy.copy(self)
        other.name = name
        return other

    def _check_shape(self, field: str, value: np.ndarray) -> None:
        try:
            ok = value.shape == self.shape or np.broadcast_shapes(value.shape, self.shape) == self.shape
        except ValueError:
            ok = False
        if not ok:
            raise SimulationError(
                problems=[Problem(f"nodes.{self.name}.{field}", f"shape {value.shape} does not fit the input shape {self.shape}")]
            )

    def _optional(self, field: str, value: np.ndarray | None) -> np.ndarray | None:
        """A constant term, or None when it is zero everywhere (adding it would change nothing)."""
        if value is None or not value.any():
            return None
        return _constant(self.name, field, value, self.dtype)

    # -- input term -------------------------------------------------------------------
    def drive(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """u = g x (+ c v_leak for LI, LIF): the input term, elementwise (into `out` if given)."""
        if self.gain_is_one:
            return x if self.leak is None else np.add(x, self.leak, out=out)
        u = np.multiply(x, self.gain, out=out)
        if self.leak is not None:
            u += self.leak
        return u

    # -- stepping -----------------------------------------------------------------------
    def reset(self, batch: int) -> None:
        """Zero state for `batch` samples: v = 0, I = 0, no pending reset."""
        state = (batch,) + self.shape
        self.v = np.zeros(state, self.dtype)
        if self.v_start is not None:
            self.v[...] = self.v_start
        self.current = np.zeros(state, self.dtype) if self.synaptic else None
        self.term = np.empty(state, self.dtype) if self.synaptic else None
        self.scratch = np.empty(state, self.dtype) if self.spiking else None
        self.z = None  # spikes of the previous step, for a next_step reset
        self.v_trace = None

    def begin(self, steps: int) -> None:
        """Start a chunk of `steps` steps: its traces `v_trace`, `i_trace` (CubaLI, CubaLIF)
        and `spikes` (spiking neurons, 0/1), each (steps, B, *shape), reuse the last chunk's
        arrays when the size is the same, so the state carried over from the last chunk (rows
        of those traces) is copied out first."""
        full = (steps,) + self.v.shape
        self.v = self.v.copy()
        self.current = self.current.copy() if self.synaptic else None
        self.z = None if self.z is None else self.z.copy()
        if self.v_trace is None or self.v_trace.shape != full:
            self.v_trace = np.empty(full, self.dtype)
            self.i_trace = np.empty(full, self.dtype) if self.synaptic else None
            self.spikes = np.empty(full, self.dtype) if self.spiking else None
            self.u = None if self.gain_is_one and self.leak is None else np.empty(full, self.dtype)

    def step(self, k: int, u: np.ndarray) -> None:
        """Step k of the chunk: decay and input, then (spiking neurons) spike test and reset."""
        v = self.v_trace[k]
        if self.synaptic:
            i_prev, i, term = self.current, self.i_trace[k], self.term
            if self.voltage_first:  # v sees I[k-1]
                np.multiply(i_prev, self.c_r, out=term)
                np.multiply(i_prev, self.a_syn, out=i)
                i += u
            else:  # v sees I[k]
                np.multiply(i_prev, self.a_syn, out=i)
                i += u
                np.multiply(i, self.c_r, out=term)
            if self.v_leak_term is not None:
                term += self.v_leak_term
            self.current, u = i, term
        if self.a is None:
            np.add(self.v, u, out=v)
        else:
            np.multiply(self.v, self.a, out=v)
            v += u
        if self.spiking:
            z = self.spikes[k]
            if self.next_step and self.z is not None:
                self._reset(v, self.z)  # the spikes of step k-1 reset now, after decay and input
            if self.multi:
                self._count(v, z)
            else:
                self.test(v, self.v_threshold, out=z)  # 0/1 in the simulation dtype
            if not self.next_step:
                self._reset(v, z)
            if self.v_min is not None:  # max(v - m, 0) + m, as Sinabs computes it
                np.subtract(v, self.v_min, out=self.scratch)
                np.maximum(self.scratch, 0, out=self.scratch)
                np.add(self.scratch, self.v_min, out=v)
            self.z = z
        self.v = v  # v_trace[k]: after the reset (immediate) or before the pending one (next_step)

    def _count(self, v: np.ndarray, z: np.ndarray) -> None:
        """z = trunc(fl(v / v_threshold)) where v >= v_threshold, else 0; at most max_spikes."""
        np.divide(v, self.v_threshold, out=z)
        np.trunc(z, out=z)
        np.greater_equal(v, self.v_threshold, out=self.scratch)
        z *= self.scratch
        if self.max_spikes is not None:
            np.minimum(z, self.max_spikes, out=z)

    def _reset(self, v: np.ndarray, z: np.ndarray) -> None:
        """Reset where z = 1 (z: 0/1 floats; a count under spikes='multi', which subtract
        multiplies and to_reset reads as z > 0)."""
        scratch = self.scratch
        if self.multi and self.reset_rule == "to_reset":
            z = np.greater(z, 0).astype(self.dtype)
        if self.reset_rule == "to_reset":  # v (1 - z) + v_reset z
            np.subtract(self.one, z, out=scratch)
            v *= scratch
            if self.v_reset is not None:
                np.multiply(z, self.v_reset, out=scratch)
                v += scratch
        elif self.reset_rule == "subtract":  # v - v_threshold z
            if self.threshold_is_one:
                v -= z
            else:
                np.multiply(z, self.v_threshold, out=scratch)
                v -= scratch

    def run(self, x: np.ndarray) -> None:
        """A chunk of steps from their inputs x (steps, B, *shape): the input terms of all
        steps at once, then one step after the other."""
        self.begin(x.shape[0])
        u = self.drive(x, out=self.u)
        for k in range(x.shape[0]):
            self.step(k, u[k])

    def state(self) -> tuple[np.ndarray, ...]:
        """v (and I) after the last step. Once NaN or infinite they stay so: a v * (1 - z),
        a * v + u and v - v_threshold z keep a non-finite v non-finite, so checking the state
        after a chunk finds any non-finite value inside it."""
        return (self.v, self.current) if self.synaptic else (self.v,)

    def checked(self) -> dict[str, np.ndarray]:
        """The chunk's state traces, which must stay finite."""
        return {"v": self.v_trace, "I": self.i_trace} if self.synaptic else {"v": self.v_trace}
