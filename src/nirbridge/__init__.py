"""nirbridge: move spiking neural networks between frameworks through NIR, exactly.

    g = nirbridge.load("net.nir")                       # validated Graph
    nirbridge.save(g, "net.nir")                        # atomic; nir.read reads it
    model = nirbridge.convert(src, to="norse")          # native model, Graph, nir.NIRGraph or path
    report = nirbridge.check(src, to="norse")           # GapReport, converts nothing
    out = nirbridge.simulate(g, x, policy=..., record=["lif1"])
    res = nirbridge.verify(src, backends=["snntorch", "norse", "numpy"], inputs=x)
    ev = nirbridge.evaluate(src, data, backends=["norse", "numpy"])   # dataset scale; engine="ray"
"""

from importlib import import_module

from .errors import (
    DataError,
    EvaluationError,
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
from .graph import Graph
from .policy import NodePolicy, Policy

# `convert` and `verify` are also submodule names: import the functions eagerly so that a later
# `import nirbridge.convert` cannot replace them with the modules.
from .convert import check, convert  # noqa: E402
from .verify import VerifyReport, verify  # noqa: E402

__version__ = "0.1.0"

# name -> module; imported on first use so `import nirbridge` stays light
_LAZY = {
    "load": "io",
    "save": "io",
    "simulate": "reference",
    "SimulationResult": "result",
    "backends": "plugins",
    "get_backend": "plugins",
    "hookimpl": "hookspecs",
    "hookspec": "hookspecs",
    "Backend": "backend",
    "Support": "backend",
    "Gap": "gaps",
    "GapReport": "gaps",
    "evaluate": "evaluation",
    "EvaluationResult": "evaluation",
    "load_recording": "recording",
    "save_recording": "recording",
}


# submodules reachable as attributes after a plain `import nirbridge`
_SUBMODULES = frozenset({"datasets", "evaluation", "io", "plot", "plugins", "recording", "reference", "rewrite", "testing", "topology"})


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
    "VerifyReport",
    "check",
    "convert",
    "verify",
    *_LAZY,
]
