"""to_nir: Norse models as users write them -> NIR graphs that the NumPy reference runs to
the same spikes as Norse itself."""

from __future__ import annotations

import norse.torch as norse
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from norse.torch.functional.reset import reset_subtract

import nirbridge
from nirbridge import ir as g
from nirbridge.errors import GapError
from nirbridge.reference import simulate
from nirbridge.semantics import Policy
from nirbridge_norse import NorseBackend, from_nir, simulate_native, to_nir

F = np.float32


def _t(x):
    return torch.as_tensor(np.asarray(x, dtype=F))


def spikes(seed, shape, rate=0.4, amp=1.0):
    return ((np.random.default_rng(seed).random(shape) < rate) * amp).astype(F)


def norse_vs_reference(model, x, sample, **kw):
    """(Norse's own output, the reference's output of the exported graph, the graph)."""
    graph = to_nir(model, sample=sample, **kw)
    policy = Policy.from_metadata(graph.metadata)
    return simulate_native(model, x).output, simulate(graph, x, policy=policy).output, graph


def assert_same_spikes(a, b, lo=0.01, hi=0.9):
    assert a.shape == b.shape
    np.testing.assert_array_equal(a, b)
    assert lo < a.mean() < hi, f"firing rate {a.mean():.3f} outside ({lo}, {hi})"


def lin(n_in, n_out, seed, lo=-0.2, hi=1.0):
    layer = torch.nn.Linear(n_in, n_out)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        layer.weight.copy_(_t(rng.uniform(lo, hi, (n_out, n_in))))
        layer.bias.copy_(_t(rng.uniform(-0.1, 0.1, n_out)))
    return layer


CELLS = {
    "LIFBoxCell": lambda n: norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=_t(np.linspace(150, 400, n)), v_leak=_t(0.2), v_th=_t(0.6), v_reset=_t(-0.1))),
    "LIFBoxCell-subtract": lambda n: norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=_t(250.0), v_th=_t(0.5), reset_method=reset_subtract)),
    "LIFCell": lambda n: norse.LIFCell(norse.LIFParameters(tau_syn_inv=_t(np.linspace(200, 500, n)), tau_mem_inv=_t(150.0), v_leak=_t(-0.1), v_th=_t(0.25), v_reset=_t(0.05))),
    "IAFCell": lambda n: norse.IAFCell(norse.IAFParameters(v_th=_t(np.linspace(1.0, 2.0, n)), v_reset=_t(0.3))),
}


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_each_spiking_cell_exports_to_the_same_spikes(cell):
    torch.manual_seed(0)
    model = norse.SequentialState(lin(4, 6, 1), CELLS[cell](6), lin(6, 5, 2), norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=_t(300.0), v_th=_t(0.3))))
    x = spikes(3, (150, 3, 4), amp=2.0)
    ours, ref, graph = norse_vs_reference(model, x, torch.zeros(1, 4))
    assert_same_spikes(ours, ref)
    # the hidden layer fires too
    hidden = simulate(graph, x, policy=Policy.from_metadata(graph.metadata), record=["1"]).states["1"]["spikes"]
    assert 0.01 < hidden.mean() < 0.9


def test_parameter_mapping_and_policy():
    p = norse.LIFParameters(tau_syn_inv=_t([200.0, 400.0]), tau_mem_inv=_t(100.0), v_leak=_t(0.5), v_th=_t(1.0), v_reset=_t(0.25))
    model = norse.SequentialState(torch.nn.Linear(3, 2), norse.LIFCell(p, dt=5e-4), torch.nn.Linear(2, 2),
                                  norse.LIFBoxCell(norse.LIFBoxParameters(reset_method=reset_subtract), dt=5e-4))
    graph = to_nir(model, sample=torch.zeros(1, 3))
    cuba, lif = graph.nodes["1"], graph.nodes["3"]
    np.testing.assert_allclose(cuba.tau_syn, [1 / 200, 1 / 400], rtol=1e-7)
    np.testing.assert_allclose(cuba.tau_mem, [0.01, 0.01], rtol=1e-7)
    np.testing.assert_array_equal(cuba.r, [1, 1])
    np.testing.assert_array_equal(cuba.w_in, [1, 1])
    np.testing.assert_allclose(cuba.v_threshold, [0.5, 0.5])  # shifted by v_leak: Norse starts at v_leak
    np.testing.assert_allclose(cuba.v_reset, [-0.25, -0.25])
    np.testing.assert_array_equal(cuba.v_leak, [0, 0])
    assert lif.type == "LIF"  # LIFBoxParameters defaults: tau_mem_inv 100, v_th 1
    np.testing.assert_allclose(lif.tau, [0.01, 0.01], rtol=1e-7)
    np.testing.assert_array_equal(lif.r, [1, 1])
    np.testing.assert_allclose(lif.v_threshold, [1, 1])
    policy = Policy.from_metadata(graph.metadata)
    assert policy.dt == 5e-4
    assert policy.for_node("1", "CubaLIF").input == "impulse"
    assert policy.for_node("3", "LIF").reset == "subtract"
    assert policy.for_node("1", "CubaLIF").reset == "to_reset"


