"""`PolicyNeuron` steps every NIR neuron under every policy exactly as the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nirbridge import ir as g
from nirbridge.compare import compare
from nirbridge.reference import simulate
from nirbridge.semantics import Policy
from nirbridge_torch import GraphModule, build_stateless, run_sequence
from nirbridge_torch.cells import PolicyNeuron

F = np.float32
N_IN, N, T, B = 3, 4, 30, 2
KINDS = ["I", "IF", "LI", "LIF", "CubaLI", "CubaLIF"]


def neuron(kind, dt, rng, v_leak, v_reset, tau_steps) -> g.Node:
    tau = np.full(N, tau_steps * dt, F) * rng.uniform(0.8, 1.2, N).astype(F)
    z = np.zeros(N, F)
    thr = rng.uniform(0.8, 1.2, N).astype(F)
    r = rng.uniform(0.5, 2.0, N).astype(F)
    if kind == "I":
        return g.I(r=r / F(dt))
    if kind == "IF":
        return g.IF(r=r / F(dt), v_threshold=thr, v_reset=z + F(v_reset))
    if kind == "LI":
        return g.LI(tau=tau, r=r, v_leak=z + F(v_leak))
    if kind == "LIF":
        return g.LIF(tau=tau, r=r, v_leak=z + F(v_leak), v_threshold=thr, v_reset=z + F(v_reset))
    extra = dict(tau_syn=tau * F(0.5), tau_mem=tau, r=r, v_leak=z + F(v_leak), w_in=rng.uniform(0.5, 2, N).astype(F))
    if kind == "CubaLI":
        return g.CubaLI(**extra)
    return g.CubaLIF(**extra, v_threshold=thr, v_reset=z + F(v_reset))


def chain(node, w) -> g.Graph:
    return g.Graph(
        nodes={"input": g.Input(shape=np.array([N_IN])), "fc": g.Linear(weight=w), "n": node, "output": g.Output(shape=np.array([N]))},
        edges=[("input", "fc"), ("fc", "n"), ("n", "output")],
    )


policies = st.builds(
    Policy,
    dt=st.sampled_from([1e-4, 1e-3, 1.0]),
    integration=st.sampled_from(["euler", "exact"]),
    reset=st.sampled_from(["to_reset", "subtract", "none"]),
    reset_timing=st.sampled_from(["immediate", "next_step"]),
    threshold=st.sampled_from(["gt", "ge"]),
    current_order=st.sampled_from(["current_first", "voltage_first"]),
    input=st.sampled_from(["current", "impulse"]),
)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies, v_leak=st.floats(-0.5, 0.5), v_reset=st.floats(-0.5, 0.5), tau_steps=st.floats(1.5, 20),
       seed=st.integers(0, 2**16))
def test_cell_agrees_with_reference(kind, policy, v_leak, v_reset, tau_steps, seed):
    rng = np.random.default_rng(seed)
    node = neuron(kind, policy.dt, rng, v_leak, v_reset, tau_steps)
    # scale the input so that the steady state is about two thresholds (I, IF: one in ~5 steps)
    impulse = policy.input == "impulse"
    c = min(1.0, 1.0 / tau_steps)
    if kind in ("I", "IF"):
        r0 = float(np.mean(node.r)) * policy.dt
        target = 0.2 * policy.dt / r0 if impulse else 0.2 / r0
    elif kind in ("LI", "LIF"):
        target = 2 / float(np.mean(node.r)) * (c if impulse else 1)
    else:
        target = 2 / float(np.mean(node.r) * np.mean(node.w_in)) * (min(1.0, 2 * c) if impulse else 1)
    w = (rng.uniform(0.5, 1.5, (N, N_IN)) * target / (0.5 * N_IN)).astype(F)
    graph = chain(node, w)
    x = rng.uniform(0, 1, (T, B, N_IN)).astype(F)
    ref = simulate(graph, x, policy=policy, record=["n"])
    model = GraphModule(graph, {"fc": build_stateless(graph.nodes["fc"], policy=policy, name="fc"), "n": PolicyNeuron(node, policy)})
    got = run_sequence(model, x, record=["n"])
    if kind in ("IF", "LIF", "CubaLIF"):
        rate = ref.states["n"]["spikes"].mean()
        assert rate > 0, "the neuron must fire for the comparison to mean anything"
    else:
        assert np.ptp(ref.states["n"]["v"]) > 0
    bad = {k: c for k, c in compare(ref, got, graph, ["n"]).items() if not c.ok}
    assert not bad, bad


def test_cell_trains_and_gives_its_node_back():
    rng = np.random.default_rng(0)
    policy = Policy.preset("nir")
    node = neuron("CubaLIF", policy.dt, rng, 0.1, 0.0, 5.0)
    cell = PolicyNeuron(node, policy)
    assert cell.to_node() == node
    x = torch.rand(T, B, N) * 3
    out = torch.stack([cell(x[t]) for t in range(T)])
    assert out.sum() > 0
    out.sum().backward()
    assert cell.tau_mem.grad is not None and float(cell.v_threshold.grad.abs().sum()) > 0
