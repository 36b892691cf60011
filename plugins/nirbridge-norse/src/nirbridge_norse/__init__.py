"""nirbridge backend for Norse: `to_nir` exports Norse models, `from_nir` builds Norse models
from NIR graphs that emit the same spikes as the NumPy reference under the graph's policy.

The names below load on first use, so that the plugin's entry point (`nirbridge_norse.plugin`)
imports neither torch nor Norse.
"""

from nirbridge.backends.base import lazy_exports

_LAZY = {
    "NorseBackend": "backend",
    "simulate_native": "backend",
    "from_nir": "backend",
    "NorseGraph": "build",
    "NativeCell": "cells",
    "to_nir": "export",
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
