"""The entry point of the `example` backend: a light record, so that listing backends imports
nothing of the framework (FRAMEWORK: the same for yours)."""

import nirbridge
from nirbridge.backends.base import BackendRecord


@nirbridge.hookimpl
def register_backends():
    """The plugin hook: the backends this distribution provides, as records."""
    return [
        BackendRecord(
            "example",
            "nirbridge_example:ExampleBackend",
            preset="nir",
            description="Example third-party backend (NumPy simulator, reduced node set): the template for new backends",
            model_types=("nirbridge_example.ExampleNetwork",),
        )
    ]
