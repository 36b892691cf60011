"""Policy: validation, overrides, presets pinned against the installed frameworks, the maths
between per-step factors and time constants, metadata round trips, dt inference."""

from __future__ import annotations

import json
import math

import nir
import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nirbridge
from nirbridge.errors import NirbridgeError, PolicyError
from nirbridge.semantics import (
    METADATA_KEY,
    DtInference,
    NodePolicy,
    Policy,
    current_gain,
    decay,
    exact_unit_gain,
    leaky_from_nir,
    leaky_to_nir,
    synaptic_from_nir,
    synaptic_to_nir,
    tau_from_decay,
    unit_gain,
)

HYPOTHESIS = settings(max_examples=200, deadline=None)
NIRTORCH_LOAD = pytest.mark.filterwarnings("ignore:nirtorch.load is being deprecated:DeprecationWarning")


# ----------------------------------------------------------------------------- reference loop


def step_loop(policy: Policy, kind: str, params: dict, x: np.ndarray):
    """docs/semantics.md written out for one neuron node (float64). Returns (spikes, v[, I])
    per step, v recorded after an immediate reset and before a next_step one."""
    p = policy.for_node("node", kind)
    dt = p.dt
    prm = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x = np.asarray(x, np.float64)

    def factor(tau):
        return 1 - dt / tau if p.integration == "euler" else np.exp(-dt / tau)

    def held(tau):  # share of a held current one step adds
        return dt / tau if p.integration == "euler" else 1 - np.exp(-dt / tau)

    def enter(value, gain, tau):  # the input convention for the first state variable
        if p.input == "impulse":
            return gain * value
        return (dt if tau is None else held(tau)) * gain * value

    shape = x.shape[1:]
    v, cur, pending = np.zeros(shape), np.zeros(shape), np.zeros(shape, bool)
    spikes, volts, currents = [], [], []
    for xk in x:
        if kind in ("LIF", "LI"):
            v = prm["v_leak"] + factor(prm["tau"]) * (v - prm["v_leak"]) + enter(xk, prm["r"], prm["tau"])
        elif kind in ("CubaLIF", "CubaLI"):
            new = factor(prm["tau_syn"]) * cur + enter(xk, prm["w_in"], prm["tau_syn"])
            drive = new if p.current_order == "current_first" else cur
            v = prm["v_leak"] + factor(prm["tau_mem"]) * (v - prm["v_leak"]) + held(prm["tau_mem"]) * prm["r"] * drive
            cur = new
        elif kind == "IF":
            v = v + enter(xk, prm["r"], None)
        if p.reset_timing == "next_step" and p.reset != "none":
            v = np.where(pending, prm["v_reset"], v) if p.reset == "to_reset" else v - pending * prm["v_threshold"]
        if "v_threshold" in prm:
            z = v > prm["v_threshold"] if p.threshold == "gt" else v >= prm["v_threshold"]
        else:
            z = np.zeros(shape, bool)
        recorded = v
        if p.reset_timing == "immediate" and p.reset != "none":
            v = np.where(z, prm["v_reset"], v) if p.reset == "to_reset" else v - z * prm["v_threshold"]
            recorded = v
        pending = z
        spikes.append(z.astype(np.float64))
        volts.append(recorded)
        currents.append(cur)
    return np.array(spikes), np.array(volts), np.array(currents)


def clear_of_threshold(v, threshold, margin=1e-4):
    """Inputs are chosen so no potential sits within `margin` of threshold (float32 vs 64)."""
    assert np.all(np.abs(v - threshold) > margin), "test input too close to threshold"


def lif_params(n, tau, r=1.0, v_threshold=1.0, v_reset=0.0, v_leak=0.0):
    full = lambda value: np.broadcast_to(np.asarray(value, np.float64), (n,)).copy()  # noqa: E731
    return dict(tau=full(tau), r=full(r), v_leak=full(v_leak), v_threshold=full(v_threshold), v_reset=full(v_reset))


def cuba_params(n, tau_syn, tau_mem, r=1.0, w_in=1.0, v_threshold=1.0, v_reset=0.0, v_leak=0.0):
    full = lambda value: np.broadcast_to(np.asarray(value, np.float64), (n,)).copy()  # noqa: E731
    return dict(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(r), w_in=full(w_in), v_leak=full(v_leak),
                v_threshold=full(v_threshold), v_reset=full(v_reset))


def test_step_loop_by_hand():
    """The loop itself against values worked out on paper (LIF, euler, dt/tau = 0.5, r = 2)."""
    params = lif_params(1, tau=2e-4, r=2.0, v_threshold=1.0)
    x = np.array([[1.0], [0.0], [1.0], [0.6]])
    # v = 0.5 v + 0.5*2*x: 1.0 (no spike, gt), 0.5, 1.25 spike, then 0.6 (+0.625-1 or 0)
    spikes, v, _ = step_loop(Policy(dt=1e-4, reset="subtract"), "LIF", params, x)
    assert spikes[:, 0].tolist() == [0, 0, 1, 0]
    assert v[:, 0] == pytest.approx([1.0, 0.5, 0.25, 0.725])
    spikes, v, _ = step_loop(Policy(dt=1e-4, reset="subtract", reset_timing="next_step"), "LIF", params, x)
    assert v[:, 0] == pytest.approx([1.0, 0.5, 1.25, 0.625 + 0.6 - 1.0])
    spikes, v, _ = step_loop(Policy(dt=1e-4, threshold="ge"), "LIF", params, x)  # to_reset 0
    assert spikes[:, 0].tolist() == [1, 0, 1, 0]
    assert v[:, 0] == pytest.approx([0.0, 0.0, 0.0, 0.6])


# ----------------------------------------------------------------------------- construction


def test_defaults():
    p = Policy()
    assert (p.dt, p.integration, p.reset, p.reset_timing, p.threshold, p.current_order, p.input) == (
        1e-4, "euler", "to_reset", "immediate", "gt", "current_first", "current")
    assert p.overrides == {} and p.type_overrides == {}


