"""Models built by `from_nir` train, neurons included, and their trained values go back into
the graph: the new graph computes what the trained model computes."""

from __future__ import annotations

import numpy as np
import torch

from nirbridge import ir as g
from nirbridge.reference import simulate
from nirbridge.semantics import Policy
from nirbridge_norse import NativeCell, from_nir, to_nir
from nirbridge_torch import run_sequence

F = np.float32


def graph() -> g.Graph:
    rng = np.random.default_rng(3)
    n_in, n = 6, 5

    def lif():
        return g.LIF(tau=rng.uniform(2e-3, 5e-3, n).astype(F), r=np.ones(n, F), v_leak=np.zeros(n, F),
                     v_threshold=rng.uniform(0.2, 0.4, n).astype(F), v_reset=np.zeros(n, F))

    cuba = g.CubaLIF(tau_syn=np.full(n, 2e-3, F), tau_mem=np.full(n, 4e-3, F), r=np.ones(n, F), v_leak=np.zeros(n, F),
                     v_threshold=np.full(n, 0.3, F), v_reset=np.zeros(n, F), w_in=np.ones(n, F))
    return g.Graph(
        nodes={"input": g.Input(shape=np.array([n_in])), "fc1": g.Affine(weight=rng.uniform(0, 0.8, (n, n_in)).astype(F), bias=np.zeros(n, F)),
               "lif1": lif(), "fc2": g.Linear(weight=rng.uniform(0, 0.8, (n, n)).astype(F)), "lif2": cuba, "output": g.Output(shape=np.array([n]))},
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")],
        metadata=Policy.preset("norse", dt=1e-3).to_metadata(),
    )


def test_trained_neurons_go_back_into_the_graph():
    source = graph()
    model = from_nir(source)
    assert isinstance(model.module("lif1"), NativeCell) and isinstance(model.module("lif2"), NativeCell)
    assert to_nir(model) == source  # untouched: the graph it came from, bit for bit
    x = torch.as_tensor((np.random.default_rng(4).random((60, 3, 6)) < 0.4).astype(F))
    params = [p for p in model.parameters() if p.requires_grad]
    model.reset()
    loss = (torch.stack([model(x[t]) for t in range(x.shape[0])]).mean() - 0.4) ** 2
    loss.backward()
    cell = model.module("lif1")
    assert float(cell.v_th.grad.abs().sum()) > 0 and float(cell.tau_mem_inv.grad.abs().sum()) > 0
    torch.optim.SGD(params, lr=0.5).step()
    trained = to_nir(model)
    for name in ("fc1", "lif1", "lif2"):
        assert trained.nodes[name] != source.nodes[name], name
    np.testing.assert_allclose(trained.nodes["lif1"].tau, 1 / cell.tau_mem_inv.detach().numpy(), rtol=1e-6)
    np.testing.assert_array_equal(trained.nodes["lif1"].v_threshold, cell.v_th.detach().numpy())
    xs = (np.random.default_rng(5).random((80, 2, 6)) < 0.4).astype(F)
    ref = simulate(trained, xs, policy=Policy.from_metadata(trained.metadata), record=["lif1", "lif2"])
    got = run_sequence(model, xs, record=["lif1", "lif2"])
    for name in ("lif1", "lif2"):
        assert 0.02 < ref.states[name]["spikes"].mean() < 0.9
        np.testing.assert_array_equal(got.states[name]["spikes"], ref.states[name]["spikes"])
