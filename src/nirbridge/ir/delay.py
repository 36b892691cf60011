"""Delay: the input of `delay` seconds ago, per element."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np

from ..errors import Problem
from .base import Array, Node, first_index, index_suffix


class Delay(Node):
    """y(t) = x(t - delay), delay in seconds per element (a whole number of steps at the
    policy's dt; zero before the first delayed value arrives)."""

    type: Literal["Delay"] = "Delay"
    delay: Array
    float_fields: ClassVar = ("delay",)
    same_shape_fields: ClassVar = ("delay",)

    def problems(self):
        yield from super().problems()
        if self.delay.dtype.kind == "f" and np.isfinite(self.delay).all() and (self.delay < 0).any():
            bad = self.delay < 0
            yield Problem(f"delay{index_suffix(bad)}", f"must be >= 0, got {self.delay[tuple(first_index(bad))]!s}")
