"""`GraphModule` + `build_stateless` against the NumPy reference: every stateless node, the
cycle rule, nested graphs; `export_stateless` inverts `build_stateless`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nirbridge import ir as g
from nirbridge.reference import simulate
from nirbridge.semantics import Policy
from nirbridge_torch import GraphModule, build_stateless, export_stateless, run_sequence
from nirbridge_torch.cells import PolicyNeuron

F = np.float32
POLICY = Policy.preset("snntorch")


def modules_for(graph: g.Graph):
    from nirbridge.topology import flatten

    flat = flatten(graph)
    out = {}
    for name, node in flat.nodes.items():
        if node.type in ("Input", "Output"):
            continue
        if node.type in ("LIF", "CubaLIF", "IF", "LI", "CubaLI", "I"):
            out[name] = PolicyNeuron(node, POLICY.for_node(name, node.type))
        else:
            out[name] = build_stateless(node, policy=POLICY, name=name)
    return out


def conv_graph(rng) -> g.Graph:
    conv = g.Conv2d(weight=rng.uniform(-0.2, 0.5, (3, 2, 3, 3)).astype(F), bias=rng.uniform(0, 0.1, 3).astype(F),
                    stride=np.array([1, 1]), padding=np.array([1, 1]), dilation=np.array([1, 1]), groups=np.array(1),
                    input_shape=np.array([6, 6]))
    lif = g.LIF(tau=np.full((3, 6, 6), 5e-4, F), r=np.full((3, 6, 6), 5.0, F), v_leak=np.zeros((3, 6, 6), F),
                v_threshold=np.ones((3, 6, 6), F), v_reset=np.zeros((3, 6, 6), F))
    nodes = {
        "input": g.Input(shape=np.array([2, 6, 6])), "conv": conv, "lif": lif,
        "sum": g.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "thr": g.Threshold(threshold=np.full((3, 3, 3), 0.5, F)),
        "avg": g.AvgPool2d(kernel_size=np.array([3, 3]), stride=np.array([1, 1]), padding=np.array([1, 1])),
        "scale": g.Scale(scale=np.full((3, 3, 3), 2.0, F)),
        "delay": g.Delay(delay=np.full((3, 3, 3), 2e-4, F)),
        "flat": g.Flatten(start_dim=0, end_dim=-1, input_type=np.array([3, 3, 3])),
        "fc": g.Affine(weight=rng.uniform(-0.1, 0.3, (4, 27)).astype(F), bias=np.zeros(4, F)),
        "out_lif": g.LIF(tau=np.full(4, 5e-4, F), r=np.full(4, 5.0, F), v_leak=np.zeros(4, F),
                         v_threshold=np.ones(4, F), v_reset=np.zeros(4, F)),
        "output": g.Output(shape=np.array([4])),
    }
    edges = [("input", "conv"), ("conv", "lif"), ("lif", "sum"), ("sum", "thr"), ("thr", "avg"), ("avg", "scale"),
             ("scale", "delay"), ("delay", "flat"), ("flat", "fc"), ("fc", "out_lif"), ("out_lif", "output")]
    return g.Graph(nodes=nodes, edges=edges)


def test_stateless_layers_and_delay_match_reference():
    rng = np.random.default_rng(0)
    graph = conv_graph(rng)
    x = (rng.uniform(0, 1, (20, 2, 2, 6, 6)) < 0.5).astype(F)
    record = ["lif", "thr", "delay", "out_lif"]
    ref = simulate(graph, x, policy=POLICY, record=record)
    got = run_sequence(GraphModule(graph, modules_for(graph)), x, record=record)
    for name in ("lif", "out_lif"):
        assert 0 < ref.states[name]["spikes"].mean() < 1
        np.testing.assert_array_equal(got.states[name]["spikes"], ref.states[name]["spikes"])
    np.testing.assert_array_equal(got.states["thr"]["y"], ref.states["thr"]["y"])
    np.testing.assert_allclose(got.states["delay"]["y"], ref.states["delay"]["y"], rtol=1e-6, atol=1e-6)
    assert np.all(got.states["delay"]["y"][:2] == 0)
    np.testing.assert_array_equal(got.output, ref.output)


def test_cycle_rule_in_nested_graph():
    """A recurrent Affine (with bias) inside a nested graph: the delayed edge carries the
    previous step's value and zero at step 0, in the executor as in the reference."""
    rng = np.random.default_rng(1)
    lif = g.LIF(tau=np.full(4, 5e-4, F), r=np.full(4, 5.0, F), v_leak=np.zeros(4, F), v_threshold=np.ones(4, F), v_reset=np.zeros(4, F))
    inner = g.Graph(nodes={"input": g.Input(shape=np.array([4])), "lif": lif,
                           "rec": g.Affine(weight=rng.uniform(-0.5, 0.5, (4, 4)).astype(F), bias=np.full(4, 0.3, F)),
                           "output": g.Output(shape=np.array([4]))},
                    edges=[("input", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")])
    graph = g.Graph(nodes={"input": g.Input(shape=np.array([3])), "fc": g.Linear(weight=rng.uniform(0, 0.6, (4, 3)).astype(F)),
                           "sub": inner, "output": g.Output(shape=np.array([4]))},
                    edges=[("input", "fc"), ("fc", "sub"), ("sub", "output")])
    x = rng.uniform(0, 1, (30, 2, 3)).astype(F)
    ref = simulate(graph, x, policy=POLICY, record=["sub.lif", "sub.rec"])
    got = run_sequence(GraphModule(graph, modules_for(graph)), x, record=["sub.lif", "sub.rec"])
    assert 0 < ref.states["sub.lif"]["spikes"].mean() < 1
    np.testing.assert_array_equal(got.states["sub.lif"]["spikes"], ref.states["sub.lif"]["spikes"])
    np.testing.assert_allclose(got.states["sub.lif"]["v"], ref.states["sub.lif"]["v"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer", [
    torch.nn.Linear(4, 3), torch.nn.Linear(4, 3, bias=False), torch.nn.Conv1d(2, 3, 3, stride=2, padding=1),
    torch.nn.Conv2d(2, 3, (3, 2), padding=(1, 0), dilation=(1, 2)), torch.nn.Flatten(), torch.nn.AvgPool2d(2, padding=1),
])
def test_export_stateless_inverts_build_stateless(layer):
    shape = {torch.nn.Linear: (4,), torch.nn.Conv1d: (2, 7), torch.nn.Conv2d: (2, 6, 7)}.get(type(layer), (2, 6, 6))
    node = export_stateless(layer, shape)
    rebuilt = build_stateless(node, policy=POLICY, name="x")
    x = torch.rand(3, *shape)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), layer(x))
    assert export_stateless(rebuilt, shape) == node
