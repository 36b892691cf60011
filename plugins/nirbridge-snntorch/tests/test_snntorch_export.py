"""Export: model shapes people write, layers, gaps listed all at once."""

from __future__ import annotations

import numpy as np
import pytest
import snntorch as snn
import torch
import torch.nn as nn
from snn_support import assert_fires, assert_matches

from nirbridge.errors import GapError, NirbridgeError
from nirbridge.reference import simulate
from nirbridge.semantics import Policy
from nirbridge_snntorch import export, from_nir, to_nir

T, B = 30, 2


def run_stepwise(net: nn.Module, x: np.ndarray, record: list[nn.Module] = ()) -> dict:
    """Run an init_hidden Sequential one step per call, as snnTorch's tutorials do."""
    for module in net.modules():
        if isinstance(module, snn.SpikingNeuron):
            module.reset_mem()
    outs, mems = [], {id(m): [] for m in record}
    with torch.no_grad():
        for t in range(x.shape[0]):
            out = net(torch.as_tensor(x[t]))
            outs.append(out[0] if isinstance(out, tuple) else out)
            for m in record:
                mems[id(m)].append(m.mem.clone())
    return {"out": torch.stack(outs).numpy(), **{k: torch.stack(v).numpy() for k, v in mems.items()}}


def conv_net(pool: str = "max"):
    torch.manual_seed(1)
    pool_layer = nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        snn.Leaky(beta=0.8, init_hidden=True, threshold=0.5),
        pool_layer,
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
        snn.Synaptic(alpha=0.7, beta=0.85, init_hidden=True, threshold=0.3, output=True),
    )
    with torch.no_grad():
        net[0].weight.abs_()
        net[4].weight.uniform_(-0.2, 0.2)
    return net


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_sequential_conv_net_spike_exact(pool):
    """Conv2d -> Leaky -> pool (MaxPool on spikes = SumPool2d + Threshold) -> Flatten -> Linear ->
    Synaptic(output=True): snnTorch, the reference and the imported model agree."""
    net = conv_net(pool)
    rng = np.random.default_rng(0)
    x = (rng.uniform(0, 1, (T, B, 1, 8, 8)) < 0.5).astype(np.float32)
    graph = to_nir(net, sample=x[0])
    types = {n: node.type for n, node in graph.nodes.items()}
    assert types["0"] == "Conv2d" and types["1"] == "LIF" and types["3"] == "Flatten" and types["5"] == "CubaLIF"
    if pool == "max":
        assert types["2"] == "Threshold" and types["2_sum"] == "SumPool2d"
    else:
        assert types["2"] == "AvgPool2d"
    native = run_stepwise(net, x, record=[net[1], net[5]])
    ref = simulate(graph, x, record=["1", "5"])
    assert_fires(ref.states["1"]["spikes"], what="conv Leaky")
    assert_fires(ref.states["5"]["spikes"], what="Synaptic")
    np.testing.assert_array_equal(ref.output, native["out"])
    np.testing.assert_allclose(ref.states["1"]["v"], native[id(net[1])], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ref.states["5"]["v"], native[id(net[5])], rtol=1e-5, atol=1e-6)
    imported = from_nir(graph, policy=Policy.from_metadata(graph.metadata))
    assert_matches(ref, imported.run(x, record=["1", "5"]), graph, ["1", "5"])


def test_maxpool_on_real_values_is_a_gap():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 2), snn.Leaky(0.9, init_hidden=True))
    with pytest.raises(GapError) as caught:
        to_nir(net, sample=torch.rand(1, 1, 6, 6))
    gap = caught.value.report["1"]
    assert gap.status == "unsupported" and "not binary" in gap.reason


def test_conv1d_and_functional_flatten():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(2, 3, 3)
            self.lif1 = snn.Leaky(beta=0.7, init_hidden=True, threshold=0.4)
            self.fc = nn.Linear(3 * 6, 4, bias=False)
            self.lif2 = snn.Leaky(beta=0.9, init_hidden=True, threshold=0.4)

        def forward(self, x):
            s = self.lif1(self.conv(x))
            return self.lif2(self.fc(s.view(s.shape[0], -1)))

    net = Net()
    with torch.no_grad():
        net.conv.weight.uniform_(-0.1, 0.3)
        net.conv.bias.zero_()
        net.fc.weight.uniform_(-0.1, 0.2)
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (T, B, 2, 8)).astype(np.float32)
    graph = to_nir(net, sample=x[0])
    assert [graph.nodes[n].type for n in ("conv", "lif1", "flatten", "fc", "lif2")] == ["Conv1d", "LIF", "Flatten", "Linear", "LIF"]
    native = run_stepwise(net, x)
    ref = simulate(graph, x, record=["lif1", "lif2"])
    assert_fires(ref.states["lif1"]["spikes"]) and assert_fires(ref.states["lif2"]["spikes"])
    np.testing.assert_array_equal(ref.output, native["out"])


