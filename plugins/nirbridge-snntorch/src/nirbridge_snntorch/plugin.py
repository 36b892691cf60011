"""Entry point of the `nirbridge` plugin group: registers the `snntorch` backend as a light
record (importing this module imports neither torch nor snnTorch)."""

from nirbridge.backends.base import BackendRecord
from nirbridge.backends.hookspecs import hookimpl


@hookimpl
def register_backends():
    return [
        BackendRecord(
            "snntorch",
            "nirbridge_snntorch.backend:SnnTorchBackend",
            preset="snntorch",
            description="snnTorch 1.0 (Leaky, Synaptic, RLeaky, RSynaptic, Lapicque; torch layers)",
            model_types=("torch.nn.modules.module.Module",),
        )
    ]
