"""The toolkit's own rules: tracing leaves the model as it was, pseudo-layers, one formula for
the policy neuron's constants, one delay rule, trained values back into the graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from nirbridge import ir as g
from nirbridge.errors import NirbridgeError, PolicyError
from nirbridge.semantics import Policy, step_constants
from nirbridge_torch.cells import PolicyNeuron
from nirbridge_torch.layers import DtypeError, build_stateless, tensor, to_array
from nirbridge_torch.tracing import Const, Input, Opaque, Stack, preserved, trace

F32 = np.float32


class Stateful(nn.Module):
    """Keeps state in attributes during forward, as the seed paper's network does."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.register_buffer("count", torch.zeros(1))
        self.state = [torch.ones(2)]

    def forward(self, x):
        self.count += 1  # in place
        self.state = [self.fc(x)]  # rebinds
        self.extra = x  # a new attribute
        return self.state[0]


def test_preserved_restores_attributes_buffers_and_in_place_changes():
    model = Stateful()
    before = (model.count.clone(), model.state[0].clone(), model.state)
    with preserved(model):
        trace(model, torch.rand(4, 3), is_leaf=lambda m: False)
    assert torch.equal(model.count, before[0]) and model.state is before[2] and torch.equal(model.state[0], before[1])
    assert not hasattr(model, "extra")


def test_preserved_refuses_a_forward_that_writes_into_parameters():
    class Writes(nn.Linear):
        def forward(self, x):
            with torch.no_grad():
                self.weight.mul_(2)
            return super().forward(x)

    with pytest.raises(NirbridgeError, match="changed parameter weight in place"):
        with preserved(model := Writes(3, 2)):
            model(torch.rand(1, 3))


def test_pseudo_layers_and_provenance():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)

        def forward(self, x):
            out = torch.zeros(x.shape[0], x.shape[1], 2, 2, 2)
            for t in range(x.shape[0]):
                y = 10 * self.conv(x[t, :, :, :])
                z = F.max_pool2d(F.relu(y), 2).half()
                out[t] = F.avg_pool2d(z.float(), 1, divisor_override=1)
            return out, x[:, 0].exp()

    tr = trace(Net(), torch.rand(3, 2, 1, 4, 4), is_leaf=lambda m: False)
    ops = [c.op or c.key for c in tr.calls[:6]]
    assert ops == ["conv", "scale", "relu", "max_pool2d", "cast", "avg_pool2d"]
    assert tr.calls[1].params == {"scale": 10.0} and tr.calls[3].params["kernel_size"] == 2
    assert tr.calls[5].params["divisor_override"] == 1 and tr.calls[4].params == {"dtype": "float16"}
    assert tr.calls[0].args[0] == Input(0) and tr.input_offsets() == {0}  # x[t, :, :, :] is a time step of the input
    out, other = tr.output
    assert isinstance(out, Stack) and len(out.parts) == 3  # out[t] = ... over the steps
    assert isinstance(other, Opaque) and other.op == "exp"


def test_initial_states_are_constants_that_say_whether_they_are_zero():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x):
            return self.a(torch.zeros(x.shape[0], 2)) + self.b(torch.full((x.shape[0], 2), 0.5))

    tr = trace(Net(), torch.rand(2, 2), is_leaf=lambda m: False)
    assert tr.calls[0].args[0] == Const(zero=True) and tr.calls[1].args[0] == Const(zero=False)


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(["I", "IF", "LI", "LIF", "CubaLI", "CubaLIF"]), integration=st.sampled_from(["euler", "exact"]),
       impulse=st.booleans(), dt=st.sampled_from([1e-4, 1e-3, 1.0]), seed=st.integers(0, 2**16))
def test_policy_neuron_constants_are_the_reference_formula(kind, integration, impulse, dt, seed):
    """One formula: the cell's constants, computed in torch, equal `step_constants` in NumPy
    rounded once to float32, bit for bit."""
    rng = np.random.default_rng(seed)
    u = lambda lo, hi: rng.uniform(lo, hi, 5).astype(F32)  # noqa: E731
    fields = dict(tau=u(2, 50) * F32(dt), tau_mem=u(2, 50) * F32(dt), tau_syn=u(1, 20) * F32(dt), r=u(0.5, 3), v_leak=u(-0.5, 0.5),
                  w_in=u(0.5, 3), v_threshold=u(0.5, 1.5), v_reset=u(-0.2, 0.2))
    cls = g.NODE_TYPES[kind]
    node = cls(**{k: fields[k] for k in cls.float_fields})
    policy = Policy(dt=dt, integration=integration, input="impulse" if impulse else "current")
    want = step_constants(node, policy)
    with torch.no_grad():
        got = PolicyNeuron(node, policy).constants()
    for name, value in want:
        if value is None or (name in ("leak", "v_leak_term") and not np.any(value)):
            continue
        mine = got[name].numpy() if got[name] is not None else np.ones_like(value, dtype=F32)
        np.testing.assert_array_equal(mine, np.asarray(value, dtype=F32), err_msg=name)


def test_policy_neuron_recomputes_constants_when_trained():
    node = g.LIF(tau=np.full(3, 1e-3, F32), r=np.full(3, 10.0, F32), v_leak=np.zeros(3, F32), v_threshold=np.ones(3, F32), v_reset=np.zeros(3, F32))
    cell = PolicyNeuron(node, Policy.preset("snntorch"))
    with torch.no_grad():
        a = cell.constants()["a"].clone()
        cell.tau.mul_(2)
        assert not torch.equal(cell.constants()["a"], a)
    assert cell.to_node(node).tau[0] == F32(2e-3)


