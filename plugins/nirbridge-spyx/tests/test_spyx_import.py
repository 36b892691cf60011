"""NIR -> Spyx: stock Spyx layers where Spyx computes the node's policy exactly, the JAX policy
neuron elsewhere (named in the report), 0 differing spikes against the reference under every
preset; and one neuron formula for NumPy, torch and JAX."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import spyx.nn as snn

import nirbridge
from nirbridge import Policy
from nirbridge.compare import compare, recordable
from nirbridge.conversion import plan, run
from nirbridge.semantics import PRESETS, StepRule, neuron_step
from nirbridge.testing import activity, build_case, case_inputs, case_policy
from nirbridge_spyx import JaxNeuron, SpyxBackend
from nirbridge_spyx.neurons import StockNeuron

BACKEND = SpyxBackend()


def test_stock_layers_where_spyx_has_the_policy_policy_neuron_elsewhere():
    graph = nirbridge.Graph.from_dict({
        "nodes": {
            "input": {"type": "Input", "shape": np.array([4])},
            "lif": {"type": "LIF", "tau": np.full(4, 5.0, np.float32), "r": np.ones(4, np.float32), "v_leak": np.zeros(4, np.float32),
                    "v_threshold": np.ones(4, np.float32), "v_reset": np.zeros(4, np.float32)},
            "d": {"type": "Delay", "delay": np.ones(4, np.float32)},
            "lif2": {"type": "LIF", "tau": np.full(4, 5.0, np.float32), "r": np.ones(4, np.float32), "v_leak": np.zeros(4, np.float32),
                     "v_threshold": np.ones(4, np.float32), "v_reset": np.zeros(4, np.float32)},
            "output": {"type": "Output", "shape": np.array([4])},
        },
        "edges": [("input", "lif"), ("lif", "d"), ("d", "lif2"), ("lif2", "output")],
    })
    p = plan(graph, BACKEND, policy="spyx")
    model = p.build()
    assert isinstance(model.pieces["lif"], StockNeuron) and isinstance(model.pieces["lif"].layer, snn.LIF)
    assert isinstance(model.pieces["lif2"], JaxNeuron)  # no Delay after it: Spyx would fire a step late
    rows = {g.node: g for g in p.report.gaps}
    assert "spyx.nn.LIF" in rows["lif"].maps_to and "JaxNeuron" in rows["lif2"].maps_to
    assert "one-step Delay" in rows["lif2"].reason
    x = (np.random.default_rng(0).random((40, 2, 4)) < 0.5).astype(np.float32) * 2
    ref = nirbridge.simulate(graph, x, policy="spyx", record=["lif", "d", "lif2"])
    got = run(BACKEND, model, x, record=("lif", "d", "lif2"))
    for name in ("lif", "lif2"):
        np.testing.assert_array_equal(got.states[name]["spikes"], ref.states[name]["spikes"])
        np.testing.assert_array_equal(got.states[name]["v"], ref.states[name]["v"])
    np.testing.assert_array_equal(got.states["d"]["y"], ref.states["d"]["y"])
    assert ref.states["lif2"]["spikes"].any()
    # under another threshold rule the stock layer no longer computes the node
    other = plan(graph, BACKEND, policy=Policy.preset("spyx", threshold="ge")).build()
    assert isinstance(other.pieces["lif"], JaxNeuron)


CASES = ["lif", "cubalif", "if", "li", "cubali", "i", "network", "recurrent_cubalif", "conv_net", "nested_recurrent", "delay"]


@pytest.mark.parametrize("preset", [p for p in PRESETS if p != "spyx"])
def test_agrees_with_the_reference_under_every_preset(preset):
    """The zoo of the conformance suite under the other frameworks' presets: 0 differing spikes."""
    base = Policy.preset(preset)
    for case in CASES:
        policy = case_policy(case, base)
        graph = build_case(case, policy)
        model = plan(graph, BACKEND, policy=policy).build()
        record = recordable(graph)
        x, reference = case_inputs(case, graph, policy, steps=30, batch=2, record=record)
        result = run(BACKEND, model, x, record=tuple(record))
        bad = {n: c for n, c in compare(reference, result, graph, record).items() if not c.ok or c.spike_diffs}
        assert not bad, (preset, case, bad)
        assert all(s > 0 for s, _ in activity(reference, graph).values()), (preset, case)


def _random_constants(rng, xp, n=64):
    k = {"a": rng.uniform(0.5, 1, n), "a_syn": rng.uniform(0.3, 0.9, n), "c_r": rng.uniform(0.5, 1.5, n),
         "v_leak_term": rng.uniform(-0.1, 0.1, n), "v_threshold": rng.uniform(0.5, 1.5, n), "v_reset": rng.uniform(-0.3, 0.3, n), "v_min": None}
    return {name: None if v is None else xp.asarray(v.astype(np.float32)) for name, v in k.items()}


@pytest.mark.parametrize("kind", ["LIF", "CubaLIF", "IF"])
@pytest.mark.parametrize("rule", [dict(), dict(threshold="ge", reset="subtract", next_step=True), dict(threshold="ge", multi=True, max_spikes=2, reset="subtract"),
                                  dict(voltage_first=True)])
def test_one_neuron_step_for_numpy_torch_and_jax(kind, rule):
    """`semantics.neuron_step` gives the same bits in NumPy, torch (the PolicyNeuron's
    formula) and jax.numpy (JaxNeuron's)."""
    torch = pytest.importorskip("torch")
    rule = StepRule(kind, **rule)
    rng = np.random.default_rng(0)
    k64 = _random_constants(rng, np)
    if kind == "IF":
        k64["a"] = None
    x = rng.uniform(-0.5, 1.5, (50, 64)).astype(np.float32)
    outs = {}
    for name, xp, conv in (("numpy", np, np.asarray), ("torch", torch, torch.from_numpy), ("jax", jnp, jnp.asarray)):
        k = {n: None if v is None else conv(np.asarray(v)) for n, v in k64.items()}
        zeros = conv(np.zeros(64, np.float32))
        v, i, z = zeros, zeros, zeros
        zs = []
        for t in range(50):
            v, i, z = neuron_step(xp, rule, k, v, i, z, conv(x[t]))
            zs.append(np.asarray(z) + 0 * np.asarray(v))
        outs[name] = (np.stack(zs), np.asarray(v))
    for name in ("torch", "jax"):
        np.testing.assert_array_equal(outs[name][0], outs["numpy"][0])
        np.testing.assert_array_equal(outs[name][1], outs["numpy"][1])
    assert 0 < (outs["numpy"][0] > 0).mean() < 1
