"""nirbridge backend for Rockpool: `RockpoolBackend` (registered as "rockpool").

    graph = nirbridge.convert(rockpool_model, to="nir", sample=x)   # x: (batch, time, features)
    model = nirbridge.convert(graph, to="rockpool")                  # stock Rockpool modules where exact
    out = model.run(x_seq, record=["lif1"])                          # (time, batch, ...) -> SimulationResult

The names below load on first use, so that the plugin's entry point (`nirbridge_rockpool.plugin`)
imports neither torch nor Rockpool.
"""

from importlib import import_module

_LAZY = {"RockpoolBackend": "backend", "RockpoolGraph": "neurons", "simulate_native": "backend"}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nirbridge_rockpool' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