@pytest.mark.parametrize(
    "kwargs, path",
    [
        (dict(dt=-1e-3), "dt"),
        (dict(dt=0), "dt"),
        (dict(dt=float("nan")), "dt"),
        (dict(dt=float("inf")), "dt"),
        (dict(dt="1e-4"), "dt"),
        (dict(dt=True), "dt"),
        (dict(dt=None), "dt"),
        (dict(integration="rk4"), "integration"),
        (dict(reset="zero"), "reset"),
        (dict(reset_timing="later"), "reset_timing"),
        (dict(threshold=">"), "threshold"),
        (dict(current_order="first"), "current_order"),
        (dict(input="spike"), "input"),
        (dict(tau=1.0), "tau"),
        (dict(overrides={"lif1": {"reset": "zero"}}), "overrides.lif1.reset"),
        (dict(overrides={"lif1": {"dt": 1.0}}), "overrides.lif1.dt"),
        (dict(overrides={"lif1": 3}), "overrides.lif1"),
        (dict(overrides={"": NodePolicy()}), "overrides.''"),
        (dict(overrides={"a/b": NodePolicy()}), "overrides.'a/b'"),
        (dict(type_overrides={"Neuron": NodePolicy()}), "type_overrides.Neuron"),
        (dict(type_overrides={"IF": {"input": "jump"}}), "type_overrides.IF.input"),
    ],
)
def test_bad_values_raise_policy_error_naming_the_field(kwargs, path):
    with pytest.raises(PolicyError) as info:
        Policy(**kwargs)
    assert isinstance(info.value, NirbridgeError) and not isinstance(info.value, pydantic.ValidationError)
    assert [p.path for p in info.value.problems] == [path]
    assert str(info.value).startswith(path + ":")


def test_all_problems_reported_at_once():
    with pytest.raises(PolicyError) as info:
        Policy(dt=-1, reset="zero")
    assert sorted(p.path for p in info.value.problems) == ["dt", "reset"]


def test_node_policy_bad_value():
    with pytest.raises(PolicyError, match=r"^threshold: .*'gt' or 'ge', got 'lt'"):
        NodePolicy(threshold="lt")


def test_dt_accepts_numbers_of_any_kind():
    assert Policy(dt=1).dt == 1.0 and isinstance(Policy(dt=1).dt, float)
    assert Policy(dt=np.float32(1e-3)).dt == float(np.float32(1e-3))
    assert Policy(dt=np.int64(2)).dt == 2.0


def test_frozen():
    p = Policy()
    with pytest.raises(pydantic.ValidationError):
        p.dt = 1.0
    assert p.dt == 1e-4


# ----------------------------------------------------------------------------- overrides


def test_for_node_applies_type_then_node_overrides():
    p = Policy(
        reset="to_reset",
        type_overrides={"LIF": NodePolicy(reset="subtract", threshold="ge")},
        overrides={"lif1": NodePolicy(reset="none"), "sub.lif": NodePolicy(input="impulse")},
    )
    assert p.for_node("lif1", "LIF").reset == "none"  # node beats type
    assert p.for_node("lif1", "LIF").threshold == "ge"  # type beats graph-wide
    assert p.for_node("lif2", "LIF").reset == "subtract"
    assert p.for_node("lif2", "CubaLIF").reset == "to_reset"
    assert p.for_node("lif2").reset == "to_reset"  # without a type, only node overrides
    assert p.for_node("sub.lif", "LIF").input == "impulse"
    effective = p.for_node("lif1", "LIF")
    assert effective.overrides == {} and effective.type_overrides == {}
    assert effective.dt == p.dt


def test_with_override_merges_and_validates():
    p = Policy().with_override("lif1", reset="subtract")
    p = p.with_override("lif1", threshold="ge")
    assert p.overrides["lif1"] == NodePolicy(reset="subtract", threshold="ge")
    p = p.with_override("lif1", reset=None)
    assert p.overrides["lif1"] == NodePolicy(threshold="ge")
    assert p.with_override("sub.lif", input="impulse").for_node("sub.lif").input == "impulse"
    with pytest.raises(PolicyError, match=r"^overrides\.lif1\.reset: "):
        p.with_override("lif1", reset="zero")
    with pytest.raises(PolicyError, match=r"^overrides\.lif1\.dt: unknown field"):
        p.with_override("lif1", dt=1.0)
    assert Policy().with_type_override("IF", input="impulse").for_node("x", "IF").input == "impulse"
    with pytest.raises(PolicyError, match=r"^type_overrides\.Neuron: unknown node type"):
        Policy().with_type_override("Neuron", input="impulse")


def _lif_node(n, tau, r):
    return nir.LIF(tau=np.full(n, tau), r=np.full(n, r), v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))


def _cuba_node(n, tau_syn, tau_mem, r, w_in):
    return nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, tau_mem), r=np.full(n, r), w_in=np.full(n, w_in),
                       v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))


def _chain(*neurons, n=2, nested: str | None = None) -> nirbridge.Graph:
    """input -> neurons... -> output; the node named `nested` becomes a nested graph."""
    nodes = {"input": nir.Input(input_type={"input": np.array([n])})}
    names = []
    for name, node in neurons:
        if name == nested:
            node = nir.NIRGraph(
                nodes={"input": nir.Input(input_type={"input": np.array([n])}), "lif": node,
                       "output": nir.Output(output_type={"output": np.array([n])})},
                edges=[("input", "lif"), ("lif", "output")], type_check=False)
        nodes[name] = node
        names.append(name)
    nodes["output"] = nir.Output(output_type={"output": np.array([n])})
    chain = ["input", *names, "output"]
    return nirbridge.Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=list(zip(chain, chain[1:])), type_check=False))


def test_check_names_missing_nodes():
    graph = _chain(("a", _lif_node(2, 1e-3, 1.0)), ("sub", _lif_node(2, 1e-3, 1.0)), nested="sub")
    Policy(overrides={"a": NodePolicy(reset="none"), "sub.lif": NodePolicy(reset="none")},
           type_overrides={"LIF": NodePolicy()}).check(graph)
    with pytest.raises(PolicyError) as info:
        Policy(overrides={"b": NodePolicy(reset="none"), "c": NodePolicy()}, type_overrides={"IF": NodePolicy()}).check(graph)
    assert sorted(p.path for p in info.value.problems) == ["overrides.b", "overrides.c"]
    assert "sub.lif" in str(info.value)


# ----------------------------------------------------------------------------- presets