def test_cells_with_another_dt_are_rescaled():
    fast = norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=_t(200.0), v_th=_t(0.4)), dt=1e-3)
    slow = norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=_t(200.0), v_th=_t(0.4)), dt=5e-4)
    model = norse.SequentialState(lin(3, 4, 5), fast, lin(4, 4, 6), slow)
    x = spikes(7, (120, 2, 3), amp=3.0)
    ours, ref, graph = norse_vs_reference(model, x, torch.zeros(1, 3))
    assert graph.nodes["3"].tau[0] == pytest.approx(1e-2)  # 1/200 s at dt 5e-4 = 1e-2 s at dt 1e-3
    assert_same_spikes(ours, ref)


def test_li_and_recurrent_cells():
    torch.manual_seed(1)
    rec = norse.LIFRecurrentCell(4, 6, norse.LIFParameters(v_th=_t(0.3), tau_syn_inv=_t(300.0)))
    with torch.no_grad():
        rec.input_weights.copy_(_t(np.random.default_rng(8).uniform(-0.6, 0.9, (6, 4))))
        rec.recurrent_weights.copy_(_t(np.random.default_rng(9).uniform(-0.8, 0.8, (6, 6))) * (1 - torch.eye(6)))
    model = norse.SequentialState(rec, lin(6, 3, 10), norse.LICell(norse.LIParameters(tau_mem_inv=_t(300.0))))
    x = spikes(11, (100, 2, 4), rate=0.3, amp=1.0)
    ours, ref, graph = norse_vs_reference(model, x, torch.zeros(1, 4))
    assert isinstance(graph.nodes["0"], g.Graph)
    assert ("neuron", "w_rec") in graph.nodes["0"].edges and ("w_rec", "neuron") in graph.nodes["0"].edges
    assert graph.nodes["2"].type == "CubaLI"
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    policy = Policy.from_metadata(graph.metadata)
    inner = simulate(graph, x, policy=policy, record=["0.neuron"]).states["0.neuron"]["spikes"]
    assert 0.01 < inner.mean() < 0.9
    # the recurrent edge matters: without it the spikes differ
    no_rec = g.Graph(nodes=dict(graph.nodes) | {"0": graph.nodes["0"].model_copy(update={"nodes": dict(graph.nodes["0"].nodes) | {"w_rec": g.Linear(weight=np.zeros((6, 6), F))}})}, edges=graph.edges)
    assert not np.array_equal(simulate(no_rec, x, policy=policy, record=["0.neuron"]).states["0.neuron"]["spikes"], inner)


