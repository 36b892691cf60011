"""Entry point of the `nirbridge` plugin group: registers the `spikingjelly` backend as a light
record (importing this module imports neither torch nor SpikingJelly)."""

from nirbridge.backends.base import BackendRecord
from nirbridge.backends.hookspecs import hookimpl


@hookimpl
def register_backends():
    return [
        BackendRecord(
            "spikingjelly",
            "nirbridge_spikingjelly.backend:SpikingJellyBackend",
            preset="spikingjelly",
            description="SpikingJelly 2.0 activation_based (IFNode, LIFNode, ParametricLIFNode, CUBALIFNode; layer.* wrappers; single- and multi-step)",
            model_types=("torch.nn.modules.module.Module",),
        )
    ]
