"""docs/semantics.md, step by step: every neuron type under every value of every Policy field,
against small arrays computed by hand (written out below each case).

Most cases use dt = 1 and tau = 2 (euler: decay a = 0.5, c = dt/tau = 0.5) and inputs that are
multiples of 1/4, so every value is exact in float32 and the comparisons are exact. The
`exact` integration cases write the expected values as expressions of a = exp(-dt/tau).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nirbridge.errors import PolicyError, SimulationError
from nirbridge.ir import IF, LI, LIF, CubaLI, CubaLIF, Graph, I, Input, Output, Threshold
from nirbridge.reference import simulate
from nirbridge.semantics import NodePolicy, Policy


def _full(value, n=1):
    return np.full(n, value, dtype=np.float32)


def make_if(r=1.0, th=1.0, v_reset=0.0):
    return IF(r=_full(r), v_threshold=_full(th), v_reset=_full(v_reset))


def make_lif(tau=2.0, r=1.0, v_leak=0.0, th=1.0, v_reset=0.0):
    return LIF(tau=_full(tau), r=_full(r), v_leak=_full(v_leak), v_threshold=_full(th), v_reset=_full(v_reset))


def make_li(tau=2.0, r=1.0, v_leak=0.0):
    return LI(tau=_full(tau), r=_full(r), v_leak=_full(v_leak))


def make_cuba(spiking=True, tau_syn=2.0, tau_mem=4.0, r=4.0, w_in=2.0, v_leak=0.0, th=100.0, v_reset=0.0):
    common = dict(tau_syn=_full(tau_syn), tau_mem=_full(tau_mem), r=_full(r), w_in=_full(w_in), v_leak=_full(v_leak))
    if spiking:
        return CubaLIF(v_threshold=_full(th), v_reset=_full(v_reset), **common)
    return CubaLI(**common)


def run(node, x, dtype=np.float32, **policy):
    """One node between an Input and an Output, one sample; states of the node, time only."""
    graph = Graph(
        nodes={"in": Input(shape=np.array([1])), "n": node, "out": Output(shape=np.array([1]))},
        edges=[("in", "n"), ("n", "out")],
    )
    x = np.asarray(x, dtype=np.float64).reshape(-1, 1, 1)
    result = simulate(graph, x, policy=Policy(**policy), record=["n"], dtype=dtype)
    states = {k: v[:, 0, 0] for k, v in result.states["n"].items()}
    states["out"] = result.outputs["out"][:, 0, 0]
    return states


def check(states, v=None, z=None, i=None):
    if v is not None:
        np.testing.assert_array_equal(states["v"], np.array(v, dtype=np.float32))
    if z is not None:
        np.testing.assert_array_equal(states["spikes"], np.array(z, dtype=np.float32))
        np.testing.assert_array_equal(states["out"], states["spikes"])
    if i is not None:
        np.testing.assert_array_equal(states["I"], np.array(i, dtype=np.float32))


# ----------------------------------------------------------------------------- I


@pytest.mark.parametrize("integration", ["euler", "exact"])
def test_integrator_current_adds_dt_r_x(integration):
    # v[k] = v[k-1] + dt r x[k], dt = 0.5, r = 2: increments of x; no decay in either scheme
    s = run(I(r=_full(2.0)), [1, 0, 2, -1], dt=0.5, integration=integration)
    check(s, v=[1, 1, 3, 2])
    np.testing.assert_array_equal(s["out"], s["v"])  # an integrator outputs v
    assert set(s) == {"v", "out"}


def test_integrator_impulse_adds_r_x():
    # v[k] = v[k-1] + r x[k], whatever dt
    check(run(I(r=_full(2.0)), [1, 0, 2, -1], dt=0.5, input="impulse"), v=[2, 2, 6, 4])


def test_integrator_ignores_spike_fields():
    s = run(I(r=_full(2.0)), [1, 0, 2, -1], dt=0.5, reset="subtract", reset_timing="next_step", threshold="ge")
    check(s, v=[1, 1, 3, 2])


# ----------------------------------------------------------------------------- IF

X_IF = [0.75] * 6  # impulse, r = 1, threshold 1: v grows by 0.75 per step

IF_CASES = {
    # (reset, timing, threshold, v_reset): (v, spikes)
    ("to_reset", "immediate", "gt", 0.0): ([0.75, 0, 0.75, 0, 0.75, 0], [0, 1, 0, 1, 0, 1]),
    ("to_reset", "immediate", "gt", -0.5): ([0.75, -0.5, 0.25, 1.0, -0.5, 0.25], [0, 1, 0, 0, 1, 0]),
    ("to_reset", "immediate", "ge", -0.5): ([0.75, -0.5, 0.25, -0.5, 0.25, -0.5], [0, 1, 0, 1, 0, 1]),
    ("subtract", "immediate", "gt", 0.0): ([0.75, 0.5, 0.25, 1.0, 0.75, 0.5], [0, 1, 1, 0, 1, 1]),
    ("subtract", "immediate", "ge", 0.0): ([0.75, 0.5, 0.25, 0.0, 0.75, 0.5], [0, 1, 1, 1, 0, 1]),
    ("none", "immediate", "gt", 0.0): ([0.75, 1.5, 2.25, 3.0, 3.75, 4.5], [0, 1, 1, 1, 1, 1]),
    # next_step: the reset of step k lands in step k+1 after its input; v[k] is before it
    ("to_reset", "next_step", "gt", 0.0): ([0.75, 1.5, 0, 0.75, 1.5, 0], [0, 1, 0, 0, 1, 0]),
    ("subtract", "next_step", "gt", 0.0): ([0.75, 1.5, 1.25, 1.0, 1.75, 1.5], [0, 1, 1, 0, 1, 1]),
    ("subtract", "next_step", "ge", 0.0): ([0.75, 1.5, 1.25, 1.0, 0.75, 1.5], [0, 1, 1, 1, 0, 1]),
    ("none", "next_step", "gt", 0.0): ([0.75, 1.5, 2.25, 3.0, 3.75, 4.5], [0, 1, 1, 1, 1, 1]),
}


@pytest.mark.parametrize("case", list(IF_CASES), ids=lambda c: "-".join(map(str, c)))
def test_if_reset_timing_threshold(case):
    reset, timing, threshold, v_reset = case
    v, z = IF_CASES[case]
    s = run(make_if(v_reset=v_reset), X_IF, dt=1.0, input="impulse", reset=reset, reset_timing=timing, threshold=threshold)
    check(s, v=v, z=z)
    assert set(s) == {"v", "spikes", "out"}


@pytest.mark.parametrize("integration", ["euler", "exact"])
def test_if_current_input_scales_by_dt(integration):
    # current: v += dt r x = 0.5 * 0.75 = 0.375 per step; to_reset at v > 1
    s = run(make_if(), X_IF, dt=0.5, input="current", integration=integration)
    check(s, v=[0.375, 0.75, 0, 0.375, 0.75, 0], z=[0, 0, 1, 0, 0, 1])


def test_if_impulse_ignores_dt():
    s = run(make_if(r=2.0), [0.25, 0.25, 0.25], dt=1e-3, input="impulse")
    check(s, v=[0.5, 1.0, 0], z=[0, 0, 1])  # 2 * 0.25 per step; 1.0 > 1 is false


# ----------------------------------------------------------------------------- LI


def test_li_euler_current():
    # v = v + dt/tau (v_leak - v + r x) = 0.5 v + 0.5 * 2 x
    s = run(make_li(r=2.0), [1, 1, 0, 0], dt=1.0)
    check(s, v=[1, 1.5, 0.75, 0.375])
    np.testing.assert_array_equal(s["out"], s["v"])
    assert set(s) == {"v", "out"}


def test_li_euler_impulse():
    # v = 0.5 v + r x (a jump of r x)
    check(run(make_li(r=2.0), [1, 1, 0, 0], dt=1.0, input="impulse"), v=[2, 3, 1.5, 0.75])


def test_li_leak_starts_from_zero():
    # states start at 0, not v_leak: v = 0.5 v + 0.5 * 1 climbs towards v_leak = 1
    check(run(make_li(v_leak=1.0), [0, 0, 0, 0], dt=1.0), v=[0.5, 0.75, 0.875, 0.9375])


def test_li_dt_enters_the_decay():
    # dt = 0.5, tau = 2: a = 0.75, c = 0.25; r = 4: v = 0.75 v + x
    check(run(make_li(r=4.0), [1, 0, 0], dt=0.5), v=[1, 0.75, 0.5625])


def test_li_exact_current_and_impulse():
    a = math.exp(-0.5)  # dt = 1, tau = 2
    x = [1, 1, 0]
    cur = run(make_li(r=2.0), x, dtype=np.float64, dt=1.0, integration="exact")
    # zero-order hold: v = a v + (1 - a) r x
    v0 = (1 - a) * 2
    v1 = a * v0 + (1 - a) * 2
    np.testing.assert_allclose(cur["v"], [v0, v1, a * v1], rtol=1e-14)
    imp = run(make_li(r=2.0), x, dtype=np.float64, dt=1.0, integration="exact", input="impulse")
    np.testing.assert_allclose(imp["v"], [2, 2 * a + 2, (2 * a + 2) * a], rtol=1e-14)


def test_li_exact_leak():
    a = math.exp(-0.5)
    s = run(make_li(v_leak=1.0), [0, 0, 0], dtype=np.float64, dt=1.0, integration="exact")
    np.testing.assert_allclose(s["v"], [1 - a, 1 - a**2, 1 - a**3], rtol=1e-14)  # v_leak + a^k (0 - v_leak)


# ----------------------------------------------------------------------------- LIF

X_LIF = [0.5, 0.75, 0.75, 0.75, 0.75]  # impulse, r = 1, dt = 1, tau = 2: v = 0.5 v + x; hits 1.0 at k = 1

LIF_CASES = {
    ("to_reset", "immediate", "gt", 0.0): ([0.5, 1.0, 0, 0.75, 0], [0, 0, 1, 0, 1]),
    ("to_reset", "immediate", "ge", 0.0): ([0.5, 0, 0.75, 0, 0.75], [0, 1, 0, 1, 0]),
    ("to_reset", "immediate", "gt", 0.25): ([0.5, 1.0, 0.25, 0.875, 0.25], [0, 0, 1, 0, 1]),
    ("subtract", "immediate", "gt", 0.0): ([0.5, 1.0, 0.25, 0.875, 0.1875], [0, 0, 1, 0, 1]),
    ("subtract", "immediate", "ge", 0.0): ([0.5, 0.0, 0.75, 0.125, 0.8125], [0, 1, 0, 1, 0]),
    ("none", "immediate", "gt", 0.0): ([0.5, 1.0, 1.25, 1.375, 1.4375], [0, 0, 1, 1, 1]),
    ("to_reset", "next_step", "gt", 0.0): ([0.5, 1.0, 1.25, 0, 0.75], [0, 0, 1, 0, 0]),
    ("to_reset", "next_step", "ge", 0.0): ([0.5, 1.0, 0, 0.75, 1.125], [0, 1, 0, 0, 1]),
    ("subtract", "next_step", "gt", 0.0): ([0.5, 1.0, 1.25, 0.375, 0.9375], [0, 0, 1, 0, 0]),
    ("subtract", "next_step", "ge", 0.0): ([0.5, 1.0, 0.25, 0.875, 1.1875], [0, 1, 0, 0, 1]),
}


@pytest.mark.parametrize("case", list(LIF_CASES), ids=lambda c: "-".join(map(str, c)))
def test_lif_reset_timing_threshold(case):
    reset, timing, threshold, v_reset = case
    v, z = LIF_CASES[case]
    s = run(make_lif(v_reset=v_reset), X_LIF, dt=1.0, input="impulse", reset=reset, reset_timing=timing, threshold=threshold)
    check(s, v=v, z=z)
    assert set(s) == {"v", "spikes", "out"}


def test_lif_euler_current():
    # current: v = 0.5 v + dt/tau r x = 0.5 v + 0.5 x (r = 1): never reaches 1
    check(run(make_lif(), X_LIF, dt=1.0), v=[0.25, 0.5, 0.625, 0.6875, 0.71875], z=[0] * 5)


def test_lif_current_snntorch_convention_adds_x():
    # r = tau/dt makes the current term exactly x: v = 0.5 v + x (snnTorch Leaky, beta 0.5)
    s = run(make_lif(r=2.0), X_LIF, dt=1.0)
    check(s, v=[0.5, 1.0, 0, 0.75, 0], z=[0, 0, 1, 0, 1])


def test_lif_leak():
    # v = 0.5 v + 0.5 v_leak, v_leak = 0.5, threshold 1 never reached
    check(run(make_lif(v_leak=0.5), [0, 0, 0, 0], dt=1.0), v=[0.25, 0.375, 0.4375, 0.46875], z=[0] * 4)


def test_lif_leak_above_threshold_spikes_from_rest():
    # v_leak 3 > threshold 1: v = 0.5 v + 1.5 -> 1.5 spikes at once, to_reset 0 each time
    check(run(make_lif(v_leak=3.0), [0, 0, 0], dt=1.0), v=[0, 0, 0], z=[1, 1, 1])


def test_lif_exact_spikes_earlier_than_euler_impulse():
    a = math.exp(-0.5)
    s = run(make_lif(), X_LIF, dtype=np.float64, dt=1.0, integration="exact", input="impulse")
    # v = a v + x; v1 = 0.5 a + 0.75 > 1 (a > 0.5) spikes at k = 1 and resets to 0
    v1 = 0.5 * a + 0.75
    assert v1 > 1
    v3 = 0.75 * a + 0.75
    assert v3 > 1
    np.testing.assert_allclose(s["v"], [0.5, 0, 0.75, 0, 0.75], rtol=1e-14)
    np.testing.assert_array_equal(s["spikes"], [0, 1, 0, 1, 0])


def test_lif_exact_current():
    a = math.exp(-0.5)
    s = run(make_lif(r=2.0, th=10.0), [1, 0, 1], dtype=np.float64, dt=1.0, integration="exact")
    v0 = (1 - a) * 2
    v1 = a * v0
    np.testing.assert_allclose(s["v"], [v0, v1, a * v1 + (1 - a) * 2], rtol=1e-14)


# ----------------------------------------------------------------------------- CubaLI, CubaLIF
# tau_syn 2, tau_mem 4, dt 1, euler: a_syn 0.5, c_syn 0.5, beta 0.75, c_mem 0.25; w_in 2, r 4:
#   current: I = 0.5 I + 0.5 * 2 x = 0.5 I + x;   v = 0.75 v + 0.25 * 4 * I = 0.75 v + I

X_CUBA = [1, 0, 0, 0]


@pytest.mark.parametrize("spiking", [False, True], ids=["CubaLI", "CubaLIF"])
def test_cuba_current_first(spiking):
    s = run(make_cuba(spiking), X_CUBA, dt=1.0)
    check(s, i=[1, 0.5, 0.25, 0.125], v=[1, 1.25, 1.1875, 1.015625])
    assert set(s) == ({"v", "I", "spikes", "out"} if spiking else {"v", "I", "out"})
    if not spiking:
        np.testing.assert_array_equal(s["out"], s["v"])


@pytest.mark.parametrize("spiking", [False, True], ids=["CubaLI", "CubaLIF"])
def test_cuba_voltage_first_sees_last_current(spiking):
    s = run(make_cuba(spiking), X_CUBA, dt=1.0, current_order="voltage_first")
    check(s, i=[1, 0.5, 0.25, 0.125], v=[0, 1, 1.25, 1.1875])


@pytest.mark.parametrize("spiking", [False, True], ids=["CubaLI", "CubaLIF"])
def test_cuba_impulse_jumps_the_current(spiking):
    # impulse: I = 0.5 I + w_in x = 0.5 I + 2 x; the current still drives v as a current
    s = run(make_cuba(spiking), X_CUBA, dt=1.0, input="impulse")
    check(s, i=[2, 1, 0.5, 0.25], v=[2, 2.5, 2.375, 2.03125])


@pytest.mark.parametrize("spiking", [False, True], ids=["CubaLI", "CubaLIF"])
def test_cuba_leak(spiking):
    # v_leak 4: v = 0.75 v + 0.25 * 4 = 0.75 v + 1 with no input; I stays 0
    s = run(make_cuba(spiking, v_leak=4.0), [0, 0, 0], dt=1.0)
    check(s, i=[0, 0, 0], v=[1, 1.75, 2.3125])


@pytest.mark.parametrize("order", ["current_first", "voltage_first"])
@pytest.mark.parametrize("spiking", [False, True], ids=["CubaLI", "CubaLIF"])
def test_cuba_exact(order, spiking):
    a_syn, beta = math.exp(-0.5), math.exp(-0.25)
    s = run(make_cuba(spiking), [1, 0, 0], dtype=np.float64, dt=1.0, integration="exact", current_order=order)
    i0 = (1 - a_syn) * 2  # zero-order hold on w_in x
    i = [i0, a_syn * i0, a_syn**2 * i0]
    seen = i if order == "current_first" else [0.0] + i[:2]
    v = []
    prev = 0.0
    for k in range(3):
        prev = beta * prev + (1 - beta) * 4 * seen[k]
        v.append(prev)
    np.testing.assert_allclose(s["I"], i, rtol=1e-14)
    np.testing.assert_allclose(s["v"], v, rtol=1e-14)


CUBALIF_CASES = {
    # threshold 1 (v = [1, 1.25, ...] without reset): (reset, timing, threshold): (v, spikes)
    ("to_reset", "immediate", "gt"): ([1, 0, 0.25, 0.3125], [0, 1, 0, 0]),
    ("to_reset", "immediate", "ge"): ([0, 0.5, 0.625, 0.59375], [1, 0, 0, 0]),
    ("subtract", "immediate", "gt"): ([1, 0.25, 0.4375, 0.453125], [0, 1, 0, 0]),
    ("subtract", "immediate", "ge"): ([0, 0.5, 0.625, 0.59375], [1, 0, 0, 0]),
    ("none", "immediate", "gt"): ([1, 1.25, 1.1875, 1.015625], [0, 1, 1, 1]),
    ("to_reset", "next_step", "gt"): ([1, 1.25, 0, 0.125], [0, 1, 0, 0]),
    ("subtract", "next_step", "gt"): ([1, 1.25, 0.1875, 0.265625], [0, 1, 0, 0]),
    ("subtract", "next_step", "ge"): ([1, 0.25, 0.4375, 0.453125], [1, 0, 0, 0]),
}


@pytest.mark.parametrize("case", list(CUBALIF_CASES), ids=lambda c: "-".join(c))
def test_cubalif_reset_timing_threshold(case):
    reset, timing, threshold = case
    v, z = CUBALIF_CASES[case]
    s = run(make_cuba(True, th=1.0), X_CUBA, dt=1.0, reset=reset, reset_timing=timing, threshold=threshold)
    check(s, v=v, z=z, i=[1, 0.5, 0.25, 0.125])  # the reset never touches I


# ----------------------------------------------------------------------------- Threshold


@pytest.mark.parametrize("rule, expected", [("gt", [0, 0, 1]), ("ge", [0, 1, 1])])
def test_threshold_node(rule, expected):
    s = run(Threshold(threshold=_full(1.0)), [0.5, 1.0, 1.5], threshold=rule)
    np.testing.assert_array_equal(s["y"], expected)
    np.testing.assert_array_equal(s["out"], expected)


# ----------------------------------------------------------------------------- per node


def test_overrides_by_type_and_by_name():
    """Two IF neurons fed the same input: a type override makes both impulse, a name override
    switches one back to current input (dt = 0.5 halves its steps)."""
    graph = Graph(
        nodes={
            "in": Input(shape=np.array([1])),
            "a": make_if(),
            "b": make_if(),
            "oa": Output(shape=np.array([1])),
            "ob": Output(shape=np.array([1])),
        },
        edges=[("in", "a"), ("in", "b"), ("a", "oa"), ("b", "ob")],
    )
    policy = Policy(dt=0.5, type_overrides={"IF": NodePolicy(input="impulse")}, overrides={"b": NodePolicy(input="current")})
    result = simulate(graph, np.full((4, 1, 1), 0.75), policy=policy, record=["a", "b"])
    np.testing.assert_array_equal(result.states["a"]["v"][:, 0, 0], [0.75, 0, 0.75, 0])
    np.testing.assert_array_equal(result.states["b"]["v"][:, 0, 0], [0.375, 0.75, 0, 0.375])


def test_norse_preset_steps_if_as_impulse_and_lif_as_current():
    graph = Graph(
        nodes={
            "in": Input(shape=np.array([1])),
            "if": make_if(th=10.0),
            "lif": make_lif(tau=2e-3, r=1.0, th=10.0),
            "o1": Output(shape=np.array([1])),
            "o2": Output(shape=np.array([1])),
        },
        edges=[("in", "if"), ("in", "lif"), ("if", "o1"), ("lif", "o2")],
    )
    result = simulate(graph, np.ones((2, 1, 1)), policy=Policy.preset("norse"), record=["if", "lif"], dtype=np.float64)
    np.testing.assert_array_equal(result.states["if"]["v"][:, 0, 0], [1, 2])  # v += x, dt ignored
    # dt 1e-3, tau 2e-3 (float32, so to its precision): v = 0.5 v + 0.5 x
    np.testing.assert_allclose(result.states["lif"]["v"][:, 0, 0], [0.5, 0.75], rtol=1e-7)


def test_unknown_override_names_the_node():
    graph = Graph(
        nodes={"in": Input(shape=np.array([1])), "n": make_if(), "out": Output(shape=np.array([1]))},
        edges=[("in", "n"), ("n", "out")],
    )
    with pytest.raises(PolicyError, match=r"overrides\.nope"):
        simulate(graph, np.ones((2, 1, 1)), policy=Policy(overrides={"nope": NodePolicy(reset="none")}))


# ----------------------------------------------------------------------------- spike counts, floors, initial v


def test_multi_spike_counts_trunc_of_v_over_threshold_and_subtracts_them():
    # IF, impulse, dt 1, threshold 0.5: v = 1.75 -> 3 spikes, v = 0.25; +0.25 -> 0.5: 1 spike
    states = run(make_if(th=0.5), [1.75, 0.25, 0.0], dt=1.0, input="impulse", reset="subtract", threshold="ge", spikes="multi")
    check(states, v=[0.25, 0.0, 0.0], z=[3, 1, 0])
    np.testing.assert_array_equal(states["out"], [3, 1, 0])  # the count is what the node emits


def test_multi_spike_count_is_capped_and_the_rest_fires_later():
    states = run(make_if(th=0.5), [2.25, 0.0, 0.0], dt=1.0, input="impulse", reset="subtract", threshold="ge", spikes="multi", max_spikes=2)
    check(states, v=[1.25, 0.25, 0.25], z=[2, 2, 0])


def test_multi_spike_to_reset_resets_once_whatever_the_count():
    states = run(make_if(th=0.5, v_reset=0.25), [1.75, 0.0], dt=1.0, input="impulse", reset="to_reset", threshold="ge", spikes="multi")
    check(states, v=[0.25, 0.25], z=[3, 0])


def test_multi_spike_counts_from_the_rounded_float32_quotient():
    # v = 0.5 is below 5 * float32(0.1) in exact arithmetic, but fl(0.5 / 0.1) = 5 (as Sinabs and Rockpool count)
    states = run(make_if(th=0.1), [0.5], dt=1.0, input="impulse", reset="subtract", threshold="ge", spikes="multi")
    assert states["spikes"][0] == 5


def test_multi_spike_needs_ge_and_positive_thresholds():
    with pytest.raises(PolicyError, match="spikes: 'multi' .* needs threshold='ge'"):
        Policy(spikes="multi", threshold="gt")
    with pytest.raises(PolicyError, match="max_spikes: caps the count of spikes='multi'"):
        Policy(max_spikes=3)
    with pytest.raises(SimulationError, match=r"nodes\.n\.v_threshold: spikes='multi' .* must be > 0"):
        run(make_if(th=-1.0), [1.0], dt=1.0, threshold="ge", spikes="multi")


def test_v_min_floors_the_potential_after_the_reset():
    # IF with threshold 1 driven down: -0.75, -1.5 -> floored at -1 (m = -v_threshold)
    states = run(make_if(), [-0.75, -0.75, 0.5], dt=1.0, input="impulse", v_min="-v_threshold")
    check(states, v=[-0.75, -1.0, -0.5], z=[0, 0, 0])
    fixed = run(make_if(), [-0.75, -0.75], dt=1.0, input="impulse", v_min=-0.5)
    check(fixed, v=[-0.5, -0.5])


def test_v_min_rounds_like_max_of_v_minus_m_plus_m():
    # float32: 0.3 - (-1) + (-1) = 0.29999995, not 0.3 (Sinabs' arithmetic, pinned against Sinabs itself)
    states = run(make_if(th=10.0), [0.3], dt=1.0, input="impulse", v_min=-1.0)
    assert states["v"][0] == np.float32(np.float32(np.float32(0.3) + 1) - 1) and states["v"][0] != np.float32(0.3)


@pytest.mark.parametrize("start, expected", [("zero", 0.0), ("v_leak", 0.5), ("v_reset", 0.25)])
def test_initial_v_sets_the_potential_before_the_first_step(start, expected):
    # LIF euler, tau 2: v[0] = 0.5 v[-1] + 0.5 (x + v_leak) with x = 0
    states = run(make_lif(v_leak=0.5, v_reset=0.25, th=10.0), [0.0], dt=1.0, initial_v=start)
    check(states, v=[0.5 * expected + 0.25])


def test_new_fields_travel_in_the_metadata_and_default_to_todays_rule():
    policy = Policy.preset("sinabs", spikes="multi", max_spikes=31, v_min="-v_threshold", initial_v="v_reset")
    assert Policy.from_metadata(policy.to_metadata()) == policy
    assert Policy().spikes == "single" and Policy().v_min is None and Policy().initial_v == "zero"
    override = Policy.preset("sinabs", spikes="single").with_override("n", spikes="multi", v_min=-1.0)
    assert override.for_node("n", "IF").v_min == -1.0 and override.for_node("m", "IF").spikes == "single"
