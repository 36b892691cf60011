"""SpikingJelly export (what each node and option becomes, single- and multi-step alike, what is
refused, all at once) and import (stock nodes where SpikingJelly has the policy, the policy
neuron elsewhere, named with the reason)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sj_support import make, run_native, sample
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

import nirbridge
from nirbridge import Policy
from nirbridge.errors import GapError
from nirbridge.testing import build_case
from nirbridge_spikingjelly.neurons import SpikingJellyNeuron
from nirbridge_torch.cells import PolicyNeuron

DT = 1e-4


def export(model, x):
    graph = nirbridge.convert(model, to="nir", sample=sample(model, x))
    return graph, Policy.from_metadata(graph.metadata)


@pytest.mark.parametrize("name", ["LIFNode MLP (defaults: tau 2, decay_input)", "CNN with MaxPool2d after spikes"])
def test_single_and_multi_step_export_the_same_graph_under_the_preset(name):
    s_model, x = make(name, "s")
    m_model, _ = make(name, "m")
    s_graph, policy = export(s_model, x)
    assert s_graph == export(m_model, x)[0]
    assert policy == Policy.preset("spikingjelly")  # the defaults need no override


def test_lif_options_become_parameters_and_policy_fields():
    net = nn.Sequential(layer.Linear(3, 4), neuron.LIFNode(tau=2.0), layer.Linear(4, 4), neuron.LIFNode(tau=3.0, decay_input=False, v_reset=-0.2),
                        layer.Linear(4, 4), neuron.LIFNode(tau=4.0, v_reset=None, v_threshold=0.7), layer.Linear(4, 4), neuron.ParametricLIFNode(init_tau=3.0))
    graph, policy = export(net, np.zeros((2, 1, 3), np.float32))
    lif1, lif3, lif5, lif7 = (graph.nodes[n] for n in "1357")
    np.testing.assert_allclose([lif1.tau[0], lif3.tau[0], lif5.tau[0]], [2 * DT, 3 * DT, 4 * DT], rtol=1e-6)  # tau in steps
    assert (lif1.r[0], lif3.r[0], lif5.r[0]) == (1.0, 3.0, 1.0)  # decay_input=False: r = tau
    assert (lif3.v_leak[0], lif3.v_reset[0]) == (np.float32(-0.2), np.float32(-0.2))  # leaks towards v_reset
    assert (lif5.v_leak[0], lif5.v_threshold[0]) == (0.0, np.float32(0.7))
    q = torch.sigmoid(net[7].w.detach()).item()
    np.testing.assert_allclose(lif7.tau, DT / q, rtol=1e-6)
    assert policy.for_node("5", "LIF").reset == "subtract" and policy.for_node("3", "LIF").reset == "to_reset"
    assert all(policy.for_node(n, "LIF").initial_v == "v_reset" for n in "1357")


def test_if_and_cuba_lif_follow_spikingjellys_nir_convention():
    net = nn.Sequential(layer.Linear(3, 4), neuron.IFNode(), layer.Linear(4, 4), neuron.CUBALIFNode(c_decay=0.5, v_decay=0.75))
    graph, policy = export(net, np.zeros((2, 1, 3), np.float32))
    assert graph.nodes["1"].r[0] == np.float32(1 / DT)  # IF: r = 1/dt, as export_to_nir writes it
    cuba = graph.nodes["3"]
    np.testing.assert_allclose([cuba.tau_syn[0], cuba.tau_mem[0], cuba.w_in[0], cuba.r[0]], [2 * DT, 4 * DT, 2.0, 4.0], rtol=1e-6)
    assert policy.for_node("3", "CubaLIF").current_order == "current_first"


def test_unsupported_layers_are_all_listed_in_one_report():
    net = nn.Sequential(layer.Linear(4, 6), neuron.IzhikevichNode(), layer.Linear(6, 6), neuron.IFNode(), layer.Dropout(0.5),
                        layer.Linear(6, 8), layer.BatchNorm1d(8), neuron.LIFNode(), nn.Unflatten(1, (2, 4)), layer.MaxPool2d((1, 2)))
    net.train()
    with pytest.raises(GapError) as caught:
        nirbridge.convert(net, to="nir", sample=torch.zeros(2, 4))
    reasons = {g.node: g.reason for g in caught.value.report.unsupported}
    assert {"1", "4", "6", "8", "9"} <= set(reasons), reasons
    assert "no node for" in reasons["1"] and "training mode" in reasons["4"] and "no NIR" in reasons["6"]


def test_a_policy_spikingjelly_cannot_compute_is_refused():
    model, x = make("IFNode MLP (hard reset to 0)", "s")
    with pytest.raises(GapError, match="integration='exact'"):
        nirbridge.convert(model, to="nir", sample=sample(model, x), policy=Policy.preset("spikingjelly", integration="exact"))


def test_export_keeps_the_model_and_its_state():
    model, x = make("LIFNode(tau 2, v_reset=-0.2) MLP (starts at v_reset)", "s")
    before, _ = run_native(model, x)
    functional.reset_net(model)
    with torch.no_grad():
        model(torch.from_numpy(x[0]))
    v = model[1].v.clone()
    first, _ = export(model, x)
    assert first == export(model, x)[0] and torch.equal(model[1].v, v)
    np.testing.assert_array_equal(run_native(model, x)[0], before)


# ----------------------------------------------------------------------------- import


@pytest.mark.parametrize("name,nodes", [("IFNode MLP (hard reset to 0)", {"1": "IFNode", "3": "IFNode"}),
                                        ("CNN: Conv-IF-AvgPool, Conv-LIF-AvgPool, Flatten, Linear-LIF", {"1": "IFNode", "4": "LIFNode", "8": "LIFNode"})])
def test_stock_nodes_where_spikingjelly_has_the_policy(name, nodes):
    model, x = make(name, "m")
    graph, _ = export(model, x)
    p = nirbridge.plan(graph, "spikingjelly")
    built = p.build()
    assert {n: type(built.module(n).node).__name__ for n in nodes} == nodes, str(p.report)
    ref = nirbridge.simulate(graph, x, record=list(nodes))
    got = built.run(x, record=list(nodes))
    for n, kind in nodes.items():
        np.testing.assert_array_equal(got.states[n]["spikes"], ref.states[n]["spikes"])
        dv = np.abs(got.states[n]["v"] - ref.states[n]["v"]).max()
        # torch's matrix products and convolutions may sum in another order than NumPy's (it
        # depends on the CPU's kernels), and LIFNode divides by tau where the reference
        # multiplies by 1 - dt/tau: last-bit differences at most
        assert dv < 1e-6, (n, dv)


@pytest.mark.parametrize("case,policy,why", [
    ("lif", Policy.preset("spikingjelly"), "one tau, threshold and reset per layer"),
    ("cubalif", Policy.preset("spikingjelly"), "no stock CubaLIF"),
    ("lif", Policy.preset("spikingjelly", integration="exact"), "forward Euler"),
    ("lif", Policy.preset("sinabs"), "one spike per step"),
    ("if", Policy.preset("snntorch"), "v >= threshold"),
    ("li", Policy.preset("norse"), "no stock LI"),
], ids=["per-neuron", "cubalif", "exact", "multi", "gt", "li"])
def test_what_spikingjelly_lacks_runs_on_the_policy_neuron_and_says_why(case, policy, why):
    p = nirbridge.plan(build_case(case, policy), "spikingjelly", policy=policy)
    assert isinstance(p.build().module(case), PolicyNeuron)
    assert p.report.ok and "PolicyNeuron" in p.report[case].maps_to and why in p.report[case].reason, p.report[case]


def test_a_start_other_than_spikingjellys_runs_on_the_policy_neuron():
    model, x = make("LIFNode(tau 2, v_reset=-0.2) MLP (starts at v_reset)", "s")
    graph, policy = export(model, x)
    zero = policy.model_copy(update={"overrides": {}, "initial_v": "zero"})
    p = nirbridge.plan(graph, "spikingjelly", policy=zero)
    assert isinstance(p.build().module("1"), PolicyNeuron) and "starts v at v_reset" in p.report["1"].reason
    assert isinstance(nirbridge.convert(graph, to="spikingjelly").module("1"), SpikingJellyNeuron)


def test_trained_input_gain_goes_back_into_r():
    net = nn.Sequential(layer.Linear(3, 4), neuron.IFNode(v_threshold=0.5))
    graph, _ = export(net, np.zeros((2, 1, 3), np.float32))
    policy = Policy.preset("spikingjelly", input="impulse")
    model = nirbridge.convert(graph.model_copy(update={"metadata": {}}), to="spikingjelly", policy=policy)
    cell = model.module("1")
    assert isinstance(cell, SpikingJellyNeuron) and cell.gain is not None  # r = 1/dt under impulse: a gain of 1e4
    with torch.no_grad():
        cell.gain.mul_(0.5)
    back = nirbridge.convert(model, to="nir")
    np.testing.assert_allclose(back.nodes["1"].r, 0.5 / DT, rtol=1e-6)


def test_saved_graph_is_nir_and_loads_back(tmp_path):
    import nir

    model, x = make("Conv1d-IF, Flatten, Linear-LIF", "m")
    graph, policy = export(model, x)
    nirbridge.save(graph, tmp_path / "net.nir")
    assert nir.read(str(tmp_path / "net.nir")).nodes["0"].input_shape == 8  # nir.Conv1d's length: a scalar
    back = nirbridge.load(tmp_path / "net.nir")
    assert back == graph and Policy.from_metadata(back.metadata) == policy
