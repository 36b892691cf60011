"""Export of Sinabs models: what each layer and option becomes in the graph and its policy,
what is refused (all at once), and that the graph reproduces Sinabs' own run."""

from __future__ import annotations

import numpy as np
import pytest
import sinabs
import sinabs.layers as sl
import torch
from sinabs.activation import MaxSpike, MembraneReset, MembraneSubtract, SingleSpike
from sinabs_support import B, make, run_native, sample
from torch import nn

import nirbridge
from nirbridge import Policy
from nirbridge.errors import GapError


def export(model, x):
    graph = nirbridge.convert(model, to="nir", sample=sample(model, x))
    return graph, Policy.from_metadata(graph.metadata)


def test_defaults_are_the_preset_and_norm_input_is_a_current():
    model, x = make("LIFSqueeze MLP (default norm_input=True)")
    graph, policy = export(model, x)
    assert policy.model_copy(update={"overrides": {}}) == Policy.preset("sinabs")
    assert {n: o.changes() for n, o in policy.overrides.items()} == {"1": {"input": "current"}, "3": {"input": "current"}}
    lif = graph.nodes["1"]
    assert lif.type == "LIF" and np.all(lif.tau == 5.0) and np.all(lif.r == 1) and np.all(lif.v_leak == 0)
    # one step from zero: v = (1 - exp(-1/5)) x, Sinabs' normalised input
    x1 = np.zeros((1, 1, 12), np.float32)
    x1[0, 0, 0] = 1.0
    res = nirbridge.simulate(graph, x1, record=["0", "1"])
    np.testing.assert_allclose(res.states["1"]["v"], (1 - np.exp(-0.2)) * res.states["0"]["y"], rtol=1e-6)


def test_spike_reset_and_floor_options_become_policy_fields():
    model, x = make("IAFSqueeze MembraneReset(0), SingleSpike, min_v_mem")
    _, policy = export(model, x)
    assert policy.for_node("1", "IF").model_dump(include={"spikes", "reset", "v_min"}) == {"spikes": "single", "reset": "to_reset", "v_min": -0.5}
    model, x = make("LIFSqueeze train_alphas, MaxSpike(2)")
    graph, policy = export(model, x)
    assert (policy.for_node("3", "LIF").spikes, policy.for_node("3", "LIF").max_spikes) == ("multi", 2)
    alpha = model[1].alpha_mem.detach().numpy()
    np.testing.assert_allclose(np.exp(-1 / graph.nodes["1"].tau.astype(np.float64)), alpha, rtol=1e-6)
    model, x = make("per-neuron tau, thresholds and floors (-threshold)")
    graph, policy = export(model, x)
    assert policy.for_node("3", "IF").v_min == "-v_threshold"
    np.testing.assert_allclose(graph.nodes["1"].tau, model[1].tau_mem.detach().numpy(), rtol=1e-6)  # see the decay test below


def test_from_model_layers_floor_at_minus_one_and_count_spikes():
    model, x = make("sinabs.from_model(Linear-ReLU x2)")
    graph, policy = export(model, x)
    assert isinstance(model, sinabs.network.Network)
    for name in ("spiking_model_1", "spiking_model_3"):
        eff = policy.for_node(name, "IF")
        assert graph.nodes[name].type == "IF" and (eff.spikes, eff.v_min, eff.reset) == ("multi", -1.0, "subtract")
    _, spikes = run_native(model, x)
    assert max(s.max() for s in spikes.values()) >= 2  # several spikes in one step do happen


def test_synapse_is_cubalif_with_the_decayed_input():
    model, x = make("LIFSqueeze with tau_syn")
    graph, policy = export(model, x)
    node = graph.nodes["1"]
    assert node.type == "CubaLIF" and policy.for_node("1", "CubaLIF").input == "impulse"
    np.testing.assert_allclose(node.w_in, np.exp(-1 / 3.0), rtol=1e-6)  # i = alpha_syn (i + x)
    np.testing.assert_array_equal(node.r, 1.0)  # norm_input: v += (1 - alpha) i, NIR's current with r = 1


def test_maxspike_caps_the_count_as_sinabs_does():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), sl.IAFSqueeze(spike_fn=MaxSpike(2), batch_size=B))
    with torch.no_grad():
        model[0].weight.fill_(2.0)
        model[0].bias.zero_()
    x = (np.random.default_rng(0).random((20, B, 3)) < 0.5).astype(np.float32)
    out, spikes = run_native(model, x)
    graph, _ = export(model, x)
    assert out.max() == 2 and np.any(np.sum(x, -1) * 2 > 3)  # inputs that would give more spikes are capped
    np.testing.assert_array_equal(nirbridge.simulate(graph, x, record=["1"]).states["1"]["spikes"], spikes["1"])


