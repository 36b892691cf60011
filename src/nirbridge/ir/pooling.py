"""SumPool2d and AvgPool2d: pooling over (channels, height, width) inputs."""

from __future__ import annotations

from typing import ClassVar, Literal

from ..errors import Problem
from .base import Array, Node, Shape, ShapeError, pair
from .conv import conv_out


class Pool2d(Node):
    """Base of the 2-d pools: kernel, stride and zero padding per spatial dimension."""

    kernel_size: Array
    stride: Array
    padding: Array
    int_fields: ClassVar = ("kernel_size", "stride", "padding")

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ShapeError(f"expects (channels, height, width), got {input_shape}")
        k, s, p = (pair(getattr(self, n), 2) for n in ("kernel_size", "stride", "padding"))
        spatial = tuple(conv_out(n, k[i], s[i], p[i], 1) for i, n in enumerate(input_shape[1:]))
        if min(spatial) < 1:
            raise ShapeError(f"input {input_shape} too small for kernel {k}")
        return (input_shape[0],) + spatial

    def problems(self):
        yield from super().problems()
        for name in self.int_fields:
            value = getattr(self, name)
            if value.dtype.kind in "iu":
                if value.size not in (1, 2):
                    yield Problem(name, f"must have 1 or 2 values, got {value.size}")
                elif (value < (0 if name == "padding" else 1)).any():
                    yield Problem(name, f"must be {'>= 0' if name == 'padding' else '>= 1'}, got {value.tolist()}")


class SumPool2d(Pool2d):
    """Sum over each kernel window."""

    type: Literal["SumPool2d"] = "SumPool2d"


class AvgPool2d(Pool2d):
    """Mean over each kernel window (padding counts as zeros)."""

    type: Literal["AvgPool2d"] = "AvgPool2d"
