"""Torch model -> nirbridge Graph: the one export builder of the torch backends.

`export(model, sample=, framework=, policy=)` runs the model once on `sample` under
`tracing.trace` (inside `tracing.preserved`, so the model is left as it was), and turns what it
recorded into a graph and a gap report:

1. every layer (a leaf module, or a pseudo-layer such as a `.view` that flattens) is called
   once per time step; its input is a sum of `Term`s (the model input, or an output of a
   layer made this step or the step before);
2. each layer becomes a `Piece`: the framework's mapping table (`Framework.piece`) first, then
   the torch layers every framework shares (`torch_piece`: Linear, Conv, Flatten, pooling, the
   exact max-pool rewrite, scaling, ReLU/Identity/Dropout as identities where exact);
3. a recurrent bias (snnTorch's RLeaky) moves into the single layer feeding the neuron, or
   into an identity Affine/Conv2d put in front of it;
4. the pieces are wired by their terms (a term from the step before closes a cycle: NIR's
   cycle rule must then give exactly those delayed edges, which is checked), the model's
   outputs become Output nodes, and per-node policy overrides go into the graph's metadata.

Every layer is judged on its own, so one report lists every problem at once. A layer's
output is its first (or only) tensor; a model that returns a neuron's membrane and never reads
its spikes reads that state instead (`Layer.reads`), which a framework may map (snnTorch's
reset-free Leaky is NIR's LI). Parameters become float32 arrays exactly (`layers.to_array`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nirbridge import ir as g
from nirbridge.errors import NirbridgeError
from nirbridge.report import GRAPH_NODE, Gap, GapReport
from nirbridge.rewrite import maxpool2d
from nirbridge.semantics import Policy
from nirbridge.topology import flatten, schedule

from .layers import GRAPH_DTYPE, DtypeError, export_stateless, to_array
from .tracing import Call, Const, Input, Out, Path, Stack, Term, Trace, preserved, trace


class SampleError(NirbridgeError):
    """A sample the model cannot be exported from (missing, or without a batch dimension)."""


# ----------------------------------------------------------------------------- pieces


@dataclass
class Piece:
    """The NIR form of one traced layer: `nodes` (empty when refused or an identity), internal
    `edges`, `entry`/`exit` node names for edges in and out (`flat_entry`/`flat_exit` inside a
    nested graph), and facts later steps need: whether it emits only 0/1 (`binary`), per-node
    policy overrides, a recurrent bias to move in front of it, which output it is read by
    (`output_path`), and `identity` for a layer that passes its input on unchanged."""

    gap: Gap
    nodes: dict[str, g.Node] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    entry: str = ""
    exit: str = ""
    flat_entry: str = ""
    flat_exit: str = ""
    binary: bool = False
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    extra_bias: np.ndarray | None = None
    output_path: Path | None = None
    identity: bool = False

    def __post_init__(self) -> None:
        self.flat_entry = self.flat_entry or self.entry
        self.flat_exit = self.flat_exit or self.exit

    @classmethod
    def node(cls, name: str, node: g.Node, kind: str, *, maps_to: str = "", binary: bool = False, reason: str = "") -> Piece:
        """A piece of one node named `name`."""
        return cls(Gap(name, kind, "exact", maps_to=maps_to or node.type, reason=reason), {name: node}, entry=name, exit=name, binary=binary)

    @classmethod
    def refused(cls, name: str, kind: str, reason: str, suggestion: str = "") -> Piece:
        return cls(Gap(name, kind, "unsupported", reason=reason, suggestion=suggestion))

    @classmethod
    def passing(cls, name: str, kind: str, why: str, *, binary: bool) -> Piece:
        """A layer that changes nothing (its consumers read its input)."""
        return cls(Gap(name, kind, "exact", maps_to="no node: " + why), identity=True, binary=binary)


@dataclass
class Layer:
    """What a mapping table gets to map one layer: its node `name`, the `module` (None for a
    pseudo-layer, then `call.op` and `call.params` say what it is), its first `call`, input and
    output `shape` without the leading (batch, or time and batch) dimensions, the export
    `policy`, whether its input is spikes only, and the output paths read from it."""

    name: str
    module: torch.nn.Module | None
    call: Call
    shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    policy: Policy
    binary_input: bool
    reads: frozenset[Path]
    lead: int
    taken: set[str]

    @property
    def kind(self) -> str:
        return self.call.op or type(self.module).__name__

    @property
    def main(self) -> Path:
        """The path of the layer's output: its only tensor, or the first of a tuple."""
        return _main(self.call)


