"""The shared backend suite, for `norse` in its default (exact) mode and with stock Norse
cells only (`native_only=True`); and what native-only mode reports for a non-Norse policy."""

import warnings

import numpy as np
import pytest

import nirbridge
from nirbridge.compare import compare
from nirbridge.errors import GapError
from nirbridge.reference import simulate
from nirbridge.report import GapWarning
from nirbridge.semantics import Policy
from nirbridge.testing import BackendConformance, build_case, case_policy
from nirbridge_norse import NativeCell, NorseBackend
from nirbridge_torch.cells import PolicyNeuron


class TestNorseConformance(BackendConformance):
    backend = NorseBackend()


class TestNorseNativeOnlyConformance(BackendConformance):
    """Under the backend's own preset (Norse's semantics) stock cells are exact for every
    node type but the plain integrator I, which native-only mode declares unsupported (the
    suite then checks that it is refused). Nothing is opted out."""

    backend = NorseBackend(native_only=True)

    def test_builds_stock_cells_only(self, case: str) -> None:
        policy = case_policy(case, self._policy())
        model = nirbridge.convert(build_case(case, policy), to=self._backend(), policy=policy)
        cells = [m for m in model.modules() if isinstance(m, (NativeCell, PolicyNeuron))]
        assert not any(isinstance(m, PolicyNeuron) for m in cells)
        neurons = [n for n, node in model.graph.nodes.items() if node.type in ("IF", "LI", "LIF", "CubaLI", "CubaLIF")]
        assert len(cells) == len(neurons)


SNNTORCH = Policy.preset("snntorch")


def snntorch_graph(case: str):
    graph = build_case(case, SNNTORCH)
    return graph.model_copy(update={"metadata": SNNTORCH.to_metadata()})


def probe(graph, seed=0, steps=150, batch=4, rate=0.15):
    shape = tuple(int(n) for n in graph.nodes["input"].shape)
    return (np.random.default_rng(seed).random((steps, batch, *shape)) < rate).astype(np.float32)


@pytest.mark.parametrize("case,neurons", [("network", ["lif1", "lif2"]), ("recurrent_cubalif", ["lif"])])
def test_native_only_under_snntorch_preset_is_approximate_and_measured(case, neurons):
    graph = snntorch_graph(case)
    x = probe(graph)
    reference = simulate(graph, x, policy=SNNTORCH, record=neurons)
    for n in neurons:  # every spiking layer fires under the graph's own semantics
        rate = reference.states[n]["spikes"].mean()
        assert 0.02 < rate < 0.8, (n, rate)
    backend = NorseBackend(native_only=True)
    report = nirbridge.check(graph, to=backend, probe=x)
    assert not report.unsupported, str(report)
    assert {gp.node for gp in report.approximate} == {"(policy)", *neurons}, str(report)
    assert "next_step" in report["(policy)"].reason and "input" not in report["(policy)"].reason, str(report)

    # measured: the fraction of the node's spikes that differ from the reference on x
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        p = nirbridge.plan(graph, backend)
        model, conv_report = p.build(strict=False), p.report
    assert any(issubclass(w.category, GapWarning) for w in seen)
    assert not conv_report.ok and {gp.node for gp in conv_report.approximate} >= set(neurons)
    assert all(isinstance(model.module(n), NativeCell) for n in neurons)
    ours = backend.simulate(model, x, record=tuple(neurons))
    nodes = compare(reference, ours, graph, neurons)
    total_diff = sum(nodes[n].spike_diffs for n in neurons)
    total = sum(nodes[n].spike_total for n in neurons)
    assert total_diff > 0
    for n in neurons:
        measured = report[n].measured
        assert measured is not None and 0 <= measured < 1
        assert measured == pytest.approx(nodes[n].spike_fraction)
    assert max(report[n].measured for n in neurons) > 0
    assert report["(policy)"].measured == pytest.approx(total_diff / total)

    # strict conversion refuses; the exact mode is exact
    with pytest.raises(GapError):
        nirbridge.convert(graph, to=backend)
    exact = nirbridge.convert(graph, to=NorseBackend())
    np.testing.assert_array_equal(NorseBackend().simulate(exact, x).output, reference.output)


def test_native_only_policy_support_names_only_what_stock_cells_lack():
    backend = NorseBackend(native_only=True)
    assert backend.supports_policy(Policy.preset("norse")).status == "exact"
    # a subtractive reset is native to LIFBoxCell, not to LIFCell/IAFCell
    sub = Policy.preset("norse", reset="subtract")
    lif_only = build_case("lif", sub)
    assert backend.supports_policy(sub, graph=lif_only).status == "exact"
    assert backend.supports_policy(sub).status == "approximate"
    reason = backend.supports_policy(sub).reason
    assert "(for CubaLIF)" in reason and "(for IF)" in reason and "(for LIF)" not in reason, reason
    # no stock integrator, whatever the policy
    assert backend.support["I"].status == "unsupported" and NorseBackend().support["I"].status == "exact"