EXPECTED_PRESETS = {  # name: dt, integration, reset, reset_timing, threshold, current_order, input
    "nir": (1e-4, "exact", "to_reset", "immediate", "gt", "current_first", "current"),
    "snntorch": (1e-4, "euler", "subtract", "next_step", "gt", "current_first", "current"),
    "norse": (1e-3, "euler", "to_reset", "immediate", "gt", "current_first", "current"),
    "sinabs": (1.0, "exact", "subtract", "immediate", "ge", "current_first", "impulse"),
    "spikingjelly": (1e-4, "euler", "to_reset", "immediate", "ge", "current_first", "current"),
    "nir-paper": (1e-4, "euler", "subtract", "immediate", "gt", "voltage_first", "current"),
    "rockpool": (1e-3, "exact", "subtract", "immediate", "ge", "current_first", "impulse"),
    "spyx": (1.0, "euler", "subtract", "next_step", "gt", "current_first", "impulse"),
}


def test_presets_listed():
    presets = Policy.presets()
    assert list(presets) == list(EXPECTED_PRESETS)
    for name, expected in EXPECTED_PRESETS.items():
        p = presets[name]
        assert (p.dt, p.integration, p.reset, p.reset_timing, p.threshold, p.current_order, p.input) == expected
        assert p == Policy.preset(name)
    assert presets["norse"].type_overrides == {"IF": NodePolicy(input="impulse")}
    assert presets["spyx"].type_overrides == {"CubaLIF": NodePolicy(reset_timing="immediate")}  # Spyx's CuBaLIF subtracts before the decay
    assert all(not p.type_overrides for n, p in presets.items() if n not in ("norse", "spyx"))
    # Sinabs' default MultiSpike, Rockpool's StepPWL capped at 2**16; SpikingJelly starts v at v_reset; no preset floors v
    assert {n: (p.spikes, p.initial_v) for n, p in presets.items() if (p.spikes, p.initial_v) != ("single", "zero")} == {
        "sinabs": ("multi", "zero"), "spikingjelly": ("single", "v_reset"), "rockpool": ("multi", "zero")}
    assert {n: p.max_spikes for n, p in presets.items() if p.max_spikes is not None} == {"rockpool": 65536}
    assert all(p.v_min is None for p in presets.values())


def test_preset_changes_and_errors():
    p = Policy.preset("norse", dt=1e-4, reset="subtract")
    assert (p.dt, p.reset, p.threshold) == (1e-4, "subtract", "gt")
    with pytest.raises(PolicyError, match=r"^preset: unknown preset 'brian2' \(known: nir, snntorch"):
        Policy.preset("brian2")
    with pytest.raises(PolicyError, match=r"^reset: "):
        Policy.preset("snntorch", reset="zero")
    # snnTorch's zero reset: Leaky resets before the next decay (immediate), Synaptic after it
    zero = Policy.preset("snntorch", reset="to_reset")
    assert zero.for_node("l", "LIF").reset_timing == "immediate"
    assert zero.for_node("s", "CubaLIF").reset_timing == "next_step"


def _spiky_input(rng, steps, n, scale):
    return (rng.random((steps, n)) * scale).astype(np.float32)


def _snntorch_run(module, x, states):
    import torch

    out_spk, out_mem = [], []
    for xk in torch.from_numpy(x):
        spk, *states = module(xk, *states)
        out_spk.append(spk.detach().numpy().copy())
        out_mem.append(states[-1].detach().numpy().copy())
    return np.array(out_spk), np.array(out_mem)


@pytest.mark.parametrize("reset_delay", [True, False])
def test_snntorch_leaky_subtract(reset_delay):
    """snn.Leaky (subtract) exported by snnTorch itself, stepped by the preset = snnTorch.
    reset_delay=True is next_step; reset_delay=False is immediate (on this input, where v
    never stays above threshold after subtracting)."""
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import _extract_snntorch_module

    beta = torch.tensor([0.9, 0.8, 0.95, 0.5])
    leaky = snn.Leaky(beta=beta, threshold=torch.ones(4), reset_delay=reset_delay)
    node = _extract_snntorch_module(leaky)  # what snnTorch writes to NIR
    x = _spiky_input(np.random.default_rng(1), 60, 4, 0.6)
    spk, mem = _snntorch_run(leaky, x, [torch.zeros(4)])
    policy = Policy.preset("snntorch", **({} if reset_delay else {"reset_timing": "immediate"}))
    params = dict(tau=node.tau, r=node.r, v_leak=node.v_leak, v_threshold=node.v_threshold, v_reset=node.v_reset)
    ref_spk, ref_v, _ = step_loop(policy, "LIF", params, x)
    clear_of_threshold(ref_v, 1.0)
    assert 5 <= ref_spk.sum() <= 150
    np.testing.assert_array_equal(spk, ref_spk)
    np.testing.assert_allclose(mem, ref_v, rtol=1e-5, atol=1e-5)


def test_snntorch_leaky_double_reset_guard_is_not_representable():
    """With reset_delay=False and subtract, snnTorch tests the threshold on v minus the last
    step's reset whenever v stayed above threshold after subtracting: no policy does that."""
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    leaky = snn.Leaky(beta=0.5, threshold=1.0, reset_delay=False)
    x = np.array([[2.6], [1.0]], np.float32)  # v = 2.6 -> 1.6 after reset; then 0.8 + 1.0 = 1.8
    spk, mem = _snntorch_run(leaky, x, [torch.zeros(1)])
    ref_spk, ref_v, _ = step_loop(Policy.preset("snntorch", reset_timing="immediate"), "LIF",
                                  lif_params(1, tau=2e-4, r=2.0), x)
    assert ref_spk[:, 0].tolist() == [1, 1]
    assert spk[:, 0].tolist() == [1, 0]
    assert mem[1, 0] == pytest.approx(1.8)