@dataclass(frozen=True)
class Framework:
    """A framework's side of export.

    `name`: the report's source. `is_leaf(module)`: modules traced as one layer. `piece(layer)`:
    the mapping table, None for layers it leaves to the shared torch layers. `policy(model,
    trace, given)`: the policy the graph is written under and gaps about it. `state_args(module)`:
    the arguments carrying a neuron's own state, by name: (position, path of that state in the
    neuron's output); passed by keyword under that name too. `hidden_state`: a neuron called without its state keeps its own
    (snnTorch); otherwise it restarts (Norse). `prepare(model)`: before the run (reset hidden
    states). `lead(model)`: 2 when the model takes whole sequences. `unknown(module)`: the
    reason for a layer nobody maps. `suggestion`: what to use instead."""

    name: str
    is_leaf: Callable[[torch.nn.Module], bool]
    piece: Callable[[Layer], Piece | None]
    policy: Callable[[torch.nn.Module, Trace, Policy | None], tuple[Policy, list[Gap]]]
    state_args: Callable[[torch.nn.Module], Mapping[str, tuple[int, Path]]] = lambda module: {}
    hidden_state: bool = False
    prepare: Callable[[torch.nn.Module], None] = lambda model: None
    lead: Callable[[torch.nn.Module], int] = lambda model: 1
    unknown: Callable[[torch.nn.Module], str | None] = lambda module: None
    suggestion: str = ""


# ----------------------------------------------------------------------------- torch layers


def _pool_params(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    pair = lambda v: np.asarray(np.broadcast_to(np.asarray(v, dtype=np.int64), (2,)))  # noqa: E731
    kernel = params["kernel_size"]
    stride = params.get("stride")
    stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and not stride) else stride
    return {"kernel_size": pair(kernel), "stride": pair(stride), "padding": pair(params.get("padding", 0))}


def _pool_piece(layer: Layer, op: str, params: Mapping[str, Any]) -> Piece:
    name, kind = layer.name, layer.kind
    if op == "max_pool2d":
        if params.get("return_indices"):
            return Piece.refused(name, kind, "return_indices=True: NIR pooling has no indices")
        rw = maxpool2d(name, kernel_size=params["kernel_size"], stride=params.get("stride") or None, padding=params.get("padding", 0),
                       input_shape=layer.shape, binary_input=layer.binary_input, dilation=params.get("dilation", 1),
                       ceil_mode=bool(params.get("ceil_mode")), taken=layer.taken)
        if not rw.nodes:
            return Piece(rw.gap)
        return Piece(rw.gap, dict(rw.nodes), list(rw.edges), rw.input, rw.output, binary=True)
    if op == "lp_pool2d":
        if float(params["norm_type"]) != 1.0 or params.get("ceil_mode"):
            return Piece.refused(name, kind, f"LPPool2d with p={params['norm_type']}{', ceil_mode' if params.get('ceil_mode') else ''} has no "
                                 "NIR form (p = 1 is SumPool2d)", "use LPPool2d(1, ...) (sum pooling) or AvgPool2d")
        return Piece.node(name, g.SumPool2d(**{**_pool_params(params), "padding": np.zeros(2, np.int64)}), kind, maps_to="SumPool2d (p = 1)")
    divisor = params.get("divisor_override")
    problems = [what for what, bad in (("ceil_mode=True", params.get("ceil_mode")), ("count_include_pad=False", not params.get("count_include_pad", True)),
                                       (f"divisor_override={divisor}", divisor not in (None, 1))) if bad]
    if problems:
        return Piece.refused(name, kind, f"average pooling with {', '.join(problems)} has no NIR equivalent", "use the defaults")
    if divisor == 1:
        return Piece.node(name, g.SumPool2d(**_pool_params(params)), kind, maps_to="SumPool2d (divisor 1)")
    return Piece.node(name, g.AvgPool2d(**_pool_params(params)), kind)


