"""Export of Rockpool models: what each module and option becomes in the graph and its policy,
what is refused (all at once), and that the graph reproduces Rockpool's own run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from rockpool.nn.combinators import Sequential
from rockpool.nn.modules import ExpSynTorch, LIFBitshiftTorch, LIFNeuronTorch, LIFTorch, LinearTorch, RateTorch
from rockpool_support import make, run_native, sample

import nirbridge
from nirbridge import Policy
from nirbridge.backends.registry import get_backend
from nirbridge.errors import GapError


def export(model, x):
    graph = nirbridge.convert(model, to="nir", sample=sample(x))
    return graph, Policy.from_metadata(graph.metadata)


def exact_decay(tau, dt):
    return np.exp(-dt / np.asarray(tau, np.float64)).astype(np.float32)


def test_lif_torch_is_a_cubalif_whose_exact_decays_are_rockpools():
    model, x = make("LIFTorch per-neuron taus and thresholds")
    graph, policy = export(model, x)
    assert policy == Policy.preset("rockpool")
    lif, node = model[1], graph.nodes["1_LIFTorch"]
    assert node.type == "CubaLIF"
    np.testing.assert_array_equal(exact_decay(node.tau_mem, 1e-3), lif.alpha.detach().numpy())
    np.testing.assert_array_equal(exact_decay(node.tau_syn, 1e-3), lif.beta.detach().numpy().reshape(-1))
    np.testing.assert_array_equal(node.w_in, lif.beta.detach().numpy().reshape(-1))  # i = beta (i + x)
    c = 1 - np.exp(-1e-3 / node.tau_mem.astype(np.float64))
    assert np.all((c * node.r).astype(np.float32) == 1)  # v += i: the reference's c r rounds to 1
    np.testing.assert_array_equal(node.v_threshold, lif.threshold.detach().numpy())


def test_recurrent_and_multi_synapse_layers_are_subgraphs():
    model, x = make("LIFTorch recurrent (w_rec)")
    graph, _ = export(model, x)
    sub = graph.nodes["1_LIFTorch"]
    assert {n: v.type for n, v in sub.nodes.items()} == {"input": "Input", "lif": "CubaLIF", "w_rec": "Linear", "output": "Output"}
    assert ("lif", "w_rec") in sub.edges and ("w_rec", "lif") in sub.edges
    np.testing.assert_array_equal(sub.nodes["w_rec"].weight, model[1].w_rec.detach().numpy().T)
    model, x = make("LIFTorch two synapses per neuron (tau_syn 4 and 15 ms)")
    graph, _ = export(model, x)
    sub = graph.nodes["1_LIFTorch"]
    assert [sub.nodes[n].type for n in ("syn", "sum", "lif")] == ["LI", "Linear", "LIF"]
    assert sub.nodes["syn"].tau.shape == (32,) and sub.nodes["sum"].weight.shape == (16, 32)
    np.testing.assert_array_equal(sub.nodes["syn"].r, model[1].beta.detach().numpy().reshape(-1))


def test_dt_and_max_spikes_per_dt_become_policy_fields():
    model, x = make("LIFTorch leak_mode decays, max_spikes_per_dt 2, dt 0.5 ms")
    graph, policy = export(model, x)
    assert policy.dt == 5e-4
    assert (policy.for_node("1_LIFTorch", "CubaLIF").max_spikes, policy.for_node("3_LIFTorch", "CubaLIF").max_spikes) == (2, 2)
    np.testing.assert_array_equal(exact_decay(graph.nodes["1_LIFTorch"].tau_mem, 5e-4), np.float32(0.9))


def test_exp_syn_is_an_li_with_r_beta_and_bias_is_approximate():
    model, x = make("LinearTorch(has_bias) -> LIFTorch -> ExpSynTorch readout")
    graph, _ = export(model, x)
    assert graph.nodes["0_LinearTorch"].type == "Affine" and graph.nodes["3_ExpSynTorch"].type == "LI"
    np.testing.assert_array_equal(graph.nodes["3_ExpSynTorch"].r, torch.exp(-1e-3 / model[3].tau).detach().numpy())
    lif = Sequential(LinearTorch((4, 3)), LIFNeuronTorch(3, tau_mem=0.01, bias=0.05))
    graph, approx = get_backend("rockpool").export(lif, sample=torch.zeros(1, 5, 4))
    node = graph.nodes["1_LIFNeuronTorch"]
    c = 1 - math.exp(-1e-3 / float(node.tau[0]))
    assert node.v_leak[0] * c == pytest.approx(0.05, rel=1e-6)
    assert [g.node for g in approx] == ["1_LIFNeuronTorch"] and "bias" in approx[0].reason


def test_every_unsupported_module_is_listed_at_once():
    model = Sequential(LinearTorch((4, 4)), LIFBitshiftTorch(4), LinearTorch((4, 4)), RateTorch(4), LinearTorch((4, 4)),
                       LIFNeuronTorch(4, noise_std=0.1), LinearTorch((4, 4)), LIFTorch(4, dt=1e-4), LinearTorch((4, 4)), ExpSynTorch(4))
    with pytest.raises(GapError) as info:
        nirbridge.convert(model, to="nir", sample=torch.zeros(1, 5, 4))
    bad = {g.node: g.reason for g in info.value.report.unsupported}
    assert set(bad) == {"1_LIFBitshiftTorch", "3_RateTorch", "5_LIFNeuronTorch", "7_LIFTorch"}, bad
    assert "bit-shift" in bad["1_LIFBitshiftTorch"] and "noise_std" in bad["5_LIFNeuronTorch"] and "dt=0.0001" in bad["7_LIFTorch"]


def test_a_policy_rockpool_does_not_compute_is_refused():
    model, x = make("LIFNeuronTorch MLP")
    with pytest.raises(GapError, match="threshold='gt'"):
        nirbridge.convert(model, to="nir", sample=sample(x), policy=Policy.preset("rockpool", threshold="gt", spikes="single", max_spikes=None))


def test_exporting_leaves_the_model_and_its_state_as_they_were():
    model, x = make("LIFTorch recurrent (w_rec)")
    with torch.no_grad():
        model(sample(x))  # a state of its own
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export(model, x)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    out, _ = run_native(model, x)
    assert out.shape == (x.shape[0], x.shape[1], 6)


def test_bitshift_leak_mode_exports_the_decays_rockpool_steps_with():
    """leak_mode="bitshifts": alpha = 1 - 2**-dash_mem, beta = 1 - 2**-dash_syn (Xylo's decays)."""
    import rockpool_support as s

    model = Sequential(LinearTorch((12, 16)), LIFTorch(16, leak_mode="bitshifts", dash_mem=4, dash_syn=2),
                       LinearTorch((16, 6)), LIFTorch(6, leak_mode="bitshifts", dash_mem=3, dash_syn=1))
    x = s.spike_input(12)
    s.tune(model, x)
    out, spikes = run_native(model, x)
    graph, _ = export(model, x)
    np.testing.assert_array_equal(exact_decay(graph.nodes["1_LIFTorch"].tau_mem, 1e-3), np.float32(1 - 2**-4))
    np.testing.assert_array_equal(graph.nodes["1_LIFTorch"].w_in, np.float32(1 - 2**-2))
    ref = nirbridge.simulate(graph, x, record=list(spikes))
    for name, want in spikes.items():
        np.testing.assert_array_equal(ref.states[name]["spikes"], want, err_msg=name)
        assert 0.05 < np.mean(want > 0) < 0.8