@pytest.mark.parametrize("reset_delay", [True, False])
def test_snntorch_leaky_zero_reset_is_immediate(reset_delay):
    """snn.Leaky(reset_mechanism="zero") zeroes mem before the next decay: spikes are those of
    an immediate reset to 0 whatever reset_delay says (with reset_delay=True the reported mem
    at a spike step is the value before the reset)."""
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import _extract_snntorch_module

    leaky = snn.Leaky(beta=torch.tensor([0.9, 0.7, 0.6]), threshold=torch.ones(3), reset_mechanism="zero",
                      reset_delay=reset_delay)
    node = _extract_snntorch_module(leaky)
    x = _spiky_input(np.random.default_rng(2), 60, 3, 0.8)
    spk, mem = _snntorch_run(leaky, x, [torch.zeros(3)])
    params = dict(tau=node.tau, r=node.r, v_leak=node.v_leak, v_threshold=node.v_threshold, v_reset=node.v_reset)
    ref_spk, ref_v, _ = step_loop(Policy.preset("snntorch", reset="to_reset"), "LIF", params, x)
    next_spk, _, _ = step_loop(Policy.preset("snntorch", reset="to_reset", type_overrides={}), "LIF", params, x)
    quiet = ref_spk == 0
    clear_of_threshold(ref_v[quiet], 1.0)
    assert 5 <= ref_spk.sum() <= 100
    np.testing.assert_array_equal(spk, ref_spk)
    assert not np.array_equal(spk, next_spk)  # next_step would be wrong for Leaky
    shown = slice(None) if not reset_delay else quiet
    np.testing.assert_allclose(mem[shown], ref_v[shown], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mechanism", ["subtract", "zero"])
def test_snntorch_synaptic(mechanism):
    """snn.Synaptic exported by snnTorch, stepped by the preset: euler, current input with
    w_in = tau_syn/dt and r = tau_mem/dt at dt = 1e-4, current_first, reset next_step, gt."""
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import _extract_snntorch_module

    syn = snn.Synaptic(alpha=torch.tensor([0.8, 0.5, 0.9]), beta=torch.tensor([0.9, 0.7, 0.6]),
                       threshold=torch.ones(3), reset_mechanism=mechanism)
    node = _extract_snntorch_module(syn)
    x = _spiky_input(np.random.default_rng(3), 60, 3, 0.4)
    spk, mem = _snntorch_run(syn, x, [torch.zeros(3), torch.zeros(3)])
    policy = Policy.preset("snntorch", **({"reset": "to_reset"} if mechanism == "zero" else {}))
    params = {k: getattr(node, k) for k in ("tau_syn", "tau_mem", "r", "w_in", "v_leak", "v_threshold", "v_reset")}
    ref_spk, ref_v, _ = step_loop(policy, "CubaLIF", params, x)
    clear_of_threshold(ref_v, 1.0)
    assert 5 <= ref_spk.sum() <= 120
    np.testing.assert_array_equal(spk, ref_spk)
    np.testing.assert_allclose(mem, ref_v, rtol=1e-5, atol=1e-5)
    for order in ("voltage_first",):  # the other order is measurably different
        other, _, _ = step_loop(policy.model_copy(update={"current_order": order}), "CubaLIF", params, x)
        assert not np.array_equal(other, ref_spk)


def test_snntorch_threshold_is_strict():
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    spk, mem = _snntorch_run(snn.Leaky(beta=0.5, threshold=1.0), np.array([[1.0]], np.float32), [torch.zeros(1)])
    assert mem[0, 0] == 1.0 and spk[0, 0] == 0  # v == threshold does not fire: gt


def test_snntorch_export_convention_matches_helpers():
    """leaky_to_nir / synaptic_to_nir give what snnTorch's exporter writes (float32, 1 ulp)."""
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import _extract_snntorch_module

    alpha, beta = np.float32([0.8, 0.5, 0.99]), np.float32([0.9, 0.7, 0.999])
    node = _extract_snntorch_module(snn.Synaptic(alpha=torch.from_numpy(alpha), beta=torch.from_numpy(beta),
                                                 threshold=torch.ones(3)))
    ours = synaptic_to_nir(alpha, beta, Policy.preset("snntorch").dt)
    for mine, theirs in zip(ours, (node.tau_syn, node.tau_mem, node.r, node.w_in)):
        assert mine.dtype == theirs.dtype == np.float32
        np.testing.assert_array_max_ulp(mine, theirs, maxulp=1)
    assert Policy.infer(_chain(("lif", node), n=3)).dt == 1e-4


def _norse_run(module, x):
    import torch

    spikes, states, state = [], [], None
    for xk in torch.from_numpy(x[:, None, :]):
        z, state = module(xk, state)
        spikes.append(z.detach().numpy()[0].copy())
        states.append(state)
    return np.array(spikes), states


def _norse_graph(node, n):
    return nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([n])}), "node": node,
                               "output": nir.Output(output_type={"output": np.array([n])})},
                        edges=[("input", "node"), ("node", "output")])


@NIRTORCH_LOAD
def test_norse_from_nir_lif():
    """norse.torch.from_nir at its default dt: LIFBoxCell is euler with current input, reset
    to v_reset at once, threshold gt: the norse preset at dt = 1e-3."""
    pytest.importorskip("torch")
    norse = pytest.importorskip("norse.torch")
    params = lif_params(3, tau=[5e-3, 1e-2, 2e-2], v_threshold=[0.2, 0.3, 0.15])
    module = norse.from_nir(_norse_graph(nir.LIF(**{k: v.astype(np.float32) for k, v in params.items()}), 3))
    x = _spiky_input(np.random.default_rng(4), 80, 3, 2.0)
    spk, states = _norse_run(module, x)
    mem = np.array([s.state["node"][0].v.detach().numpy()[0] for s in states])
    ref_spk, ref_v, _ = step_loop(Policy.preset("norse"), "LIF", params, x)
    clear_of_threshold(ref_v, params["v_threshold"])
    assert 5 <= ref_spk.sum() <= 150
    np.testing.assert_array_equal(spk, ref_spk)
    np.testing.assert_allclose(mem, ref_v, rtol=1e-5, atol=1e-5)


@NIRTORCH_LOAD
def test_norse_from_nir_cubalif():
    """from_nir's CubaLIF (LIBoxCell synapse on w_in x, LIFBoxCell on r I): current input,
    current_first."""
    pytest.importorskip("torch")
    norse = pytest.importorskip("norse.torch")
    params = cuba_params(3, tau_syn=[2e-3, 5e-3, 3e-3], tau_mem=[1e-2, 5e-3, 2e-2], r=[1.0, 2.0, 1.5],
                         w_in=[1.0, 0.5, 2.0], v_threshold=[0.5, 0.3, 0.8])
    module = norse.from_nir(_norse_graph(nir.CubaLIF(**{k: v.astype(np.float32) for k, v in params.items()}), 3))
    x = _spiky_input(np.random.default_rng(5), 100, 3, 3.0)
    spk, states = _norse_run(module, x)
    mem = np.array([s.state["node"][0][1].v.detach().numpy()[0] for s in states])
    ref_spk, ref_v, _ = step_loop(Policy.preset("norse"), "CubaLIF", params, x)
    clear_of_threshold(ref_v, params["v_threshold"])
    assert 5 <= ref_spk.sum() <= 200
    np.testing.assert_array_equal(spk, ref_spk)
    np.testing.assert_allclose(mem, ref_v, rtol=1e-5, atol=1e-5)
    other, _, _ = step_loop(Policy.preset("norse", current_order="voltage_first"), "CubaLIF", params, x)
    assert not np.array_equal(other, ref_spk)


