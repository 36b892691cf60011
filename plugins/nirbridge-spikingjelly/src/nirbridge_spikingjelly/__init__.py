"""nirbridge backend for SpikingJelly: `SpikingJellyBackend` (registered as "spikingjelly").

    graph = nirbridge.convert(net, to="nir", sample=x)    # x: one step (N, ...) or, in multi-step mode, (T, N, ...)
    model = nirbridge.convert(graph, to="spikingjelly")   # IFNode / LIFNode where exact
    out = model.run(x_seq, record=["lif1"])               # (time, batch, ...) -> SimulationResult

The names below load on first use, so that the plugin's entry point
(`nirbridge_spikingjelly.plugin`) imports neither torch nor SpikingJelly.
"""

from importlib import import_module

_LAZY = {"SpikingJellyBackend": "backend", "SpikingJellyGraph": "neurons", "simulate_native": "backend"}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nirbridge_spikingjelly' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
