"""nirbridge backend for SpikingJelly: `SpikingJellyBackend` (registered as "spikingjelly").

    graph = nirbridge.convert(net, to="nir", sample=x)    # x: one step (N, ...) or, in multi-step mode, (T, N, ...)
    model = nirbridge.convert(graph, to="spikingjelly")   # IFNode / LIFNode where exact
    out = model.run(x_seq, record=["lif1"])               # (time, batch, ...) -> SimulationResult

The names below load on first use, so that the plugin's entry point
(`nirbridge_spikingjelly.plugin`) imports neither torch nor SpikingJelly.
"""

from nirbridge.backends.base import lazy_exports

_LAZY = {"SpikingJellyBackend": "backend", "SpikingJellyGraph": "neurons", "simulate_native": "backend"}
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
