"""What every corpus case asserts, and the small vocabulary the cases are written in.

A `Case` is a model as users write it (`make`), the input it is run on natively (`inputs`),
how it runs (`style`) and what the corpus expects: converted exactly, or refused with a reason
that names what NIR cannot express. `check_exact(case)`:

- the model's native run is the same before and after exporting, and exporting twice gives
  the same graph (export never changes the user's model);
- every spiking layer fires on the input (a silent network matches anything);
- the NumPy reference run of the exported graph emits exactly the spikes of every spiking
  layer of the native model (recorded with forward hooks), and the same outputs;
- converted to numpy, norse and snntorch, every backend emits exactly the reference's spikes
  in every spiking layer (0 differing), and the same outputs.

Styles: `loop` (forward takes the whole (time, batch, ...) input and loops over it), `step`
(one call per time step, layers keep their state: an `init_hidden` snnTorch Sequential),
`state` (one call per time step with the state passed back: Norse cells and SequentialState),
`static` (forward repeats `steps` steps on one (batch, ...) input, as snnTorch's tutorials do
with images; the graph then gets that input at every step), `sequence` (Norse's time modules:
one call with the whole sequence).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import nirbridge
from nirbridge import ir as g
from nirbridge.backends.registry import get_backend
from nirbridge.compare import compare
from nirbridge.conversion import run
from nirbridge.errors import GapError, NirbridgeError

SPIKING_TYPES = ("IF", "LIF", "CubaLIF")  # neurons that spike (Threshold nodes are checked through what they feed)

BACKENDS = ("numpy", "norse", "snntorch")
RATE_BAND = (0.005, 0.95)


@dataclass
class Case:
    name: str
    make: Callable[[], torch.nn.Module]
    inputs: Callable[[np.random.Generator], np.ndarray]
    style: str = "loop"
    #: "exact", or the phrase the refusal must contain (what NIR cannot express)
    expect: str = "exact"
    #: the node the refusal is about (None: any)
    refused_node: str | None = None
    steps: int = 0  # `static` style: the steps the model repeats
    sample: Callable[[torch.Tensor], Any] | None = None  # what export gets (default: what the model takes)
    source: str = ""  # where users write it this way
    notes: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


# ----------------------------------------------------------------------------- native runs


def _spikes_of(output) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _neurons(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Qualified name -> spiking neuron module (snnTorch neurons, Norse spiking cells)."""
    found = {}
    for name, module in model.named_modules():
        kind = type(module).__name__
        if type(module).__module__.startswith("snntorch") and kind in ("Leaky", "Synaptic", "RLeaky", "RSynaptic", "Lapicque"):
            if getattr(module, "reset_mechanism", "") != "none":
                found[name] = module
        elif type(module).__module__.startswith("norse") and kind in (
                "LIFCell", "LIFBoxCell", "IAFCell", "LIFRecurrentCell", "LIF", "IAF", "LIFRecurrent"):
            found[name] = module
    return found


