"""The example backend as a third party would test theirs: it is found through the entry
point, listed by `nirbridge backends`, its gap reports follow its declared support, it
converts (rewrites included) and agrees spike for spike with the NumPy reference, and it
passes nirbridge's conformance suite."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import nirbridge
from nirbridge.backends import registry as plugins
from nirbridge.cli import cli
from nirbridge.conversion import check, convert
from nirbridge.errors import GapError
from nirbridge.ir import Graph
from nirbridge.reference import simulate
from nirbridge.semantics import Policy
from nirbridge.testing import BackendConformance
from nirbridge.verification import verify
from nirbridge_example import ExampleBackend, ExampleNetwork

F = np.float32
DT = 1e-4


@pytest.fixture
def entry_points(monkeypatch):
    """Entry-point loading on, with only this distribution's entry points (other installed
    plugins would import their frameworks; the subprocess test below loads them all)."""
    monkeypatch.delenv(plugins.DISABLE_ENV, raising=False)
    ours = [ep for ep in importlib.metadata.entry_points(group=plugins.ENTRY_POINT_GROUP) if ep.dist.name == "nirbridge-example"]
    assert ours, "nirbridge-example is not installed (pip install -e plugins/nirbridge-example)"
    monkeypatch.setattr(plugins, "_entry_points", lambda: ours)
    plugins.reset()
    yield
    plugins.reset()


def _lif(n: int, r: float = 10.0, threshold: float = 1.0) -> dict:
    return {
        "type": "LIF", "tau": np.full(n, 1e-3, F), "r": np.full(n, r, F), "v_leak": np.zeros(n, F),
        "v_threshold": np.full(n, threshold, F), "v_reset": np.zeros(n, F),
    }


def _graph(with_cubalif: bool = False) -> Graph:
    """Input (1, 4, 4) -> AvgPool2d(2) -> Flatten -> Linear(4 -> 6) -> LIF (r = 10) [-> Linear -> CubaLIF]."""
    rng = np.random.default_rng(3)
    nodes = {
        "in": {"type": "Input", "shape": np.array([1, 4, 4])},
        "pool": {"type": "AvgPool2d", "kernel_size": np.array([2, 2]), "stride": np.array([2, 2]), "padding": np.array([0, 0])},
        "flat": {"type": "Flatten", "start_dim": 0, "end_dim": -1, "input_type": np.array([1, 2, 2])},
        "fc": {"type": "Linear", "weight": rng.uniform(0.5, 1.5, (6, 4)).astype(F)},
        "lif": _lif(6),
    }
    edges = [("in", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "lif")]
    if with_cubalif:
        nodes["fc2"] = {"type": "Linear", "weight": rng.uniform(0, 1, (2, 6)).astype(F)}
        nodes["cuba"] = {
            "type": "CubaLIF", "tau_syn": np.full(2, 5e-4, F), "tau_mem": np.full(2, 1e-3, F), "r": np.full(2, 10, F),
            "v_leak": np.zeros(2, F), "v_threshold": np.ones(2, F), "v_reset": np.zeros(2, F), "w_in": np.full(2, 5, F),
        }
        nodes["out"] = {"type": "Output", "shape": np.array([2])}
        edges += [("lif", "fc2"), ("fc2", "cuba"), ("cuba", "out")]
    else:
        nodes["out"] = {"type": "Output", "shape": np.array([6])}
        edges += [("lif", "out")]
    return Graph(nodes=nodes, edges=edges)


def _spikes(steps: int = 60, batch: int = 3, p: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(0).random((steps, batch, 1, 4, 4)) < p).astype(F)


POLICY = Policy.preset("nir", dt=DT)


# ----------------------------------------------------------------------------- installation


def test_entry_point_is_declared_by_the_distribution():
    eps = [ep for ep in importlib.metadata.entry_points(group="nirbridge") if ep.name == "example"]
    assert len(eps) == 1
    assert eps[0].value == "nirbridge_example.plugin"
    assert eps[0].dist.name == "nirbridge-example"


def test_registered_through_the_entry_point(entry_points):
    found = nirbridge.backends()
    assert found["example"].preset == "nir" and isinstance(nirbridge.get_backend("example"), ExampleBackend)
    assert plugins.distributions()["example"] == "nirbridge-example"
    assert "numpy" in found
    assert not [f for f in plugins.failures() if f.distribution == "nirbridge-example"]


def test_not_loaded_when_plugins_are_disabled(monkeypatch):
    monkeypatch.setenv(plugins.DISABLE_ENV, "1")
    plugins.reset()
    try:
        assert "example" not in nirbridge.backends()
        with pytest.raises(nirbridge.UnknownBackendError, match="unknown backend 'example'; installed: numpy"):
            nirbridge.get_backend("example")
    finally:
        plugins.reset()


def test_listed_by_the_nirbridge_backends_command():
    env = {k: v for k, v in os.environ.items() if k != plugins.DISABLE_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "nirbridge.cli", "backends", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {b["name"]: b for b in json.loads(proc.stdout)["backends"]}
    assert rows["example"]["distribution"] == "nirbridge-example"
    assert rows["example"]["preset"] == "nir"
    assert rows["example"]["description"] == ExampleBackend.description


# ----------------------------------------------------------------------------- gap reports


def test_gap_report_follows_the_declared_support(entry_points):
    graph = _graph(with_cubalif=True)
    ours = check(graph, to=ExampleBackend(), policy=POLICY)
    assert [g.node for g in ours.unsupported] == ["cuba"]
    cuba = ours["cuba"]
    assert cuba.reason == "the example framework has no synaptic current state"
    assert "retrain with LIF neurons" in cuba.suggestion
    assert ours["pool"].status == "exact" and "SumPool2d + Scale(1/4)" in ours["pool"].maps_to
    assert ours["lif"].status == "exact" and ours["lif"].maps_to.startswith("Scale(r)")
    assert ours["fc"].maps_to == "dense layer"
    # the reference runs the same graph exactly, node for node
    assert check(graph, to="numpy", policy=POLICY).ok


def test_other_semantics_are_reported_approximate():
    report = check(_graph(), to=ExampleBackend(), policy=Policy.preset("snntorch", dt=DT))
    assert report["(policy)"].status == "approximate"
    assert "reset" in report["(policy)"].reason
    assert not report.unsupported


def test_strict_conversion_refuses_before_building_anything():
    with pytest.raises(GapError) as caught:
        convert(_graph(with_cubalif=True), to=ExampleBackend(), policy=POLICY)
    assert [g.node for g in caught.value.report.unsupported] == ["cuba"]


# ----------------------------------------------------------------------------- convert, run


def test_convert_applies_rewrites_and_matches_the_reference_spike_for_spike():
    graph = _graph()
    model = convert(graph, to=ExampleBackend(), policy=POLICY)
    assert isinstance(model, ExampleNetwork)
    nodes = model.graph.nodes
    assert nodes["pool"].type == "SumPool2d" and nodes["pool_scale"].type == "Scale"
    assert nodes["lif_r"].type == "Scale" and np.all(nodes["lif"].r == 1)
    np.testing.assert_array_equal(nodes["lif_r"].scale, graph.nodes["lif"].r)
    assert model.policy == POLICY

    x = _spikes()
    ours = ExampleBackend().simulate(model, x, record=("lif",))
    reference = simulate(graph, x, policy=POLICY, record=["lif"])
    spikes = reference.states["lif"]["spikes"]
    assert 0.05 < spikes.mean() < 0.9  # the layer fires: agreement is not vacuous
    np.testing.assert_array_equal(ours.states["lif"]["spikes"], spikes)
    np.testing.assert_array_equal(ours.output, reference.output)
    np.testing.assert_allclose(ours.states["lif"]["v"], reference.states["lif"]["v"], rtol=1e-5, atol=1e-6)


def test_what_it_cannot_run_is_refused_before_building():
    p = nirbridge.plan(_graph(with_cubalif=True), ExampleBackend(), policy=POLICY)
    assert [g.node for g in p.report.unsupported] == ["cuba"]  # r != 1 and AvgPool2d are rewritten
    assert p.report["lif"].maps_to.startswith("Scale(r) + ") and "rewrite" in p.report["pool"].maps_to
    with pytest.raises(GapError):
        p.build(strict=False)


def test_verify_agrees_with_the_reference(entry_points):
    report = verify(_graph(), backends=["numpy", "example"], policy=POLICY)
    assert report.ok, str(report)
    assert report.rates["lif"] > 0
    assert set(report.results) == {"numpy", "example"}
    example = report.results["example"].nodes
    assert set(example) >= {"lif"}
    assert all(c.spike_total > 0 and c.spike_diffs == 0 for c in example.values())


def test_cli_check_convert_and_verify(entry_points, tmp_path):
    src, out = tmp_path / "net.nir", tmp_path / "example.nir"
    nirbridge.save(convert(_graph(), to="nir", policy=POLICY), src)
    runner = CliRunner()

    checked = runner.invoke(cli, ["check", str(src), "--to", "example", "--json"])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["target"] == "example"

    converted = runner.invoke(cli, ["convert", str(src), "--to", "example", "-o", str(out)])
    assert converted.exit_code == 0, converted.output
    written = nirbridge.load(out)
    assert {"pool_scale", "lif_r"} <= set(written.nodes)
    assert Policy.from_metadata(written.metadata) == POLICY

    verified = runner.invoke(cli, ["verify", str(src), "--backends", "numpy,example", "--json"])
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["backends"]["example"]["ok"] is True


# ----------------------------------------------------------------------------- conformance


class TestExampleConformance(BackendConformance):
    backend = ExampleBackend()
