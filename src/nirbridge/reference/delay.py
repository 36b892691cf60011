"""Delay nodes: y[k] = x[k - d] with d = delay / dt steps per element, zero before the start.

`delay / dt` must be a whole number up to the rounding of the stored delay (16 ulps of its
dtype, relative); otherwise `PolicyError` names the node and element.
"""

from __future__ import annotations

import numpy as np

from ..errors import PolicyError, Problem, SimulationError
from ..ir import Delay
from ..semantics import Policy

Shape = tuple[int, ...]


def delay_steps(name: str, node: Delay, dt: float, in_shape: Shape) -> np.ndarray:
    """The delay of every element in whole steps, shaped like the input (int64)."""
    delay = np.asarray(node.delay)
    try:
        delay = np.broadcast_to(delay, in_shape)
    except ValueError:
        raise SimulationError(
            problems=[Problem(f"nodes.{name}.delay", f"shape {delay.shape} does not fit the input shape {tuple(in_shape)}")]
        ) from None
    eps = np.finfo(delay.dtype if delay.dtype.kind == "f" else np.float64).eps
    steps = delay.astype(np.float64) / dt
    whole = np.rint(steps)
    bad = np.abs(steps - whole) > 16 * eps * np.maximum(1.0, np.abs(steps))
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f"nodes.{name}.delay" + ("[" + ", ".join(map(str, idx)) + "]" if idx else "")
        raise PolicyError(
            problems=[Problem(where, f"{delay[idx]} s is not a whole number of steps of dt = {dt} s ({steps[idx]} steps)")]
        )
    return whole.astype(np.int64)


class DelayLine:
    """A Delay node: `run(x)` shifts a whole sequence at once; `start`/`advance` keep a ring
    buffer of the last max(d) + 1 inputs for stepping."""

    def __init__(self, name: str, node: Delay, policy: Policy, in_shape: Shape, dtype):
        self.name, self.shape, self.dtype = name, tuple(in_shape), np.dtype(dtype)
        self.steps = delay_steps(name, node, policy.dt, self.shape).reshape(-1)  # (F,)
        self.longest = int(self.steps.max()) if self.steps.size else 0

    def run(self, x: np.ndarray) -> np.ndarray:
        """y[k] = x[k - d] for all k at once (one gather along time)."""
        steps, batch = x.shape[:2]
        flat = x.reshape(steps, batch, -1)
        padded = np.concatenate([np.zeros((self.longest,) + flat.shape[1:], self.dtype), flat])
        index = np.arange(steps)[:, None] + (self.longest - self.steps)[None, :]  # (T, F)
        self.output = np.take_along_axis(padded, index[:, None, :], axis=0).reshape(x.shape)
        return self.output

    def start(self, steps: int, batch: int) -> None:
        self.output = np.empty((steps, batch) + self.shape, self.dtype)
        self.ring = np.zeros((self.longest + 1, batch, self.steps.size), self.dtype)

    def advance(self, k: int, x: np.ndarray) -> None:
        """Step k: store x[k], read x[k - d] (slots not yet written hold zeros)."""
        size = self.ring.shape[0]
        self.ring[k % size] = x.reshape(x.shape[0], -1)
        slots = (k - self.steps) % size
        self.output[k] = np.take_along_axis(self.ring, slots[None, None, :], axis=0)[0].reshape(self.output.shape[1:])
