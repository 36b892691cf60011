"""The validated data model of NIR: one pydantic model per primitive, and `Graph`.

One module per primitive family (`ports`, `linear`, `conv`, `pooling`, `neuron`, `delay`,
`flatten`, `threshold`), the base `Node` (`base`), the one list of what each type is
(`kinds`), conversion to and from the `nir` package (`nir_interop`) and `Graph` (`graph`).
"""

from .base import Node, Shape, ShapeError, pair
from .conv import Conv, Conv1d, Conv2d
from .delay import Delay
from .flatten import Flatten
from .graph import NODE_TYPES, Graph
from .kinds import (
    CURRENT_BASED_TYPES,
    GRAPH_TYPE,
    LAYER_TYPES,
    NEURON_TYPES,
    PORT_TYPES,
    RECORDED_TYPES,
    SPIKING_NEURON_TYPES,
    SPIKING_TYPES,
    STATELESS_TYPES,
)
from .linear import Affine, Linear, Scale
from .neuron import IF, LI, LIF, CubaLI, CubaLIF, I
from .pooling import AvgPool2d, Pool2d, SumPool2d
from .ports import Input, Output, Port
from .threshold import Threshold

__all__ = [
    "CURRENT_BASED_TYPES", "GRAPH_TYPE", "LAYER_TYPES", "NEURON_TYPES", "NODE_TYPES", "PORT_TYPES",
    "RECORDED_TYPES", "SPIKING_NEURON_TYPES", "SPIKING_TYPES", "STATELESS_TYPES",
    "Affine", "AvgPool2d", "Conv", "Conv1d", "Conv2d", "CubaLI", "CubaLIF", "Delay", "Flatten", "Graph",
    "I", "IF", "Input", "LI", "LIF", "Linear", "Node", "Output", "Pool2d", "Port", "Scale", "Shape",
    "ShapeError", "SumPool2d", "Threshold", "pair",
]
