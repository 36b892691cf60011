"""The NIR paper's Braille graphs (../shared/fixtures/nir-paper/03_rnn: recurrent CubaLIF with
dotted names, r = tau_mem/dt) on Spyx at the dt inferred from their parameters: spikes identical
to the reference, under the paper's reference semantics and under Spyx's own."""

import numpy as np
import pytest

import nirbridge
from nirbridge import Policy
from nirbridge.compare import compare
from nirbridge.conversion import run
from nirbridge_spyx import SpyxBackend


@pytest.mark.parametrize("name", ["braille_noDelay_bias_zero", "braille_noDelay_noBias_subtract"])
@pytest.mark.parametrize("preset", ["nir-paper", "spyx"])
def test_braille_graphs_agree_at_inferred_dt(fixtures_dir, name, preset):
    path = fixtures_dir / "03_rnn" / f"{name}.nir"
    if not path.exists():
        pytest.skip("NIR paper fixtures (shared/fixtures/nir-paper) not present")
    graph = nirbridge.load(path)
    inferred = Policy.infer(graph)
    assert inferred.dt == pytest.approx(1e-4)
    reset = "subtract" if "subtract" in name else "to_reset"
    policy = Policy.preset(preset, dt=inferred.dt, reset=reset)
    if preset == "spyx":  # the paper's graphs give w_in and r for a current input
        policy = policy.model_copy(update={"input": "current"})
    model = nirbridge.convert(graph, to="spyx", policy=policy)
    x = (np.random.default_rng(1).random((120, 4, 12)) < 0.3).astype(np.float32)
    record = ["lif1.lif", "lif2"]
    ref = nirbridge.simulate(graph, x, policy=policy, record=record)
    got = run(SpyxBackend(), model, x, record=tuple(record))
    cmp = compare(ref, got, graph, record)
    assert all(c.spike_diffs == 0 and not c.missing for c in cmp.values()), cmp
    for layer in record:
        assert 0 < ref.states[layer]["spikes"].mean() < 0.9, layer
        # potentials: XLA's matrix product sums in another order than the reference's BLAS
        # (the recurrent layer's v reaches |v| ~ 10): last-bit differences, no spike changed
        v_ref, v_got = ref.states[layer]["v"], got.states[layer]["v"]
        assert np.abs(v_got - v_ref).max() <= 1e-5 * max(1.0, float(np.abs(v_ref).max())), layer
