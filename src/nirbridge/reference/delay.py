"""Delay nodes: y[k] = x[k - d] with d = delay / dt steps per element, zero before the start.

d comes from `nirbridge.semantics.delay_steps` (the one rule for every backend), cut to the
length of the run: a delay of that many steps or more only ever reads zeros, so the line keeps
at most min(max d, steps) past inputs, whatever the delay says (1e30 s included).
"""

from __future__ import annotations

import numpy as np

from ..ir import Delay
from ..semantics import Policy, delay_steps

Shape = tuple[int, ...]


class DelayLine:
    """A Delay node over chunks of steps. It keeps the last R = max(d) inputs in a ring
    buffer (the input of step t in slot t mod R), so each chunk costs time and memory in
    proportion to the chunk, not to the delay."""

    def __init__(self, name: str, node: Delay, policy: Policy, in_shape: Shape, dtype, steps: int):
        self.name, self.shape, self.dtype = name, tuple(in_shape), np.dtype(dtype)
        self.steps = delay_steps(name, node, policy.dt, self.shape, limit=steps).reshape(-1)  # (F,)
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
