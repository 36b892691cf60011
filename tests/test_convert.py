"""convert() and check(): every kind of source, the policy precedence, strict and non-strict
conversion, gap reports (policy differences, rewrites, max pooling on non-spikes), probes."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import nirbridge
from nirbridge import GapError, Graph, Policy
from nirbridge.backends.base import Backend, Handler, Support, exact
from nirbridge.backends.numpy import NumpyBackend, NumpyModel
from nirbridge.backends.registry import temporary
from nirbridge.compare import spike_inputs
from nirbridge.conversion import check, convert, plan
from nirbridge.errors import PolicyError, UnknownBackendError
from nirbridge.reference import simulate
from nirbridge.report import POLICY_NODE, Gap, GapReport, GapWarning
from nirbridge.rewrite import emits_binary, maxpool2d
from nirbridge.semantics import with_policy
from nirbridge.testing import build_case

pytestmark = pytest.mark.usefixtures("builtin_backends_only")


SNN = Policy.preset("snntorch")


def network(policy=SNN) -> Graph:
    """A two-layer LIF network carrying `policy` in its metadata."""
    return with_policy(build_case("network", policy), policy)


class Restricted(NumpyBackend):
    """Runs the reference under its own `nir` preset whatever policy it is given (so it is
    approximate for other policies), and claims only some node types."""

    name = "restricted"
    preset = "nir"
    handlers = {
        "Linear": exact("dense"),
        "Affine": exact("dense+bias"),
        "LIF": Handler(Support("approximate", "leaky", reason="threshold is quantised")),
        "SumPool2d": exact("sum pool"),
        "Scale": exact("gain"),
    }
    built = 0

    def build(self, plan):
        type(self).built += 1
        return NumpyModel(plan.graph, Policy.preset(self.preset))

    def supports_policy(self, policy, graph=None):
        return Backend.supports_policy(self, policy, graph)


# ----------------------------------------------------------------------------- sources


def test_convert_graph_to_numpy_runs_like_the_reference():
    g = network()
    model = convert(g, to="numpy")
    assert isinstance(model, NumpyModel) and model.policy == SNN
    x = spike_inputs(g, 0.3, steps=20, batch=2, seed=1)
    want = simulate(g, x, policy=SNN, record=["lif1"])
    got = NumpyBackend().simulate(model, x, record=("lif1",))
    np.testing.assert_array_equal(got.states["lif1"]["spikes"], want.states["lif1"]["spikes"])
    assert want.states["lif1"]["spikes"].any()


def test_convert_from_a_path(tmp_path):
    from nirbridge.io import save

    g = network()
    path = tmp_path / "net.nir"
    save(g, path)
    model = convert(str(path), to="numpy")
    assert model.graph.nodes == g.nodes and model.policy == SNN
    assert convert(path, to="numpy").graph.nodes == g.nodes  # PathLike too


def test_convert_from_a_nir_graph():
    g = network()
    model = convert(g.to_nir(), to="numpy")
    assert model.graph.nodes.keys() == g.nodes.keys() and model.policy == SNN
    np.testing.assert_array_equal(model.graph.nodes["fc1"].weight, g.nodes["fc1"].weight)


def test_convert_from_a_native_model_finds_its_backend():
    g = network(Policy.preset("nir"))
    native = NumpyModel(g, Policy.preset("norse"))
    exported = convert(native, to="nir")
    assert isinstance(exported, Graph)
    assert Policy.from_metadata(exported.metadata) == Policy.preset("norse")
    assert exported.nodes == g.nodes


def test_convert_to_nir_writes_the_policy_into_the_metadata():
    g = build_case("lif", Policy.preset("nir"))
    out = convert(g, to="nir", policy=Policy.preset("sinabs"))
    assert Policy.from_metadata(out.metadata) == Policy.preset("sinabs")
    assert Policy.from_metadata(g.metadata) is None  # the input graph is left alone


def test_no_backend_accepts_an_unknown_object():
    with pytest.raises(UnknownBackendError, match="no installed backend accepts a builtins.dict; installed: numpy"):
        convert({"weights": [1, 2]}, to="numpy")


def test_unknown_target_lists_installed_backends():
    with pytest.raises(UnknownBackendError, match="unknown backend 'lava'; installed: numpy"):
        convert(network(), to="lava")


# ----------------------------------------------------------------------------- policy precedence


def test_explicit_policy_beats_metadata():
    g = convert(network(), to="nir")  # carries the snntorch preset
    norse = Policy.preset("norse")
    assert convert(g, to="numpy", policy=norse).policy == norse
    assert convert(g, to="numpy").policy == SNN


def test_source_backend_preset_is_used_when_metadata_has_none():
    bare = build_case("lif", Policy.preset("nir"))
    with temporary(Restricted()):
        p = plan(bare, "numpy", source="restricted")
    assert p.policy == Policy.preset("nir")
    assert "source backend restricted" in p.report.notes[0]


class SinabsSource(NumpyBackend):
    name = "sinabs-like"
    preset = "sinabs"


def test_source_backend_preset_beats_inference():
    bare = build_case("lif", Policy.preset("norse"))  # r = tau/dt at dt=1e-3: inferable
    p = plan(bare, "numpy", source=SinabsSource())
    assert p.policy == Policy.preset("sinabs")


def test_policy_inferred_from_parameters_when_nothing_else_says():
    bare = build_case("recurrent_lif", Policy.preset("norse"))  # r = gain*tau/dt, gain varies
    lif = bare.nodes["lif"]
    exact = lif.model_copy(update={"r": (lif.tau / np.float32(1e-3)).astype(np.float32)})
    g = Graph(nodes=bare.nodes | {"lif": exact}, edges=bare.edges)
    p = plan(g, "numpy")
    assert p.policy.dt == pytest.approx(1e-3, rel=1e-6)
    assert p.policy.model_copy(update={"dt": 1e-4}) == Policy.preset("nir", dt=1e-4)
    assert any("inferred" in n for n in p.report.notes)


def test_nir_preset_with_a_note_when_nothing_can_be_inferred():
    g = build_case("affine", Policy.preset("nir"))
    report = check(g, to="numpy")
    assert report.policy == Policy.preset("nir")
    assert any("assumed the 'nir' preset" in n for n in report.notes)


def test_override_of_a_missing_node_is_refused():
    policy = Policy.preset("nir").with_override("ghost", reset="subtract")
    with pytest.raises(PolicyError, match="overrides.ghost: no such node"):
        convert(network(), to="numpy", policy=policy)


# ----------------------------------------------------------------------------- strictness


def _graph_with_two_unsupported_nodes() -> Graph:
    g = build_case("conv_net", Policy.preset("nir"))  # Conv2d, IF, SumPool2d, Flatten, Linear, LIF
    return g


def test_strict_refuses_before_building_and_reports_every_problem():
    Restricted.built = 0
    with temporary(Restricted()):
        with pytest.raises(GapError) as caught:
            convert(_graph_with_two_unsupported_nodes(), to="restricted", policy=Policy.preset("nir"))
    report = caught.value.report
    assert {g.node for g in report.unsupported} == {"conv", "if1", "flat"}
    assert [g.node for g in report.approximate] == ["lif"]
    assert Restricted.built == 0
    assert "conv" in str(caught.value) and "unsupported" in str(caught.value)


def test_strict_refuses_approximations_and_non_strict_warns():
    g = network(Policy.preset("nir"))
    Restricted.built = 0
    with pytest.raises(GapError) as caught:
        convert(g, to=Restricted(), policy=Policy.preset("nir"))
    assert not caught.value.report.unsupported and [x.node for x in caught.value.report.approximate] == ["lif1", "lif2"]
    assert Restricted.built == 0
    with pytest.warns(GapWarning, match="lif1 \\(approximate: threshold is quantised\\)"):
        model = convert(g, to=Restricted(), policy=Policy.preset("nir"), strict=False)
    assert isinstance(model, NumpyModel) and Restricted.built == 1
    p = plan(g, Restricted(), policy=Policy.preset("nir"))  # the report and the model from one plan
    assert isinstance(p.report, GapReport) and not p.report.ok
    with pytest.warns(GapWarning):
        assert isinstance(p.build(strict=False), NumpyModel)
    assert Restricted.built == 2


def test_non_strict_still_refuses_unsupported_nodes():
    with pytest.raises(GapError):
        convert(_graph_with_two_unsupported_nodes(), to=Restricted(), strict=False)


def test_non_strict_exact_conversion_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = convert(network(), to="numpy", strict=False)
        p = plan(network(), "numpy")
        assert p.report.ok and isinstance(p.build(strict=False), NumpyModel)
    assert isinstance(model, NumpyModel)


class CountingBackend(NumpyBackend):
    """Counts how often each node is planned."""

    name = "counting"
    calls: dict[str, int] = {}

    def plan_node(self, name, node, policy, graph):
        type(self).calls[name] = type(self).calls.get(name, 0) + 1
        return super().plan_node(name, node, policy, graph)


def test_every_node_is_planned_once_per_conversion_with_one_report():
    g = network()
    CountingBackend.calls = {}
    p = plan(g, CountingBackend())
    model = p.build()
    assert CountingBackend.calls == {name: 1 for name, _ in g.walk()} and len(g.nodes) == 6
    assert set(p.nodes) == set(g.nodes) and model.graph.nodes == p.graph.nodes
    CountingBackend.calls = {}
    convert(build_case("nested_recurrent", Policy.preset("nir")), to=CountingBackend())
    assert set(CountingBackend.calls.values()) == {1}


# ----------------------------------------------------------------------------- gap reports


def test_policy_difference_is_reported_per_field_with_the_nodes():
    report = check(network(), to=Restricted())  # graph: snntorch semantics; target: nir preset
    gap = report[POLICY_NODE]
    assert gap.status == "approximate"
    assert "reset: graph uses 'subtract', backend runs 'to_reset' (nodes lif1, lif2)" in gap.reason
    assert "reset_timing: graph uses 'next_step', backend runs 'immediate'" in gap.reason
    assert "integration: graph uses 'euler', backend runs 'exact'" in gap.reason


def test_policy_fields_a_graph_does_not_use_do_not_count():
    g = build_case("linear", Policy.preset("nir"))  # no neurons: no semantics to differ
    report = check(g, to=Restricted(), policy=SNN)
    assert report[POLICY_NODE].status == "exact"


def test_same_policy_is_exact():
    report = check(network(Policy.preset("nir")), to=Restricted(), policy=Policy.preset("nir", dt=5e-4))
    assert report[POLICY_NODE].status == "exact" and "dt=0.0005" in report[POLICY_NODE].maps_to


def test_unsupported_nodes_carry_a_reason_and_a_suggestion():
    with temporary(Restricted()):
        report = check(_graph_with_two_unsupported_nodes(), to="restricted")
    conv = report["conv"]
    assert conv.status == "unsupported" and conv.reason == "restricted has no Conv2d node"
    assert "numpy run Conv2d exactly" in conv.suggestion


def test_check_with_a_probe_measures_approximations():
    g = network()  # snntorch semantics, which Restricted runs as nir
    x = spike_inputs(g, 0.3, steps=40, batch=2, seed=3)
    report = check(g, to=Restricted(), probe=x)
    # the measurement, recomputed independently: snntorch semantics vs the nir preset
    want = simulate(g, x, policy=SNN, record=["lif1", "lif2"])
    got = simulate(g, x, policy=Policy.preset("nir", dt=SNN.dt), record=["lif1", "lif2"])
    differing = np.mean(want.states["lif1"]["spikes"] != got.states["lif1"]["spikes"])
    assert differing > 0
    assert report["lif1"].measured == pytest.approx(differing)
    assert report[POLICY_NODE].measured is not None and report[POLICY_NODE].measured > 0
    assert report["fc1"].measured is None  # exact nodes are not measured
    assert "spikes differ" in str(report)


def test_check_converts_nothing():
    Restricted.built = 0
    check(network(), to=Restricted())
    assert Restricted.built == 0


def test_report_json_and_table():
    report = check(network(), to=Restricted())
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["target"] == "restricted" and data["source"] == "graph"
    assert {g["node"] for g in data["gaps"]} == {POLICY_NODE, "input", "fc1", "lif1", "fc2", "lif2", "output"}
    assert data["policy"]["reset"] == "subtract"
    text = str(report)
    assert text.splitlines()[0] == "graph -> restricted: 4 exact, 3 approximate, 0 unsupported"
    assert "threshold is quantised" in text


# ----------------------------------------------------------------------------- max pooling in exporters


class PoolExporter(Backend):
    """A toy exporter of native models written as layer lists, meeting max pools."""

    name = "poolnet"

    def accepts(self, obj):
        return isinstance(obj, list) and all(isinstance(layer, tuple) for layer in obj)

    def export(self, obj, *, policy=None, sample=None):
        dt = (policy or Policy.preset("nir")).dt
        nodes = {"input": {"type": "Input", "shape": np.array([2, 4, 4])}}
        edges, gaps, prev = [], [], "input"
        for name, kind in obj:
            if kind == "lif":
                tau = np.full((2, 4, 4), 10 * dt, np.float32)
                nodes[name] = {"type": "LIF", "tau": tau, "r": tau / np.float32(dt), "v_leak": np.zeros_like(tau), "v_threshold": np.ones_like(tau), "v_reset": np.zeros_like(tau)}
                edges.append((prev, name))
                prev = name
            elif kind == "scale":
                nodes[name] = {"type": "Scale", "scale": np.full((2, 4, 4), 2.0, np.float32)}
                edges.append((prev, name))
                prev = name
            else:  # max pool
                binary = prev != "input" and nodes[prev]["type"] == "LIF"
                rw = maxpool2d(name, kernel_size=2, stride=2, input_shape=(2, 4, 4), binary_input=binary)
                gaps.append(rw.gap)
                nodes |= {k: v for k, v in rw.nodes.items()}
                edges += [(prev, rw.input)] + rw.edges
                prev = rw.output
        if any(g.status != "exact" for g in gaps):
            raise GapError(GapReport(gaps, source=self.name))
        nodes["output"] = {"type": "Output", "shape": np.array([2, 2, 2])}
        return Graph.from_dict({"nodes": nodes, "edges": edges + [(prev, "output")]}), []


def test_maxpool_on_non_spike_input_is_unsupported_with_a_suggestion():
    net = [("scale", "scale"), ("pool", "max"), ("lif", "lif")]
    with temporary(PoolExporter()):
        report = check(net, to="numpy")
        gap = report["pool"]
        assert (gap.node_type, gap.status) == ("MaxPool2d", "unsupported")
        assert "not binary spikes" in gap.reason and "NIR has no max pooling" in gap.reason
        assert "directly after a spiking layer" in gap.suggestion
        assert report.target == "numpy"
        with pytest.raises(GapError, match="pool"):
            convert(net, to="numpy")


def test_maxpool_after_spikes_converts_exactly():
    net = [("lif", "lif"), ("pool", "max")]
    with temporary(PoolExporter()):
        graph = convert(net, to="nir")
    assert [graph.nodes[n].type for n in ("pool_sum", "pool")] == ["SumPool2d", "Threshold"]
    assert emits_binary(graph, "pool") and emits_binary(graph, "lif") and not emits_binary(graph, "pool_sum")


def test_gap_is_a_plain_record():
    gap = Gap("lif1", "LIF", "approximate", "leaky", "why", "what to do", 0.25)
    assert gap.to_dict() == {"node": "lif1", "node_type": "LIF", "status": "approximate", "maps_to": "leaky", "reason": "why", "suggestion": "what to do", "measured": 0.25}


def test_public_functions_survive_submodule_imports():
    import importlib

    importlib.import_module("nirbridge.conversion")
    importlib.import_module("nirbridge.verification")
    importlib.import_module("nirbridge.backends.registry")
    assert nirbridge.convert is convert and nirbridge.check is check
    assert callable(nirbridge.verify) and callable(nirbridge.backends)
