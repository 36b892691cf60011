"""nirbridge: move spiking neural networks between frameworks through NIR, exactly."""

from .errors import (
    GapError,
    GraphValidationError,
    NirbridgeError,
    NirFormatError,
    PluginError,
    PolicyError,
    Problem,
    ResourceLimitError,
    SimulationError,
    UnknownBackendError,
    UnsafeFileError,
    UnsupportedVersionError,
)
from .graph import Graph

__version__ = "0.1.0"

__all__ = [
    "GapError",
    "Graph",
    "GraphValidationError",
    "NirFormatError",
    "NirbridgeError",
    "PluginError",
    "PolicyError",
    "Problem",
    "ResourceLimitError",
    "SimulationError",
    "UnknownBackendError",
    "UnsafeFileError",
    "UnsupportedVersionError",
]