def test_graded_spikes_become_a_scale_node():
    net = nn.Sequential(nn.Linear(3, 4), snn.Leaky(beta=0.8, init_hidden=True, graded_spikes_factor=0.5),
                        nn.Linear(4, 2), snn.Leaky(beta=0.8, init_hidden=True, threshold=0.2))
    with torch.no_grad():
        net[0].weight.uniform_(0.2, 1.0)
        net[2].weight.uniform_(0.2, 1.0)
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (T, B, 3)).astype(np.float32)
    graph = to_nir(net, sample=x[0])
    assert graph.nodes["1_graded"].type == "Scale" and np.all(graph.nodes["1_graded"].scale == 0.5)
    assert ("1", "1_graded") in graph.edges and ("1_graded", "2") in graph.edges
    native = run_stepwise(net, x)
    ref = simulate(graph, x, record=["1", "3"])
    assert_fires(ref.states["1"]["spikes"]) and assert_fires(ref.states["3"]["spikes"])
    np.testing.assert_array_equal(ref.output, native["out"])


def test_recurrent_bias_moves_into_the_feeding_layer():
    """RLeaky's recurrent bias acts at step 0 too; NIR's delayed edge gives 0 there, so the bias
    goes into the Linear feeding the neuron (exact), or is refused when there is none."""
    rleaky = snn.RLeaky(beta=0.8, linear_features=4, init_hidden=True, threshold=0.5)
    net = nn.Sequential(nn.Linear(3, 4, bias=False), rleaky)
    with torch.no_grad():
        net[0].weight.uniform_(0.1, 0.6)
        rleaky.recurrent.bias.uniform_(0.05, 0.2)
    rng = np.random.default_rng(6)
    x = rng.uniform(0, 1, (T, B, 3)).astype(np.float32)
    graph, report = export(net, sample=x[0])
    assert graph.nodes["0"].type == "Affine"
    np.testing.assert_array_equal(graph.nodes["0"].bias, rleaky.recurrent.bias.detach().numpy())
    assert graph.nodes["1"].nodes["w_rec"].type == "Linear"
    assert any("moved" in n for n in report.notes)
    native = run_stepwise(net, x)
    ref = simulate(graph, x, record=["1.lif"])
    assert_fires(ref.states["1.lif"]["spikes"])
    np.testing.assert_array_equal(ref.output, native["out"])
    # fed by the input itself: an identity Affine in front of the neuron carries the bias
    alone = nn.Sequential(rleaky)
    graph, report = export(alone, sample=x[0, :, :1].repeat(4, axis=1))
    assert graph.nodes["0_bias"].type == "Affine" and np.array_equal(graph.nodes["0_bias"].weight, np.eye(4, dtype=np.float32))
    np.testing.assert_array_equal(graph.nodes["0_bias"].bias, rleaky.recurrent.bias.detach().numpy())
    assert any("identity" in n for n in report.notes)
    xs = np.repeat(x[..., :1], 4, axis=2)
    ref = simulate(graph, xs, record=["0.lif"])
    assert_fires(ref.states["0.lif"]["spikes"])
    np.testing.assert_array_equal(ref.output, run_stepwise(alone, xs)["out"])


def test_all_unsupported_layers_reported_at_once():
    class Custom(nn.Module):
        def forward(self, x):
            return x * 2

    with pytest.warns(UserWarning, match="Inhibition"):  # snnTorch warns on construction
        inhibited = snn.Leaky(beta=0.8, init_hidden=True, inhibition=True)
    net = nn.Sequential(
        nn.Linear(3, 4),
        snn.Alpha(alpha=0.9, beta=0.8, init_hidden=True),
        nn.Linear(4, 4),
        inhibited,
        nn.Linear(4, 4),
        snn.Leaky(beta=0.8, init_hidden=True, state_quant=lambda m: m),
        Custom(),
        nn.Linear(4, 2),
        snn.Leaky(beta=0.8, init_hidden=True),
    )
    with pytest.raises(GapError) as caught:
        to_nir(net, sample=torch.rand(2, 3))
    report = caught.value.report
    unsupported = {g.node: g.reason for g in report.unsupported}
    assert set(unsupported) == {"1", "3", "5", "6"}, report
    assert "Alpha" in unsupported["1"] and "inhibition" in unsupported["3"]
    assert "state_quant" in unsupported["5"] and "Custom" in unsupported["6"]
    assert {g.node for g in report.exact} >= {"0", "2", "4", "7", "8"}