def test_max_pool_after_counts_is_refused_after_single_spikes_rewritten():
    def cnn(spike_fn):
        return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), sl.IAFSqueeze(batch_size=B, spike_fn=spike_fn), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64, 3), sl.IAFSqueeze(batch_size=B))

    x = torch.zeros(B * 5, 2, 8, 8)
    with pytest.raises(GapError) as caught:
        nirbridge.convert(cnn(sinabs.activation.MultiSpike), to="nir", sample=x)
    assert [g.node for g in caught.value.report.unsupported] == ["2"]
    graph = nirbridge.convert(cnn(SingleSpike), to="nir", sample=x)
    assert {n.type for n in graph.nodes.values()} >= {"SumPool2d", "Threshold"}


def test_unsupported_layers_are_all_listed_in_one_report():
    model = nn.Sequential(
        nn.Linear(4, 5), sl.ALIF(tau_mem=5.0, tau_adapt=10.0),
        nn.Linear(5, 5), sl.IAF(reset_fn=MembraneReset(reset_value=0.3)),
        nn.Linear(5, 5), sl.IAF(tau_syn=3.0),
        nn.Linear(5, 5), sl.IAF(reset_fn=MembraneSubtract(subtract_value=0.5)),
        nn.Linear(5, 5), sl.LIFRecurrent(tau_mem=5.0, rec_connect=nn.Linear(5, 5)),
        nn.Linear(5, 5), sl.ExpLeak(tau_mem=3.0, min_v_mem=-1.0),
    )
    with pytest.raises(GapError) as caught:
        nirbridge.convert(model, to="nir", sample=torch.zeros(1, 3, 4))
    reasons = {g.node: g.reason for g in caught.value.report.unsupported}
    assert set(reasons) == {"1", "3", "5", "7", "9", "11"}, reasons
    assert "adaptive threshold" in reasons["1"]
    assert "adds its value to every neuron" in reasons["3"]
    assert "current-based IF" in reasons["5"]
    assert "subtract_value" in reasons["7"]
    assert "recurrent" in reasons["9"]
    assert "min_v_mem" in reasons["11"]


def test_a_policy_sinabs_cannot_compute_is_refused():
    model, x = make("IAF MLP, (batch, time, ...) input")
    with pytest.raises(GapError, match="threshold='gt'"):
        nirbridge.convert(model, to="nir", sample=sample(model, x), policy=Policy.preset("sinabs", threshold="gt", spikes="single"))
    graph = nirbridge.convert(model, to="nir", sample=sample(model, x), policy=Policy.preset("sinabs", dt=1e-3))
    np.testing.assert_array_equal(graph.nodes["1"].r, 1.0)  # impulse input: dt does not enter


def test_export_keeps_the_model_and_its_state():
    model, x = make("CNN: Conv-IAFSqueeze-SumPool2d x2, Flatten, Linear-IAFSqueeze")
    before, _ = run_native(model, x)
    with torch.no_grad():
        model(sample(model, x))  # a state left by the user's own run
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first, _ = export(model, x)
    second, _ = export(model, x)
    assert first == second
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    after, _ = run_native(model, x)
    np.testing.assert_array_equal(after, before)


def test_saved_graph_is_nir_and_loads_back(tmp_path):
    import nir

    model, x = make("sinabs.from_model(Conv-ReLU-AvgPool x2, Flatten, Linear-ReLU)")
    graph, policy = export(model, x)
    nirbridge.save(graph, tmp_path / "net.nir")
    assert set(nir.read(str(tmp_path / "net.nir")).nodes) == set(graph.nodes)
    back = nirbridge.load(tmp_path / "net.nir")
    assert back == graph and Policy.from_metadata(back.metadata) == policy


@pytest.mark.parametrize("train_alphas", [False, True])
def test_exported_tau_gives_the_reference_sinabs_own_float32_decay(train_alphas):
    """torch's float32 exp(-1/tau) is not always the correctly rounded value the reference
    computes: the exported tau is the float32 nearest tau_mem whose reference decay is
    Sinabs' alpha, bit for bit, wherever a float32 tau gives it (all but 1 of 3011 taus)."""
    from nirbridge.semantics import step_constants

    taus = torch.linspace(1.1, 200, 3011)
    model = nn.Sequential(nn.Linear(2, 3011), sl.LIF(tau_mem=taus, norm_input=False, train_alphas=train_alphas))
    graph = nirbridge.convert(model, to="nir", sample=torch.zeros(1, 1, 2))
    alpha = model[1].alpha_mem_calculated.detach().numpy()
    reference = np.float32(step_constants(graph.nodes["1"], Policy.preset("sinabs")).a)
    assert np.count_nonzero(reference != alpha) <= 1
    np.testing.assert_array_max_ulp(reference, alpha, maxulp=1)
    np.testing.assert_allclose(graph.nodes["1"].tau, taus.numpy(), rtol=1e-5)
    if not train_alphas:  # where the given tau already gives alpha, it is written as it is
        same = np.exp(-1 / taus.numpy().astype(np.float64)).astype(np.float32) == alpha
        np.testing.assert_array_equal(graph.nodes["1"].tau[same], taus.numpy()[same])
        assert same.mean() > 0.95
