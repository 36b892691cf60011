"""verify(): generated inputs that make every layer fire, per-node comparison against the
reference (identical / max |dv| / differing spikes / first differing step), rounding ties
reported but not failed, silent networks refused, broken backends isolated."""

from __future__ import annotations

import json

import numpy as np
import pytest

import nirbridge
from nirbridge import Graph, Policy, SimulationError
from nirbridge.backends.base import exact
from nirbridge.backends.numpy import NumpyBackend
from nirbridge.backends.registry import temporary
from nirbridge.compare import compare, firing_inputs
from nirbridge.reference import simulate
from nirbridge.result import SimulationResult
from nirbridge.semantics import with_policy
from nirbridge.testing import build_case
from nirbridge.verification import verify

NIR = Policy.preset("nir")


pytestmark = pytest.mark.usefixtures("builtin_backends_only")


def network() -> Graph:
    return with_policy(build_case("network", NIR), NIR)


class Tampered(NumpyBackend):
    """The reference with its recorded states and outputs passed through `edit`."""

    name = "tampered"

    def __init__(self, edit):
        self.edit = edit

    def simulate(self, native, x, *, record=()):
        result = super().simulate(native, x, record=record)
        states = {n: {k: v.copy() for k, v in s.items()} for n, s in result.states.items()}
        outputs = {n: v.copy() for n, v in result.outputs.items()}
        self.edit(states, outputs)
        return SimulationResult(outputs, states)


def test_numpy_agrees_with_itself_and_every_layer_fires():
    report = verify(network(), backends=["numpy"])
    assert report.ok, str(report)
    assert set(report.rates) == {"lif1", "lif2"} and all(r > 0 for r in report.rates.values())
    assert report.input_shape == (50, 4, 5) and report.input_rate is not None
    nodes = report.results["numpy"].nodes
    assert set(nodes) == {"lif1", "lif2", "output"}
    assert all(c.identical and c.max_dv in (None, 0.0) and c.spike_diffs == 0 for c in nodes.values())
    assert nodes["lif1"].max_dv == 0.0 and nodes["output"].spike_total == 50 * 4 * 3


def test_generated_inputs_use_the_lowest_rate_that_makes_every_layer_fire():
    g = network()
    x, rate, reference = firing_inputs(g, NIR, steps=50, batch=4, seed=0)
    assert set(np.unique(x)) <= {0.0, 1.0}
    for node in ("lif1", "lif2"):
        assert reference.states[node]["spikes"].any()
    lower = [r for r in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9) if r < rate]
    for r in lower:  # every lower rate leaves some layer silent
        y = (np.random.default_rng(0).random(x.shape) < r).astype(np.float32)
        out = simulate(g, y, policy=NIR, record=["lif1", "lif2"])
        assert not all(out.states[n]["spikes"].any() for n in ("lif1", "lif2"))


def test_a_wrong_spike_is_reported_with_its_step():
    def flip(states, outputs):
        states["lif2"]["spikes"][7, 1, 0] = 1 - states["lif2"]["spikes"][7, 1, 0]

    with temporary(Tampered(flip)):
        report = verify(network(), backends=["numpy", "tampered"])
    assert not report.ok and report.results["numpy"].ok
    c = report.results["tampered"].nodes["lif2"]
    assert (c.ok, c.identical, c.first_diff_step, c.spike_diffs) == (False, False, 7, 1)
    assert c.spike_fraction == pytest.approx(1 / (50 * 4 * 3))
    assert "DIFFERENT" in str(report)


