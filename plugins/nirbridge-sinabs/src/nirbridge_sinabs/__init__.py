"""nirbridge backend for Sinabs: `SinabsBackend` (registered as "sinabs").

    graph = nirbridge.convert(sinabs_model, to="nir", sample=x)   # the model's own input layout
    model = nirbridge.convert(graph, to="sinabs")                  # stock Sinabs layers where exact
    out = model.run(x_seq, record=["lif1"])                        # (time, batch, ...) -> SimulationResult

The names below load on first use, so that the plugin's entry point (`nirbridge_sinabs.plugin`)
imports neither torch nor Sinabs.
"""

from nirbridge.backends.base import lazy_exports

_LAZY = {"SinabsBackend": "backend", "SinabsGraph": "neurons", "simulate_native": "backend"}
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