def test_time_sequence_modules_and_lift():
    torch.manual_seed(2)
    conv = torch.nn.Conv2d(2, 3, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(_t(np.random.default_rng(12).uniform(-0.1, 0.5, (3, 2, 3, 3))))
    model = norse.SequentialState(
        norse.Lift(conv), norse.LIF(norse.LIFParameters(v_th=_t(0.3))), norse.Lift(torch.nn.AvgPool2d(2)),
        torch.nn.Flatten(2), lin(3 * 3 * 3, 4, 13, -0.5, 0.5), norse.IAF(norse.IAFParameters(v_th=_t(2.0))),
    )
    x = spikes(14, (80, 2, 2, 6, 6), amp=1.0)
    ours, ref, graph = norse_vs_reference(model, x, torch.zeros(1, 1, 2, 6, 6))
    assert [graph.nodes[k].type for k in ("0", "1", "2", "3", "4", "5")] == ["Conv2d", "CubaLIF", "AvgPool2d", "Flatten", "Affine", "IF"]
    assert_same_spikes(ours, ref)


def test_maxpool_after_spikes_is_rewritten_and_lppool_is_sumpool():
    conv = torch.nn.Conv2d(1, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(_t(np.random.default_rng(15).uniform(0, 0.6, (2, 1, 3, 3))))
    model = norse.SequentialState(conv, norse.LIFBoxCell(norse.LIFBoxParameters(v_th=_t(0.3))), torch.nn.MaxPool2d(2),
                                  torch.nn.LPPool2d(1, 2), torch.nn.Flatten(), lin(8, 2, 16, -0.2, 0.6), norse.LIFBoxCell())
    x = spikes(17, (100, 3, 1, 8, 8), amp=2.0)
    ours, ref, graph = norse_vs_reference(model, x, torch.zeros(1, 1, 8, 8))
    assert graph.nodes["2"].type == "Threshold" and graph.nodes["2_sum"].type == "SumPool2d"
    assert graph.nodes["3"].type == "SumPool2d"
    assert_same_spikes(ours, ref)


def test_custom_module_looping_over_time_with_view():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(2, 2, 3)
            self.lif = norse.LIFBoxCell(norse.LIFBoxParameters(v_th=_t(0.2)))
            self.fc = lin(2 * 4, 3, 18, -0.5, 0.5)
            self.out = norse.LIFCell(norse.LIFParameters(v_th=_t(0.5)))

        def forward(self, x):
            s1 = s2 = None
            outs = []
            for t in range(x.shape[0]):
                z, s1 = self.lif(self.conv(x[t]), s1)
                z, s2 = self.out(self.fc(z.view(z.shape[0], -1)), s2)
                outs.append(z)
            return torch.stack(outs)

    net = Net()
    with torch.no_grad():
        net.conv.weight.copy_(_t(np.random.default_rng(19).uniform(0, 0.8, (2, 2, 3))))
    x = spikes(20, (100, 2, 2, 6), rate=0.3, amp=1.0)
    graph = to_nir(net, sample=torch.as_tensor(x[:3]))
    assert [n.type for n in graph.nodes.values()] == ["Input", "Conv1d", "LIF", "Flatten", "Affine", "CubaLIF", "Output"]
    with torch.no_grad():
        ours = net(torch.as_tensor(x)).numpy()
    ref = simulate(graph, x, policy=Policy.from_metadata(graph.metadata)).output
    assert_same_spikes(ours, ref)


def test_unsupported_modules_are_all_reported_at_once():
    model = norse.SequentialState(
        torch.nn.Linear(4, 4), norse.LSNNCell(), torch.nn.ReLU(), torch.nn.Linear(4, 4),
        torch.nn.Unflatten(1, (1, 2, 2)), torch.nn.MaxPool2d(2), torch.nn.LPPool2d(2, 1),
        torch.nn.Flatten(), torch.nn.Linear(1, 1), norse.LIFBoxCell(norse.LIFBoxParameters(reset_method=lambda z, v, r, th: v)),
    )
    with pytest.raises(GapError) as caught:
        to_nir(model, sample=torch.zeros(1, 4))
    report = caught.value.report
    bad = {gp.node: gp.reason for gp in report.unsupported}
    assert {"1", "2", "4", "5", "6", "9"} <= set(bad), str(report)
    assert "not binary" in bad["5"] or "binary" in bad["5"]
    assert "p=2" in bad["6"]
    assert "reset_method" in bad["9"]
    assert report["0"].status == "exact"


@pytest.mark.parametrize("cell,kind", [(lambda: norse.LIBoxCell(norse.LIBoxParameters(v_leak=_t(0.5))), "LI"),
                                       (lambda: norse.LICell(norse.LIParameters(v_leak=_t(0.5))), "CubaLI")])
def test_li_with_leak_starts_at_v_leak_and_matches_norse(cell, kind):
    """A leaky integrator's output is v itself, which Norse starts at v_leak: the export keeps
    v_leak and says so with the override initial_v="v_leak"; every backend then gives Norse's values."""
    model = norse.SequentialState(lin(3, 4, 5), cell())
    x = spikes(3, (40, 2, 3), amp=2.0)
    ours, ref, graph = norse_vs_reference(model, x, torch.zeros(1, 3))
    assert graph.nodes["1"].type == kind and Policy.from_metadata(graph.metadata).for_node("1", kind).initial_v == "v_leak"
    assert ours[0].min() > 0.4  # the first step starts near v_leak, not at 0
    np.testing.assert_allclose(ref, ours, rtol=1e-5, atol=1e-6)
    for backend in ("snntorch", "norse"):
        got = nirbridge.convert(graph, to=backend).run(x).output
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), leak=st.floats(-0.3, 0.3), th=st.floats(0.2, 1.0), inv=st.floats(50, 800), subtract=st.booleans())
def test_exported_lifbox_matches_norse(seed, leak, th, inv, subtract):
    """Value reset: the potential is shifted by v_leak; reset_subtract: it keeps v_leak and
    starts at it (the shift would change the subtracted threshold)."""
    params = norse.LIFBoxParameters(tau_mem_inv=_t(inv), v_leak=_t(leak), v_th=_t(th + max(leak, 0)), reset_method=reset_subtract if subtract else norse.LIFBoxParameters().reset_method)
    model = norse.SequentialState(lin(3, 4, seed % 1000), norse.LIFBoxCell(params))
    x = spikes(seed, (60, 2, 3), amp=2.0)
    ours, ref, _ = norse_vs_reference(model, x, torch.zeros(1, 3))
    assume(0 < ours.mean() < 1)
    np.testing.assert_array_equal(ours, ref)


def test_round_trip_of_exported_graph_and_backend_export():
    model = norse.SequentialState(lin(3, 4, 21), norse.LIFCell(), lin(4, 2, 22), norse.LIFBoxCell(norse.LIFBoxParameters(reset_method=reset_subtract)))
    graph = to_nir(model, sample=torch.zeros(1, 3))
    imported = from_nir(graph)
    assert to_nir(imported) == graph
    backend = NorseBackend()
    assert backend.accepts(model) and backend.accepts(imported) and not backend.accepts(torch.nn.Linear(2, 2))
    # trained weights travel back
    with torch.no_grad():
        imported.module("0").weight.mul_(2)
    again = to_nir(imported)
    np.testing.assert_array_equal(again.nodes["0"].weight, graph.nodes["0"].weight * 2)


def test_registered_as_plugin():
    from nirbridge.backends.registry import get_backend

    assert get_backend("norse").name == "norse"