def _relu_piece(layer: Layer) -> Piece:
    if layer.binary_input:
        return Piece.passing(layer.name, layer.kind, "ReLU of spikes (0 or 1) changes nothing", binary=True)
    return Piece.refused(layer.name, layer.kind, "ReLU of values that are not spikes has no NIR node",
                         "apply it to spikes only, or remove it")


def torch_piece(layer: Layer, module: torch.nn.Module | None = None, lead: int | None = None) -> Piece | None:
    """The piece of a torch layer or pseudo-layer every framework shares (`module`, `lead`:
    another module to map in the layer's place, e.g. the one a wrapper lifts over time), None
    for a module this table does not know."""
    module = layer.module if module is None else module
    lead = layer.lead if lead is None else lead
    name, kind, op = layer.name, layer.kind, layer.call.op
    if op == "flatten":
        node = g.Flatten(start_dim=0, end_dim=-1, input_type=np.asarray(layer.shape, dtype=np.int64))
        return Piece.node(name, node, "flatten", maps_to="Flatten", binary=layer.binary_input)
    if op == "scale":
        scale = np.full(layer.shape, layer.call.params["scale"], dtype=GRAPH_DTYPE)
        if scale.ravel()[0] != layer.call.params["scale"]:
            return Piece.refused(name, "scale", f"factor {layer.call.params['scale']!r} has no exact float32 value")
        return Piece.node(name, g.Scale(scale=scale), "scale", maps_to="Scale (constant factor)")
    if op in ("avg_pool2d", "max_pool2d"):
        return _pool_piece(layer, op, layer.call.params)
    if op == "relu" or isinstance(module, torch.nn.ReLU):
        return _relu_piece(layer)
    if op == "cast":
        if layer.binary_input:
            return Piece.passing(name, "cast", f"a cast of spikes to {layer.call.params['dtype']} keeps them", binary=True)
        return Piece.refused(name, "cast", f"casting to {layer.call.params['dtype']} rounds values; NIR has no rounding node",
                             "cast the whole model instead (model.float())")
    if isinstance(module, torch.nn.Identity):
        return Piece.passing(name, kind, "Identity", binary=layer.binary_input)
    if isinstance(module, (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d)):
        if module.training and module.p > 0:
            return Piece.refused(name, kind, "Dropout in training mode zeroes random elements", "call model.eval() before exporting")
        return Piece.passing(name, kind, "Dropout in eval mode", binary=layer.binary_input)
    if isinstance(module, torch.nn.MaxPool2d):
        params = {k: getattr(module, k) for k in ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")}
        return _pool_piece(layer, "max_pool2d", params)
    if isinstance(module, torch.nn.LPPool2d):
        return _pool_piece(layer, "lp_pool2d", {k: getattr(module, k) for k in ("norm_type", "kernel_size", "stride", "ceil_mode")})
    if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Flatten, torch.nn.AvgPool2d)):
        node = export_stateless(module, layer.shape, name=name, lead=lead)
        if node is None:
            return Piece.refused(name, kind, f"{type(module).__name__} with these settings ({module.extra_repr()}) has no exact NIR form",
                                 "use zero padding, count_include_pad=True, ceil_mode=False, and keep the batch dimension")
        return Piece.node(name, node, kind, binary=isinstance(node, g.Flatten) and layer.binary_input)
    return None


# ----------------------------------------------------------------------------- export


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    """The floating dtype of the model's parameters (the default dtype when it has none)."""
    for tensor in (*torch.nn.Module.parameters(model), *model.buffers()):  # Rockpool overrides parameters()
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


def as_sample(model: torch.nn.Module, sample: Any, framework: str) -> torch.Tensor:
    """`sample` as a tensor of the model's dtype (a tensor already of that dtype, a view or
    slice included, is used as it is)."""
    if sample is None:
        raise SampleError(f"{framework} export needs `sample`: an input the model's forward takes "
                          "(batch first; a time loop inside forward takes its whole sequence)")
    dtype = model_dtype(model)
    if isinstance(sample, torch.Tensor):
        return sample if sample.dtype == dtype else sample.to(dtype)
    return torch.as_tensor(np.asarray(sample), dtype=dtype)


