"""The seed paper's network: fc1 -> Synaptic (fixed alpha, beta; subtract reset) -> fc2 ->
Synaptic (learnable alpha, beta and per-neuron threshold), trained a few steps on random data,
exported, imported back, and run by the NumPy reference: identical spikes from all three."""

from __future__ import annotations

import numpy as np
import snntorch as snn
import torch
import torch.nn as nn
from snn_support import assert_fires, assert_matches

from nirbridge.reference import simulate
from nirbridge.semantics import Policy
from nirbridge_snntorch import from_nir, to_nir

N_IN, N_HID, N_OUT, T, B = 20, 16, 4, 25, 8


class SeedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(N_IN, N_HID)
        self.lif1 = snn.Synaptic(alpha=0.9, beta=0.85)
        self.fc2 = nn.Linear(N_HID, N_OUT)
        self.lif2 = snn.Synaptic(alpha=0.8, beta=0.9, threshold=torch.full((N_OUT,), 1.0),
                                 learn_alpha=True, learn_beta=True, learn_threshold=True)

    def forward(self, x):
        syn1, mem1 = self.lif1.init_synaptic()
        syn2, mem2 = self.lif2.init_synaptic()
        spk1_rec, spk2_rec, mem2_rec = [], [], []
        for step in range(x.shape[0]):
            cur1 = self.fc1(x[step])
            spk1, syn1, mem1 = self.lif1(cur1, syn1, mem1)
            cur2 = self.fc2(spk1)
            spk2, syn2, mem2 = self.lif2(cur2, syn2, mem2)
            spk1_rec.append(spk1)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec), torch.stack(mem2_rec), torch.stack(spk1_rec)


def test_seed_network_three_way_identical_spikes():
    torch.manual_seed(0)
    net = SeedNet()
    with torch.no_grad():
        net.fc1.weight.mul_(0.3)
        net.fc2.weight.abs_().mul_(0.4)
    rng = np.random.default_rng(0)
    data = torch.as_tensor((rng.uniform(0, 1, (T, 32, N_IN)) < 0.3).astype(np.float32))
    labels = torch.as_tensor(rng.integers(0, N_OUT, 32))
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    for _ in range(5):
        spk2, _, _ = net(data)
        loss = nn.functional.cross_entropy(spk2.sum(0), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for name in ("lif2.alpha", "lif2.beta", "lif2.threshold", "fc1.weight"):
        assert not torch.equal(before[name], dict(net.named_parameters())[name]), f"{name} did not train"
    assert net.lif2.threshold.shape == (N_OUT,) and len(set(net.lif2.threshold.tolist())) > 1

    x = (rng.uniform(0, 1, (T, B, N_IN)) < 0.3).astype(np.float32)
    graph = to_nir(net, sample=x[:2])
    assert [graph.nodes[n].type for n in ("fc1", "lif1", "fc2", "lif2")] == ["Affine", "CubaLIF", "Affine", "CubaLIF"]
    np.testing.assert_allclose(graph.nodes["lif2"].v_threshold, net.lif2.threshold.detach().numpy())
    with torch.no_grad():
        spk2, mem2, spk1 = (t.numpy() for t in net(torch.as_tensor(x)))
    policy = Policy.from_metadata(graph.metadata)
    assert policy == Policy.preset("snntorch")
    ref = simulate(graph, x, record=["lif1", "lif2"])
    assert_fires(ref.states["lif1"]["spikes"], what="lif1")
    assert_fires(ref.states["lif2"]["spikes"], what="lif2")
    np.testing.assert_array_equal(ref.outputs["output"], spk2)  # snnTorch == reference
    np.testing.assert_array_equal(ref.outputs["output_1"], spk1)
    np.testing.assert_allclose(ref.states["lif2"]["v"], mem2, rtol=1e-5, atol=1e-6 * 2)
    imported = from_nir(graph, policy=policy)
    result = imported.run(x, record=["lif1", "lif2"])
    cmp = assert_matches(ref, result, graph, ["lif1", "lif2"])  # imported == reference
    np.testing.assert_array_equal(result.outputs["output"], spk2)  # imported == snnTorch
    assert cmp["lif2"].spike_diffs == 0 and cmp["lif1"].spike_diffs == 0
