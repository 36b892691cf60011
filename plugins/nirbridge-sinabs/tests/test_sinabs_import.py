"""Import onto Sinabs: stock layers where Sinabs computes the policy (bit for bit the
reference), the policy neuron elsewhere (named in the report); state, training and the NIR
paper's CNN."""

from __future__ import annotations

import numpy as np
import pytest
import sinabs.layers as sl
import torch

import nirbridge
from nirbridge import Policy
from nirbridge.testing import build_case, case_inputs, case_policy
from nirbridge_sinabs.neurons import SinabsNeuron
from nirbridge_torch.cells import PolicyNeuron

STOCK = {"i": sl.ExpLeak, "if": sl.IAF, "li": sl.ExpLeak, "lif": sl.LIF}


def converted(case: str, preset: str = "sinabs"):
    policy = case_policy(case, Policy.preset(preset))
    graph = build_case(case, policy)
    p = nirbridge.plan(graph, "sinabs", policy=policy)
    return graph, policy, p.report, p.build()


@pytest.mark.parametrize("case", ["i", "if", "li", "lif", "if_ties", "lif_ties"])
def test_stock_layers_under_the_sinabs_preset_are_the_reference_bit_for_bit(case):
    graph, policy, report, model = converted(case)
    name = case.removesuffix("_ties")
    module = model.module(name)
    assert isinstance(module, SinabsNeuron) and type(module.layer) is STOCK[name], report[name].maps_to
    x, ref = case_inputs(case, graph, policy, steps=30, batch=2, record=[name])
    got = model.run(x, record=[name])
    for var, want in ref.states[name].items():
        np.testing.assert_array_equal(got.states[name][var], want, err_msg=var)
    if case.endswith("_ties"):
        assert ref.states[name]["spikes"].max() >= 2  # counts, not just 0/1


@pytest.mark.parametrize("case,preset,why", [
    ("cubalif", "sinabs", "synapse"), ("lif", "snntorch", "v >= threshold"), ("if", "sinabs-reset", "v_reset != 0"),
    ("lif", "spikingjelly", "start"),
])
def test_what_sinabs_lacks_runs_on_the_policy_neuron_and_says_why(case, preset, why):
    if preset == "sinabs-reset":
        graph, policy = build_case(case, Policy.preset("sinabs")), Policy.preset("sinabs", reset="to_reset")
        p = nirbridge.plan(graph, "sinabs", policy=policy)
        report, model = p.report, p.build()
    else:
        graph, policy, report, model = converted(case, preset)
    assert isinstance(model.module(case), PolicyNeuron)
    assert report.ok and "PolicyNeuron" in report[case].maps_to and why in report[case].reason, report[case]


def test_a_new_batch_size_starts_from_zero_not_from_resampled_states():
    graph, policy, _, model = converted("lif")
    x, _ = case_inputs("lif", graph, policy, steps=30, batch=3, record=[])
    fresh = nirbridge.convert(graph, to="sinabs", policy=policy).run(x).output
    model.run(x[:, :2])
    np.testing.assert_array_equal(model.run(x).output, fresh)


def test_trained_parameters_go_back_into_the_graph():
    graph, policy, _, model = converted("lif")
    layer = model.module("lif").layer
    with torch.no_grad():
        layer.alpha_mem.mul_(0.9)
        layer.spike_threshold.mul_(1.1)
        model.module("lif").gain.mul_(1.2)
    back = nirbridge.convert(model, to="nir")
    x, _ = case_inputs("lif", graph, policy, steps=30, batch=2, record=[])
    ref = nirbridge.simulate(back, x, record=["lif"])
    got = model.run(x, record=["lif"])
    np.testing.assert_array_equal(got.states["lif"]["spikes"], ref.states["lif"]["spikes"])
    np.testing.assert_allclose(got.states["lif"]["v"], ref.states["lif"]["v"], rtol=1e-5, atol=1e-6)
    assert not np.array_equal(back.nodes["lif"].tau, graph.nodes["lif"].tau)


def test_nir_paper_cnn_runs_on_stock_iaf_layers_with_the_reference_spikes(fixtures_dir):
    """cnn_sinabs.nir (exported from Sinabs): every IF node an IAF with MultiSpike, spike
    counts identical to the reference under the sinabs preset in all 5 layers."""
    graph = nirbridge.load(fixtures_dir / "02_cnn" / "cnn_sinabs.nir")
    layers = [n for n, node in graph.nodes.items() if node.type == "IF"]
    p = nirbridge.plan(graph, "sinabs", policy="sinabs")
    model = p.build()
    assert len(layers) == 5 and all(type(model.module(n).layer) is sl.IAF for n in layers), str(p.report)
    frames = (np.random.default_rng(0).random((20, 2, 2, 34, 34)) < 0.1).astype(np.float32)
    ref = nirbridge.simulate(graph, frames, policy="sinabs", record=layers)
    got = model.run(frames, record=layers)
    for n in layers:
        np.testing.assert_array_equal(got.states[n]["spikes"], ref.states[n]["spikes"], err_msg=n)
        # potentials differ only by the summation order of torch's convolutions and matrix
        # products: a few float32 ulps of the layer's largest potential
        v = ref.states[n]["v"]
        assert np.abs(got.states[n]["v"] - v).max() <= 1e-6 * max(1.0, np.abs(v).max()), n
        assert 0.005 < np.mean(ref.states[n]["spikes"] > 0) < 0.5
    assert max(ref.states[n]["spikes"].max() for n in layers) >= 2
    np.testing.assert_array_equal(got.output, ref.output)
