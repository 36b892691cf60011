"""Threshold: the Heaviside step."""

from __future__ import annotations

from typing import ClassVar, Literal

from .base import Array, Node


class Threshold(Node):
    """y = 1 if x > threshold else 0 (Heaviside; `ge` in the Policy makes it x >= threshold)."""

    type: Literal["Threshold"] = "Threshold"
    threshold: Array
    float_fields: ClassVar = ("threshold",)
    same_shape_fields: ClassVar = ("threshold",)
