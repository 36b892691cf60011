"""Misuse gets a clear answer: a preset name where a Policy goes, plugins that return the wrong
thing, a plugin interrupting its own import, hostile-but-valid graphs on the command line."""

from __future__ import annotations

import types

import numpy as np
import pytest
from click.testing import CliRunner

import nirbridge
from nirbridge import Graph, Policy
from nirbridge.backends import registry
from nirbridge.backends.hookspecs import hookimpl
from nirbridge.backends.numpy import NumpyBackend
from nirbridge.cli import cli
from nirbridge.conversion import plan, run
from nirbridge.errors import PluginError
from nirbridge.testing import build_case

pytestmark = pytest.mark.usefixtures("builtin_backends_only")


def test_a_preset_name_is_accepted_where_a_policy_goes():
    graph = build_case("lif", Policy.preset("nir"))
    out = nirbridge.convert(graph, to="nir", policy="snntorch")
    assert Policy.from_metadata(out.metadata) == Policy.preset("snntorch")
    assert nirbridge.check(graph, to="numpy", policy="norse").policy == Policy.preset("norse")
    with pytest.raises(nirbridge.PolicyError, match="unknown preset 'snntorc'"):
        nirbridge.convert(graph, to="nir", policy="snntorc")


class NoModel(NumpyBackend):
    name = "no-model"

    def build(self, plan):
        return None


class WrongResult(NumpyBackend):
    name = "wrong-result"

    def simulate(self, native, x, *, record=()):
        return {"output": x}


def test_a_plugin_returning_the_wrong_thing_is_named():
    graph = build_case("lif", Policy.preset("nir"))
    with pytest.raises(PluginError, match="backend 'no-model': build returned None"):
        nirbridge.convert(graph, to=NoModel())
    p = plan(graph, WrongResult())
    with pytest.raises(PluginError, match="backend 'wrong-result': simulate returned dict, not a nirbridge SimulationResult"):
        run(p.backend, p.build(), np.zeros((3, 1, *graph.nodes["input"].shape), np.float32))
    with registry.temporary(WrongResult()):
        report = nirbridge.verify(graph, backends=["wrong-result"])
    assert "PluginError" in report.results["wrong-result"].error and not report.ok


def test_a_plugin_interrupting_its_own_import_is_a_failure(monkeypatch):
    class Interrupting:
        name, value = "rude", "rude_plugin"
        dist = types.SimpleNamespace(name="nirbridge-rude")

        def load(self):
            raise KeyboardInterrupt

    module = types.ModuleType("fine")
    module.register_backends = hookimpl(lambda: [])
    monkeypatch.delenv(registry.DISABLE_ENV)
    monkeypatch.setattr(registry, "_entry_points", lambda: [Interrupting()])
    registry.reset()
    with pytest.warns(registry.PluginWarning, match="nirbridge-rude.*KeyboardInterrupt"):
        assert list(nirbridge.backends()) == ["numpy"]
    registry.reset()


def _delay_graph(tmp_path, delay):
    graph = Graph.from_dict({"nodes": {"input": {"type": "Input", "shape": np.array([1])}, "d": {"type": "Delay", "delay": np.array([delay])},
                                       "output": {"type": "Output", "shape": np.array([1])}},
                             "edges": [("input", "d"), ("d", "output")]})
    nirbridge.save(graph, tmp_path / "g.nir")
    np.save(tmp_path / "x.npy", np.ones((5, 1, 1), np.float32))
    return str(tmp_path / "g.nir"), str(tmp_path / "x.npy")


def test_a_delay_of_1e30_s_runs_on_the_reference_and_is_refused_by_a_delay_line(tmp_path):
    path, x = _delay_graph(tmp_path, 1e30)
    ran = CliRunner().invoke(cli, ["simulate", path, "--input", x, "-o", str(tmp_path / "y.npz")])
    assert ran.exit_code == 0  # longer than the run: only zeros come out, nothing is allocated for it
    assert not np.load(tmp_path / "y.npz")["outputs/output"].any()
    assert nirbridge.check(path, to=NumpyBackend()).ok


def test_a_delay_that_is_not_a_whole_number_of_steps_is_one_line_and_exit_2(tmp_path):
    path, x = _delay_graph(tmp_path, 0.5e-4)
    result = CliRunner().invoke(cli, ["simulate", path, "--input", x, "-o", str(tmp_path / "y.npz")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "nodes.d.delay[0]: 5e-05 s is not a whole number >= 0 of steps of dt = 0.0001 s" in result.output
