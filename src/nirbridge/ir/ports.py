"""Input and Output: the ports of a graph, each of a fixed shape (without batch)."""

from __future__ import annotations

from typing import ClassVar, Literal

from .base import Array, Node, Shape, as_shape, shape_problems


class Port(Node):
    """A graph's Input or Output: a fixed shape (without batch)."""

    shape: Array
    int_fields: ClassVar = ("shape",)

    def input_shape(self) -> Shape | None:
        return as_shape(self.shape)

    def problems(self):
        yield from super().problems()
        yield from shape_problems("shape", self.shape)


class Input(Port):
    """Graph input of a fixed shape (without batch)."""

    type: Literal["Input"] = "Input"


class Output(Port):
    """Graph output of a fixed shape (without batch)."""

    type: Literal["Output"] = "Output"
