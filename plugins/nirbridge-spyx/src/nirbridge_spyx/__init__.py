"""nirbridge backend for Spyx (JAX): `SpyxBackend` (registered as "spyx").

    graph = nirbridge.convert(spyx_model, to="nir", sample=x)   # a spyx.nn.Sequential, x (batch, ...)
    model = nirbridge.convert(graph, to="spyx")                  # stock Spyx layers where exact
    out = model.run(x_seq, record=["lif1"])                      # (time, batch, ...) -> SimulationResult

The names below load on first use, so that the plugin's entry point (`nirbridge_spyx.plugin`)
imports neither JAX nor Spyx.
"""

from nirbridge.backends.base import lazy_exports

_LAZY = {"SpyxBackend": "backend", "SpyxGraph": "model", "JaxNeuron": "neurons", "simulate_native": "backend"}
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
