"""to_nir of Norse's recurrent and linear cells (LIFRecurrentCell, LIFRecurrent, LILinearCell):
the exported graph, run by the NumPy reference under the graph's policy, emits exactly the
spikes of the Norse module and follows its potentials; `from_nir` of that graph does too."""

from __future__ import annotations

import norse.torch as norse
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nirbridge import ir as g
from nirbridge.errors import GapError
from nirbridge.reference import simulate
from nirbridge.semantics import Policy
from nirbridge_norse import NorseBackend, from_nir, simulate_native, to_nir
from nirbridge_torch import run_sequence

F = np.float32


def _t(x):
    return torch.as_tensor(np.asarray(x, dtype=F))


def spikes(seed, shape, rate=0.3):
    return (np.random.default_rng(seed).random(shape) < rate).astype(F)


def weights(seed, shape, lo, hi):
    return _t(np.random.default_rng(seed).uniform(lo, hi, shape))


def step_cell(cell, x):
    """Norse itself: the cell called step by step with its state; (outputs, states)."""
    state, outs, states = None, [], []
    with torch.no_grad():
        for t in range(x.shape[0]):
            out, state = cell(torch.as_tensor(x[t]), state)
            outs.append(out.numpy().copy())
            states.append(state)
    return np.stack(outs), states


def reference(graph, x, record=()):
    return simulate(graph, x, policy=Policy.from_metadata(graph.metadata), record=list(record))


def assert_rate(z, lo=0.03, hi=0.8):
    assert lo < z.mean() < hi, f"firing rate {z.mean():.3f} outside ({lo}, {hi})"


def rec_params(n):
    return norse.LIFParameters(
        tau_syn_inv=_t(np.linspace(200, 500, n)), tau_mem_inv=_t(150.0), v_leak=_t(0.1), v_th=_t(0.45), v_reset=_t(-0.05)
    )


def check_from_nir(graph, x, want_spikes, neuron, want_v=None, v_leak=0.0):
    """from_nir(graph) reproduces the spikes (and potentials) and exports back to graph."""
    model = from_nir(graph)
    assert model.report.ok, model.report
    got = run_sequence(model, x, record=[neuron])
    np.testing.assert_array_equal(got.output, want_spikes)
    if want_v is not None:
        np.testing.assert_allclose(got.states[neuron]["v"] + v_leak, want_v, atol=2e-5, rtol=1e-5)
    assert to_nir(model) == graph


def test_recurrent_cell_with_given_weights_is_exact():
    """LIFRecurrentCell built with input_weights/recurrent_weights (autapses kept), between
    other layers; every spiking layer fires."""
    n_in, hidden = 5, 7
    w_in = weights(1, (hidden, n_in), -0.4, 1.2)
    w_rec = weights(2, (hidden, hidden), -0.9, 0.7)
    rec = norse.LIFRecurrentCell(n_in, hidden, rec_params(hidden), input_weights=w_in, recurrent_weights=w_rec, autapses=True)
    assert torch.count_nonzero(torch.diagonal(rec.recurrent_weights)) > 0
    out = torch.nn.Linear(hidden, 3, bias=False)
    with torch.no_grad():
        out.weight.copy_(weights(3, (3, hidden), -0.2, 0.9))
    model = norse.SequentialState(rec, out, norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=_t(200.0), v_th=_t(0.3))))
    x = spikes(4, (150, 3, n_in))
    graph = to_nir(model, sample=torch.zeros(1, n_in))
    sub = graph.nodes["0"]
    assert isinstance(sub, g.Graph) and sub.nodes["neuron"].type == "CubaLIF"
    np.testing.assert_array_equal(sub.nodes["w_rec"].weight, w_rec.numpy())

    # Norse itself, layer by layer: the recurrent layer's spikes and potentials, then the model
    hidden_spikes, states = step_cell(rec, x)
    norse_v = np.stack([s.v.numpy() for s in states])
    ours = simulate_native(model, x).output
    ref = reference(graph, x, record=["0.neuron", "2"])
    np.testing.assert_array_equal(ref.states["0.neuron"]["spikes"], hidden_spikes)
    np.testing.assert_allclose(ref.states["0.neuron"]["v"] + 0.1, norse_v, atol=2e-5, rtol=1e-5)  # NIR starts at 0, Norse at v_leak
    np.testing.assert_array_equal(ref.output, ours)
    assert_rate(hidden_spikes)
    assert_rate(ours)

    # the recurrence matters: cutting it changes the spikes
    cut = rec_params(hidden)
    plain = norse.LIFRecurrentCell(n_in, hidden, cut, input_weights=w_in, recurrent_weights=torch.zeros(hidden, hidden))
    assert not np.array_equal(step_cell(plain, x)[0], hidden_spikes)

    check_from_nir(graph, x, ours, "0.neuron")


