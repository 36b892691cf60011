"""Affine, Linear and Scale: the weighted maps."""

from __future__ import annotations

from typing import ClassVar, Literal

from ..errors import Problem
from .base import Array, Node, Shape


class Affine(Node):
    """y = W x + b, W of shape (out, in)."""

    type: Literal["Affine"] = "Affine"
    weight: Array
    bias: Array
    float_fields: ClassVar = ("weight", "bias")

    def input_shape(self) -> Shape | None:
        return (int(self.weight.shape[-1]),) if self.weight.ndim >= 2 else None

    def output_shape(self, input_shape: Shape) -> Shape:
        return (int(self.weight.shape[-2]),)

    def problems(self):
        yield from super().problems()
        if self.weight.ndim != 2:
            yield Problem("weight", f"must be 2-dimensional (out, in), got shape {self.weight.shape}")
        elif self.bias.shape != self.weight.shape[:1]:
            yield Problem("bias", f"shape {self.bias.shape} does not match weight rows ({self.weight.shape[0]},)")


class Linear(Node):
    """y = W x, W of shape (out, in)."""

    type: Literal["Linear"] = "Linear"
    weight: Array
    float_fields: ClassVar = ("weight",)

    input_shape = Affine.input_shape
    output_shape = Affine.output_shape

    def problems(self):
        yield from super().problems()
        if self.weight.ndim != 2:
            yield Problem("weight", f"must be 2-dimensional (out, in), got shape {self.weight.shape}")


class Scale(Node):
    """y = s * x, elementwise."""

    type: Literal["Scale"] = "Scale"
    scale: Array
    float_fields: ClassVar = ("scale",)
    same_shape_fields: ClassVar = ("scale",)