#: torch layers that also take inputs without a batch dimension, and the number of dims they then get
_UNBATCHED = ((torch.nn.Linear, 1), (torch.nn.Conv1d, 2), (torch.nn.Conv2d, 3))


def _check_batch(tr: Trace, names: Mapping[str, str]) -> None:
    """`SampleError` when a layer reading the model input got it without a batch dimension."""
    for call in tr.calls:
        if call.step or not call.shapes or call.shapes[0] is None:
            continue
        terms, _ = tr.terms(call.args[0], 0) if not isinstance(call.args[0], tuple) else ([], None)
        if not any(t.key is None for t in terms):
            continue
        shape = call.shapes[0]
        unbatched = len(shape) <= tr.lead or any(isinstance(call.module, cls) and len(shape) == n for cls, n in _UNBATCHED)
        if unbatched:
            where = "(time, batch, *features)" if tr.lead == 2 else "(batch, *features), or (time, batch, *features) for a time loop in forward"
            raise SampleError(
                f"sample of shape {tr.sample_shape} has no batch dimension: layer {names.get(call.key, call.key)} "
                f"({call.op or type(call.module).__name__}) got an input of shape {shape}; pass the sample shaped {where}, "
                "e.g. with a batch of one (`sample.unsqueeze(0)`, or `unsqueeze(1)` after the time axis)")


def export(model: torch.nn.Module, *, sample: Any, framework: Framework, policy: Policy | None = None) -> tuple[g.Graph | None, GapReport]:
    """(graph, report) of `model` run once on `sample`; the graph is None when anything is
    unsupported (every problem is in the report). The model is left as it was."""
    if not isinstance(model, torch.nn.Module):
        raise NirbridgeError(f"{framework.name} export: expected a torch.nn.Module, got {type(model).__name__}")
    sample = as_sample(model, sample, framework.name)
    try:
        with preserved(model):
            framework.prepare(model)
            tr = trace(model, sample, is_leaf=framework.is_leaf, lead=framework.lead(model))
    except NirbridgeError:
        raise
    except Exception as exc:
        raise NirbridgeError(f"running the model on the sample failed (sample shape {tuple(sample.shape)}): {type(exc).__name__}: {exc}") from exc
    names = _names(list(tr.by_key()))
    _check_batch(tr, names)
    policy, policy_gaps = framework.policy(model, tr, policy)
    return _Builder(tr, framework, policy, names, policy_gaps).build()


def _names(keys: list[str]) -> dict[str, str]:
    """Node names of layer keys: the qualified name with `_` for `.`, pseudo-layers by their
    operation; unique, never `input` or `output`."""
    out, taken = {}, set()
    for key in keys:
        base = key.split("@")[0].replace(".", "_")
        name, i = base, 1
        while name in taken or name in ("input", "output"):
            name, i = f"{base}_{i}", i + 1
        taken.add(name)
        out[key] = name
    return out


def _main(call: Call) -> Path:
    """The path of a layer's output: its only tensor, or the first of a tuple."""
    return () if () in call.out_shapes else (0,)