def test_operations_outside_layers_are_refused_with_their_name():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 4)
            self.lif = snn.Leaky(beta=0.8, init_hidden=True)

        def forward(self, x):
            return self.lif(torch.sigmoid(self.fc(x)))

    with pytest.raises(GapError, match="sigmoid"):
        to_nir(Net(), sample=torch.rand(2, 3))


def test_membrane_output_is_a_state_not_an_output():
    net = nn.Sequential(nn.Linear(3, 2), snn.Leaky(beta=0.8, init_hidden=True, output=True))
    graph, report = export(net, sample=torch.rand(2, 3))
    assert list(graph.outputs()) == ["output"]
    assert any("states" in n for n in report.notes)


def test_non_heaviside_spike_function_is_refused():
    net = nn.Sequential(nn.Linear(3, 2), snn.Leaky(beta=0.8, init_hidden=True, spike_grad=lambda v: torch.sigmoid(v)))
    with pytest.raises(GapError, match="Heaviside"):
        to_nir(net, sample=torch.rand(2, 3))
    fine = nn.Sequential(nn.Linear(3, 2), snn.Leaky(beta=0.8, init_hidden=True, spike_grad=snn.surrogate.fast_sigmoid()))
    assert to_nir(fine, sample=torch.rand(2, 3)).nodes["1"].type == "LIF"


def test_missing_sample_is_a_clear_error():
    with pytest.raises(NirbridgeError, match="sample"):
        to_nir(nn.Sequential(nn.Linear(3, 2), snn.Leaky(0.9, init_hidden=True)), sample=None)


def test_export_leaves_the_model_untouched():
    net = nn.Sequential(nn.Linear(3, 2), snn.Leaky(0.9, init_hidden=True))
    net(torch.rand(5, 3))
    before = net[1].mem.clone()
    to_nir(net, sample=torch.rand(2, 3))
    assert torch.equal(net[1].mem, before)


def test_rleaky_conv_recurrence():
    """RLeaky with a Conv2d recurrence: a subgraph with a recurrent Conv2d (its bias moved into
    the feeding Conv2d); imported back as an RLeaky holding a bias-free Conv2d."""
    torch.manual_seed(3)
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1),
        snn.RLeaky(beta=0.8, conv2d_channels=2, kernel_size=3, init_hidden=True, threshold=0.5),
        nn.Flatten(),
        nn.Linear(2 * 5 * 5, 3),
        snn.Leaky(beta=0.9, init_hidden=True, threshold=0.3),
    )
    with torch.no_grad():
        net[0].weight.uniform_(-0.2, 0.2)
        net[0].bias.zero_()
        net[1].recurrent.weight.uniform_(-0.1, 0.1)
        net[1].recurrent.bias.fill_(0.02)
        net[3].weight.uniform_(-0.02, 0.08)
        net[3].bias.zero_()
    rng = np.random.default_rng(8)
    x = (rng.uniform(0, 1, (T, B, 1, 5, 5)) < 0.5).astype(np.float32)
    graph = to_nir(net, sample=x[0])
    sub = graph.nodes["1"]
    assert sub.nodes["w_rec"].type == "Conv2d" and not np.any(sub.nodes["w_rec"].bias)
    native = run_stepwise(net, x, record=[net[1]])
    ref = simulate(graph, x, record=["1.lif", "4"])
    assert_fires(ref.states["1.lif"]["spikes"], what="RLeaky") and assert_fires(ref.states["4"]["spikes"], what="Leaky")
    np.testing.assert_array_equal(ref.output, native["out"])
    np.testing.assert_allclose(ref.states["1.lif"]["v"], native[id(net[1])], rtol=1e-5, atol=1e-6)
    imported = from_nir(graph, policy=Policy.from_metadata(graph.metadata))
    assert type(imported.module("1.lif").neuron) is snn.RLeaky
    assert_matches(ref, imported.run(x, record=["1.lif", "4"]), graph, ["1.lif", "4"])
    assert to_nir(imported, sample=None) == graph


def test_rsynaptic_reset_delay_false_fails_in_snntorch_itself():
    """snnTorch 1.0.0 RSynaptic(reset_delay=False) fails on its own initial state (its forward
    divides the spike argument, not the stored spikes): export reports that run failure."""
    net = nn.Sequential(nn.Linear(3, 4), snn.RSynaptic(alpha=0.8, beta=0.8, linear_features=4, init_hidden=True,
                                                       reset_delay=False))
    with pytest.raises(TypeError):
        net(torch.rand(2, 3))
    with pytest.raises(NirbridgeError, match="running the model on the sample failed"):
        to_nir(net, sample=torch.rand(2, 3))
