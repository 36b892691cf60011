"""Entry point of the `nirbridge` plugin group: registers the `snntorch` backend."""

from nirbridge.backends.hookspecs import hookimpl


@hookimpl
def register_backends():
    from .backend import SnnTorchBackend

    return [SnnTorchBackend()]
