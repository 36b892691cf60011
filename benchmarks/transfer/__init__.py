"""The transfer study: train a spiking network in snnTorch, move it to other simulators, and
check that accuracy and spikes stay the same.

``python -m benchmarks.transfer`` runs it. Parts:

- ``datasets``: built-in digits (static and simulated-DVS events, from ``nirbridge.datasets``) and
  tonic/torchvision datasets;
- ``train``: the study's network (fc -> Synaptic -> fc -> Synaptic) and its training;
- ``compare``: table rows from ``nirbridge.evaluate`` results (one call per table: the same
  batches through every model), firing rates, and where a converted model first departs;
- ``transfer``: the trained network through a saved NIR file to Norse, snnTorch and the NumPy
  reference with nirbridge;
- ``naive``: the same with ``snntorch.export_to_nir`` and ``norse.torch.from_nir``;
- ``norse_first``: a Norse CSNN with max pooling, trained, converted to snnTorch;
- ``figures``: input, membrane potentials and spikes of every layer, original vs converted;
- ``report``: the Markdown and JSON tables.
"""

from nirbridge.dvs import DVSParams, simulate_dvs, to_frames

from .datasets import DATASETS, DatasetMissingError, FrameDataset, load_dataset, make_loader
from .train import SeedNet, as_model_fn, build_model, load_model, save_model, train

__all__ = [
    "DATASETS",
    "DVSParams",
    "DatasetMissingError",
    "FrameDataset",
    "SeedNet",
    "as_model_fn",
    "build_model",
    "load_dataset",
    "load_model",
    "make_loader",
    "save_model",
    "simulate_dvs",
    "to_frames",
    "train",
]