@NIRTORCH_LOAD
def test_norse_from_nir_if_is_impulse():
    """from_nir's IF (IAFCell: v = v + x, whatever dt): the preset's IF type override."""
    pytest.importorskip("torch")
    norse = pytest.importorskip("norse.torch")
    params = dict(r=np.ones(2), v_threshold=np.array([1.0, 2.0]), v_reset=np.zeros(2))
    module = norse.from_nir(_norse_graph(nir.IF(**{k: v.astype(np.float32) for k, v in params.items()}), 2))
    x = np.array([[1.0, 1.0], [0.5, 1.0], [0.75, 0.5], [0.25, 0.5]], np.float32)
    spk, states = _norse_run(module, x)
    ref_spk, ref_v, _ = step_loop(Policy.preset("norse"), "IF", params, x)
    # v == threshold at steps 0 and 3 (neuron 0) and step 1 (neuron 1): no spike, gt
    assert ref_spk.tolist() == [[0, 0], [1, 0], [0, 1], [0, 0]]
    np.testing.assert_array_equal(spk, ref_spk)
    np.testing.assert_allclose([s.state["node"][0].v.detach().numpy()[0] for s in states], ref_v, atol=1e-6)
    current, _, _ = step_loop(Policy.preset("norse", type_overrides={}), "IF", params, x)
    assert current.sum() == 0  # as a current (dt = 1e-3) it would not fire


def test_norse_lifcell_is_impulse_current_first():
    """Norse's own LIFCell adds the input to i as a jump and drives v with that i."""
    pytest.importorskip("torch")
    norse = pytest.importorskip("norse.torch")
    import torch
    from norse.torch.functional.lif import LIFParameters

    tau_syn, tau_mem = np.array([5e-3, 2e-3]), np.array([1e-2, 2e-2])
    cell = norse.LIFCell(LIFParameters(tau_syn_inv=torch.tensor(1 / tau_syn, dtype=torch.float32),
                                       tau_mem_inv=torch.tensor(1 / tau_mem, dtype=torch.float32),
                                       v_th=torch.tensor(0.3)), dt=1e-3)
    x = _spiky_input(np.random.default_rng(6), 80, 2, 0.8)
    spk, states = _norse_run(cell, x)
    mem = np.array([s.v.detach().numpy()[0] for s in states])
    policy = Policy.preset("norse", type_overrides={"CubaLIF": NodePolicy(input="impulse")})
    params = cuba_params(2, tau_syn=tau_syn, tau_mem=tau_mem, v_threshold=0.3)
    ref_spk, ref_v, _ = step_loop(policy, "CubaLIF", params, x)
    clear_of_threshold(ref_v, 0.3)
    assert 5 <= ref_spk.sum() <= 100
    np.testing.assert_array_equal(spk, ref_spk)
    np.testing.assert_allclose(mem, ref_v, rtol=1e-5, atol=1e-5)


def _paper_reference(dt, p, x):
    """Transcribed from the NIR paper's CubaLIFImplementation.forward
    (neuromorphs/NIR, paper/03_rnn/extras/debug_CubaLIF/nir_reference_impl.py)."""
    v, current = np.zeros_like(p["v_threshold"]), np.zeros_like(p["v_threshold"])
    spikes, volts = [], []
    for xk in x:
        i_last, v_last = current.copy(), v.copy()
        current = i_last + (dt / p["tau_syn"]) * (-i_last + p["w_in"] * xk)
        v = v_last + (dt / p["tau_mem"]) * (p["v_leak"] - v_last + p["r"] * i_last)
        z = v > p["v_threshold"]
        v = v - z * p["v_threshold"]
        spikes.append(z.astype(float))
        volts.append(v)
    return np.array(spikes), np.array(volts)


def test_nir_paper_reference():
    params = cuba_params(3, tau_syn=[2e-4, 5e-4, 1e-3], tau_mem=[1e-3, 5e-4, 2e-3], r=[10.0, 5.0, 20.0],
                         w_in=[2.0, 5.0, 10.0], v_leak=[0.0, 0.1, -0.1])
    x = np.random.default_rng(7).random((80, 3)) * 0.6
    policy = Policy.preset("nir-paper")
    paper_spk, paper_v = _paper_reference(policy.dt, params, x)
    ref_spk, ref_v, _ = step_loop(policy, "CubaLIF", params, x)
    assert 5 <= paper_spk.sum() <= 200
    np.testing.assert_array_equal(paper_spk, ref_spk)
    np.testing.assert_allclose(paper_v, ref_v, rtol=1e-12, atol=1e-12)


def test_nir_preset_is_the_exact_solution():
    """For an input held over each step, the nir preset's v at step ends is the closed-form
    solution of tau v' = v_leak - v + r I (no spike: threshold out of reach)."""
    tau, r, v_leak, current = 2e-3, 3.0, 0.1, 0.7
    policy = Policy.preset("nir")
    x = np.full((50, 1), current)
    _, v, _ = step_loop(policy, "LIF", lif_params(1, tau=tau, r=r, v_leak=v_leak, v_threshold=1e9), x)
    t = policy.dt * np.arange(1, 51)
    target = v_leak + r * current
    np.testing.assert_allclose(v[:, 0], target - target * np.exp(-t / tau), rtol=1e-12)


