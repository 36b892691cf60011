"""The backend registry: the built-in `numpy` backend plus the backends plugins register through
the `nirbridge` entry-point group, loaded lazily on first use and only once.

Plugins register light `BackendRecord`s, so listing backends (`backends()`) imports no
framework; `get_backend(name)` makes that one backend. Everything goes through pluggy, the
built-in backend and the test helper `temporary` included.

A plugin that fails (an import error, a hook that raises, prints, calls `sys.exit`, returns
something that is not a record, or a record with an invalid or taken name) is recorded in
`failures()` by its distribution and reported with a `PluginWarning`; the other backends keep
working. A name two distributions register is usable by neither: looking it up raises
`PluginError` naming both. A plugin may call the registry while it loads (it then sees the
backends registered so far, the built-in ones first). `NIRBRIDGE_DISABLE_PLUGINS=1` skips entry
points (the built-in backend stays).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
import threading
import types
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pluggy

from ..errors import PluginError, UnknownBackendError
from . import hookspecs
from .base import Backend, BackendRecord, name_problem

ENTRY_POINT_GROUP = "nirbridge"
DISABLE_ENV = "NIRBRIDGE_DISABLE_PLUGINS"
CORE_DISTRIBUTION = "nirbridge"
BUILTIN = BackendRecord(
    "numpy", "nirbridge.backends.numpy:NumpyBackend", preset="nir",
    description="NumPy reference simulator (the oracle every backend is tested against)",
    model_types=("nirbridge.backends.numpy.NumpyModel",),
)


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
    records: dict[str, BackendRecord] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    #: name -> distributions that all registered it (usable by none of them)
    clashes: dict[str, list[str]] = field(default_factory=dict)


_lock = threading.RLock()
_state: _Registry | None = None
_loading: _Registry | None = None  # the registry being filled, for plugins that call back


def _entry_points() -> Iterable[Any]:
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def _disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _distribution_of(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    return str(name) if name else str(getattr(ep, "value", ep)).split(":")[0]


def _fail(registry: _Registry, dist: str, entry: str, error: str) -> None:
    failure = PluginFailure(dist, entry, error)
    registry.failures.append(failure)
    warnings.warn(f"nirbridge plugin {failure} failed to load; other backends are unaffected", PluginWarning, stacklevel=5)


@contextlib.contextmanager
def _guarded(registry: _Registry, dist: str, entry: str) -> Iterator[list[bool]]:
    """Run plugin code: its output goes to stderr (stdout may carry JSON), and anything it
    raises, `SystemExit` and `KeyboardInterrupt` included, becomes a failure of `dist`.
    Yields a one-item list that is True when the block failed."""
    failed = [False]
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield failed
    except BaseException as exc:  # noqa: BLE001 - a plugin must not take the process down
        failed[0] = True
        _fail(registry, dist, entry, f"{type(exc).__name__}: {exc}")


def _builtin_plugin() -> types.ModuleType:
    module = types.ModuleType("nirbridge.backends.builtin")

    @hookspecs.hookimpl
    def register_backends():
        return [BUILTIN]

    module.register_backends = register_backends
    return module


def _as_record(item: Any, dist: str) -> BackendRecord:
    if isinstance(item, BackendRecord):
        return replace(item, distribution=dist, _loaded=item._loaded)
    if isinstance(item, Backend):
        return replace(BackendRecord.of(item), distribution=dist, _loaded=[item])
    raise PluginError(f"register_backends returned {type(item).__name__}, not a nirbridge BackendRecord or Backend")


def _add(registry: _Registry, record: BackendRecord, dist: str, entry: str) -> None:
    problem = name_problem(record.name)
    if problem:
        _fail(registry, dist, entry, problem)
        return
    taken = registry.records.get(record.name)
    clash = registry.clashes.get(record.name)
    if taken is None and clash is None:
        registry.records[record.name] = record
        return
    owners = clash or [taken.distribution]
    both = f"both {', '.join(owners)} and {dist}" if dist not in owners else f"{dist} twice"
    _fail(registry, dist, entry, f"backend name {record.name!r} is registered by {both}")
    if taken is not None and taken.distribution != CORE_DISTRIBUTION:  # the built-in name stays the built-in's
        registry.clashes[record.name] = [*owners, dist]
        del registry.records[record.name]
    elif clash is not None:
        clash.append(dist)


def _load(extra: Iterable[Any] = (), entry_points: bool = True) -> _Registry:
    """Fill a registry: the built-in plugin, `extra` plugin objects (tests), then entry points,
    each registered as soon as it is imported."""
    global _loading
    registry = _Registry()
    _loading = registry
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)

    def register(plugin: Any, dist: str, entry: str) -> None:
        with _guarded(registry, dist, entry) as failed:
            manager.register(plugin, name=f"{dist}:{entry}:{id(plugin)}")
            impls = [i for i in manager.hook.register_backends.get_hookimpls() if i.plugin is plugin]
            records = [_as_record(item, dist) for impl in impls for item in (impl.function() or ())]
        if not failed[0]:
            for record in records:
                _add(registry, record, dist, entry)

    try:
        register(_builtin_plugin(), CORE_DISTRIBUTION, "numpy")
        for plugin in extra:
            register(plugin, getattr(plugin, "__name__", "test"), "test")
        if entry_points and not _disabled():
            for ep in _entry_points():
                dist, entry = _distribution_of(ep), str(getattr(ep, "name", ep))
                if dist == CORE_DISTRIBUTION:
                    continue  # the built-in backend's own entry point
                with _guarded(registry, dist, entry) as failed:
                    plugin = ep.load()
                if not failed[0]:
                    register(plugin, dist, entry)
    finally:
        _loading = None
    registry.records = dict(sorted(registry.records.items()))
    return registry


def _registry() -> _Registry:
    global _state
    with _lock:
        if _loading is not None:  # a plugin calling back while it loads: what is there so far
            return _loading
        if _state is None:
            _state = _load()
        return _state


@contextlib.contextmanager
def temporary(*extra: Backend | BackendRecord) -> Iterator[dict[str, BackendRecord]]:
    """Within the block, the registry holds the built-in backend plus `extra` (backends or
    records) and loads no entry points (for tests). Registered through the same path as
    plugins; a clash raises `PluginError`."""
    global _state
    module = types.ModuleType("nirbridge_temporary")

    @hookspecs.hookimpl
    def register_backends():
        return list(extra)

    module.register_backends = register_backends
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        with _lock:
            registry = _load([module], entry_points=False)
    if registry.failures:
        raise PluginError("; ".join(f.error for f in registry.failures))
    with _lock:
        saved, _state = _state, registry
    try:
        yield dict(registry.records)
    finally:
        with _lock:
            _state = saved


def reset() -> None:
    """Forget what was loaded; the next lookup loads the built-in backend and entry points again."""
    global _state
    with _lock:
        _state = None


def backends() -> dict[str, BackendRecord]:
    """Installed backends by name (sorted), as records: listing imports no framework."""
    return dict(_registry().records)


def get_backend(name: str) -> Backend:
    """The backend called `name`, made on first use. `UnknownBackendError` lists the
    installed ones; `PluginError` when its plugin misbehaves or two distributions claim it."""
    reg = _registry()
    if isinstance(name, str) and name in reg.records:
        return reg.records[name].load()
    if isinstance(name, str) and name in reg.clashes:
        raise PluginError(f"backend name {name!r} is registered by {' and '.join(reg.clashes[name])}; uninstall one")
    msg = f"unknown backend {name!r}; installed: {', '.join(reg.records) or 'none'}"
    if name == "nir":
        msg += " ('nir' is a conversion target of convert(), not a backend)"
    if reg.failures:
        msg += f"; plugins that failed to load: {', '.join(dict.fromkeys(f.distribution for f in reg.failures))}"
    raise UnknownBackendError(msg)


def distributions() -> dict[str, str]:
    """Backend name -> the distribution that registered it."""
    return {name: record.distribution for name, record in _registry().records.items()}


def failures() -> list[PluginFailure]:
    """Plugins that failed to load, by distribution (empty when all loaded)."""
    return list(_registry().failures)
