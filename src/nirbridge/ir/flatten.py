"""Flatten: merges a range of the (batch-free) input's dimensions into one."""

from __future__ import annotations

import math
from typing import Literal

from ..errors import Problem
from .base import Array, Node, Shape, ShapeError, as_shape, shape_problems


class Flatten(Node):
    """Flattens dimensions start_dim..end_dim of the (batch-free) input."""

    type: Literal["Flatten"] = "Flatten"
    start_dim: int = 1
    end_dim: int = -1
    input_type: Array | None = None

    def input_shape(self) -> Shape | None:
        return as_shape(self.input_type)

    def output_shape(self, input_shape: Shape) -> Shape:
        n = len(input_shape)
        start = self.start_dim + n if self.start_dim < 0 else self.start_dim
        end = self.end_dim + n if self.end_dim < 0 else self.end_dim
        if not (0 <= start <= end < n):
            raise ShapeError(f"start_dim={self.start_dim}, end_dim={self.end_dim} invalid for input shape {input_shape}")
        return input_shape[:start] + (math.prod(input_shape[start : end + 1]),) + input_shape[end + 1 :]

    def problems(self):
        yield from super().problems()
        if self.input_type is not None:
            if self.input_type.dtype.kind not in "iu":
                yield Problem("input_type", f"must be an integer array, got dtype {self.input_type.dtype}")
            else:
                yield from shape_problems("input_type", self.input_type)
