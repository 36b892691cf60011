"""nirbridge backend for Spyx (JAX): `SpyxBackend` (registered as "spyx").

    graph = nirbridge.convert(spyx_model, to="nir", sample=x)   # a spyx.nn.Sequential, x (batch, ...)
    model = nirbridge.convert(graph, to="spyx")                  # stock Spyx layers where exact
    out = model.run(x_seq, record=["lif1"])                      # (time, batch, ...) -> SimulationResult

The names below load on first use, so that the plugin's entry point (`nirbridge_spyx.plugin`)
imports neither JAX nor Spyx.
"""

from importlib import import_module

_LAZY = {"SpyxBackend": "backend", "SpyxGraph": "model", "JaxNeuron": "neurons", "simulate_native": "backend"}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nirbridge_spyx' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
