"""nirbridge: move spiking neural networks between frameworks through NIR, exactly.

    g = nirbridge.load("net.nir")                       # validated Graph
    nirbridge.save(g, "net.nir")                        # atomic; nir.read reads it
    model = nirbridge.convert(src, to="norse")          # native model, Graph, nir.NIRGraph or path
    p = nirbridge.plan(src, to="norse")                 # p.report, then p.build(): planned once
    report = nirbridge.check(src, to="norse")           # GapReport, converts nothing
    out = nirbridge.simulate(g, x, policy=..., record=["lif1"])
    res = nirbridge.verify(src, backends=["snntorch", "norse", "numpy"], inputs=x)
    ev = nirbridge.evaluate(src, data, backends=["norse", "numpy"])   # dataset scale; engine="ray"
"""

from importlib import import_module

# the function `nirbridge.backends()` takes the name of the `nirbridge.backends` package here
# (its modules stay importable as `nirbridge.backends.<module>`)
from .backends.registry import backends, get_backend  # noqa: E402
from .errors import (
    DataError,
    EvaluationError,
    FileAccessError,
    GapError,
    GraphValidationError,
    NirbridgeError,
    NirFormatError,
    PluginError,
    PolicyError,
    Problem,
    ResourceLimitError,
    SimulationError,
    UnknownBackendError,
    UnsafeFileError,
    UnsupportedVersionError,
)
from .ir import Graph
from .semantics import NodePolicy, Policy

__version__ = "0.1.0"

# name -> module; imported on first use so `import nirbridge` stays light
_LAZY = {
    "load": "io",
    "save": "io",
    "simulate": "reference",
    "SimulationResult": "result",
    "hookimpl": "backends.hookspecs",
    "hookspec": "backends.hookspecs",
    "Backend": "backends.base",
    "BackendRecord": "backends.base",
    "BuildPlan": "backends.base",
    "Handler": "backends.base",
    "NodePlan": "backends.base",
    "Support": "backends.base",
    "Gap": "report",
    "GapReport": "report",
    "convert": "conversion",
    "check": "conversion",
    "plan": "conversion",
    "verify": "verification",
    "VerifyReport": "verification",
    "evaluate": "evaluation",
    "EvaluationResult": "evaluation",
    "load_recording": "recording",
    "save_recording": "recording",
}


# submodules reachable as attributes after a plain `import nirbridge`
_SUBMODULES = frozenset({
    "checker", "compare", "conversion", "datasets", "evaluation", "io", "ir", "plot", "recording", "reference", "report", "rewrite",
    "semantics", "shape_inference", "support_matrix", "testing", "topology", "verification",
})


def __getattr__(name: str):
    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nirbridge' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = [
    "DataError",
    "EvaluationError",
    "FileAccessError",
    "GapError",
    "Graph",
    "GraphValidationError",
    "NirFormatError",
    "NirbridgeError",
    "NodePolicy",
    "PluginError",
    "Policy",
    "PolicyError",
    "Problem",
    "ResourceLimitError",
    "SimulationError",
    "UnknownBackendError",
    "UnsafeFileError",
    "UnsupportedVersionError",
    "backends",
    "get_backend",
    *_LAZY,
]
