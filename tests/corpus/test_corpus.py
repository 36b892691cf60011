"""The corpus: models as users write them in snnTorch's and Norse's tutorials and docs. Each
converts to numpy, norse and snntorch with 0 differing spikes in every spiking layer (and the
native model's own spikes), or is refused with a reason naming what NIR cannot express; see
`corpus_harness` for what each case asserts."""

from __future__ import annotations

import norse_models
import numpy as np
import pytest
import snntorch_models
import torch
from corpus_harness import BACKENDS, check_exact, check_refused

import nirbridge
from nirbridge import ir as g
from nirbridge.backends.registry import get_backend
from nirbridge.conversion import run
from nirbridge.errors import GapError
from nirbridge.semantics import Policy
from nirbridge_torch.exporting import SampleError

CASES = snntorch_models.CASES + norse_models.CASES


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("case", [c for c in CASES if c.expect == "exact"], ids=str)
def test_converts_exactly(case):
    check_exact(case)


@pytest.mark.parametrize("case", [c for c in CASES if c.expect != "exact"], ids=str)
def test_refused_naming_the_nir_limitation(case):
    check_refused(case)


# ----------------------------------------------------------------------------- beyond the models


def delay_graph(steps: np.ndarray, dt: float) -> g.Graph:
    """Input -> LIF -> Delay(steps * dt, stored in float32) -> LIF -> Output: the delayed
    spikes must drive the second layer exactly `steps` later on every backend."""
    n = steps.size
    tau = np.full(n, 5 * dt, np.float32)

    def lif(threshold):
        return g.LIF(tau=tau, r=np.full(n, 5.0, np.float32), v_leak=np.zeros(n, np.float32),
                     v_threshold=np.full(n, threshold, np.float32), v_reset=np.zeros(n, np.float32))

    return g.Graph(
        nodes={"input": g.Input(shape=np.array([n])), "lif1": lif(0.5), "delay": g.Delay(delay=(steps * dt).astype(np.float32)),
               "lif2": lif(0.5), "output": g.Output(shape=np.array([n]))},
        edges=[("input", "lif1"), ("lif1", "delay"), ("delay", "lif2"), ("lif2", "output")],
    )


@pytest.mark.parametrize("steps", [[100], [500], [1, 7, 33, 250]], ids=["100-steps", "500-steps", "mixed"])
def test_delay_of_whole_steps_runs_on_every_backend(steps):
    steps = np.asarray(steps)
    dt = 1e-4
    graph = delay_graph(steps, dt)
    policy = Policy.preset("snntorch", dt=dt)
    total = int(steps.max()) + 60
    x = (np.random.default_rng(1).random((total, 2, steps.size)) < 0.3).astype(np.float32)
    ref = nirbridge.simulate(graph, x, policy=policy, record=["lif1", "delay", "lif2"])
    first = ref.states["lif1"]["spikes"]
    assert first.mean() > 0.05
    delayed = ref.states["delay"]["y"]
    for j, d in enumerate(steps):  # the reference shifts by exactly d steps
        np.testing.assert_array_equal(delayed[d:, :, j], first[:-d, :, j])
        assert not delayed[:d, :, j].any()
    assert ref.states["lif2"]["spikes"].mean() > 0.01
    for backend in BACKENDS:
        model = nirbridge.convert(graph, to=backend, policy=policy)
        got = run(get_backend(backend), model, x, record=("lif1", "lif2"))
        for name in ("lif1", "lif2"):
            np.testing.assert_array_equal(got.states[name]["spikes"], ref.states[name]["spikes"], err_msg=f"{backend} {name}")


@pytest.mark.parametrize("framework", ["snntorch", "norse"])
def test_sample_without_batch_dimension_gets_one_clear_message(framework):
    import norse.torch as norse
    import snntorch as snn

    if framework == "snntorch":
        model = torch.nn.Sequential(torch.nn.Linear(8, 4), snn.Leaky(beta=0.9, init_hidden=True))
    else:
        model = norse.SequentialState(torch.nn.Linear(8, 4), norse.LIFCell())
    with pytest.raises(SampleError, match=r"sample of shape \(8,\) has no batch dimension: layer 0 \(Linear\)"):
        nirbridge.convert(model, to="nir", sample=torch.rand(8))
    graph = nirbridge.convert(model, to="nir", sample=torch.rand(8).unsqueeze(0))  # the fix the message names
    assert tuple(graph.nodes["input"].shape) == (8,)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes_export_their_values_exactly(dtype):
    case = next(c for c in snntorch_models.CASES if c.name == "float16_model")
    model = case.make().to(dtype)
    graph = nirbridge.convert(model, to="nir", sample=torch.zeros(2, 3, 16, dtype=dtype))
    for name in ("fc1", "fc2"):
        layer = getattr(model, name)
        assert graph.nodes[name].weight.dtype == np.float32
        np.testing.assert_array_equal(graph.nodes[name].weight, layer.weight.detach().float().numpy())
        np.testing.assert_array_equal(graph.nodes[name].bias, layer.bias.detach().float().numpy())


def test_float64_values_float32_cannot_hold_are_refused_naming_the_parameter():
    case = next(c for c in snntorch_models.CASES if c.name == "float64_model")
    with pytest.raises(GapError) as caught:
        nirbridge.convert(case.make(), to="nir", sample=torch.zeros(2, 3, 16, dtype=torch.float64))
    gap = caught.value.report["fc1"]
    assert gap.status == "unsupported" and "fc1.weight[0, 0]" in gap.reason and "float32" in gap.reason
