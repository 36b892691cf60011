"""Import onto Rockpool: stock LIFNeuronTorch where Rockpool computes the policy (bit for bit
the reference), the policy neuron elsewhere (named in the report); batch state and training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rockpool.nn.modules import LIFNeuronTorch

import nirbridge
from nirbridge import Policy
from nirbridge.testing import build_case, case_inputs, case_policy
from nirbridge_rockpool.neurons import RockpoolNeuron
from nirbridge_torch.cells import PolicyNeuron


def converted(case: str, preset: str = "rockpool", **changes):
    policy = case_policy(case, Policy.preset(preset, **changes))
    graph = build_case(case, policy)
    p = nirbridge.plan(graph, "rockpool", policy=policy)
    return graph, policy, p.report, p.build()


@pytest.mark.parametrize("case,changes", [("if", {}), ("lif", {}), ("if_ties", {}), ("lif_ties", {}),
                                          ("lif", {"spikes": "single", "max_spikes": None}), ("lif", {"input": "current", "dt": 1e-4}),
                                          ("lif", {"integration": "euler"})])
def test_stock_lif_neuron_under_rockpools_rules_is_the_reference_bit_for_bit(case, changes):
    graph, policy, report, model = converted(case, **changes)
    name = case.removesuffix("_ties")
    module = model.module(name)
    assert isinstance(module, RockpoolNeuron) and type(module.layer) is LIFNeuronTorch, report[name].maps_to
    assert "LIFNeuronTorch" in report[name].maps_to
    x, ref = case_inputs(case, graph, policy, steps=30, batch=3, record=[name])
    got = model.run(x, record=[name])
    for var, want in ref.states[name].items():
        np.testing.assert_array_equal(got.states[name][var], want, err_msg=var)
    assert ref.states[name]["spikes"].sum() > 0
    if case.endswith("_ties"):
        assert ref.states[name]["spikes"].max() >= 2  # counts, not just 0/1


@pytest.mark.parametrize("case,preset,why", [
    ("cubalif", "rockpool", "beta (i + x)"), ("li", "rockpool", "beta (i + x)"), ("i", "rockpool", "integrator"),
    ("lif", "nir", "v >= threshold"), ("lif", "snntorch", "v >= threshold"), ("lif", "spikingjelly", "subtracts"),
])
def test_what_rockpool_lacks_runs_on_the_policy_neuron_and_says_why(case, preset, why):
    graph, policy, report, model = converted(case, preset)
    assert isinstance(model.module(case), PolicyNeuron)
    assert report.ok and "PolicyNeuron" in report[case].maps_to and why in report[case].reason, report[case]


def test_each_batch_element_keeps_its_own_membrane():
    """Rockpool keeps batch 0's state only; the adapter keeps every element's: a batch of
    three runs as three runs of one."""
    graph, policy, _, model = converted("lif")
    x, _ = case_inputs("lif", graph, policy, steps=30, batch=3, record=[])
    together = model.run(x).output
    alone = np.concatenate([model.run(x[:, b:b + 1]).output for b in range(3)], axis=1)
    np.testing.assert_array_equal(together, alone)
    assert not np.array_equal(together[:, 0], together[:, 1])


def test_trained_parameters_go_back_into_the_graph():
    graph, policy, _, model = converted("lif")
    layer = model.module("lif").layer
    with torch.no_grad():
        layer.tau_mem.mul_(0.8)
        layer.threshold.mul_(1.1)
    back = nirbridge.convert(model, to="nir")
    x, _ = case_inputs("lif", graph, policy, steps=30, batch=2, record=[])
    ref = nirbridge.simulate(back, x, record=["lif"])
    got = model.run(x, record=["lif"])
    np.testing.assert_array_equal(got.states["lif"]["spikes"], ref.states["lif"]["spikes"])
    assert not np.array_equal(back.nodes["lif"].tau, graph.nodes["lif"].tau)
    assert ref.states["lif"]["spikes"].sum() > 0
