"""The exception hierarchy. Every error nirbridge raises on bad input is a `NirbridgeError`.

Messages name the place of the problem as a dotted path (`nodes.lif1.tau[3]: must be > 0,
got -0.02`) and, for files, the file. Errors that collect several problems keep them all in
`.problems` (a list of `Problem`) so callers can inspect them one by one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong at one place: `path` is dotted (`nodes.lif1.tau[3]`)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class NirbridgeError(ValueError):
    """Base class of every nirbridge error."""

    def __init__(self, message: str = "", *, problems: list[Problem] | None = None, file=None):
        self.problems = list(problems or [])
        self.file = str(file) if file is not None else None
        if not message:
            message = "; ".join(str(p) for p in self.problems)
        if self.problems and len(self.problems) > 1:
            message = f"{len(self.problems)} problems: " + "; ".join(str(p) for p in self.problems)
        if self.file:
            message = f"{self.file}: {message}"
        super().__init__(message)


class GraphValidationError(NirbridgeError):
    """A graph breaks a rule of NIR: bad values, inconsistent shapes, dangling edges."""


class NirFormatError(NirbridgeError):
    """A file is not a readable NIR file: not HDF5, truncated, missing or extra keys."""


class UnsafeFileError(NirbridgeError):
    """A file uses an HDF5 feature that could read outside the file: external storage,
    external or soft links, virtual datasets, unknown filters."""


class ResourceLimitError(NirbridgeError):
    """A file declares more data or deeper nesting than the configured limits allow."""


class FileAccessError(NirbridgeError):
    """A file cannot be read or written as asked: no space left, no permission, locked by
    another program, or an output path nirbridge refuses to write (a directory, a FIFO or
    device, one of the command's own inputs). `.file` is the path the user gave; `.errno` the
    operating system's error number where there is one."""

    errno: int | None = None


class UnsupportedVersionError(NirbridgeError):
    """A file was written by a NIR format version this library does not know."""


class DataError(NirbridgeError):
    """Data to run or evaluate is malformed: a damaged or oversized .npy file, batches of the
    wrong shape, labels that do not match the samples, an unknown built-in dataset."""


class EvaluationError(NirbridgeError):
    """An evaluation cannot run: an unknown read-out or engine, clashing model names, workers
    that cannot start."""


class PolicyError(NirbridgeError):
    """A Policy is inconsistent, or cannot be applied to a graph (e.g. delay not a multiple of dt)."""


class SimulationError(NirbridgeError):
    """Inputs or graphs the simulator cannot run (wrong input shape, unsupported structure)."""


class GapError(NirbridgeError):
    """A conversion cannot be exact. Carries the full `GapReport` in `.report`."""

    def __init__(self, report, message: str = ""):
        self.report = report
        super().__init__(message or str(report))


class UnknownBackendError(NirbridgeError, KeyError):
    """No backend of that name is installed. The message lists the installed ones."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return ValueError.__str__(self)


class PluginError(NirbridgeError):
    """A plugin misbehaves: duplicate backend names, a hook returning non-backends."""
