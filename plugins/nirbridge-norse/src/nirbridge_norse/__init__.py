"""nirbridge backend for Norse: `to_nir` exports Norse models, `from_nir` builds Norse models
from NIR graphs that emit the same spikes as the NumPy reference under the graph's policy."""

from .backend import NorseBackend, simulate_native
from .build import NorseGraph, from_nir
from .cells import NativeCell, PolicyCell
from .export import to_nir

__all__ = ["NativeCell", "NorseBackend", "NorseGraph", "PolicyCell", "from_nir", "simulate_native", "to_nir"]
