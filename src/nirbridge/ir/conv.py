"""Conv1d and Conv2d: convolutions over (channels, *spatial) inputs, with stride, padding,
dilation and groups as in torch (cross-correlation)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import ConfigDict, Field, field_validator

from ..errors import Problem
from .base import Array, Node, Padding, Shape, ShapeError, frozen, pair


def conv_out(length: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


class Conv(Node):
    """Base of Conv1d and Conv2d: weight (C_out, C_in/groups, *kernel), bias (C_out,);
    `padding` per spatial dimension, or "same"/"valid"; `input_shape` the spatial size, if known."""

    weight: Array
    bias: Array
    stride: Array
    padding: Padding
    dilation: Array
    groups: Array
    ndim: ClassVar[int] = 1
    float_fields: ClassVar = ("weight", "bias")
    int_fields: ClassVar = ("stride", "dilation", "groups")

    def input_shape(self) -> Shape | None:  # type: ignore[override]
        spatial = getattr(self, "input_shape_value")
        if spatial is None or self.weight.ndim != self.ndim + 2:
            return None
        return (int(self.weight.shape[1] * int(self.groups)),) + pair(spatial, self.ndim)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != self.ndim + 1:
            raise ShapeError(f"expects (channels, {self.ndim} spatial dims), got {input_shape}")
        channels = int(self.weight.shape[1] * int(self.groups))
        if input_shape[0] != channels:
            raise ShapeError(f"expects {channels} input channels, got shape {input_shape}")
        kernel = self.weight.shape[2:]
        stride, dilation = pair(self.stride, self.ndim), pair(self.dilation, self.ndim)
        if isinstance(self.padding, str):
            if self.padding == "same":
                return (int(self.weight.shape[0]),) + tuple(input_shape[1:])
            padding = (0,) * self.ndim
        else:
            padding = pair(self.padding, self.ndim)
        spatial = tuple(
            conv_out(n, k, s, p, d) for n, k, s, p, d in zip(input_shape[1:], kernel, stride, padding, dilation)
        )
        if min(spatial) < 1:
            raise ShapeError(f"input {input_shape} too small for kernel {tuple(kernel)}")
        return (int(self.weight.shape[0]),) + spatial

    def problems(self):
        yield from super().problems()
        w = self.weight
        if w.ndim != self.ndim + 2:
            yield Problem("weight", f"must have {self.ndim + 2} dimensions, got shape {w.shape}")
            return
        if self.groups.dtype.kind not in "iu":
            pass  # reported as a dtype problem above
        elif self.groups.size != 1 or int(self.groups) < 1:
            yield Problem("groups", f"must be a positive integer, got {self.groups.tolist()}")
        elif w.shape[0] % int(self.groups):
            yield Problem("groups", f"{int(self.groups)} does not divide {w.shape[0]} output channels")
        if self.bias.shape != (w.shape[0],):
            yield Problem("bias", f"shape {self.bias.shape} does not match {w.shape[0]} output channels")
        same = isinstance(self.padding, str) and self.padding == "same"
        if same and self.stride.dtype.kind in "iu" and (self.stride != 1).any():
            yield Problem("padding", f"'same' needs stride 1, got stride {self.stride.tolist()}")
        for name in ("stride", "dilation") + (() if isinstance(self.padding, str) else ("padding",)):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.dtype.kind not in "iu":
                if name == "padding":
                    yield Problem(name, f"must be an integer array or 'same'/'valid', got {value!r}")
                continue
            if value.size not in (1, self.ndim):
                yield Problem(name, f"must have 1 or {self.ndim} values, got {value.size}")
            elif (value < (0 if name == "padding" else 1)).any():
                yield Problem(name, f"must be {'>= 0' if name == 'padding' else '>= 1'}, got {value.tolist()}")
        spatial = self.input_shape_value
        if spatial is not None:
            if spatial.dtype.kind not in "iu":
                yield Problem("input_shape", f"must be an integer array, got dtype {spatial.dtype}")
            elif spatial.ndim > 1 or spatial.size != self.ndim or (self.ndim == 2 and spatial.ndim != 1):
                yield Problem("input_shape", f"must hold {self.ndim} spatial size(s), got shape {spatial.shape}")
            elif (spatial < 1).any():
                yield Problem("input_shape", f"sizes must be >= 1, got {spatial.tolist()}")


class Conv1d(Conv):
    """1-d convolution; weight (C_out, C_in/groups, K); input (C_in, N). The length N is kept
    as NIR keeps it, a scalar (a one-element array given for it becomes one)."""

    type: Literal["Conv1d"] = "Conv1d"
    input_shape_value: Array | None = Field(default=None, alias="input_shape")
    model_config = ConfigDict(populate_by_name=True)
    ndim: ClassVar[int] = 1

    @field_validator("input_shape_value")
    @classmethod
    def _length_as_a_scalar(cls, value: Any) -> Any:
        if isinstance(value, np.ndarray) and value.shape == (1,):
            return frozen(value.reshape(()))
        return value


class Conv2d(Conv):
    """2-d convolution; weight (C_out, C_in/groups, KH, KW); input (C_in, H, W)."""

    type: Literal["Conv2d"] = "Conv2d"
    input_shape_value: Array | None = Field(default=None, alias="input_shape")
    model_config = ConfigDict(populate_by_name=True)
    ndim: ClassVar[int] = 2
