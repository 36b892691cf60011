"""from_nir: Norse models of NIR graphs against the NumPy reference, spike for spike."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nirbridge import ir as g
from nirbridge.compare import compare
from nirbridge.errors import GapError
from nirbridge.reference import simulate
from nirbridge.semantics import Policy
from nirbridge_norse import NativeCell, from_nir
from nirbridge_norse.build import probe_input
from nirbridge_torch import run_sequence
from nirbridge_torch.cells import PolicyNeuron

F = np.float32
NEURONS = ("I", "IF", "LI", "LIF", "CubaLI", "CubaLIF")
SPIKING = ("IF", "LIF", "CubaLIF")
PRESETS = ("norse", "snntorch", "nir", "sinabs", "nir-paper")


def neuron(kind: str, n: int, policy: Policy, rng: np.random.Generator, *, gain=(0.3, 0.9), leak=0.0) -> g.Node:
    """A neuron whose per-step input gain is in `gain` (r = gain tau/dt for `current` input,
    r = gain for `impulse`), thresholds 0.5-1.5."""
    u = lambda lo, hi: rng.uniform(lo, hi, n).astype(F)  # noqa: E731
    dt = policy.dt
    if policy.for_node("n", kind).input == "impulse":
        dt = 1.0  # the gains below then come out as r = gain, w_in = tau_syn (~1)
    beta, alpha, k = u(0.6, 0.95), u(0.3, 0.8), u(*gain)
    tau, tau_syn = (policy.dt / (1 - beta)).astype(F), (policy.dt / (1 - alpha)).astype(F)
    if dt == 1.0:
        return _impulse(kind, tau, tau_syn, k, u(0.5, 1.5), u(-0.2, 0.2), u(-leak, leak))
    th, reset, v_leak = u(0.5, 1.5), u(-0.2, 0.2), u(-leak, leak)
    if kind == "I":
        return g.I(r=(k / dt).astype(F))
    if kind == "IF":
        return g.IF(r=(k / dt).astype(F), v_threshold=th, v_reset=reset)
    if kind == "LI":
        return g.LI(tau=tau, r=(k * tau / dt).astype(F), v_leak=v_leak)
    if kind == "LIF":
        return g.LIF(tau=tau, r=(k * tau / dt).astype(F), v_leak=v_leak, v_threshold=th, v_reset=reset)
    common = dict(tau_syn=tau_syn, tau_mem=tau, r=(k * tau / dt).astype(F), v_leak=v_leak, w_in=(tau_syn / dt).astype(F))
    if kind == "CubaLI":
        return g.CubaLI(**common)
    return g.CubaLIF(**common, v_threshold=th, v_reset=reset)


def _impulse(kind, tau, tau_syn, k, th, reset, v_leak):
    if kind == "I":
        return g.I(r=k)
    if kind == "IF":
        return g.IF(r=k, v_threshold=th, v_reset=reset)
    if kind in ("LI", "LIF"):
        common = dict(tau=tau, r=k, v_leak=v_leak)
        return g.LI(**common) if kind == "LI" else g.LIF(**common, v_threshold=th, v_reset=reset)
    common = dict(tau_syn=tau_syn, tau_mem=tau, r=k, v_leak=v_leak, w_in=np.ones_like(k))
    return g.CubaLI(**common) if kind == "CubaLI" else g.CubaLIF(**common, v_threshold=th, v_reset=reset)


def chain(node: g.Node, n_in: int, n: int, rng) -> g.Graph:
    """input -> Linear -> node. The weights are multiples of 1/16, so on spike inputs every
    sum of the Linear layer is exact in any summation order: torch and NumPy feed the neuron
    the same bits, and an exact cell can be compared bit for bit."""
    w = (rng.integers(-6, 17, (n, n_in)) / 16).astype(F)
    return g.Graph(
        nodes={"input": g.Input(shape=np.array([n_in])), "fc": g.Linear(weight=w), "n": node, "output": g.Output(shape=np.array([n]))},
        edges=[("input", "fc"), ("fc", "n"), ("n", "output")],
    )


def run_both(graph: g.Graph, policy: Policy, x: np.ndarray, *, native_only=False, record=("n",)):
    model = from_nir(graph, policy=policy, native_only=native_only)
    ref = simulate(graph, x, policy=policy, record=list(record))
    got = run_sequence(model, x, record=record)
    return model, ref, got, compare(ref, got, graph, list(record))


def spikes_in(rng, steps, batch, n, rate):
    return (rng.random((steps, batch, n)) < rate).astype(F)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(NEURONS),
    preset=st.sampled_from(PRESETS),
    seed=st.integers(0, 2**32 - 1),
    rate=st.floats(0.1, 0.7),
    leak=st.sampled_from([0.0, 0.3]),
    dt=st.sampled_from([None, 1e-4, 5e-3]),
)
def test_every_neuron_matches_reference_under_every_preset(kind, preset, seed, rate, leak, dt):
    rng = np.random.default_rng(seed)
    policy = Policy.preset(preset) if dt is None else Policy.preset(preset, dt=dt)
    graph = chain(neuron(kind, 4, policy, rng, leak=leak), 3, 4, rng)
    x = spikes_in(rng, 40, 2, 3, rate)
    model, ref, got, cmp = run_both(graph, policy, x)
    if kind in SPIKING:
        assume(0 < ref.states["n"]["spikes"].mean() < 1)
    c = cmp["n"]
    assert c.ok, (c, model.report)
    cell = model.module("n")
    if isinstance(cell, PolicyNeuron):  # the exact cell follows the reference operation by operation
        assert c.identical, c
    else:
        assert isinstance(cell, NativeCell)
        assert c.spike_diffs == c.near_threshold


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("kind", SPIKING)
def test_spiking_layers_fire_and_agree(kind, preset):
    rng = np.random.default_rng(7)
    policy = Policy.preset(preset)
    graph = chain(neuron(kind, 6, policy, rng), 4, 6, rng)
    x = spikes_in(rng, 100, 3, 4, 0.4)
    _, ref, got, cmp = run_both(graph, policy, x)
    rate = ref.states["n"]["spikes"].mean()
    assert 0.02 < rate < 0.8, rate
    np.testing.assert_array_equal(got.states["n"]["spikes"], ref.states["n"]["spikes"])
    assert cmp["n"].ok, cmp["n"]


def test_norse_preset_uses_stock_cells_and_snntorch_preset_exact_cells():
    rng = np.random.default_rng(1)
    for kind, cls in (("LIF", "LIFBoxCell"), ("IF", "IAFCell"), ("LI", "LIBoxCell"), ("CubaLIF", "LIFCell"), ("CubaLI", "LICell")):
        graph = chain(neuron(kind, 3, Policy.preset("norse"), rng), 2, 3, rng)
        cell = from_nir(graph, policy=Policy.preset("norse")).module("n")
        assert type(cell.cell).__name__ == cls
        exact = from_nir(graph, policy=Policy.preset("snntorch")).module("n")
        assert isinstance(exact, PolicyNeuron) == (kind in SPIKING), kind


def test_r_and_w_in_are_honoured():
    """r scales the drive exactly: r = 2 with half the weights is the same network."""
    rng = np.random.default_rng(3)
    policy = Policy.preset("norse")
    node = neuron("CubaLIF", 5, policy, rng)
    a = chain(node, 3, 5, np.random.default_rng(0))
    doubled = node.model_copy(update={"r": node.r * 2, "w_in": node.w_in * 1})
    halved_w = a.nodes["fc"].weight / 2
    b = g.Graph(nodes=dict(a.nodes) | {"n": doubled, "fc": g.Linear(weight=halved_w)}, edges=a.edges)
    x = spikes_in(rng, 80, 2, 3, 0.5)
    ya = run_sequence(from_nir(a, policy=policy), x).output
    yb = run_sequence(from_nir(b, policy=policy), x).output
    assert 0 < ya.mean() < 1
    np.testing.assert_array_equal(ya, yb)
    assert from_nir(b, policy=policy).module("n").scale is not None  # the gain is an explicit Scale


def test_li_and_cubali_are_never_dropped():
    rng = np.random.default_rng(4)
    for kind in ("LI", "CubaLI"):
        graph = chain(neuron(kind, 3, Policy.preset("norse"), rng), 2, 3, rng)
        model = from_nir(graph, policy=Policy.preset("norse"))
        assert "n" in [model.names[k] for k in model.node_modules.keys()]
        x = spikes_in(rng, 30, 1, 2, 0.5)
        out = run_sequence(model, x).output
        ref = simulate(graph, x, policy=Policy.preset("norse")).output
        assert np.abs(out).max() > 0
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_step_by_step_equals_sequence_and_reset_restarts():
    rng = np.random.default_rng(5)
    policy = Policy.preset("snntorch")
    graph = chain(neuron("CubaLIF", 4, policy, rng), 3, 4, rng)
    model = from_nir(graph, policy=policy)
    x = spikes_in(rng, 30, 2, 3, 0.5)
    whole = run_sequence(model, x).output
    model.reset()
    steps = torch.stack([model(torch.as_tensor(x[t])) for t in range(len(x))]).detach().numpy()
    np.testing.assert_array_equal(steps, whole)
    model.reset()
    again = torch.stack([model(torch.as_tensor(x[t])) for t in range(len(x))]).detach().numpy()
    np.testing.assert_array_equal(again, whole)
    assert 0 < whole.mean() < 1


def test_native_only_reports_measured_approximation():
    rng = np.random.default_rng(6)
    policy = Policy.preset("snntorch")
    graph = chain(neuron("LIF", 8, policy, rng), 4, 8, rng)
    model = from_nir(graph, policy=policy, native_only=True)
    gap = model.report["n"]
    assert gap.status == "approximate"
    assert "reset_timing" in gap.reason and "reset 'subtract'" not in gap.reason  # LIFBox can subtract
    assert gap.measured is not None and 0 < gap.measured < 1
    assert type(model.module("n").cell).__name__ == "LIFBoxCell"
    # the measured fraction is what running both gives
    x = probe_input(graph)
    a = run_sequence(model, x, record=("n",)).states["n"]["spikes"]
    b = simulate(graph, x, policy=policy, record=["n"]).states["n"]["spikes"]
    assert gap.measured == pytest.approx(float(np.mean(a != b)))


def test_native_only_under_norse_preset_is_exact():
    rng = np.random.default_rng(8)
    graph = chain(neuron("CubaLIF", 4, Policy.preset("norse"), rng), 3, 4, rng)
    model = from_nir(graph, policy=Policy.preset("norse"), native_only=True)
    assert model.report.ok


def test_native_only_refuses_integrator_and_lists_all():
    rng = np.random.default_rng(9)
    nodes = {"input": g.Input(shape=np.array([2])), "a": neuron("I", 2, Policy.preset("norse"), rng), "b": g.Delay(delay=np.full(2, 1.5e-3, F)),
             "output": g.Output(shape=np.array([2]))}
    graph = g.Graph(nodes=nodes, edges=[("input", "a"), ("a", "b"), ("b", "output")])
    with pytest.raises(GapError) as caught:
        from_nir(graph, policy=Policy.preset("norse"), native_only=True)
    assert {gp.node for gp in caught.value.report.unsupported} == {"a", "b"}
    assert "dt" in caught.value.report["b"].reason


def test_policy_from_metadata_is_default():
    rng = np.random.default_rng(10)
    policy = Policy.preset("snntorch", dt=2e-4)
    graph = chain(neuron("LIF", 3, policy, rng), 2, 3, rng)
    graph = graph.model_copy(update={"metadata": policy.to_metadata()})
    assert from_nir(graph).policy == policy
