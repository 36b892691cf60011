"""Entry point of the `nirbridge` plugin group: registers the `sinabs` backend as a light
record (importing this module imports neither torch nor Sinabs)."""

from nirbridge.backends.base import BackendRecord
from nirbridge.backends.hookspecs import hookimpl


@hookimpl
def register_backends():
    return [
        BackendRecord(
            "sinabs",
            "nirbridge_sinabs.backend:SinabsBackend",
            preset="sinabs",
            description="Sinabs 3.1 (IAF, LIF, ExpLeak and their Squeeze forms, SumPool2d; torch layers; sinabs.from_model)",
            model_types=("torch.nn.modules.module.Module",),
        )
    ]
