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
(`next_step`, with z = z[k-1]).

Constants are computed in float64 (through `nirbridge.semantics`) and rounded once to the
simulation dtype; each update is rounded after every operation (no fused multiply-add).
States start at zero.
"""

from __future__ import annotations

import numpy as np

from ..errors import Problem, SimulationError
from ..ir import IF, LI, LIF, CubaLI, CubaLIF, I, Node
from ..semantics import Policy, step_constants

NEURONS = (I, IF, LI, LIF, CubaLI, CubaLIF)
Shape = tuple[int, ...]


def _constant(value: np.ndarray, dtype) -> np.ndarray:
    """Cast to dtype; an array whose elements are all equal becomes a 0-d array (same values,
    faster broadcasting)."""
    arr = np.asarray(value, dtype=dtype)
    if arr.ndim and arr.size and (arr == arr.reshape(-1)[0]).all():
        return arr.reshape(-1)[0].copy().reshape(())
    return arr


class Neuron:
    """One neuron node: `drive(x)` is the input term of x (any leading dimensions);
    `start(T, B)` allocates the recordings and zero state; `advance(k, u_k)` computes step k
    from its input term. `output` (T, B, *shape) holds spikes for spiking neurons, else v."""

    def __init__(self, name: str, node: Node, policy: Policy, in_shape: Shape, dtype, record: bool):
        self.name, self.kind, self.dtype, self.record = name, node.type, np.dtype(dtype), record
        self.shape = tuple(int(n) for n in in_shape)
        self.spiking = isinstance(node, (IF, LIF, CubaLIF))
        self.synaptic = isinstance(node, (CubaLI, CubaLIF))
        for field in node.float_fields:
            self._check_shape(field, getattr(node, field))
        k = step_constants(node, policy)
        if self.synaptic:
            self.a_syn = _constant(k.a_syn, dtype)
            self.c_r = _constant(k.c_r, dtype)  # the current always drives v as a current
            self.v_leak_term = self._optional(k.v_leak_term)
            self.voltage_first = policy.current_order == "voltage_first"
        a, gain, leak = k.a, k.gain, k.leak
        self.a = None if a is None else _constant(a, dtype)
        self.gain = _constant(gain, dtype)
        self.leak = self._optional(leak)
        self.gain_is_one = self.gain.ndim == 0 and self.gain == 1
        if self.spiking:
            self.v_threshold = _constant(np.asarray(node.v_threshold, dtype=np.float64), dtype)
            self.v_reset = self._optional(np.asarray(node.v_reset, dtype=np.float64))
            self.test = np.greater if policy.threshold == "gt" else np.greater_equal
            self.reset = policy.reset
            self.next_step = policy.reset_timing == "next_step"

    def _check_shape(self, field: str, value: np.ndarray) -> None:
        try:
            ok = np.broadcast_shapes(value.shape, self.shape) == self.shape
        except ValueError:
            ok = False
        if not ok:
            raise SimulationError(
                problems=[Problem(f"nodes.{self.name}.{field}", f"shape {value.shape} does not fit the input shape {self.shape}")]
            )

    def _optional(self, value: np.ndarray | None) -> np.ndarray | None:
        """A constant term, or None when it is zero everywhere (adding it would change nothing)."""
        if value is None or not value.any():
            return None
        return _constant(value, self.dtype)

    # -- input term -------------------------------------------------------------------
    def drive(self, x: np.ndarray) -> np.ndarray:
        """u = g x (+ c v_leak for LI, LIF): the input term, elementwise."""
        u = x if self.gain_is_one else x * self.gain
        if self.leak is not None:
            u = u + self.leak
        return u

    # -- stepping -----------------------------------------------------------------------
    def start(self, steps: int, batch: int) -> None:
        full, state = (steps, batch) + self.shape, (batch,) + self.shape
        self.v = np.zeros(state, self.dtype)
        self.output = np.empty(full, self.dtype)
        self.v_trace = self.output if not self.spiking else (np.empty(full, self.dtype) if self.record else None)
        if self.synaptic:
            self.current = np.zeros(state, self.dtype)
            self.term = np.empty(state, self.dtype)
            self.i_trace = np.empty(full, self.dtype) if self.record else None
        if self.spiking:
            self.scratch = np.empty(state, self.dtype)

    def advance(self, k: int, u: np.ndarray) -> None:
        """Step k: decay and input, then (spiking neurons) spike test and reset."""
        v = self.v
        if self.synaptic:
            i = self.current
            if self.voltage_first:  # v sees I[k-1]
                np.multiply(i, self.c_r, out=self.term)
                i *= self.a_syn
                i += u
            else:  # v sees I[k]
                i *= self.a_syn
                i += u
                np.multiply(i, self.c_r, out=self.term)
            if self.v_leak_term is not None:
                self.term += self.v_leak_term
            u = self.term
            if self.i_trace is not None:
                self.i_trace[k] = i
        if self.a is not None:
            v *= self.a
        v += u
        if self.spiking:
            z = self.output[k]
            if self.next_step and k > 0:
                self._reset(self.output[k - 1])  # the spikes of step k-1 reset now, after decay and input
            self.test(v, self.v_threshold, out=z)  # 0/1 in the output dtype
            if not self.next_step:
                self._reset(z)
        if self.v_trace is not None:
            self.v_trace[k] = v  # after the reset (immediate) or before the pending one (next_step)

    def _reset(self, z: np.ndarray) -> None:
        """Reset where z = 1 (z: 0/1 floats)."""
        v, scratch = self.v, self.scratch
        if self.reset == "to_reset":  # v (1 - z) + v_reset z
            np.subtract(1, z, out=scratch)
            v *= scratch
            if self.v_reset is not None:
                np.multiply(z, self.v_reset, out=scratch)
                v += scratch
        elif self.reset == "subtract":  # v - v_threshold z
            np.multiply(z, self.v_threshold, out=scratch)
            v -= scratch

    def states(self) -> dict[str, np.ndarray]:
        """The recorded state variables, each (T, B, *shape)."""
        out = {"v": self.v_trace}
        if self.synaptic:
            out["I"] = self.i_trace
        if self.spiking:
            out["spikes"] = self.output
        return out
