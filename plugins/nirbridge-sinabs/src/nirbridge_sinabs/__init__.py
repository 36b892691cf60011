"""nirbridge backend for Sinabs: `SinabsBackend` (registered as "sinabs").

    graph = nirbridge.convert(sinabs_model, to="nir", sample=x)   # the model's own input layout
    model = nirbridge.convert(graph, to="sinabs")                  # stock Sinabs layers where exact
    out = model.run(x_seq, record=["lif1"])                        # (time, batch, ...) -> SimulationResult

The names below load on first use, so that the plugin's entry point (`nirbridge_sinabs.plugin`)
imports neither torch nor Sinabs.
"""

from importlib import import_module

_LAZY = {"SinabsBackend": "backend", "SinabsGraph": "neurons", "simulate_native": "backend"}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nirbridge_sinabs' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
