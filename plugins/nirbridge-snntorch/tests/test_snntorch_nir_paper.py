"""The NIR paper's Braille RNN graphs (trained in snnTorch) import and agree spike for spike
with the NumPy reference at the dt `Policy.infer` finds (`fixtures_dir`: the root conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
import snntorch as snn
from snn_support import assert_fires, assert_matches

from nirbridge.io import load
from nirbridge.reference import simulate
from nirbridge.semantics import Policy
from nirbridge_snntorch import from_nir, graph_of

CASES = {
    # file: (reset the graph was trained with, snnTorch class of the recurrent layer after import)
    "braille_noDelay_bias_zero.nir": ("to_reset", snn.Synaptic),  # Affine recurrence with bias: kept as a node
    "braille_noDelay_noBias_subtract.nir": ("subtract", snn.RSynaptic),
}


@pytest.mark.parametrize("name", list(CASES))
def test_braille_graph_imports_spike_exact(name, fixtures_dir):
    path = fixtures_dir / "03_rnn" / name
    reset, recurrent_cls = CASES[name]
    graph = load(path)
    inferred = Policy.infer(graph)
    assert inferred.dt == pytest.approx(1e-4) and inferred.confidence == "high"
    policy = Policy.preset("snntorch", dt=inferred.dt, reset=reset)
    model = from_nir(graph, policy=policy)
    assert type(model.module("lif1.lif").neuron) is recurrent_cls
    assert type(model.module("lif2").neuron) is snn.Synaptic
    x = (np.random.default_rng(0).uniform(0, 1, (100, 4, 12)) < 0.2).astype(np.float32)
    record = ["lif1.lif", "lif2"]
    ref = simulate(graph, x, policy=policy, record=record)
    for node in record:
        assert_fires(ref.states[node]["spikes"], lo=0.002, what=node)
    cmp = assert_matches(ref, model.run(x, record=record), graph, record)
    assert all(c.spike_diffs == 0 for c in cmp.values())
    assert graph_of(model) == graph
