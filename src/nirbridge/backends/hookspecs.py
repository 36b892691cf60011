"""The plugin hook: a distribution registers backends by implementing `register_backends`.

    import nirbridge

    @nirbridge.hookimpl
    def register_backends():
        return [nirbridge.BackendRecord("mybackend", "mypackage.backend:MyBackend", preset="nir",
                                        model_types=("torch.nn.modules.module.Module",))]

and declaring the module under the entry-point group `nirbridge` in its pyproject:

    [project.entry-points.nirbridge]
    mybackend = "mypackage.nirbridge_plugin"

Keep that module light (no framework import): the registry imports it to list backends.
"""

from __future__ import annotations

import pluggy

PROJECT = "nirbridge"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_backends():
    """Return an iterable of `nirbridge.BackendRecord`s (or `Backend` instances, for plugins
    that are light anyway) provided by this plugin."""