def test_bare_recurrent_cell_default_weights_and_own_dt():
    """A bare LIFRecurrentCell with Norse's random weights (autapses removed) and dt = 5e-4."""
    torch.manual_seed(5)
    n_in, hidden = 4, 6
    p = norse.LIFParameters(tau_syn_inv=_t(250.0), tau_mem_inv=_t(np.linspace(80, 300, hidden)), v_th=_t(0.5), v_reset=_t(0.05))
    cell = norse.LIFRecurrentCell(n_in, hidden, p, dt=5e-4)
    with torch.no_grad():
        cell.input_weights.abs_()  # excitatory drive, so it fires
    assert torch.count_nonzero(torch.diagonal(cell.recurrent_weights)) == 0
    x = spikes(6, (160, 2, n_in), rate=0.25)
    want, states = step_cell(cell, x)
    np.testing.assert_array_equal(simulate_native(cell, x).output, want)  # a bare cell keeps its state
    graph = to_nir(cell, sample=torch.zeros(1, n_in))
    assert Policy.from_metadata(graph.metadata).dt == 5e-4
    name = next(k for k, v in graph.nodes.items() if isinstance(v, g.Graph))
    ref = reference(graph, x, record=[f"{name}.neuron"])
    np.testing.assert_array_equal(ref.output, want)
    assert_rate(want)
    norse_v = np.stack([s.v.numpy() for s in states])
    np.testing.assert_allclose(ref.states[f"{name}.neuron"]["v"], norse_v, atol=2e-5, rtol=1e-5)
    # the current: the reference records I after this step's jump, Norse stores it decayed
    norse_i = np.stack([s.i.numpy() for s in states])
    decay = 1 - 5e-4 * 250.0
    np.testing.assert_allclose(ref.states[f"{name}.neuron"]["I"] * decay, norse_i, atol=2e-5, rtol=1e-5)
    check_from_nir(graph, x, want, f"{name}.neuron", norse_v)


def test_recurrent_sequence_module_is_exact():
    """LIFRecurrent (whole sequences) in a SequentialState with a LIF sequence layer after it."""
    n_in, hidden = 4, 6
    w_in = weights(7, (hidden, n_in), -0.3, 1.0)
    w_rec = weights(8, (hidden, hidden), -0.8, 0.8)
    rec = norse.LIFRecurrent(n_in, hidden, rec_params(hidden), input_weights=w_in, recurrent_weights=w_rec, record_states=True)
    fc = torch.nn.Linear(hidden, 3)
    with torch.no_grad():
        fc.weight.copy_(weights(9, (3, hidden), -0.2, 1.0))
        fc.bias.copy_(weights(10, (3,), -0.05, 0.05))
    model = norse.SequentialState(rec, fc, norse.LIF(norse.LIFParameters(v_th=_t(0.5), tau_syn_inv=_t(300.0))))
    x = spikes(11, (150, 3, n_in))
    graph = to_nir(model, sample=torch.zeros(1, 1, n_in))
    assert [graph.nodes[k].type for k in ("0", "1", "2")] == ["NIRGraph", "Affine", "CubaLIF"]
    with torch.no_grad():
        hidden_spikes, states = rec(torch.as_tensor(x))
    hidden_spikes = hidden_spikes.numpy()
    ours = simulate_native(model, x).output
    ref = reference(graph, x, record=["0.neuron"])
    np.testing.assert_array_equal(ref.states["0.neuron"]["spikes"], hidden_spikes)
    np.testing.assert_allclose(ref.states["0.neuron"]["v"] + 0.1, states.v.numpy(), atol=2e-5, rtol=1e-5)
    np.testing.assert_array_equal(ref.output, ours)
    assert_rate(hidden_spikes)
    assert_rate(ours)
    # the cell and the sequence module export to the same graph
    cell = norse.LIFRecurrentCell(n_in, hidden, rec_params(hidden), input_weights=w_in, recurrent_weights=w_rec)
    assert to_nir(norse.SequentialState(cell, fc), sample=torch.zeros(1, n_in)).nodes["0"] == graph.nodes["0"]
    check_from_nir(graph, x, ours, "0.neuron")


def test_li_linear_cell_is_exact():
    """LILinearCell behind a spiking layer: Linear(input_weights) -> CubaLI, potentials."""
    torch.manual_seed(12)
    lif = norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=_t(250.0), v_th=_t(0.3)))
    front = torch.nn.Linear(4, 5, bias=False)
    with torch.no_grad():
        front.weight.copy_(weights(13, (5, 4), 0.0, 1.0))
    li = norse.LILinearCell(5, 3, norse.LIParameters(tau_syn_inv=_t(np.linspace(150, 400, 3)), tau_mem_inv=_t(120.0)), dt=5e-4)
    lif.dt = 5e-4
    model = norse.SequentialState(front, lif, li)
    x = spikes(14, (150, 3, 4), rate=0.4)
    graph = to_nir(model, sample=torch.zeros(1, 4))
    assert graph.nodes["2"].nodes["neuron"].type == "CubaLI"
    ours = simulate_native(model, x).output
    ref = reference(graph, x, record=["1"])
    lif_spikes = ref.states["1"]["spikes"]
    assert_rate(lif_spikes)
    np.testing.assert_array_equal(lif_spikes, step_cell(lif, step_cell_linear(front, x))[0])
    scale = np.abs(ours).max()
    assert scale > 0.1
    np.testing.assert_allclose(ref.output, ours, atol=1e-5 * scale, rtol=1e-5)
    model_back = from_nir(graph)
    got = run_sequence(model_back, x)
    np.testing.assert_allclose(got.output, ours, atol=1e-5 * scale, rtol=1e-5)
    assert to_nir(model_back) == graph


