"""The reference simulator against outside truth: the NIR paper's own graphs and traces
(`../shared/fixtures/nir-paper`, see its README). Skipped when the folder is absent."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from nirbridge.ir import Graph
from nirbridge.reference import simulate
from nirbridge.semantics import Policy

PAPER_SPIKES = [460, 510, 710, 760]  # lif_exact.csv, Norse, Nengo, snnTorch, SpiNNaker2


def _graph(path) -> Graph:
    return Graph.from_nir(nir.read(str(path)))


def _csv(path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",")  # rows: steps; columns: input, voltage, spike


@pytest.fixture(scope="module")
def lif(fixtures_dir):
    folder = fixtures_dir / "01_lif"
    return _graph(folder / "lif_norse.nir"), _csv(folder / "lif_exact.csv"), _csv(folder / "lif_norse.csv")


def test_norse_trace_records_input_at_its_own_step_and_voltage_after_reset(lif):
    """What the CSV itself says (read, not assumed): the input of row k acts at step k
    (row 60 holds the first input and already v = dt/tau = 0.04), and v is recorded after
    the reset (0 on every spike row)."""
    _, exact, norse = lif
    np.testing.assert_array_equal(norse[:, 0], exact[:, 0])  # same input in every file
    assert np.flatnonzero(norse[:, 0])[0] == 60 and norse[59, 1] == 0
    assert norse[60, 1] == pytest.approx(1e-4 / 2.5e-3, rel=1e-6)
    assert list(np.flatnonzero(norse[:, 2])) == PAPER_SPIKES
    np.testing.assert_array_equal(norse[PAPER_SPIKES, 1], 0)


@pytest.mark.parametrize("chunk_steps", [None, 1, 7])
def test_lif_norse_graph_reproduces_the_paper_under_the_norse_preset(lif, chunk_steps):
    graph, exact, norse = lif
    x = exact[:, :1].reshape(-1, 1, 1)
    result = simulate(graph, x, policy=Policy.preset("norse", dt=1e-4), record=["1"], chunk_steps=chunk_steps)
    spikes = result.states["1"]["spikes"][:, 0, 0]
    v = result.states["1"]["v"][:, 0, 0]
    assert list(np.flatnonzero(spikes)) == PAPER_SPIKES
    np.testing.assert_array_equal(spikes, norse[:, 2])
    np.testing.assert_array_equal(result.output[:, 0, 0], spikes)
    assert v.dtype == np.float32
    np.testing.assert_allclose(v, norse[:, 1], rtol=1e-5, atol=1e-6)  # float32 tolerance of DESIGN.md
    assert np.abs(v - norse[:, 1]).max() < 1e-7  # measured: 4.8e-8, the CSV's own float32 rounding


def test_lif_exact_integration_matches_the_exact_solution_until_its_first_spike(lif):
    """Under `exact` integration (the `nir` preset) the trace equals the paper's exact solution
    to 1e-12 up to the first spike and spikes at the same steps. After a spike the exact
    solution resets at the crossing time inside the step and integrates the rest of it
    (v = 0.0062 on row 460), which a step-level reset does not do."""
    graph, exact, _ = lif
    x = exact[:, :1].reshape(-1, 1, 1)
    result = simulate(graph, x, policy=Policy.preset("nir", dt=1e-4), record=["1"], dtype=np.float64)
    spikes = result.states["1"]["spikes"][:, 0, 0]
    v = result.states["1"]["v"][:, 0, 0]
    assert list(np.flatnonzero(spikes)) == PAPER_SPIKES
    np.testing.assert_allclose(v[:460], exact[:460, 1], rtol=1e-9, atol=1e-12)


def test_cnn_sinabs_runs_on_event_frames_and_every_if_layer_fires(fixtures_dir):
    graph = _graph(fixtures_dir / "02_cnn" / "cnn_sinabs.nir")
    layers = [name for name, node in graph.nodes.items() if node.type == "IF"]
    assert len(layers) == 5
    rng = np.random.default_rng(0)
    frames = (rng.random((20, 2, 2, 34, 34)) < 0.1).astype(np.float32)  # (time, batch, 2, 34, 34) events
    result = simulate(graph, frames, policy=Policy.preset("sinabs"), record=layers)
    assert result.output.shape == (20, 2, 10)
    for name in layers:
        spikes = result.states[name]["spikes"]  # counts: Sinabs' MultiSpike (spikes="multi")
        assert spikes.min() >= 0 and np.array_equal(spikes, np.trunc(spikes))
        rate = np.mean(spikes > 0)
        assert 0.005 < rate < 0.5, f"IF layer {name} fires at rate {rate}"
    last = next(src for src, dst in graph.edges if dst == "output")
    np.testing.assert_array_equal(result.output, result.states[last]["spikes"])


@pytest.mark.parametrize("name", ["braille_noDelay_bias_zero.nir", "braille_noDelay_noBias_subtract.nir"])
def test_braille_recurrent_graphs_run_under_the_nir_paper_preset(fixtures_dir, name):
    """Recurrent CubaLIF with dotted node names (`lif1.lif`, `lif1.w_rec`): both layers fire."""
    graph = _graph(fixtures_dir / "03_rnn" / name)
    rng = np.random.default_rng(1)
    x = (rng.random((100, 4, 12)) < 0.3).astype(np.float32)
    result = simulate(graph, x, policy=Policy.preset("nir-paper"), record=["lif1.lif", "lif2"])
    assert result.output.shape == (100, 4, 7)
    for layer in ("lif1.lif", "lif2"):
        rate = result.states[layer]["spikes"].mean()
        assert 0.001 < rate < 0.6, f"{layer} fires at rate {rate}"