class _Builder:
    def __init__(self, tr: Trace, framework: Framework, policy: Policy, names: dict[str, str], gaps: list[Gap]):
        self.tr, self.framework, self.policy, self.names = tr, framework, policy, names
        self.groups = tr.by_key()
        self.gaps: list[Gap] = list(gaps)
        self.notes: list[str] = []
        self.report = GapReport(self.gaps, source=framework.name, target="nir", policy=policy, notes=self.notes)
        self.terms: dict[str, list[Term]] = {}
        self.pieces: dict[str, Piece] = {}
        self.input_shape: tuple[int, ...] | None = None

    def unsupported(self) -> bool:
        return any(gap.status == "unsupported" for gap in self.gaps)

    def build(self) -> tuple[g.Graph | None, GapReport]:
        if not self.groups:
            self.gaps.append(Gap(GRAPH_NODE, "model", "unsupported", reason="the model called no layer on the sample"))
            return None, self.report
        counts = {k: len(v) for k, v in self.groups.items()}
        if len(set(counts.values())) > 1:
            self.gaps.append(Gap(GRAPH_NODE, "model", "unsupported",
                                 reason=f"layers called an unequal number of times per run ({', '.join(f'{self.names[k]}: {n}' for k, n in counts.items())}): "
                                 "not one call per layer per time step"))
            return None, self.report
        if len(self.tr.input_offsets()) > 1:
            self.gaps.append(Gap(GRAPH_NODE, "input", "unsupported", reason="layers read the input at other time steps than the one they run "
                                 "(x[t - 1], x[0] at every step, ...): NIR feeds every layer the input of the current step"))
            return None, self.report
        problems = {key: self._wiring(key, calls) for key, calls in self.groups.items()}
        outputs, reads = self._outputs()
        for key, calls in self.groups.items():
            piece = self._piece(key, calls, problems[key], reads.get(key, frozenset()))
            self.pieces[key] = piece
            self.gaps.append(piece.gap)
        self._resolve_identities(outputs)
        self._move_recurrent_biases(outputs)
        if self.input_shape is None and not self.unsupported():
            self.gaps.append(Gap(GRAPH_NODE, "input", "unsupported", reason="no layer reads the model input"))
        if self.unsupported():
            return None, self.report
        return self._assemble(outputs)

    # -- 1. what each layer reads -------------------------------------------------------
    def _wiring(self, key: str, calls: list[Call]) -> list[str]:
        """Set `self.terms[key]` (the layer's input) and return the problems of its wiring."""
        tr, lead = self.tr, self.tr.lead
        first = calls[0]
        later = calls[1] if len(calls) > 1 else None
        self.terms[key] = []
        problems = self._state_problems(key, calls) if first.module is not None else []
        if not first.args or first.shapes[0] is None:
            return problems + ["called without a tensor input"]
        ref = later or first
        terms, error = tr.terms(ref.args[0], ref.step)
        if error:
            problems.append(f"its input is {error}")
        states = {i for i, _ in self.framework.state_args(first.module).values()} if first.module is not None else set()
        if any(_traced(a) for i, a in enumerate(first.args[1:], 1) if i not in states):
            problems.append("takes several tensor inputs")
        if not terms and not error:
            problems.append("its input comes from no traced tensor (a constant)")
        if later is not None and not error:
            early, early_error = tr.terms(first.args[0], 0)
            if early_error:
                problems.append(f"its input at the first step is {early_error}")
            elif sorted(map(repr, early)) != sorted(map(repr, [t for t in terms if t.delay == 0])):
                problems.append("its input is wired differently at the first time step")
            elif isinstance(first.args[0], Const) and not first.args[0].zero:
                problems.append("its input at the first step is a non-zero constant (NIR's delayed edges start at zero)")
        if any(t.delay not in (0, 1) for t in terms):
            problems.append("reads a value made more than one step earlier")
        if any(t.key is None for t in terms):
            shape_in = tuple(first.shapes[0][lead:])
            if self.input_shape is not None and self.input_shape != shape_in:
                problems.append(f"reads the input with shape {shape_in}, another layer with {self.input_shape}")
            self.input_shape = shape_in
        self.terms[key] = terms
        return problems

    def _state_problems(self, key: str, calls: list[Call]) -> list[str]:
        """Explicit state arguments must start at zero and carry the neuron's own previous state."""
        states = self.framework.state_args(calls[0].module)
        for call in calls:
            for label, (position, path) in states.items():
                arg = call.args[position] if position < len(call.args) else call.kwargs.get(label)
                problem = self._state_problem(key, call, arg, path, label)
                if problem:
                    return [problem]
        return []

    def _state_problem(self, key: str, call: Call, arg: Any, path: Path, label: str) -> str | None:
        if arg is None:
            if call.step > 0 and not self.framework.hidden_state:
                return (f"its {label} is not passed back at step {call.step}: it restarts every step, while a NIR neuron "
                        "carries its state from step to step")
            return None
        if isinstance(arg, tuple):
            for j, part in enumerate(arg):
                problem = self._state_problem(key, call, part, path + (j,), label)
                if problem:
                    return problem
            return None
        if isinstance(arg, Const):
            if arg.zero:
                return None if call.step == 0 else f"its {label} is replaced by zeros at step {call.step}"
            if call.step == 0:
                return f"its initial {label} is not zero (NIR neurons start from zero)"
            return f"its {label} is replaced by a constant at step {call.step} (a NIR neuron carries its state from step to step)"
        if call.step == 0:
            return f"its initial {label} comes from another layer"
        made = self.tr.calls[arg.call] if isinstance(arg, Out) else None
        if made is None or made.key != key or made.step != call.step - 1 or arg.path != made.aliases.get(path, path):
            return f"its {label} at step {call.step} is not its own state of the previous step"
        return None

    # -- 2. the model's outputs and what is read ----------------------------------------
    def _outputs(self) -> tuple[list[tuple[str, Path]], dict[str, frozenset[Path]]]:
        found = _returned(self.tr.output)
        layer_reads: dict[str, set[Path]] = {}
        for terms in self.terms.values():
            for t in terms:
                if t.key is not None:
                    layer_reads.setdefault(t.key, set()).add(t.path)
        outputs: list[tuple[str, Path]] = []
        for src in found:
            ref = self._output_ref(src)
            if ref is not None and ref not in outputs:
                outputs.append(ref)
        main = {k: _main(calls[0]) for k, calls in self.groups.items()}
        signals = [(k, p) for k, p in outputs if p == main[k]]
        kept, records = [], []
        for key, path in outputs:
            if path == main[key] or (main[key] not in layer_reads.get(key, set()) and (key, main[key]) not in signals):
                kept.append((key, path))
            else:
                records.append((key, path))
        if records:
            self.notes.append("returned states (membrane or current traces) are not graph outputs: record them with simulate(record=...)")
        if not kept and not self.unsupported():
            self.gaps.append(Gap(GRAPH_NODE, "output", "unsupported", reason="the model returns no layer output NIR can carry"))
        reads = {k: frozenset(v) for k, v in layer_reads.items()}
        for key, path in kept:
            reads[key] = reads.get(key, frozenset()) | {path}
        return kept, reads

    def _output_ref(self, src: Any) -> tuple[str, Path] | None:
        parts = src.parts if isinstance(src, Stack) else (src,)
        refs = set()
        for part in parts:
            if isinstance(part, Out):
                call = self.tr.calls[part.call]
                refs.add((call.key, part.path))
            else:
                refs.add(None)
        if len(refs) == 1 and None not in refs:
            return next(iter(refs))
        what = "the model input itself" if all(isinstance(p, Input) for p in parts) else "not the output of one layer (or its stack over time steps)"
        self.gaps.append(Gap(GRAPH_NODE, "output", "unsupported", reason=f"a model output is {what}"))
        return None

    # -- 3. pieces ---------------------------------------------------------------------
    def _piece(self, key: str, calls: list[Call], problems: list[str], reads: frozenset[Path]) -> Piece:
        name, first = self.names[key], calls[0]
        kind = first.op or type(first.module).__name__
        if problems:
            return Piece.refused(name, kind, "; ".join(problems))
        lead = self.tr.lead
        terms = self.terms[key]
        source = self.pieces.get(terms[0].key) if len(terms) == 1 and terms[0].key is not None else None
        binary = source is not None and source.binary
        out_shape = first.out_shapes.get(_main(first), ())
        layer = Layer(name, first.module, first, tuple(first.shapes[0][lead:]), tuple(out_shape[lead:]), self.policy, binary, reads, lead,
                      set(self.names.values()))
        try:
            piece = (self.framework.piece(layer) if first.module is not None else None) or torch_piece(layer)
        except DtypeError as exc:
            return Piece.refused(name, kind, str(exc), "cast the model to float32 (model.float())")
        if piece is None:
            reason = self.framework.unknown(first.module) or f"{kind} is not a layer nirbridge can map to NIR"
            return Piece.refused(name, kind, reason, self.framework.suggestion)
        wanted = piece.output_path if piece.output_path is not None else _main(first)
        other = sorted(p for p in reads if p != wanted)
        if other and piece.gap.status != "unsupported":
            return Piece.refused(name, kind, f"output {other[0]} of {name} is read (a membrane or current); NIR edges carry a "
                                 "neuron's spikes (or a leaky integrator's potential) only")
        return piece

    def _resolve_identities(self, outputs: list[tuple[str, Path]]) -> None:
        """Consumers of an identity piece read its input instead."""
        def expand(term: Term, depth: int = 0) -> list[Term]:
            piece = self.pieces.get(term.key) if term.key is not None else None
            if piece is None or not piece.identity or depth > len(self.pieces):
                return [term]
            return [Term(t.key, t.path, t.delay + term.delay) for inner in self.terms[term.key] for t in expand(inner, depth + 1)]

        for key in self.terms:
            self.terms[key] = [t for term in self.terms[key] for t in expand(term)]
        for i, (key, path) in enumerate(outputs):
            if self.pieces[key].identity:
                terms = expand(Term(key, path))
                if len(terms) != 1 or terms[0].key is None or terms[0].delay:
                    self.gaps.append(Gap(GRAPH_NODE, "output", "unsupported", reason=f"the model output {self.names[key]} passes the input on unchanged"))
                else:
                    outputs[i] = (terms[0].key, terms[0].path)

    def _move_recurrent_biases(self, outputs: list[tuple[str, Path]]) -> None:
        """A recurrent layer's bias acts at step 0 too, while NIR's delayed edge carries zero
        there: it moves into the one Linear/Conv layer feeding the neuron, or into an identity
        Affine/Conv2d put in front of it."""
        consumers: dict[str, list[str]] = {}
        for key, terms in self.terms.items():
            for t in terms:
                if t.key is not None:
                    consumers.setdefault(t.key, []).append(key)
        for key, piece in self.pieces.items():
            if piece.extra_bias is None or piece.gap.status == "unsupported":
                continue
            terms = self.terms[key]
            feeder = terms[0].key if len(terms) == 1 and terms[0].delay == 0 else None
            fpiece = self.pieces.get(feeder) if feeder else None
            fnode = fpiece.nodes.get(self.names[feeder]) if fpiece and fpiece.nodes else None
            bias = piece.extra_bias
            if (fnode is not None and consumers.get(feeder) == [key] and feeder not in {k for k, _ in outputs}
                    and isinstance(fnode, (g.Linear, g.Affine, g.Conv1d, g.Conv2d))):
                fpiece.nodes[self.names[feeder]] = _with_bias(fnode, bias)
                self.notes.append(f"the recurrent bias of {self.names[key]} was moved into {self.names[feeder]} (exact: the recurrent layer adds it every step)")
            else:
                self._bias_in_front(piece, bias)

    def _bias_in_front(self, piece: Piece, bias: np.ndarray) -> None:
        name = _fresh(f"{piece.entry}_bias", set(self.names.values()) | {n for p in self.pieces.values() for n in p.nodes})
        if bias.ndim == 1:
            node: g.Node = g.Affine(weight=np.eye(bias.size, dtype=GRAPH_DTYPE), bias=bias.astype(GRAPH_DTYPE))
        else:
            channels = bias.shape[0]
            node = g.Conv2d(weight=np.eye(channels, dtype=GRAPH_DTYPE)[:, :, None, None], bias=bias.reshape(channels, -1)[:, 0].astype(GRAPH_DTYPE),
                            stride=np.ones(2, np.int64), padding=np.zeros(2, np.int64), dilation=np.ones(2, np.int64),
                            groups=np.array(1, np.int64), input_shape=np.asarray(bias.shape[1:], np.int64))
        piece.nodes = {name: node, **piece.nodes}
        piece.edges = [(name, piece.entry), *piece.edges]
        piece.entry = piece.flat_entry = name
        self.notes.append(f"the recurrent bias of {piece.gap.node} is added by {name}, an identity {node.type} in front of it "
                          "(exact: the recurrent layer adds it every step)")

    # -- 4. the graph ------------------------------------------------------------------
    def _assemble(self, outputs: list[tuple[str, Path]]) -> tuple[g.Graph | None, GapReport]:
        nodes: dict[str, g.Node] = {"input": g.Input(shape=np.asarray(self.input_shape, dtype=np.int64))}
        edges: list[tuple[str, str]] = []
        delayed_expected: set[tuple[str, str]] = set()
        live = {k: p for k, p in self.pieces.items() if not p.identity}
        for key, piece in live.items():
            nodes.update(piece.nodes)
            edges += piece.edges
            for t in self.terms[key]:
                edges.append(("input" if t.key is None else self.pieces[t.key].exit, piece.entry))
                if t.delay:
                    delayed_expected.add((self.pieces[t.key].flat_exit, piece.flat_entry))
        for i, (key, path) in enumerate(outputs):
            out_name = "output" if i == 0 else f"output_{i}"
            shape = self.groups[key][0].out_shapes.get(path, ())[self.tr.lead:]
            nodes[out_name] = g.Output(shape=np.asarray(shape, dtype=np.int64))
            edges.append((self.pieces[key].exit, out_name))
        policy = self.policy
        for piece in live.values():
            for node_name, fields in piece.overrides.items():
                effective = policy.for_node(node_name, _node_type(nodes, node_name))
                diff = {k: v for k, v in fields.items() if getattr(effective, k) != v}
                if diff:
                    policy = policy.with_override(node_name, **diff)
        graph = g.Graph(nodes=nodes, edges=list(dict.fromkeys(edges)), metadata=policy.to_metadata())
        sched = schedule(flatten(graph))
        inner = {(s, d) for s, d in sched.delayed if any(s.startswith(p.exit + ".") for p in live.values() if p.flat_exit != p.exit)}
        mismatched = (set(sched.delayed) - inner) ^ delayed_expected
        if mismatched:
            self.gaps.append(Gap(GRAPH_NODE, "recurrence", "unsupported",
                                 reason="values the model reads from the previous step do not close cycles the way NIR's "
                                 f"one-step cycle rule does (edges {sorted(mismatched)})", suggestion="use recurrent neuron layers for recurrence"))
            return None, self.report
        self.report.policy = policy
        return graph, self.report