def test_a_potential_off_by_more_than_tolerance_fails_without_any_spike_change():
    def shift(states, outputs):
        states["lif1"]["v"][12] += 1e-3

    with temporary(Tampered(shift)):
        c = verify(network(), backends=["tampered"]).results["tampered"].nodes["lif1"]
    assert not c.ok and c.spike_diffs == 0 and c.first_diff_step == 12
    assert c.max_dv == pytest.approx(1e-3, rel=1e-3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_value_where_the_reference_is_finite_is_a_difference(bad):
    def poison(states, outputs):
        states["lif1"]["v"][7, 0, 1] = bad
        next(iter(outputs.values()))[9, 1, 0] = bad

    with temporary(Tampered(poison)):
        result = verify(network(), backends=["tampered"]).results["tampered"]
    lif1, out = result.nodes["lif1"], result.nodes["output"]
    assert not lif1.ok and lif1.first_diff_step == 7 and lif1.max_dv == np.inf
    assert not out.ok and out.first_diff_step == 9
    assert not result.ok


def test_nan_never_agrees_even_with_nan():
    reference = SimulationResult({"output": np.array([[[np.nan]], [[1.0]]])})
    assert not compare(reference, SimulationResult({"output": np.array([[[np.nan]], [[1.0]]])}), None, [])["output"].ok
    ones = SimulationResult({"output": np.ones((2, 1, 1))})
    assert compare(ones, ones, None, [])["output"].ok


def test_potentials_within_tolerance_pass_but_are_not_identical():
    def nudge(states, outputs):
        states["lif1"]["v"] *= np.float32(1 + 2e-7)

    with temporary(Tampered(nudge)):
        c = verify(network(), backends=["tampered"]).results["tampered"].nodes["lif1"]
    assert c.ok and not c.identical and 0 < c.max_dv < 1e-5



def test_the_potential_tolerance_scales_with_the_largest_potential_of_the_layer():
    """A last-bit error made while v was 40 stays after v falls back near 0: within tolerance
    (atol scales with max|v| = 40); the same error where v never exceeds 1 is a difference."""
    graph, spikes = _one_lif(), [0, 0, 0]
    err = np.float32(4e-6)
    for peak, ok in ((40.0, True), (0.9, False)):
        ref = _result(spikes, [peak, 0.1, 0.1])
        got = _result(spikes, [peak, 0.1 + err, 0.1 + err])
        c = compare(ref, got, graph, ["lif"])["lif"]
        assert c.ok is ok and c.first_diff_step == (None if ok else 1), (peak, c)
        assert not compare(ref, _result(spikes, [peak, 0.1 + 100 * err, 0.1]), graph, ["lif"])["lif"].ok

def _result(spikes, v):
    return SimulationResult({}, {"lif": {"spikes": np.asarray(spikes, np.float32)[:, None, None], "v": np.asarray(v, np.float32)[:, None, None]}})


def _one_lif(threshold=1.0) -> Graph:
    one = np.ones(1, np.float32)
    lif = {"type": "LIF", "tau": one, "r": one, "v_leak": 0 * one, "v_threshold": threshold * one, "v_reset": 0 * one}
    nodes = {"input": {"type": "Input", "shape": np.array([1])}, "lif": lif, "output": {"type": "Output", "shape": np.array([1])}}
    return Graph.from_dict({"nodes": nodes, "edges": [("input", "lif"), ("lif", "output")]})


def test_a_flip_at_a_rounding_tie_is_reported_not_failed():
    # the backend's potential at step 1 sits 5e-7 above threshold 1 where the reference
    # stayed 5e-7 below: within atol = 1e-6, so a tie; what follows may differ.
    ref = _result([0, 0, 1, 0], [0.5, 1 - 5e-7, 0.0, 0.2])
    got = _result([0, 1, 0, 1], [0.5, 0.0, 0.9, 0.0])
    c = compare(ref, got, _one_lif(), ["lif"])["lif"]
    assert c.ok and c.near_threshold == 1 and c.first_diff_step == 1 and c.spike_diffs == 3


def test_a_flip_far_from_threshold_fails():
    ref = _result([0, 0, 1, 0], [0.5, 0.9, 0.0, 0.2])
    got = _result([0, 1, 1, 0], [0.5, 0.0, 0.0, 0.2])
    c = compare(ref, got, _one_lif(), ["lif"])["lif"]
    assert not c.ok and c.near_threshold == 0


def test_tie_tolerance_scales_with_the_threshold():
    ref = _result([0, 0], [0.0, 50 - 3e-5])
    got = _result([0, 1], [0.0, 0.0])
    assert compare(ref, got, _one_lif(threshold=50.0), ["lif"])["lif"].ok  # atol = 5e-5
    assert not compare(ref, got, _one_lif(threshold=1.0), ["lif"])["lif"].ok


def test_missing_recorded_state_fails():
    def drop(states, outputs):
        del states["lif1"]["v"]

    with temporary(Tampered(drop)):
        c = verify(network(), backends=["tampered"]).results["tampered"].nodes["lif1"]
    assert not c.ok and c.missing == ["v"]


def test_silent_network_is_reported_and_refused_in_strict_use():
    g = build_case("network", NIR)
    fc1, fc2 = g.nodes["fc1"], g.nodes["fc2"]
    quiet = {
        "fc1": fc1.model_copy(update={"weight": -np.abs(fc1.weight)}),
        "fc2": fc2.model_copy(update={"weight": -np.abs(fc2.weight), "bias": -np.abs(fc2.bias)}),
    }
    g = Graph(nodes=g.nodes | quiet, edges=g.edges)
    report = verify(g, backends=["numpy"], policy=NIR)
    assert report.silent == ["lif1", "lif2"] and not report.ok
    assert report.results["numpy"].ok  # agreement on silence proves nothing, hence not ok
    assert "never fire" in str(report)
    with pytest.raises(SimulationError, match="lif1, lif2"):
        verify(g, backends=["numpy"], policy=NIR, strict=True)


def test_given_inputs_are_used_as_is():
    x = np.ones((10, 3, 5), np.float32)
    report = verify(network(), backends=["numpy"], inputs=x)
    assert report.input_shape == (10, 3, 5) and report.input_rate is None


def test_a_failing_backend_is_a_result_not_a_crash():
    class Broken(NumpyBackend):
        name = "broken"

        def build(self, plan):
            raise RuntimeError("device not found")

    class Narrow(NumpyBackend):
        name = "narrow"
        handlers = {"Linear": exact("dense")}

    with temporary(Broken(), Narrow()):
        report = verify(network(), backends=["broken", "narrow", "numpy"])
    assert report.results["broken"].error == "RuntimeError: device not found"
    assert report.results["narrow"].error.startswith("cannot convert: ")
    assert "fc2: narrow has no Affine node" in report.results["narrow"].error
    assert report.results["numpy"].ok and not report.ok


def test_report_json():
    report = verify(network(), backends=["numpy"], seed=3)
    data = json.loads(report.to_json())
    assert data["ok"] is True and data["seed"] == 3 and data["policy"]["integration"] == "exact"
    node = data["backends"]["numpy"]["nodes"]["lif1"]
    assert node["identical"] is True and node["spike_fraction"] == 0.0
    assert data["backends"]["numpy"]["gaps"]["target"] == "numpy"


def test_default_backends_are_all_installed_ones():
    assert list(verify(network()).results) == list(nirbridge.backends())


def test_a_state_of_the_wrong_shape_fails():
    def squash(states, outputs):
        states["lif1"]["spikes"] = states["lif1"]["spikes"][:, :, :2]

    with temporary(Tampered(squash)):
        c = verify(network(), backends=["tampered"]).results["tampered"].nodes["lif1"]
    assert not c.ok and c.missing == ["spikes (shape (50, 4, 2), expected (50, 4, 6))"]


def test_misused_arguments_get_a_clear_answer():
    g = network()
    assert list(verify(g, backends="numpy").results) == ["numpy"]  # one name is a list of one
    with pytest.raises(nirbridge.NirbridgeError, match="backends: the list is empty"):
        verify(g, backends=[])
    with pytest.raises(TypeError, match="backends"):
        verify(g, backends=[1, 2])
    for bad in ({"batch": -1}, {"steps": 0}, {"batch": 2.5}):
        with pytest.raises(SimulationError, match=f"^{next(iter(bad))}: must be a positive integer"):
            verify(g, backends=["numpy"], **bad)
    with pytest.raises(SimulationError, match="^record: must be node names"):
        simulate(g, np.zeros((3, 1, 3), np.float32), record=5)


def test_generated_inputs_of_a_huge_declared_shape_are_refused_before_allocating():
    huge = Graph.from_dict({"nodes": {"input": {"type": "Input", "shape": np.array([2**31, 2**31])},
                                      "output": {"type": "Output", "shape": np.array([2**31, 2**31])}},
                            "edges": [("input", "output")]})
    with pytest.raises(nirbridge.ResourceLimitError, match=r"^nodes\.input\.shape: .* pass inputs explicitly"):
        verify(huge, backends=["numpy"])


@pytest.mark.slow
def test_cli_verify_runs_torch_and_jax_backends_in_one_call(tmp_path, monkeypatch):
    """`nirbridge verify` on every installed backend at once: the torch ones and Spyx (JAX)."""
    from click.testing import CliRunner

    from nirbridge.backends import registry as plugins
    from nirbridge.cli import cli

    for plugin in ("nirbridge_snntorch", "nirbridge_spyx"):
        pytest.importorskip(plugin)
    monkeypatch.delenv(plugins.DISABLE_ENV, raising=False)
    plugins.reset()
    names = [n for n in ("numpy", "snntorch", "norse", "sinabs", "spikingjelly", "spyx") if n in nirbridge.backends()]
    policy = Policy.preset("spyx")
    nirbridge.save(with_policy(build_case("recurrent_cubalif", policy), policy), tmp_path / "net.nir")
    result = CliRunner().invoke(cli, ["verify", str(tmp_path / "net.nir"), "--backends", ",".join(names), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["backends"]) == set(names) and {"spyx", "snntorch"} <= set(names)
    for name, found in data["backends"].items():
        assert found["nodes"], name
        for node, row in found["nodes"].items():
            assert row["identical"] or row["spike_fraction"] == 0.0, (name, node, row)
    plugins.reset()
