"""The backend registry: built-in numpy backend, entry-point plugins loaded lazily and once as
light records, broken plugins isolated (never the whole registry), duplicate and invalid names
refused, plugins calling back while they load, the disable switch."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import threading
import types
import warnings

import pytest

import nirbridge
from nirbridge.backends import registry as plugins
from nirbridge.backends.base import Backend, BackendRecord, Support, exact
from nirbridge.backends.hookspecs import hookimpl
from nirbridge.backends.numpy import NumpyBackend
from nirbridge.backends.registry import PluginWarning
from nirbridge.errors import NirbridgeError, PluginError, UnknownBackendError


class _Dist:
    def __init__(self, name):
        self.name = name


class FakeEntryPoint:
    """Stands in for importlib.metadata.EntryPoint: a name, a distribution and a load()."""

    def __init__(self, name, dist, load):
        self.name, self.dist, self.value = name, _Dist(dist), f"{dist.replace('-', '_')}.plugin"
        self._load = load
        self.loads = 0

    def load(self):
        self.loads += 1
        return self._load()


def make_backend(backend_name, preset="nir"):
    return type(f"B_{backend_name}", (Backend,), {"name": backend_name, "preset": preset, "handlers": {"LIF": exact("lif")}})()


def plugin_module(*backends_):
    module = types.ModuleType("fake_plugin")

    @hookimpl
    def register_backends():
        return list(backends_)

    module.register_backends = register_backends
    return module


def broken_import():
    raise ImportError("No module named 'missing_dependency'")


@pytest.fixture
def entry_points(monkeypatch):
    """Replace the installed entry points with a list the test fills; plugins enabled."""
    eps: list = []
    monkeypatch.delenv(plugins.DISABLE_ENV, raising=False)
    monkeypatch.setattr(plugins, "_entry_points", lambda: eps)
    plugins.reset()
    yield eps
    plugins.reset()


def test_builtin_numpy_backend_is_registered(entry_points):
    found = nirbridge.backends()
    assert list(found) == ["numpy"] and isinstance(found["numpy"], BackendRecord)
    assert (found["numpy"].preset, found["numpy"].distribution) == ("nir", "nirbridge")
    assert isinstance(nirbridge.get_backend("numpy"), NumpyBackend)
    assert nirbridge.get_backend("numpy") is nirbridge.get_backend("numpy")
    assert plugins.distributions() == {"numpy": "nirbridge"}
    assert plugins.failures() == []


def test_plugin_backends_are_registered_with_their_distribution(entry_points):
    entry_points.append(FakeEntryPoint("alpha", "nirbridge-alpha", lambda: plugin_module(make_backend("alpha"), make_backend("beta"))))
    assert list(nirbridge.backends()) == ["alpha", "beta", "numpy"]
    assert plugins.distributions()["beta"] == "nirbridge-alpha"


def test_core_entry_point_does_not_register_numpy_twice(entry_points):
    entry_points.append(importlib.metadata.EntryPoint("numpy", "nirbridge.backends.numpy", plugins.ENTRY_POINT_GROUP))
    assert list(nirbridge.backends()) == ["numpy"]


def test_plugins_load_lazily_and_once(entry_points):
    ep = FakeEntryPoint("alpha", "nirbridge-alpha", lambda: plugin_module(make_backend("alpha")))
    entry_points.append(ep)
    assert ep.loads == 0  # nothing happens before the first lookup
    nirbridge.backends()
    nirbridge.get_backend("alpha")
    nirbridge.backends()
    assert ep.loads == 1


def test_failing_plugin_is_reported_by_distribution_and_others_keep_working(entry_points):
    entry_points.append(FakeEntryPoint("broken", "nirbridge-broken", broken_import))
    entry_points.append(FakeEntryPoint("alpha", "nirbridge-alpha", lambda: plugin_module(make_backend("alpha"))))
    with pytest.warns(PluginWarning, match="nirbridge-broken.*missing_dependency"):
        found = nirbridge.backends()
    assert list(found) == ["alpha", "numpy"]
    (failure,) = plugins.failures()
    assert failure.distribution == "nirbridge-broken" and failure.entry_point == "broken"
    assert "ImportError" in failure.error and "missing_dependency" in failure.error
    with pytest.raises(UnknownBackendError, match="failed to load: nirbridge-broken"):
        nirbridge.get_backend("broken")


def test_plugin_whose_hook_raises_is_isolated(entry_points):
    module = types.ModuleType("raising")

    @hookimpl
    def register_backends():
        raise RuntimeError("cannot find device")

    module.register_backends = register_backends
    entry_points.append(FakeEntryPoint("dev", "nirbridge-device", lambda: module))
    with pytest.warns(PluginWarning, match="cannot find device"):
        assert list(nirbridge.backends()) == ["numpy"]
    assert [f.distribution for f in plugins.failures()] == ["nirbridge-device"]


def test_plugin_with_a_misspelled_hook_argument_is_isolated(entry_points):
    module = types.ModuleType("misspelled")

    @hookimpl
    def register_backends(config):  # the hook takes no arguments
        return []

    module.register_backends = register_backends
    entry_points.append(FakeEntryPoint("bad", "nirbridge-bad", lambda: module))
    with pytest.warns(PluginWarning, match="nirbridge-bad"):
        assert list(nirbridge.backends()) == ["numpy"]


def test_duplicate_backend_names_name_both_distributions(entry_points):
    entry_points.append(FakeEntryPoint("one", "nirbridge-one", lambda: plugin_module(make_backend("spiky"))))
    entry_points.append(FakeEntryPoint("two", "nirbridge-two", lambda: plugin_module(make_backend("spiky"))))
    with pytest.warns(PluginWarning, match="'spiky' is registered by both nirbridge-one and nirbridge-two"):
        assert list(nirbridge.backends()) == ["numpy"]  # the name is usable by neither; the rest works
    with pytest.raises(PluginError, match="'spiky' is registered by nirbridge-one and nirbridge-two"):
        nirbridge.get_backend("spiky")
    assert nirbridge.get_backend("numpy").name == "numpy"


def test_plugin_shadowing_the_builtin_name_is_refused(entry_points):
    entry_points.append(FakeEntryPoint("np", "nirbridge-fake-numpy", lambda: plugin_module(make_backend("numpy"))))
    with pytest.warns(PluginWarning, match="'numpy' is registered by both nirbridge and nirbridge-fake-numpy"):
        assert nirbridge.backends()["numpy"].distribution == "nirbridge"
    assert isinstance(nirbridge.get_backend("numpy"), NumpyBackend)


@pytest.mark.parametrize("bad", ["Norse", "", "nir", "has space", "a/b"])
def test_invalid_backend_names_are_refused(entry_points, bad):
    entry_points.append(FakeEntryPoint("bad", "nirbridge-bad", lambda: plugin_module(make_backend(bad))))
    with pytest.warns(PluginWarning, match="nirbridge-bad"):
        assert list(nirbridge.backends()) == ["numpy"]
    assert [f.distribution for f in plugins.failures()] == ["nirbridge-bad"]


def test_hook_returning_a_non_backend_is_refused(entry_points):
    entry_points.append(FakeEntryPoint("odd", "nirbridge-odd", lambda: plugin_module("norse")))
    with pytest.warns(PluginWarning, match="nirbridge-odd.*str, not a nirbridge BackendRecord"):
        assert list(nirbridge.backends()) == ["numpy"]


def test_records_load_their_backend_on_first_use_only(entry_points):
    made = []

    def factory():
        made.append(1)
        return make_backend("lazy")

    entry_points.append(FakeEntryPoint("lazy", "nirbridge-lazy", lambda: plugin_module(BackendRecord("lazy", factory))))
    assert "lazy" in nirbridge.backends() and made == []
    assert nirbridge.get_backend("lazy") is nirbridge.get_backend("lazy") and made == [1]


def test_a_record_whose_factory_makes_something_else_is_a_plugin_error(entry_points):
    entry_points.append(FakeEntryPoint("odd", "nirbridge-odd", lambda: plugin_module(BackendRecord("odd", lambda: "not a backend"))))
    with pytest.raises(PluginError, match="nirbridge-odd.*str, not a nirbridge Backend"):
        nirbridge.get_backend("odd")


def test_a_plugin_may_call_the_registry_while_it_loads(entry_points):
    """No deadlock: at import and inside its hook a plugin sees what is registered so far."""
    seen = []

    def load():
        seen.append(sorted(nirbridge.backends()))  # at import
        module = types.ModuleType("callback_plugin")

        @hookimpl
        def register_backends():
            seen.append(nirbridge.get_backend("numpy").name)  # inside the hook
            return [make_backend("callback")]

        module.register_backends = register_backends
        return module

    entry_points.append(FakeEntryPoint("cb", "nirbridge-callback", load))
    done = []
    worker = threading.Thread(target=lambda: done.append(sorted(nirbridge.backends())), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert done == [["callback", "numpy"]], "the registry deadlocked"
    assert seen == [["numpy"], "numpy"]


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_disable_switch_skips_entry_points_but_keeps_numpy(entry_points, monkeypatch, value):
    ep = FakeEntryPoint("alpha", "nirbridge-alpha", lambda: plugin_module(make_backend("alpha")))
    entry_points.append(ep)
    monkeypatch.setenv(plugins.DISABLE_ENV, value)
    assert list(nirbridge.backends()) == ["numpy"]
    assert ep.loads == 0


def test_disable_switch_off_values_load_plugins(entry_points, monkeypatch):
    entry_points.append(FakeEntryPoint("alpha", "nirbridge-alpha", lambda: plugin_module(make_backend("alpha"))))
    monkeypatch.setenv(plugins.DISABLE_ENV, "0")
    assert "alpha" in nirbridge.backends()


def test_unknown_backend_lists_installed_ones(entry_points):
    entry_points.append(FakeEntryPoint("alpha", "nirbridge-alpha", lambda: plugin_module(make_backend("alpha"))))
    with pytest.raises(UnknownBackendError) as caught:
        nirbridge.get_backend("lava")
    message = str(caught.value)
    assert message == "unknown backend 'lava'; installed: alpha, numpy"
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, NirbridgeError)


def test_nir_is_not_a_backend(entry_points):
    with pytest.raises(UnknownBackendError, match="conversion target"):
        nirbridge.get_backend("nir")


def test_temporary_registry_restores_the_previous_one(entry_points):
    before = nirbridge.backends()
    with plugins.temporary(make_backend("extra")) as found:
        assert list(found) == ["extra", "numpy"] and "extra" in nirbridge.backends()
    assert nirbridge.backends() == before
    with pytest.raises(PluginError):
        with plugins.temporary(make_backend("numpy")):
            pass


def test_public_names_are_exported():
    assert nirbridge.hookimpl is hookimpl
    assert nirbridge.Backend is Backend and nirbridge.Support is Support
    assert nirbridge.backends is plugins.backends and nirbridge.get_backend is plugins.get_backend
    from nirbridge.backends.hookspecs import hookspec
    from nirbridge.report import Gap, GapReport

    assert nirbridge.hookspec is hookspec and nirbridge.Gap is Gap and nirbridge.GapReport is GapReport
    import nirbridge.plot as plot_module

    assert nirbridge.plot is plot_module and nirbridge.testing.BackendConformance


def test_core_modules_import_without_torch():
    code = (
        "import sys, nirbridge\n"
        "import nirbridge.conversion, nirbridge.verification, nirbridge.report, nirbridge.rewrite, nirbridge.backends.registry, nirbridge.backends.numpy\n"
        "nirbridge.backends()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'snntorch', 'norse'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"NIRBRIDGE_DISABLE_PLUGINS": "1", "PATH": ""}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_broken_plugin_warning_does_not_stop_the_registry(entry_points):
    entry_points.append(FakeEntryPoint("broken", "nirbridge-broken", broken_import))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert nirbridge.get_backend("numpy").name == "numpy"


def test_listing_backends_imports_no_framework():
    """With every installed plugin enabled, listing backends and looking up the built-in one
    imports no torch, jax or framework: plugins register light records."""
    code = (
        "import sys, nirbridge\n"
        "names = sorted(nirbridge.backends()); nirbridge.get_backend('numpy')\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'jax', 'snntorch', 'norse', 'sinabs', 'spikingjelly', 'rockpool', 'spyx'})\n"
        "print(len(names) > 1, bad)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != plugins.DISABLE_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True []"
