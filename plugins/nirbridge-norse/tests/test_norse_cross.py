"""snnTorch <-> Norse through nirbridge: the same spikes on both sides."""

from __future__ import annotations

import numpy as np
import pytest
import torch

snn = pytest.importorskip("snntorch")
pytest.importorskip("nirbridge_snntorch")

import norse.torch as norse  # noqa: E402

from nirbridge.backends.registry import get_backend  # noqa: E402
from nirbridge_norse import simulate_native  # noqa: E402
from nirbridge_torch import run_sequence  # noqa: E402


def _convert(*args, **kwargs):
    from nirbridge.conversion import convert

    return convert(*args, **kwargs)


def snntorch_run(net, x):
    backend = get_backend("snntorch")
    return backend.simulate(net, x).output


class SeedNet(torch.nn.Module):
    """fc -> Synaptic -> fc -> Synaptic, learnable alpha/beta/threshold on the second."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(16, 12)
        self.lif1 = snn.Synaptic(alpha=0.8, beta=0.9)
        self.fc2 = torch.nn.Linear(12, 4)
        self.lif2 = snn.Synaptic(alpha=0.7, beta=0.85, threshold=0.8, learn_alpha=True, learn_beta=True, learn_threshold=True)

    def forward(self, x):
        syn1, mem1 = self.lif1.reset_mem()
        syn2, mem2 = self.lif2.reset_mem()
        out = []
        for t in range(x.shape[0]):
            spk1, syn1, mem1 = self.lif1(self.fc1(x[t]), syn1, mem1)
            spk2, syn2, mem2 = self.lif2(self.fc2(spk1), syn2, mem2)
            out.append(spk2)
        return torch.stack(out)


def test_seed_network_converts_to_the_same_spikes():
    torch.manual_seed(0)
    net = SeedNet()
    with torch.no_grad():
        net.fc1.weight.mul_(2.5)
        net.fc2.weight.mul_(2.5)
    x = (np.random.default_rng(0).random((100, 8, 16)) < 0.3).astype(np.float32)
    model = _convert(net, to="norse", sample=torch.as_tensor(x[:5]))
    with torch.no_grad():
        want = net(torch.as_tensor(x)).numpy()
    got = run_sequence(model, x).output
    assert 0.01 < want.mean() < 0.9, want.mean()
    np.testing.assert_array_equal(got, want)


def test_norse_csnn_with_maxpool_to_snntorch_and_back():
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(1, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.rand(4, 1, 3, 3) * 0.6)
    fc = torch.nn.Linear(4 * 4 * 4, 3)
    with torch.no_grad():
        fc.weight.copy_(torch.rand(3, 64) * 0.15 - 0.05)
    net = norse.SequentialState(conv, norse.LIFBoxCell(norse.LIFBoxParameters(v_th=torch.tensor(0.3))), torch.nn.MaxPool2d(2),
                                torch.nn.Flatten(), fc, norse.LIFBoxCell(norse.LIFBoxParameters(v_th=torch.tensor(0.5))))
    x = (np.random.default_rng(2).random((80, 2, 1, 8, 8)) < 0.4).astype(np.float32) * 2
    want = simulate_native(net, x).output
    graph = _convert(net, to="nir", sample=torch.zeros(1, 1, 8, 8))
    assert 0.01 < want.mean() < 0.9
    st = _convert(graph, to="snntorch")
    np.testing.assert_array_equal(snntorch_run(st, x), want)
    back = _convert(st, to="norse", sample=torch.zeros(1, 1, 8, 8))
    np.testing.assert_array_equal(run_sequence(back, x).output, want)
