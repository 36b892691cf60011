"""nirbridge backend for Norse: `to_nir` exports Norse models, `from_nir` builds Norse models
from NIR graphs that emit the same spikes as the NumPy reference under the graph's policy."""

import warnings

with warnings.catch_warnings():  # Norse 1.1 decorates with torch.jit.script, deprecated in torch 2.14
    warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)
    import norse.torch  # noqa: F401

from .backend import NorseBackend, simulate_native  # noqa: E402
from .build import NorseGraph, from_nir  # noqa: E402
from .cells import NativeCell, PolicyCell  # noqa: E402
from .export import to_nir  # noqa: E402

__all__ = ["NativeCell", "NorseBackend", "NorseGraph", "PolicyCell", "from_nir", "simulate_native", "to_nir"]
