"""nirbridge backend for Norse: `to_nir` exports Norse models, `from_nir` builds Norse models
from NIR graphs that emit the same spikes as the NumPy reference under the graph's policy.

The names below load on first use, so that the plugin's entry point (`nirbridge_norse.plugin`)
imports neither torch nor Norse.
"""

from importlib import import_module

_LAZY = {
    "NorseBackend": "backend",
    "simulate_native": "backend",
    "from_nir": "backend",
    "NorseGraph": "build",
    "NativeCell": "cells",
    "to_nir": "export",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nirbridge_norse' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