def test_sinabs_layers():
    """Sinabs IAF and LIF (norm_input=False, as its from_nir builds them) with SingleSpike: exact
    decay with tau in steps, impulse input, subtract reset, threshold ge (the multi-spike default
    is pinned in plugins/nirbridge-sinabs)."""
    torch = pytest.importorskip("torch")
    sl = pytest.importorskip("sinabs.layers")
    from sinabs.activation import SingleSpike

    x = np.array([[1.0, 0.3], [0.4, 0.9], [0.7, 0.2], [1.5, 0.9], [0.0, 0.5]], np.float32)
    policy = Policy.preset("sinabs", spikes="single")
    iaf = sl.IAF(spike_threshold=torch.tensor(1.0), spike_fn=SingleSpike, record_states=True)
    out = iaf(torch.from_numpy(x[None])).detach().numpy()[0]
    ref_spk, ref_v, _ = step_loop(policy, "IF", dict(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2)), x)
    assert ref_spk[0, 0] == 1  # v == threshold fires: ge
    np.testing.assert_array_equal(out, ref_spk)
    np.testing.assert_allclose(iaf.recordings["v_mem"].detach().numpy()[0], ref_v, atol=1e-6)
    lif = sl.LIF(tau_mem=torch.tensor(4.0), spike_threshold=torch.tensor(1.0), spike_fn=SingleSpike,
                 norm_input=False, record_states=True)
    out = lif(torch.from_numpy(x[None])).detach().numpy()[0]
    ref_spk, ref_v, _ = step_loop(policy, "LIF", lif_params(2, tau=4.0), x)
    assert ref_spk.sum() >= 2
    np.testing.assert_array_equal(out, ref_spk)
    np.testing.assert_allclose(lif.recordings["v_mem"].detach().numpy()[0], ref_v, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- maths


def test_maths_by_hand():
    assert decay(0.01, 1e-3) == pytest.approx(0.9, rel=1e-15)
    assert decay(0.01, 1e-3, "exact") == pytest.approx(math.exp(-0.1), rel=1e-15)
    assert tau_from_decay(0.9, 1e-4) == pytest.approx(1e-3, rel=1e-14)
    assert tau_from_decay(math.exp(-0.1), 1e-3, "exact") == pytest.approx(0.01, rel=1e-14)
    assert current_gain(2e-3, 1e-3) == pytest.approx(0.5, rel=1e-15)
    assert current_gain(2e-3, 1e-3, "exact") == pytest.approx(1 - math.exp(-0.5), rel=1e-15)
    assert unit_gain(1e-3, 1e-4) == pytest.approx(10.0, rel=1e-15)
    assert unit_gain(1e-3, 1e-4, "exact") == pytest.approx(1 / (1 - math.exp(-0.1)), rel=1e-14)


@pytest.mark.parametrize("integration", ["euler", "exact"])
def test_exact_unit_gain_makes_the_input_term_exactly_one(integration):
    """Where found, the reference's c r (float64 product, rounded once to float32) is 1, and r
    lies within a few float32 steps of unit_gain; where not, r is unit_gain's value."""
    tau = np.random.default_rng(0).uniform(1.5, 40.0, 500).astype(np.float32)
    r, found = exact_unit_gain(tau, 1.0, integration)
    c = current_gain(tau.astype(np.float64), 1.0, integration)
    assert r.dtype == np.float32 and found.mean() > 0.9
    assert np.all((c[found] * r[found].astype(np.float64)).astype(np.float32) == 1)
    near = np.asarray(unit_gain(tau.astype(np.float64), 1.0, integration), np.float32)
    assert np.all(np.abs(r - near) <= 8 * np.spacing(near)) and np.array_equal(r[~found], near[~found])
    tau, r = leaky_to_nir(0.9, 1e-4)
    assert (tau, r) == (pytest.approx(1e-3, rel=1e-14), pytest.approx(10.0, rel=1e-14))
    tau_syn, tau_mem, r, w_in = synaptic_to_nir(0.5, 0.75, 1.0, "exact")
    assert tau_syn == pytest.approx(1 / math.log(2), rel=1e-15)
    assert tau_mem == pytest.approx(1 / math.log(4 / 3), rel=1e-15)
    assert r == pytest.approx(4.0, rel=1e-14) and w_in == pytest.approx(2.0, rel=1e-14)
    alpha, beta, gain_syn, gain_mem = synaptic_from_nir(2e-3, 4e-3, 3.0, 5.0, 1e-3)
    assert (alpha, beta) == (pytest.approx(0.5), pytest.approx(0.75))
    assert (gain_syn, gain_mem) == (pytest.approx(2.5), pytest.approx(0.75))


def test_maths_dtypes_and_shapes():
    tau32 = np.array([1e-3, 2e-3], np.float32)
    assert decay(tau32, 1e-4).dtype == np.float32
    assert decay(np.array([1, 2]), 1).dtype == np.float64
    assert isinstance(decay(0.01, 1e-3), np.float64)
    tau, r = leaky_to_nir(np.float32(0.9), 1e-4)
    assert tau.dtype == r.dtype == np.float32
    beta, gain = leaky_from_nir(tau32, np.array([10.0, 20.0]), 1e-4)
    assert beta.dtype == np.float32 and gain.dtype == np.float64
    assert decay(np.full((2, 3), 1e-3), 1e-4).shape == (2, 3)
    # float32 results are the float64 result rounded once
    assert decay(np.float32(3e-3), 1e-4, "exact") == np.float32(math.exp(-1e-4 / float(np.float32(3e-3))))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: decay([1e-3, -1e-3], 1e-4), r"^tau\[1\]: must be finite and > 0, got -0.001"),
        (lambda: decay([1e-3, np.nan], 1e-4), r"^tau\[1\]: must be finite and > 0, got nan"),
        (lambda: decay(1e-3, 0), r"^dt: must be finite and > 0"),
        (lambda: decay(1e-3, "1e-4"), r"^dt: must be a number"),
        (lambda: decay(1e-3, 1e-4, "rk4"), r"^integration: must be 'euler' or 'exact', got 'rk4'"),
        (lambda: decay("0.01", 1e-4), r"^tau: must be a real number"),
        (lambda: tau_from_decay(1.0, 1e-4), r"^a: must be finite and < 1 \(1 is no leak"),
        (lambda: tau_from_decay(0.0, 1e-4, "exact"), r"^a: must be in \(0, 1\)"),
        (lambda: leaky_to_nir([0.9, 1.5], 1e-4), r"^beta\[1\]: must be finite and < 1"),
        (lambda: synaptic_to_nir(1.0, 0.9, 1e-4), r"^alpha: must be finite and < 1"),
        (lambda: synaptic_from_nir(1e-3, 0.0, 1.0, 1.0, 1e-4), r"^tau_mem: must be finite and > 0"),
        (lambda: synaptic_from_nir(1e-3, 1e-3, 1.0, np.inf, 1e-4), r"^w_in: must be finite"),
        (lambda: leaky_from_nir(1e-3, [1.0, np.nan], 1e-4), r"^r\[1\]: must be finite"),
    ],
)
def test_maths_bad_input(call, message):
    with pytest.raises(PolicyError, match=message):
        call()


INTEGRATIONS = st.sampled_from(["euler", "exact"])
DTS = st.floats(min_value=1e-9, max_value=1e3)