def step_cell_linear(layer, x):
    with torch.no_grad():
        return layer(torch.as_tensor(x)).numpy()


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    syn=st.floats(100, 800),
    mem=st.floats(50, 400),
    leak=st.floats(-0.3, 0.3),
    th=st.floats(0.2, 0.8),
    reset=st.floats(-0.2, 0.2),
    autapses=st.booleans(),
    dt=st.sampled_from([1e-3, 5e-4]),
)
def test_recurrent_cell_matches_norse_for_any_parameters(seed, syn, mem, leak, th, reset, autapses, dt):
    n_in, hidden = 3, 5
    p = norse.LIFParameters(tau_syn_inv=_t(syn), tau_mem_inv=_t(mem), v_leak=_t(leak), v_th=_t(leak + th), v_reset=_t(leak + reset))
    cell = norse.LIFRecurrentCell(n_in, hidden, p, input_weights=weights(seed, (hidden, n_in), -0.3, 1.5),
                                  recurrent_weights=weights(seed + 1, (hidden, hidden), -1.0, 1.0), autapses=autapses, dt=dt)
    x = spikes(seed + 2, (80, 2, n_in), rate=0.35)
    want, states = step_cell(cell, x)
    assume(0.01 < want.mean() < 0.9)
    graph = to_nir(norse.SequentialState(cell), sample=torch.zeros(1, n_in))
    ref = reference(graph, x, record=["0.neuron"])
    np.testing.assert_array_equal(ref.output, want)
    norse_v = np.stack([s.v.numpy() for s in states])
    np.testing.assert_allclose(ref.states["0.neuron"]["v"] + leak, norse_v, atol=5e-5, rtol=1e-5)
    got = run_sequence(from_nir(graph), x)
    np.testing.assert_array_equal(got.output, want)


@pytest.mark.parametrize("which", ["LIFRecurrentCell", "LIFRecurrent", "LILinearCell"])
def test_multi_dimensional_input_is_refused_with_reason(which):
    """Norse applies the input weights to the last dimension and keeps a state per leading
    index; a NIR Linear cannot say that, so the export refuses instead of mis-mapping."""
    module = {"LIFRecurrentCell": lambda: norse.LIFRecurrentCell(4, 6), "LIFRecurrent": lambda: norse.LIFRecurrent(4, 6),
              "LILinearCell": lambda: norse.LILinearCell(4, 6)}[which]()
    sample = torch.zeros(1, 1, 2, 4) if which == "LIFRecurrent" else torch.zeros(1, 2, 4)
    with torch.no_grad():
        module(sample)  # Norse itself runs it
    with pytest.raises(GapError) as caught:
        to_nir(norse.SequentialState(module), sample=sample)
    bad = caught.value.report.unsupported
    assert [gp.node for gp in bad] == ["0"], str(caught.value.report)
    assert "(2, 4)" in bad[0].reason and "last dimension" in bad[0].reason


def test_other_refusals_name_their_reason():
    with pytest.raises(GapError) as caught:
        to_nir(norse.SequentialState(norse.LILinearCell(3, 2, norse.LIParameters(v_leak=_t(0.2)))), sample=torch.zeros(1, 3))
    assert "v_leak" in caught.value.report["0"].reason
    with pytest.raises(GapError) as caught:  # no leak: NIR's tau would be infinite
        to_nir(norse.SequentialState(norse.LIFRecurrentCell(3, 2, norse.LIFParameters(tau_mem_inv=_t(0.0)))), sample=torch.zeros(1, 3))
    assert "tau_mem_inv must be > 0" in caught.value.report["0"].reason
    with pytest.raises(GapError) as caught:  # Norse's other recurrent cells have no NIR form
        to_nir(norse.SequentialState(norse.LSNNRecurrentCell(3, 2)), sample=torch.zeros(1, 3))
    assert caught.value.report["0"].status == "unsupported"


def test_backend_converts_recurrent_model_both_ways():
    import nirbridge

    rec = norse.LIFRecurrentCell(3, 4, rec_params(4), input_weights=weights(15, (4, 3), 0.0, 1.2),
                                 recurrent_weights=weights(16, (4, 4), -0.6, 0.6))
    model = norse.SequentialState(rec)
    graph = nirbridge.convert(model, to="nir", sample=torch.zeros(1, 3))
    back = nirbridge.convert(graph, to=NorseBackend())
    x = spikes(17, (100, 2, 3), rate=0.4)
    want = simulate_native(model, x).output
    assert_rate(want)
    np.testing.assert_array_equal(run_sequence(back, x).output, want)
