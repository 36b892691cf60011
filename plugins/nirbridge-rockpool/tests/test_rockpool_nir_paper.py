"""The NIR paper's artefacts on Rockpool: the single-LIF trace Rockpool recorded (lif_rockpool.csv)
from its own modules and from nirbridge's export of them, and the Braille RNN graphs (03_rnn)
run on the rockpool backend with the reference's spikes at the inferred dt."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rockpool.nn.combinators import Sequential
from rockpool.nn.modules import LIFNeuronTorch, LinearTorch

import nirbridge
from nirbridge import Policy
from nirbridge.compare import compare
from nirbridge.io import load
from nirbridge_torch.cells import PolicyNeuron

DT = 1e-4


def test_lif_rockpool_csv_is_rockpools_run_and_nirbridges_export_of_it(fixtures_dir):
    """The modules of lif_rockpool.nir (Linear 0.04 -> LIFNeuronTorch tau 2.5 ms, threshold 0.1,
    dt 0.1 ms) reproduce the csv bit for bit, and so does the reference on nirbridge's export."""
    data = np.loadtxt(fixtures_dir / "01_lif" / "lif_rockpool.csv", delimiter=",")
    x = data[:, :1].astype(np.float32)
    model = Sequential(LinearTorch((1, 1), weight=torch.tensor([[0.04]])), LIFNeuronTorch(1, tau_mem=2.5e-3, threshold=0.1, dt=DT))
    with torch.no_grad():
        _, _, rec = model(torch.from_numpy(x)[None], record=True)
    np.testing.assert_array_equal(rec["1_LIFNeuronTorch"]["vmem"][0, :, 0].numpy(), data[:, 1].astype(np.float32))
    np.testing.assert_array_equal(rec["1_LIFNeuronTorch_output"][0, :, 0].numpy(), data[:, 2])
    graph = nirbridge.convert(model, to="nir", sample=torch.from_numpy(x)[None])
    assert Policy.from_metadata(graph.metadata) == Policy.preset("rockpool", dt=DT)
    res = nirbridge.simulate(graph, x.reshape(-1, 1, 1), record=["1_LIFNeuronTorch"])
    np.testing.assert_array_equal(res.states["1_LIFNeuronTorch"]["v"][:, 0, 0], data[:, 1].astype(np.float32))
    assert np.flatnonzero(res.states["1_LIFNeuronTorch"]["spikes"][:, 0, 0]).tolist() == [450, 500, 710, 760]


@pytest.mark.parametrize("name", ["braille_noDelay_bias_zero", "braille_noDelay_noBias_subtract"])
def test_braille_graphs_run_on_rockpool_with_the_reference_spikes(name, fixtures_dir):
    graph = load(fixtures_dir / "03_rnn" / f"{name}.nir")
    inferred = Policy.infer(graph)
    assert inferred.dt == pytest.approx(1e-4)
    policy = Policy.preset("snntorch", dt=inferred.dt, reset="subtract" if "subtract" in name else "to_reset")
    p = nirbridge.plan(graph, "rockpool", policy=policy)
    model = p.build()
    # snnTorch's CubaLIF (Euler current, reset one step late) is no Rockpool module: the policy neuron, named in the report
    assert isinstance(model.module("lif2"), PolicyNeuron) and "PolicyNeuron" in p.report["lif2"].maps_to
    x = (np.random.default_rng(1).random((120, 4, 12)) < 0.3).astype(np.float32)
    record = ["lif1.lif", "lif2"]
    ref = nirbridge.simulate(graph, x, policy=policy, record=record)
    got = model.run(x, record=record)
    cmp = compare(ref, got, graph, record)
    assert all(c.ok and c.spike_diffs == 0 for c in cmp.values()), cmp
    assert all(0 < ref.states[n]["spikes"].mean() < 1 for n in record)
