"""Entry point of the `nirbridge` plugin group: registers the `norse` backend."""

from nirbridge.backends.hookspecs import hookimpl


@hookimpl
def register_backends():
    from .backend import NorseBackend

    return [NorseBackend()]
