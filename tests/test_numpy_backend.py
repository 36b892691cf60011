"""The built-in NumPy backend passes the conformance suite every backend runs, the zoo is
active and exact where it claims to be, and the suite itself catches broken backends (see
also test_conformance_mutants.py)."""

from __future__ import annotations

import numpy as np
import pytest

import nirbridge
from nirbridge import Policy
from nirbridge.backends.base import Handler, NodePlan, Support, exact
from nirbridge.backends.numpy import NumpyBackend, NumpyModel
from nirbridge.compare import recordable
from nirbridge.ir import NODE_TYPES
from nirbridge.result import SimulationResult
from nirbridge.testing import MIN_SILENT, MIN_SPIKES, ZOO, BackendConformance, activity, build_case, case_inputs, case_policy, tie_flips

PRESETS = ("nir", "snntorch", "norse", "sinabs", "nir-paper")

pytestmark = pytest.mark.usefixtures("builtin_backends_only")


class SteppedNumpy(NumpyBackend):
    """The numpy backend stepping every node one time step at a time (`chunk_steps=1`).
    The suite's reference is the time-batched simulator, so its agreement test compares the
    two evaluation orders rather than the reference with itself; everything else (plan,
    from_nir, to_nir, round trip) is the numpy backend's own code."""

    def simulate(self, native, x, *, record=()):
        from nirbridge.reference import simulate

        return simulate(native.graph, x, policy=native.policy, record=list(record), chunk_steps=1)


class TestNumpyConformance(BackendConformance):
    backend = SteppedNumpy()


def test_numpy_backend_claims_every_primitive_and_every_policy():
    backend = NumpyBackend()
    assert set(backend.support) == set(NODE_TYPES)
    assert all(s.status == "exact" for s in backend.support.values())
    for preset in ("nir", "snntorch", "norse", "sinabs", "nir-paper"):
        assert backend.supports_policy(Policy.preset(preset)).status == "exact"


def test_numpy_model_round_trip_keeps_the_policy():
    backend = NumpyBackend()
    policy = Policy.preset("snntorch")
    graph = build_case("network", policy)
    native = nirbridge.convert(graph, to=backend, policy=policy)
    assert isinstance(native, NumpyModel) and backend.accepts(native)
    back, gaps = backend.export(native)
    assert gaps == [] and Policy.from_metadata(back.metadata) == policy
    assert back.nodes.keys() == graph.nodes.keys() and back.edges == graph.edges


# -- the suite catches what it should -----------------------------------------------------


class _Flipped(NumpyBackend):
    """Runs the reference but flips the first output spike of every LIF: wrong, not a tie."""

    name = "flipped"

    def simulate(self, native, x, *, record=()):
        result = super().simulate(native, x, record=record)
        states = {}
        for name, s in result.states.items():
            s = dict(s)
            if "spikes" in s:
                spikes = s["spikes"].copy()
                spikes[0] = 1 - spikes[0]
                s["spikes"] = spikes
            states[name] = s
        return SimulationResult(result.outputs, states)


class _Partial(NumpyBackend):
    """Claims only Linear and LIF."""

    name = "partial"
    handlers = {"Linear": exact("dense"), "LIF": exact("lif")}


def _plans_as_exact(name, node, policy, graph):
    return NodePlan(name, node, policy, Support("exact", "conv"))


class _Lying(_Partial):
    """Declares Conv2d unsupported but its handler plans every Conv2d node as exact."""

    name = "lying"
    handlers = _Partial.handlers | {"Conv2d": Handler(Support("unsupported", reason="no convolutions"), plan=_plans_as_exact)}


class _FlippedSuite(BackendConformance):
    backend = _Flipped()


class _PartialSuite(BackendConformance):
    backend = _Partial()


class _LyingSuite(BackendConformance):
    backend = _Lying()


class _OptOutSuite(BackendConformance):
    backend = _Partial()
    opt_out = {"recurrent_lif": "example reason", "round_trip[network]": "other reason"}


def test_suite_fails_a_backend_that_changes_spikes():
    with pytest.raises(AssertionError, match="differs from the reference"):
        _FlippedSuite().test_agrees_with_reference("lif")


def test_suite_runs_only_claimed_cases_and_checks_the_rest_refuse():
    suite = _PartialSuite()
    runnable = suite.runnable_cases()
    assert "recurrent_lif" in runnable and "nirgraph" in runnable  # nested graphs are inlined
    assert "conv2d" not in runnable and "cubalif" not in runnable
    assert all(ZOO[c].types <= {"Linear", "LIF", "NIRGraph"} for c in runnable)
    unsupported = suite.types_with("unsupported")
    assert "Conv2d" in unsupported and "Linear" not in unsupported and "NIRGraph" not in unsupported
    suite.test_unsupported_raises_gap_error("Conv2d")
    # a handler whose plans contradict its declaration: the suite must fail it
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        _LyingSuite().test_unsupported_raises_gap_error("Conv2d")


def test_opt_outs_name_the_reason():
    suite = _OptOutSuite
    assert suite._opt_out_reason("test_agrees_with_reference", "recurrent_lif") == "opted out: example reason"
    assert suite._opt_out_reason("test_round_trip", "network") == "opted out: other reason"
    assert suite._opt_out_reason("test_agrees_with_reference", "network") is None
    with pytest.raises(pytest.skip.Exception, match="example reason"):
        _OptOutSuite()._skip_if_opted_out("test_round_trip", "recurrent_lif")


@pytest.mark.parametrize("preset", PRESETS)
def test_zoo_is_active_under_every_preset(preset):
    """Every spiking node of every case reaches the suite's minimum activity on the suite's
    input, well above it in fact (the input rate is chosen for balance)."""
    for name in ZOO:
        policy = case_policy(name, Policy.preset(preset))
        graph = build_case(name, policy)
        _, reference = case_inputs(name, graph, policy, steps=30, batch=2, record=recordable(graph))
        for node, (spikes, silent) in activity(reference, graph).items():
            assert spikes >= 4 * MIN_SPIKES and silent >= 4 * MIN_SILENT, (preset, name, node, spikes, silent)


@pytest.mark.parametrize("preset", PRESETS)
def test_tie_cases_are_exact_and_tie_under_every_preset(preset):
    """Tie cases put potentials exactly on thresholds (swapping gt and ge changes spikes), and
    their arithmetic is exact: the float32 run equals the float64 run bit for bit (checked
    with euler integration, whose constants are the same binary fractions; `tie_params`
    checks that exact integration's rounded constants are those fractions too)."""
    from nirbridge.reference import simulate

    for name in (n for n, c in ZOO.items() if c.ties):
        policy = case_policy(name, Policy.preset(preset))
        graph = build_case(name, policy)
        record = recordable(graph)
        x, reference = case_inputs(name, graph, policy, steps=30, batch=2, record=record)
        assert tie_flips(graph, x, policy, reference, record) > 0, (preset, name)
        euler = policy.model_copy(update={"integration": "euler"})
        graph = build_case(name, euler)
        single = simulate(graph, x, policy=euler, record=record)
        double = simulate(graph, x, policy=euler, record=record, dtype=np.float64)
        for node in record:
            for key, value in single.states[node].items():
                np.testing.assert_array_equal(value, double.states[node][key].astype(np.float32), err_msg=f"{preset} {name} {node}.{key}")
