"""The torch toolkit of nirbridge's torch backends (snnTorch, Norse, ...): the tracer
(`tracing`), the export builder (`exporting`), the importer (`importing`), the policy neuron
(`cells.PolicyNeuron`), the stateless layers (`layers`), the graph executor (`executor`) and
the backend base class (`backend.TorchBackend`). A framework's plugin adds its mapping tables."""

from .executor import GraphModule, module_key, run_sequence
from .layers import build_stateless, export_stateless

__all__ = ["GraphModule", "build_stateless", "export_stateless", "module_key", "run_sequence"]
