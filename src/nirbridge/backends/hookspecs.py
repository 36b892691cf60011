"""The plugin hook: a distribution registers backends by implementing `register_backends`.

    import nirbridge

    @nirbridge.hookimpl
    def register_backends():
        return [MyBackend()]

and declaring the module under the entry-point group `nirbridge` in its pyproject:

    [project.entry-points.nirbridge]
    mybackend = "mypackage.nirbridge_plugin"
"""

from __future__ import annotations

import pluggy

PROJECT = "nirbridge"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_backends():
    """Return an iterable of `nirbridge.Backend` instances provided by this plugin."""
