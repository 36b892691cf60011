"""Entry point of the `nirbridge` plugin group: registers the `norse` backend as a light
record (importing this module imports neither torch nor Norse)."""

from nirbridge.backends.base import BackendRecord
from nirbridge.backends.hookspecs import hookimpl


@hookimpl
def register_backends():
    return [
        BackendRecord(
            "norse",
            "nirbridge_norse.backend:NorseBackend",
            preset="norse",
            description="Norse (norse.torch) cells and torch layers",
            model_types=("torch.nn.modules.module.Module",),
        )
    ]
