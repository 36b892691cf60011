"""The NIR paper's published graphs (../shared/fixtures/nir-paper), imported into Norse."""

from __future__ import annotations

import numpy as np
import pytest

from nirbridge.compare import compare
from nirbridge.reference import simulate
from nirbridge.semantics import Policy
from nirbridge_norse import from_nir
from nirbridge_torch import run_sequence


@pytest.fixture
def load(fixtures_dir):
    """Load a graph of the NIR paper fixtures by its path inside the folder."""
    from nirbridge.io import load as nb_load

    return lambda rel: nb_load(fixtures_dir / rel)


def test_lif_norse_reproduces_published_spike_steps(load, fixtures_dir):
    graph = load("01_lif/lif_norse.nir")
    table = np.loadtxt(fixtures_dir / "01_lif/lif_norse.csv", delimiter=",")
    x = table[:, 0].astype(np.float32)[:, None, None]
    policy = Policy.preset("norse", dt=1e-4)
    model = from_nir(graph, policy=policy)
    assert model.report.ok
    out = run_sequence(model, x, record=("1",))
    steps = np.nonzero(out.output[:, 0, 0])[0].tolist()
    assert steps == [460, 510, 710, 760]
    assert steps == np.nonzero(table[:, 2])[0].tolist()
    np.testing.assert_allclose(out.states["1"]["v"][:, 0, 0], table[:, 1], atol=1e-5)


def test_sinabs_cnn_agrees_with_reference(load):
    graph = load("02_cnn/cnn_sinabs.nir")
    policy = Policy.preset("sinabs")
    model = from_nir(graph, policy=policy)
    spiking = [n for n, node in graph.nodes.items() if node.type == "IF"]
    x = (np.random.default_rng(0).random((12, 2, 2, 34, 34)) < 0.3).astype(np.float32)
    ref = simulate(graph, x, policy=policy, record=spiking)
    got = run_sequence(model, x, record=tuple(spiking))
    cmp = compare(ref, got, graph, spiking)
    # spikes identical in every layer; potentials differ only by the summation order of the
    # convolutions (torch vs NumPy), a few float32 ulps of the pre-activation sums
    assert all(c.spike_diffs == 0 for c in cmp.values()), cmp
    assert max(c.max_dv or 0 for c in cmp.values()) < 1e-4, cmp
    rates = {n: float(ref.states[n]["spikes"].mean()) for n in spiking}
    assert all(r > 0 for r in rates.values()), rates


@pytest.mark.parametrize("name", ["braille_noDelay_bias_zero", "braille_noDelay_noBias_subtract"])
def test_braille_graphs_agree_at_inferred_dt(name, load):
    graph = load(f"03_rnn/{name}.nir")
    inferred = Policy.infer(graph)
    assert inferred.dt == pytest.approx(1e-4)
    reset = "subtract" if "subtract" in name else "to_reset"
    policy = Policy.preset("snntorch", dt=inferred.dt, reset=reset)
    model = from_nir(graph, policy=policy)
    x = (np.random.default_rng(1).random((120, 4, 12)) < 0.3).astype(np.float32)
    record = ["lif1.lif", "lif2"]
    ref = simulate(graph, x, policy=policy, record=record)
    got = run_sequence(model, x, record=tuple(record))
    cmp = compare(ref, got, graph, record)
    assert all(c.ok for c in cmp.values()), cmp
    assert all(c.spike_diffs == 0 for c in cmp.values()), cmp
    assert 0 < ref.states["lif1.lif"]["spikes"].mean() < 1