def run_native(case: Case, model: torch.nn.Module, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(the model's output over time, the spikes of every spiking layer over time)."""
    calls: dict[str, list[torch.Tensor]] = {}
    handles = [m.register_forward_hook(lambda mod, args, out, name=name: calls.setdefault(name, []).append(_spikes_of(out).detach().clone()))
               for name, m in _neurons(model).items()]
    xt = torch.as_tensor(x, dtype=_dtype(model))
    try:
        with torch.no_grad():
            out = _run(case, model, xt)
    finally:
        for h in handles:
            h.remove()
    spikes = {name: (torch.cat(v) if case.style == "sequence" else torch.stack(v)).float().numpy() for name, v in calls.items()}
    return _spikes_of(out).float().numpy(), spikes


def _dtype(model: torch.nn.Module) -> torch.dtype:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _run(case: Case, model: torch.nn.Module, x: torch.Tensor):
    if case.style in ("loop", "static", "sequence"):
        return model(x)
    if case.style == "step":
        import snntorch.utils

        snntorch.utils.reset(model)
        return torch.stack([_spikes_of(model(x[t])) for t in range(x.shape[0])])
    state, outs = None, []
    for t in range(x.shape[0]):
        y, state = model(x[t], state)
        outs.append(y)
    return torch.stack(outs)


def graph_input(case: Case, x: np.ndarray) -> np.ndarray:
    """The (time, batch, ...) input the graph gets for native input x."""
    return np.repeat(x[None], case.steps, axis=0).astype(np.float32) if case.style == "static" else x.astype(np.float32)


def export_sample(case: Case, x: np.ndarray) -> torch.Tensor:
    xt = torch.as_tensor(x)
    if case.sample is not None:
        return case.sample(xt)
    return xt[0] if case.style in ("step", "state") else xt


# ----------------------------------------------------------------------------- checks


def spiking_nodes(graph: g.Graph) -> list[str]:
    return [name for name, node in graph.walk() if node.type in SPIKING_TYPES]


def native_node(graph: g.Graph, module_name: str) -> str | None:
    """The graph node of a native neuron module (inside its subgraph for recurrent layers)."""
    name = module_name.replace(".", "_")
    node = graph.nodes.get(name)
    if isinstance(node, g.Graph):
        inner = [n for n, v in node.nodes.items() if v.type in SPIKING_TYPES]
        return f"{name}.{inner[0]}" if len(inner) == 1 else None
    return name if node is not None and node.type in SPIKING_TYPES else None


def check_exact(case: Case, seed: int = 0) -> dict:
    """Assert everything the module doc lists; returns the measurements."""
    model = case.make()
    x = case.inputs(np.random.default_rng(seed))
    before_out, before_spikes = run_native(case, model, x)
    graph = nirbridge.convert(model, to="nir", sample=export_sample(case, x))
    again = nirbridge.convert(model, to="nir", sample=export_sample(case, x))
    assert again == graph, f"{case}: exporting twice gave different graphs"
    after_out, after_spikes = run_native(case, model, x)
    np.testing.assert_array_equal(after_out, before_out, err_msg=f"{case}: exporting changed the model's next native run")
    if _dtype(model) != torch.float32:  # the graph holds the model's values in float32: compare with that model
        assert all(a.dtype == np.float32 for _, node in graph.walk() for a in node.arrays().values() if a.dtype.kind == "f")
        before_out, before_spikes = run_native(case, copy.deepcopy(model).float(), x)
    xs = graph_input(case, x)
    names = spiking_nodes(graph)
    assert names, f"{case}: no spiking layer"
    ref = nirbridge.simulate(graph, xs, record=names)
    rates = {n: float(np.mean(ref.states[n]["spikes"] != 0)) for n in names}
    quiet = {n: r for n, r in rates.items() if not RATE_BAND[0] < r < RATE_BAND[1]}
    assert not quiet, f"{case}: firing rates outside {RATE_BAND} (the input must make every layer fire): {quiet}"
    for module_name, spikes in before_spikes.items():
        node = native_node(graph, module_name)
        assert node is not None, f"{case}: no graph node for the neuron {module_name}"
        got = ref.states[node]["spikes"].reshape(spikes.shape)
        diffs = int(np.sum((got != 0) != (spikes != 0)))
        assert diffs == 0, f"{case}: {diffs} of {spikes.size} spikes of {node} differ between the native model and the reference"
    _same_output(case, ref.output, before_out, "the native model")
    measured = {"rates": rates, "spikes": {}}
    for backend in BACKENDS:
        converted = nirbridge.convert(graph, to=backend)
        got = run(get_backend(backend), converted, xs, record=tuple(names))
        for name, c in compare(ref, got, graph, names).items():
            if name in names:
                assert c.spike_diffs == 0 and c.ok, f"{case}: {backend}: {name}: {c}"
        _same_output(case, got.output, ref.output, backend)
        measured["spikes"][backend] = sum(int(ref.states[n]["spikes"].size) for n in names)
    return measured


def _same_output(case: Case, got: np.ndarray, want: np.ndarray, who: str) -> None:
    got = np.asarray(got).reshape(np.shape(want))
    scale = max(1.0, float(np.max(np.abs(want)))) if np.size(want) else 1.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * scale, err_msg=f"{case}: output of {who}")


def check_refused(case: Case) -> str:
    """The export is refused, naming what NIR cannot express; returns the reason."""
    model = case.make()
    x = case.inputs(np.random.default_rng(0))
    before, _ = run_native(case, model, x)
    try:
        nirbridge.convert(model, to="nir", sample=export_sample(case, x))
    except GapError as exc:
        gaps = exc.report.unsupported
        if case.refused_node is not None:
            gaps = [gap for gap in gaps if gap.node == case.refused_node]
        reasons = "; ".join(f"{gap.node}: {gap.reason}" for gap in gaps)
        assert any(case.expect in gap.reason for gap in gaps), f"{case}: expected a refusal naming {case.expect!r}, got {reasons or exc}"
    except NirbridgeError as exc:
        reasons = str(exc)
        assert case.expect in reasons, f"{case}: expected a refusal naming {case.expect!r}, got {reasons}"
    else:
        raise AssertionError(f"{case}: exported, but the corpus expects a refusal naming {case.expect!r}")
    after, _ = run_native(case, model, x)
    np.testing.assert_array_equal(after, before, err_msg=f"{case}: a refused export changed the model")
    return reasons


def spikes(rng: np.random.Generator, shape, rate: float = 0.3) -> np.ndarray:
    return (rng.random(shape) < rate).astype(np.float32)


def seeded(make: Callable[[], torch.nn.Module], seed: int = 0) -> Callable[[], torch.nn.Module]:
    """`make` under a fixed torch seed (weights as the tutorials initialise them)."""
    def build():
        torch.manual_seed(seed)
        return make()
    return build


def scaled(model: torch.nn.Module, gain: float, shift: float = 0.0) -> torch.nn.Module:
    """Multiply every Linear/Conv weight by `gain` and add `shift` (so that every layer fires)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)) and m.weight is not None:
                m.weight.mul_(gain).add_(shift)
    return model


__all__ = ["BACKENDS", "Case", "check_exact", "check_refused", "copy", "graph_input", "run_native", "scaled", "seeded", "spikes"]
