"""nirbridge backend for snnTorch: `SnnTorchBackend` (registered as "snntorch").

    from nirbridge_snntorch import to_nir, from_nir
    graph = to_nir(net, sample=x)                     # snnTorch model -> Graph
    model = from_nir(graph, policy=Policy.preset("snntorch"))
    out = model.run(x_seq, record=["lif1"])           # (time, batch, ...) -> SimulationResult
"""

from .backend import SnnTorchBackend
from .export import export, to_nir
from .importer import SnnTorchGraphModule, from_nir, graph_of

__all__ = ["SnnTorchBackend", "SnnTorchGraphModule", "export", "from_nir", "graph_of", "to_nir"]