def _factors(low, high, width):
    return st.floats(min_value=low, max_value=high, exclude_min=low == 0, exclude_max=True, width=width)


def _ulps(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype
    return float(abs(got.astype(np.float64) - want.astype(np.float64)) / np.spacing(abs(want)).astype(np.float64))


@pytest.mark.parametrize("width, dtype", [(64, np.float64), (32, np.float32)])
@HYPOTHESIS
@given(data=st.data(), dt=DTS, integration=INTEGRATIONS)
def test_round_trip_decay_within_one_ulp(width, dtype, data, dt, integration):
    """beta -> (tau, r) -> (beta, gain) and (alpha, beta) -> 4 NIR parameters -> back, for
    decay factors in [0.5, 1): every factor within 1 ulp, every gain within 1 ulp of 1."""
    alpha = dtype(data.draw(_factors(0.5, 1.0, width)))
    beta = dtype(data.draw(_factors(0.5, 1.0, width)))
    assert _ulps(decay(tau_from_decay(beta, dt, integration), dt, integration), beta) <= 1
    back, gain = leaky_from_nir(*leaky_to_nir(beta, dt, integration), dt, integration)
    assert _ulps(back, beta) <= 1 and _ulps(gain, dtype(1)) <= 1
    a2, b2, g_syn, g_mem = synaptic_from_nir(*synaptic_to_nir(alpha, beta, dt, integration), dt, integration)
    assert _ulps(a2, alpha) <= 1 and _ulps(b2, beta) <= 1
    assert _ulps(g_syn, dtype(1)) <= 1 and _ulps(g_mem, dtype(1)) <= 1


@pytest.mark.parametrize("width, dtype", [(64, np.float64), (32, np.float32)])
@HYPOTHESIS
@given(data=st.data(), dt=DTS, integration=INTEGRATIONS)
def test_round_trip_small_decay_bound(width, dtype, data, dt, integration):
    """Below 0.5 one ulp cannot hold: euler recovers beta from 1 - dt/tau, so the error is
    absolute, at most eps; exact loses about |ln beta| ulps through exp(log(beta))."""
    beta = dtype(data.draw(_factors(0.0, 0.5, width).filter(lambda b: b >= 1e-30)))
    back = decay(tau_from_decay(beta, dt, integration), dt, integration)
    if integration == "euler":
        assert abs(float(back) - float(beta)) <= np.finfo(dtype).eps
    else:
        assert _ulps(back, beta) <= 2 + 2 * abs(math.log(float(beta)))


@pytest.mark.parametrize("width, dtype", [(64, np.float64), (32, np.float32)])
@HYPOTHESIS
@given(ratio=st.floats(min_value=1.0, max_value=1e7), dt=DTS, integration=INTEGRATIONS)
def test_round_trip_tau_bound(width, dtype, ratio, dt, integration):
    """tau -> beta -> tau cannot be exact: beta = 1 - dt/tau keeps dt/tau only to eps/(dt/tau),
    so tau comes back within eps * (tau/dt + 2) relative (tau >= dt)."""
    tau = dtype(ratio * dt)
    back = tau_from_decay(decay(tau, dt, integration), dt, integration)
    assert back.dtype == dtype
    assert abs(float(back) - float(tau)) <= np.finfo(dtype).eps * (float(tau) / dt + 2) * float(tau)


# ----------------------------------------------------------------------------- metadata

POLICIES = [
    *Policy.presets().values(),
    Policy(dt=1e-4 / 3, overrides={"sub.lif": NodePolicy(reset="none", input="impulse")}),
    Policy.preset("snntorch", reset="to_reset").with_override("lif1", threshold="ge"),
]


@pytest.mark.parametrize("policy", POLICIES)
def test_metadata_round_trip(policy):
    md = policy.to_metadata()
    assert list(md) == [METADATA_KEY] and isinstance(md[METADATA_KEY], str)
    assert json.loads(md[METADATA_KEY])["version"] == 1
    back = Policy.from_metadata(md)
    assert back == policy and back.dt.hex() == policy.dt.hex()


@pytest.mark.parametrize("wrap", [str, lambda s: s.encode(), lambda s: np.bytes_(s.encode()),
                                  lambda s: np.str_(s), lambda s: np.array(s.encode())])
def test_metadata_value_types(wrap):
    policy = Policy.preset("norse")
    md = {METADATA_KEY: wrap(policy.to_metadata()[METADATA_KEY]), "other": b"x"}
    assert Policy.from_metadata(md) == policy


def test_metadata_absent():
    assert Policy.from_metadata(None) is None
    assert Policy.from_metadata({}) is None
    assert Policy.from_metadata({"nirbridge.other": "x"}) is None


WHERE = f"metadata['{METADATA_KEY}']"


@pytest.mark.parametrize(
    "value, path, message",
    [
        ("{not json", WHERE, "not valid JSON"),
        ("[1, 2]", WHERE, "must be a JSON object, got list"),
        (b"\xff\xfe", WHERE, "must be a JSON string, got bytes"),
        (42, WHERE, "must be a JSON string, got int"),
        (json.dumps({"dt": 1e-4}), WHERE + ".version", "must be 1, got None"),
        (json.dumps({"version": 2, "dt": 1e-4}), WHERE + ".version", "must be 1, got 2"),
        (json.dumps({"version": 1, "reset": "zero"}), WHERE + ".reset", "got 'zero'"),
        (json.dumps({"version": 1, "dt": "fast"}), WHERE + ".dt", "must be a number"),
        ('{"version": 1, "dt": NaN}', WHERE + ".dt", "must be finite"),
        (json.dumps({"version": 1, "delay": 3}), WHERE + ".delay", "unknown field"),
        (json.dumps({"version": 1, "overrides": {"a": {"reset": 1}}}), WHERE + ".overrides.a.reset", "got 1"),
        ("[" * 100_000, WHERE, "not valid JSON"),
        (" " * (2 << 20), WHERE, "longer than"),
    ],
)
def test_metadata_bad(value, path, message):
    with pytest.raises(PolicyError) as info:
        Policy.from_metadata({METADATA_KEY: value})
    assert [p.path for p in info.value.problems] == [path]
    assert message in str(info.value)


def test_metadata_survives_nir_write_and_read(tmp_path):
    policy = Policy.preset("snntorch").with_override("lif", reset="to_reset")
    graph = _chain(("lif", _lif_node(2, 1e-3, 10.0)))
    graph = graph.model_copy(update={"metadata": {**graph.metadata, **policy.to_metadata()}})
    path = tmp_path / "net.nir"
    nir.write(path, graph.to_nir())
    loaded = nirbridge.Graph.from_nir(nir.read(path))
    assert Policy.from_metadata(loaded.metadata) == policy
    assert Policy.infer(loaded).dt == 1e-4


# ----------------------------------------------------------------------------- dt inference


@pytest.mark.parametrize("name", ["braille_noDelay_bias_zero.nir", "braille_noDelay_noBias_subtract.nir"])
def test_infer_braille(name, fixtures_dir):
    path = fixtures_dir / "03_rnn" / name
    result = Policy.infer(nirbridge.Graph.from_nir(nir.read(path)))
    assert isinstance(result, DtInference)
    assert result.dt == 1e-4 and result.confidence == "high"
    assert set(result.evidence) == {"lif1.lif", "lif2"}
    assert all("tau_syn/w_in = 0.0001" in e and "tau_mem/r = 0.0001" in e for e in result.evidence.values())


@pytest.mark.parametrize("name", ["01_lif/lif_norse.nir", "02_cnn/cnn_sinabs.nir"])
def test_infer_no_evidence_in_paper_graphs(name, fixtures_dir):
    path = fixtures_dir / name
    result = Policy.infer(nirbridge.Graph.from_nir(nir.read(path)))
    assert result.dt is None and result.confidence == "none" and "no evidence" in result.message


@settings(max_examples=60, deadline=None)
@given(betas=st.lists(st.floats(0.0, 0.999).map(np.float32), min_size=1, max_size=5),
       dt=st.sampled_from([1e-4, 1e-3, 5e-4, 1.0]))
def test_infer_snntorch_style_float32(betas, dt):
    """tau = dt/(1-beta), r = tau/dt in float32, as snnTorch writes them: dt comes back."""
    beta = np.array(betas, np.float32)
    tau = (np.float32(dt) / (np.float32(1) - beta)).astype(np.float32)
    r = (tau / np.float32(dt)).astype(np.float32)
    assume_evidence = not np.all(r == 1)
    node = nir.LIF(tau=tau, r=r, v_leak=np.zeros_like(tau), v_threshold=np.ones_like(tau), v_reset=np.zeros_like(tau))
    result = Policy.infer(_chain(("lif", node), n=len(betas)))
    if assume_evidence:
        assert result.dt == dt and result.confidence == "low"
    else:
        assert result.dt is None


def test_infer_confidence_levels():
    one = Policy.infer(_chain(("lif", _lif_node(2, 2e-2, 20.0))))
    assert (one.dt, one.confidence) == (1e-3, "low")
    cuba = Policy.infer(_chain(("cuba", _cuba_node(2, 5e-3, 1e-2, 10.0, 5.0))))
    assert (cuba.dt, cuba.confidence) == (1e-3, "medium")
    two = Policy.infer(_chain(("a", _lif_node(2, 2e-2, 20.0)), ("b", _lif_node(2, 5e-3, 5.0))))
    assert (two.dt, two.confidence) == (1e-3, "high")
    assert two.evidence == {"a": "tau/r = 0.001", "b": "tau/r = 0.001"}


def test_infer_disagreement_reported():
    graph = _chain(("a", _lif_node(2, 2e-2, 20.0)), ("b", _lif_node(2, 5e-3, 5.0)), ("c", _lif_node(2, 1e-2, 1e2)))
    result = Policy.infer(graph)
    assert (result.dt, result.confidence) == (1e-3, "low")
    assert "disagreeing: c" in result.message
    assert result.evidence["c"] == "tau/r = 0.0001 (disagrees with dt = 0.001)"
    tie = Policy.infer(_chain(("a", _lif_node(2, 2e-2, 20.0)), ("c", _lif_node(2, 1e-2, 1e2))))
    assert tie.dt is None and tie.confidence == "none" and "disagree" in tie.message
    inside = Policy.infer(_chain(("c", _cuba_node(2, 1e-3, 1e-2, 10.0, 10.0))))  # 1e-4 vs 1e-3
    assert inside.dt is None and "disagree" in inside.message


def test_infer_no_evidence_and_partial_evidence():
    none = Policy.infer(_chain(("a", _lif_node(2, 2e-2, 1.0)), ("b", _cuba_node(2, 1e-3, 1e-2, 1.0, 1.0))))
    assert none.dt is None and none.confidence == "none"
    assert none.evidence == {"a": "r = 1: no evidence", "b": "w_in = 1: no evidence; r = 1: no evidence"}
    assert "no evidence" in none.message
    # w_in = 1 but r = tau_mem/dt: one estimate from that node
    half = Policy.infer(_chain(("b", _cuba_node(2, 1e-3, 1e-2, 100.0, 1.0))))
    assert (half.dt, half.confidence) == (1e-4, "low")
    varying = nir.LIF(tau=np.array([1e-3, 1e-3]), r=np.array([10.0, 5.0]), v_leak=np.zeros(2),
                      v_threshold=np.ones(2), v_reset=np.zeros(2))
    result = Policy.infer(_chain(("v", varying)))
    assert result.dt is None and "varies" in result.evidence["v"]


def test_infer_nested_and_nir_input():
    graph = _chain(("sub", _lif_node(2, 1e-2, 10.0)), ("b", _lif_node(2, 5e-3, 5.0)), nested="sub")
    result = Policy.infer(graph)
    assert set(result.evidence) == {"sub.lif", "b"}
    assert (result.dt, result.confidence) == (1e-3, "high")
    assert Policy.infer(graph.to_nir()) == result
    frozen = result.model_copy()
    with pytest.raises(pydantic.ValidationError):
        frozen.dt = 1.0


@pytest.mark.parametrize("estimate, expected", [
    (1.0000002e-4, 1e-4),  # float32 noise is rounded away
    (2.5e-4 * (1 - 3e-7), 2.5e-4),
    (1.23456e-4, 1.23456e-4),  # real digits are kept
    (1e-3 / 3, 3.3333e-4),  # the fewest digits within 1e-5 of the estimate
])
def test_infer_rounds_to_significant_digits(estimate, expected):
    node = nir.LIF(tau=np.array([1e-2]), r=np.array([1e-2 / estimate]), v_leak=np.zeros(1),
                   v_threshold=np.ones(1), v_reset=np.zeros(1))
    assert Policy.infer(_chain(("lif", node), n=1)).dt == expected
