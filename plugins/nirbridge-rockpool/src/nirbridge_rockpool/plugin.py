"""Entry point of the `nirbridge` plugin group: registers the `rockpool` backend as a light
record (importing this module imports neither torch nor Rockpool)."""

from nirbridge.backends.base import BackendRecord
from nirbridge.backends.hookspecs import hookimpl

DESCRIPTION = "Rockpool 3.1 torch modules (LIFTorch incl. w_rec and multi-synapse tau_syn, LIFNeuronTorch, ExpSynTorch, LinearTorch; Sequential, Residual)"


@hookimpl
def register_backends():
    return [BackendRecord("rockpool", "nirbridge_rockpool.backend:RockpoolBackend", preset="rockpool",
                          description=DESCRIPTION, model_types=("torch.nn.modules.module.Module",))]
