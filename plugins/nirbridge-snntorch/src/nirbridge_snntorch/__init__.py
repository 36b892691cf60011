"""nirbridge backend for snnTorch: `SnnTorchBackend` (registered as "snntorch").

    from nirbridge_snntorch import to_nir, from_nir
    graph = to_nir(net, sample=x)                     # snnTorch model -> Graph
    model = from_nir(graph, policy=Policy.preset("snntorch"))
    out = model.run(x_seq, record=["lif1"])           # (time, batch, ...) -> SimulationResult

The names below load on first use, so that the plugin's entry point (`nirbridge_snntorch.plugin`)
imports neither torch nor snnTorch.
"""

from nirbridge.backends.base import lazy_exports

_LAZY = {
    "SnnTorchBackend": "backend",
    "from_nir": "backend",
    "export": "exporter",
    "to_nir": "exporter",
    "SnnTorchGraphModule": "importer",
    "graph_of": "importer",
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
