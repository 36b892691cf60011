"""Delay nodes: y[k] = x[k - d] with d = delay / dt steps per element, zero before the start.

`delay / dt` must be a whole number up to the rounding of the stored delay (16 ulps of its
dtype, relative); otherwise `PolicyError` names the node and element. A delay of `steps` or
more (the length of the run) only ever reads zeros, so it is cut to `steps`: the line keeps at
most min(max d, steps) past inputs, whatever the delay says (1e30 s included).
"""

from __future__ import annotations

import numpy as np

from ..errors import PolicyError, Problem, SimulationError
from ..ir import Delay
from ..semantics import Policy

Shape = tuple[int, ...]


def delay_steps(name: str, node: Delay, dt: float, in_shape: Shape, steps: int) -> np.ndarray:
    """The delay of every element in whole steps, cut to `steps`, shaped like the input (int64)."""
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
    return np.minimum(whole, steps).astype(np.int64)


class DelayLine:
    """A Delay node over chunks of steps. It keeps the last R = max(d) inputs in a ring
    buffer (the input of step t in slot t mod R), so each chunk costs time and memory in
    proportion to the chunk, not to the delay."""

    def __init__(self, name: str, node: Delay, policy: Policy, in_shape: Shape, dtype, steps: int):
        self.name, self.shape, self.dtype = name, tuple(in_shape), np.dtype(dtype)
        self.steps = delay_steps(name, node, policy.dt, self.shape, steps).reshape(-1)  # (F,)
        self.longest = int(self.steps.max()) if self.steps.size else 0

    def buffer_bytes(self, batch: int) -> int:
        return self.longest * batch * self.steps.size * self.dtype.itemsize

    def reset(self, batch: int) -> None:
        """Zero history (the inputs before step 0 are zero)."""
        self.ring = np.zeros((self.longest, batch, self.steps.size), self.dtype)
        self.time = 0  # the step the next chunk starts at

    def run(self, x: np.ndarray) -> np.ndarray:
        """y[k] = x[k - d] for the chunk x (steps, B, *shape): from the chunk where k >= d,
        else from the ring (inputs of earlier chunks)."""
        if self.longest == 0:
            return x
        steps, batch = x.shape[:2]
        flat = x.reshape(steps, batch, -1)
        back = np.arange(steps)[:, None] - self.steps[None, :]  # (steps, F): chunk index of the source
        from_chunk = np.take_along_axis(flat, np.maximum(back, 0)[:, None, :], axis=0)
        from_ring = np.take_along_axis(self.ring, ((self.time + back) % self.longest)[:, None, :], axis=0)
        y = np.where((back >= 0)[:, None, :], from_chunk, from_ring)
        kept = min(steps, self.longest)  # remember the last inputs, after every read
        self.ring[(self.time + np.arange(steps - kept, steps)) % self.longest] = flat[steps - kept :]
        self.time += steps
        return y.reshape(x.shape)