@pytest.mark.parametrize("seconds, steps", [(0.01, 100), (0.05, 500), (0.0123, 123)])
def test_one_delay_rule_for_float32_delays(seconds, steps):
    delay = build_stateless(g.Delay(delay=np.full(2, seconds, F32)), policy=Policy(dt=1e-4))
    assert delay.steps.tolist() == [steps, steps]
    with pytest.raises(PolicyError, match="not a whole number >= 0 of steps"):
        build_stateless(g.Delay(delay=np.full(2, seconds + 3e-5, F32)), policy=Policy(dt=1e-4))


def test_to_array_keeps_values_or_names_the_parameter():
    assert to_array(torch.tensor([0.1], dtype=torch.bfloat16)).dtype == F32
    np.testing.assert_array_equal(to_array(torch.tensor([0.5, 0.25], dtype=torch.float64)), np.array([0.5, 0.25], F32))
    with pytest.raises(DtypeError, match=r"fc\.weight\[1\] = 0\.1 \(float64\)"):
        to_array(torch.tensor([0.5, 0.1], dtype=torch.float64), "fc.weight")


def test_tensor_copies_a_read_only_graph_array_once():
    arr = np.arange(6, dtype=F32).reshape(2, 3)
    arr.flags.writeable = False
    t = tensor(arr)
    t += 1
    assert np.array_equal(arr, np.arange(6, dtype=F32).reshape(2, 3)) and t.dtype == torch.float32


@pytest.mark.parametrize("changes", [
    {"spikes": "multi", "threshold": "ge", "reset": "subtract"},
    {"spikes": "multi", "threshold": "ge", "reset": "to_reset", "max_spikes": 2},
    {"v_min": "-v_threshold"},
    {"v_min": -0.25, "reset": "subtract"},
    {"initial_v": "v_reset"},
    {"initial_v": "v_leak", "spikes": "multi", "threshold": "ge", "v_min": -1.0},
])
@pytest.mark.parametrize("backend", ["snntorch", "norse"])
def test_counts_floors_and_initial_potentials_convert_exactly(backend, changes):
    """The policy fields frameworks such as Sinabs, Rockpool and SpikingJelly need run exactly on
    the torch backends (through the policy neuron where the framework lacks them)."""
    import nirbridge

    policy = Policy.preset("nir", dt=1.0, input="impulse", **changes)
    rng = np.random.default_rng(3)
    dyadic = lambda *shape: (rng.integers(-4, 16, shape) / 16).astype(np.float32)  # noqa: E731 - sums exact in any order

    def lif(n):
        return g.LIF(tau=np.full(n, 4.0, np.float32), r=np.ones(n, np.float32), v_leak=np.full(n, 0.25, np.float32),
                     v_threshold=np.full(n, 0.75, np.float32), v_reset=np.full(n, -0.25, np.float32))

    graph = g.Graph(nodes={"input": g.Input(shape=np.array([5])), "fc1": g.Linear(weight=dyadic(6, 5)), "lif1": lif(6),
                           "fc2": g.Linear(weight=dyadic(4, 6)), "lif2": lif(4), "output": g.Output(shape=np.array([4]))},
                    edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")])
    x = (rng.random((40, 3, 5)) < 0.6).astype(np.float32) * 2  # strong: several spikes a step
    report = nirbridge.verify(graph, backends=[backend], inputs=x, policy=policy)
    assert report.results[backend].ok, str(report)
    assert all(0 < r for r in report.rates.values()), report.rates
    if changes.get("spikes") == "multi":
        reference = nirbridge.simulate(graph, x, policy=policy, record=["lif1"])
        assert reference.states["lif1"]["spikes"].max() >= 2  # counts above one are compared too


def test_a_delay_line_longer_than_any_run_is_refused_with_the_reason():
    import nirbridge

    graph = g.Graph(nodes={"input": g.Input(shape=np.array([1])), "d": g.Delay(delay=np.array([1e30])), "output": g.Output(shape=np.array([1]))},
                    edges=[("input", "d"), ("d", "output")])
    for backend in ("snntorch", "norse"):
        gap = nirbridge.check(graph, to=backend)["d"]
        assert gap.status == "unsupported" and "over the 16,777,216 steps a delay line may hold" in gap.reason


def _tensors_left_behind(model: torch.nn.Module, device: str) -> list[str]:
    """Tensors a module holds (attributes, and named tuples of them, as Norse keeps its
    parameters) that are not on `device`."""
    found = []
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            values = value._asdict().items() if hasattr(value, "_asdict") else [(attr, value)]
            found += [f"{name}.{attr}.{k}" for k, v in values if isinstance(v, torch.Tensor) and v.device.type != device]
    return found


@pytest.mark.parametrize("case", ["network", "conv_net", "recurrent_cubalif", "delay", "nested_recurrent", "cubali", "if", "li"])
@pytest.mark.parametrize("backend", ["snntorch", "norse"])
def test_converted_models_move_with_to_device(backend, case):
    """Every tensor a converted model steps with follows `.to(device)`. On torch's `meta`
    device (no data, no GPU needed) a tensor left behind on the CPU raises at the first step;
    where a step needs a value (`.item()`, which meta tensors cannot give: snnTorch's
    RSynaptic, the policy neuron's check for uniform constants), every tensor the model holds
    is checked instead."""
    import nirbridge
    from nirbridge.testing import build_case

    policy = Policy.preset(backend)
    graph = build_case(case, policy)
    model = nirbridge.convert(graph, to=backend, policy=policy).to("meta")
    assert _tensors_left_behind(model, "meta") == []
    x = torch.zeros((2, *(int(n) for n in graph.nodes["input"].shape)), device="meta")
    model.reset()
    try:
        for _ in range(3):
            out = model(x)
    except RuntimeError as exc:
        assert "cannot be called on meta tensors" in str(exc), exc
    else:
        assert out.device.type == "meta"
