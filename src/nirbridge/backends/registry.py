"""The backend registry: built-in backends plus those plugins register through the
`nirbridge` entry-point group, loaded lazily on first use and only once.

A plugin that fails to import (or whose hook raises) is recorded in `failures()` by its
distribution name and reported with a `PluginWarning`; the other backends keep working.
Two backends with one name, a hook returning something that is not a `Backend`, or an
invalid backend name raise `PluginError`. Setting `NIRBRIDGE_DISABLE_PLUGINS=1` skips entry
points (built-in backends stay).
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pluggy

from ..errors import PluginError, UnknownBackendError
from . import hookspecs
from .base import Backend, name_problem

ENTRY_POINT_GROUP = "nirbridge"
DISABLE_ENV = "NIRBRIDGE_DISABLE_PLUGINS"
CORE_DISTRIBUTION = "nirbridge"


class PluginWarning(UserWarning):
    """A plugin could not be loaded; the others still work."""


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that did not load: its distribution, entry point and the error it raised."""

    distribution: str
    entry_point: str
    error: str

    def __str__(self) -> str:
        return f"{self.distribution} (entry point {self.entry_point!r}): {self.error}"


@dataclass
class _Registry:
    backends: dict[str, Backend]
    distributions: dict[str, str]
    failures: list[PluginFailure]


_lock = threading.Lock()
_state: _Registry | PluginError | None = None


def _entry_points() -> Iterable[Any]:
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def _builtin_plugins() -> list[Any]:
    from . import numpy as numpy_backend

    return [numpy_backend]


def _disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _distribution_of(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    return str(name) if name else str(getattr(ep, "value", ep)).split(":")[0]


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _fail(failures: list[PluginFailure], dist: str, entry: str, exc: BaseException) -> None:
    failure = PluginFailure(dist, entry, _error_text(exc))
    failures.append(failure)
    warnings.warn(f"nirbridge plugin {failure} failed to load; other backends are unaffected", PluginWarning, stacklevel=4)


def _load() -> _Registry:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    origin: dict[int, str] = {}
    failures: list[PluginFailure] = []
    for plugin in _builtin_plugins():
        manager.register(plugin, name=plugin.__name__)
        origin[id(plugin)] = CORE_DISTRIBUTION
    if not _disabled():
        for ep in _entry_points():
            dist, entry = _distribution_of(ep), str(getattr(ep, "name", ep))
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                _fail(failures, dist, entry, exc)
                continue
            if manager.is_registered(plugin):
                continue  # the built-in backend's own entry point
            try:
                manager.register(plugin, name=f"{dist}:{entry}")
            except Exception as exc:  # pluggy validation errors, name clashes
                _fail(failures, dist, entry, exc)
                continue
            origin[id(plugin)] = dist
    found: dict[str, Backend] = {}
    where: dict[str, str] = {}
    for impl in manager.hook.register_backends.get_hookimpls():
        dist = origin.get(id(impl.plugin), impl.plugin_name)
        try:
            records = list(impl.function() or ())
        except Exception as exc:
            _fail(failures, dist, impl.plugin_name, exc)
            continue
        for backend in records:
            if not isinstance(backend, Backend):
                raise PluginError(f"{dist}: register_backends returned {type(backend).__name__!s}, not a nirbridge.Backend")
            problem = name_problem(backend.name)
            if problem:
                raise PluginError(f"{dist}: {problem}")
            if backend.name in found:
                first = where[backend.name]
                both = f"both {first} and {dist}" if first != dist else f"{dist} twice"
                raise PluginError(f"backend name {backend.name!r} is registered by {both}")
            found[backend.name] = backend
            where[backend.name] = dist
    names = sorted(found)
    return _Registry({n: found[n] for n in names}, {n: where[n] for n in names}, failures)


def _registry() -> _Registry:
    global _state
    with _lock:
        if _state is None:
            try:
                _state = _load()
            except PluginError as exc:
                _state = exc
        if isinstance(_state, PluginError):
            raise _state
        return _state


@contextmanager
def temporary(*extra: Backend) -> Iterator[dict[str, Backend]]:
    """Within the block, the registry holds the built-in backends plus `extra` and loads no
    entry points (for tests). Names must be unique, as always."""
    global _state
    with _lock:
        saved = _state
    try:
        core = [b for p in _builtin_plugins() for b in p.register_backends()]
        registry = _Registry({}, {}, [])
        for backend in [*core, *extra]:
            problem = name_problem(backend.name)
            if problem or backend.name in registry.backends:
                raise PluginError(problem or f"backend name {backend.name!r} is registered twice")
            registry.backends[backend.name] = backend
            registry.distributions[backend.name] = CORE_DISTRIBUTION if backend in core else type(backend).__module__
        with _lock:
            _state = registry
        yield dict(registry.backends)
    finally:
        with _lock:
            _state = saved


def reset() -> None:
    """Forget what was loaded; the next lookup loads built-ins and entry points again."""
    global _state
    with _lock:
        _state = None


def backends() -> dict[str, Backend]:
    """Installed backends by name (sorted)."""
    return dict(_registry().backends)


def _builtin_only(name: str) -> Backend | None:
    """The built-in backend `name`, when no other distribution has an entry point of that name
    (so looking it up needs no plugin imported, e.g. no torch); else None. Duplicate names
    registered under other entry-point names are still reported once every plugin loads."""
    with _lock:
        if _state is not None:
            return None
    builtins = {b.name: b for p in _builtin_plugins() for b in p.register_backends()}
    if name not in builtins:
        return None
    if not _disabled():
        for ep in _entry_points():
            if getattr(ep, "name", None) == name and _distribution_of(ep) != CORE_DISTRIBUTION:
                return None
    return builtins[name]


def get_backend(name: str) -> Backend:
    """The backend called `name`; `UnknownBackendError` lists the installed ones. Built-in
    backends are found without importing plugins (see `_builtin_only`)."""
    if isinstance(name, str) and (builtin := _builtin_only(name)) is not None:
        return builtin
    reg = _registry()
    if isinstance(name, str) and name in reg.backends:
        return reg.backends[name]
    msg = f"unknown backend {name!r}; installed: {', '.join(reg.backends) or 'none'}"
    if name == "nir":
        msg += " ('nir' is a conversion target of convert(), not a backend)"
    if reg.failures:
        msg += f"; plugins that failed to load: {', '.join(f.distribution for f in reg.failures)}"
    raise UnknownBackendError(msg)


def distributions() -> dict[str, str]:
    """Backend name -> the distribution that registered it."""
    return dict(_registry().distributions)


def failures() -> list[PluginFailure]:
    """Plugins that failed to load, by distribution (empty when all loaded)."""
    return list(_registry().failures)