def _traced(arg: Any) -> bool:
    if isinstance(arg, tuple):
        return any(_traced(a) for a in arg)
    return arg is not None and not isinstance(arg, Const)


def _returned(value: Any) -> list:
    """What the model returns, as outputs: a tensor, or the tensors of a returned tuple (nested
    tuples, such as a list of neuron states, are not outputs)."""
    items = value if isinstance(value, tuple) else (value,)
    return [v for v in items if v is not None and not isinstance(v, (Const, tuple))]


def _fresh(base: str, taken: set[str]) -> str:
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def _with_bias(node: g.Node, bias: np.ndarray) -> g.Node:
    if isinstance(node, g.Linear):
        return g.Affine(weight=node.weight, bias=bias.reshape(-1).astype(GRAPH_DTYPE))
    if isinstance(node, g.Affine):
        return node.model_copy(update={"bias": (node.bias + bias.reshape(-1)).astype(GRAPH_DTYPE)})
    per_channel = bias.reshape(bias.shape[0], -1)[:, 0]
    return node.model_copy(update={"bias": (node.bias + per_channel).astype(GRAPH_DTYPE)})


def _node_type(nodes: dict[str, g.Node], dotted: str) -> str | None:
    head, _, rest = dotted.partition(".")
    node = nodes.get(dotted) or nodes.get(head)
    if isinstance(node, g.Graph) and rest:
        return _node_type(node.nodes, rest)
    return node.type if node is not None else None


def full(value, shape, what: str = "parameter") -> np.ndarray:
    """A scalar or per-neuron parameter broadcast to the layer shape, as float32 (exactly)."""
    arr = to_array(value, what)
    try:
        return np.ascontiguousarray(np.broadcast_to(arr, shape))
    except ValueError:
        raise NirbridgeError(f"{what} of shape {arr.shape} does not broadcast to the layer shape {tuple(shape)}") from None


__all__ = ["Framework", "Layer", "Piece", "SampleError", "as_sample", "export", "full", "model_dtype", "torch_piece"]
