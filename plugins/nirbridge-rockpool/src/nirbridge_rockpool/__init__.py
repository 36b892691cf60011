"""nirbridge backend for Rockpool: `RockpoolBackend` (registered as "rockpool").

    graph = nirbridge.convert(rockpool_model, to="nir", sample=x)   # x: (batch, time, features)
    model = nirbridge.convert(graph, to="rockpool")                  # stock Rockpool modules where exact
    out = model.run(x_seq, record=["lif1"])                          # (time, batch, ...) -> SimulationResult

The names below load on first use, so that the plugin's entry point (`nirbridge_rockpool.plugin`)
imports neither torch nor Rockpool.
"""

from nirbridge.backends.base import lazy_exports

_LAZY = {"RockpoolBackend": "backend", "RockpoolGraph": "neurons", "simulate_native": "backend"}
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
