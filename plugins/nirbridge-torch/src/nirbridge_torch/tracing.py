"""Record what a torch model computes on a sample input, as calls of its layers.

`trace(model, sample, is_leaf=)` runs the model once with forward hooks on its leaf layers
(the ones an exporter maps to NIR nodes) and a `TorchFunctionMode` that follows tensors
between them, and returns a `Trace`: every leaf call in order, with the provenance of each
tensor argument. It handles the models people write:

- one step per call (`nn.Sequential` with layers keeping their own state);
- a time loop inside `forward` (`for t in ...: spk, mem = self.lif(self.fc(x[t]), mem)`):
  the k-th call of a layer belongs to time step k, and a value made at step k-1 and read at
  step k is marked as such (`Term.delay = 1`);
- sums of layer outputs (`fc1(x) + fc2(s)`: two edges into the consumer), flattening views
  (`x.view(x.shape[0], -1)`, `x.flatten(1)`: a `flatten` pseudo-layer), time indexing of the
  input (`x[t]`), `torch.stack` of outputs over time, detach/clone.

Anything else applied to a traced tensor outside a leaf is kept as an `Opaque` provenance
that names the operation, so the exporter can refuse it with a reason. Tensors made from no
traced tensor (zeros for initial states, constants) have no provenance (`None`).
The batch dimension is the first dimension of every layer's input.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

# ----------------------------------------------------------------------------- provenance


@dataclass(frozen=True)
class Input:
    """The sample (or a time step of it, `x[t]`)."""

    name: str = "input"


@dataclass(frozen=True)
class Out:
    """Output `index` (None: the whole, single-tensor output) of call number `call`."""

    call: int
    index: int | None = None


@dataclass(frozen=True)
class Sum:
    parts: tuple


@dataclass(frozen=True)
class Stack:
    parts: tuple


@dataclass(frozen=True)
class Opaque:
    """An operation the tracer does not map (named), applied to traced tensors."""

    op: str
    parts: tuple


Source = Input | Out | Sum | Stack | Opaque | None


@dataclass
class Call:
    """One call of a leaf layer (or of a pseudo-layer: `op` set, `module` None).

    `key` identifies the layer across time steps (its qualified name, or `op@file:line`);
    `step` is how many earlier calls had the same key; `args` the provenance of each
    positional argument (None when untraced or not a tensor); `shapes` their shapes."""

    index: int
    key: str
    module: torch.nn.Module | None
    step: int
    args: list[Source]
    shapes: list[tuple[int, ...] | None]
    output_shapes: list[tuple[int, ...] | None]
    op: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: per positional argument: whether an untraced tensor argument is all zeros (None otherwise)
    zero: list[bool | None] = field(default_factory=list)


@dataclass(frozen=True)
class Term:
    """One contribution to a value: output `index` of layer `key`, made `delay` steps before
    the step that reads it (0 or 1), or the model input (`key` None)."""

    key: str | None
    index: int | None = None
    delay: int = 0


@dataclass
class Trace:
    calls: list[Call]
    output: Any  # the forward's return value, tensors replaced by their Source
    sample_shape: tuple[int, ...]

    def by_key(self) -> dict[str, list[Call]]:
        """Calls grouped by layer key, in first-call order."""
        out: dict[str, list[Call]] = {}
        for call in self.calls:
            out.setdefault(call.key, []).append(call)
        return out

    def terms(self, source: Source, step: int) -> tuple[list[Term], str | None]:
        """The contributions a value read at `step` is made of, or an error message."""
        if source is None:
            return [], None
        if isinstance(source, Input):
            return [Term(None)], None
        if isinstance(source, Out):
            call = self.calls[source.call]
            return [Term(call.key, source.index, step - call.step)], None
        if isinstance(source, Sum):
            out: list[Term] = []
            for part in source.parts:
                terms, error = self.terms(part, step)
                if error:
                    return [], error
                out += terms
            return out, None
        if isinstance(source, Stack):
            return [], "a stack over time steps can only be a model output"
        return [], f"computed by `{source.op}` outside a layer, which has no NIR equivalent"


# ----------------------------------------------------------------------------- tracer

_IDENTITY = {"detach", "clone", "contiguous", "to", "float", "type", "requires_grad_", "cpu", "detach_"}
_ADD = {"add", "__add__", "__radd__", "__iadd__", "add_"}
_VIEW = {"flatten", "view", "reshape"}


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _shape(value: Any) -> tuple[int, ...] | None:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


class _Tracer:
    def __init__(self, sample: torch.Tensor):
        self.prov: dict[int, Source] = {}
        self.keep: list[torch.Tensor] = []  # keeps traced tensors alive so ids stay unique
        self.calls: list[Call] = []
        self.count: dict[str, int] = {}
        self.depth = 0
        self.pending: list[tuple[list[Source], list, dict]] = []
        self.set(sample, Input())

    def set(self, tensor: torch.Tensor, source: Source) -> None:
        self.prov[id(tensor)] = source
        self.keep.append(tensor)

    def get(self, value: Any) -> Source:
        return self.prov.get(id(value)) if isinstance(value, torch.Tensor) else None

    def new_call(self, key: str, module, args, output, op=None, kwargs=None) -> Call:
        step = self.count.get(key, 0)
        self.count[key] = step + 1
        outs = list(output) if isinstance(output, (tuple, list)) else [output]
        call = Call(
            index=len(self.calls), key=key, module=module, step=step,
            args=[self.get(a) for a in args], shapes=[_shape(a) for a in args],
            output_shapes=[_shape(o) for o in outs], op=op, kwargs=dict(kwargs or {}),
            zero=[bool(torch.all(a == 0)) if isinstance(a, torch.Tensor) and id(a) not in self.prov else None for a in args],
        )
        self.calls.append(call)
        if isinstance(output, torch.Tensor):
            self.set(output, Out(call.index))
        elif isinstance(output, (tuple, list)):
            for i, o in enumerate(output):
                if isinstance(o, torch.Tensor):
                    self.set(o, Out(call.index, i))
        return call

    # -- torch functions outside leaf layers -----------------------------------------
    def on_op(self, func, args, kwargs, out) -> None:
        inputs = _tensors(args) + _tensors(kwargs)
        traced = [t for t in inputs if id(t) in self.prov]
        if not traced or not isinstance(out, (torch.Tensor, tuple, list)):
            return
        name = getattr(func, "__name__", str(func))
        if isinstance(out, (tuple, list)):
            for o in _tensors(out):
                self.set(o, Opaque(name, tuple(self.get(t) for t in traced)))
            return
        first = self.get(traced[0])
        if name in _IDENTITY and len(traced) == 1:
            self.set(out, first)
        elif name == "__getitem__" and isinstance(first, Input) and args and args[0] is traced[0]:
            self.set(out, first)
        elif name in _ADD and len(args) >= 2 and all(isinstance(a, torch.Tensor) and id(a) in self.prov for a in args[:2]) \
                and not kwargs.get("alpha") and args[0].shape == args[1].shape:
            self.set(out, Sum((self.get(args[0]), self.get(args[1]))))
        elif name == "stack" and len(traced) == len(inputs):
            self.set(out, Stack(tuple(self.get(t) for t in traced)))
        elif name in _VIEW and len(traced) == 1 and traced[0] is (args[0] if args else None):
            src = traced[0]
            if tuple(out.shape) == tuple(src.shape):
                self.set(out, first)
            elif src.ndim > 2 and tuple(out.shape) == (src.shape[0], math.prod(src.shape[1:])):
                self.new_call(f"flatten@{_site()}", None, [src], out, op="flatten")
            else:
                self.set(out, Opaque(f"{name} to shape {tuple(out.shape)}", (first,)))
        else:
            self.set(out, Opaque(name, tuple(self.get(t) for t in traced)))


def _site() -> str:
    """file:line:offset of the model code that called the current torch function (the
    bytecode offset tells apart two calls on one line)."""
    frame = sys._getframe(2)
    while frame is not None and (frame.f_code.co_filename == __file__ or "/torch/" in frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return "?"
    return f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}:{frame.f_lasti}"


class _Mode(TorchFunctionMode):
    def __init__(self, tracer: _Tracer):
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.tracer.depth == 0:
            self.tracer.on_op(func, args, kwargs, out)
        return out


def leaves(model: torch.nn.Module, is_leaf: Callable[[torch.nn.Module], bool]) -> dict[str, torch.nn.Module]:
    """Qualified name -> module of the layers the exporter maps: modules for which `is_leaf`
    holds, or that have no children; their children are not visited."""
    found: dict[str, torch.nn.Module] = {}

    def visit(module: torch.nn.Module, prefix: str) -> None:
        if prefix and (is_leaf(module) or not any(True for _ in module.children())):
            found[prefix] = module
            return
        if not prefix and (is_leaf(module) or not any(True for _ in module.children())):
            found[type(module).__name__.lower()] = module
            return
        for name, child in module.named_children():
            visit(child, f"{prefix}.{name}" if prefix else name)

    visit(model, "")
    return found


def trace(model: torch.nn.Module, sample: torch.Tensor, *, is_leaf: Callable[[torch.nn.Module], bool]) -> Trace:
    """Run `model(sample)` once (no gradients) and record its leaf calls; see the module doc."""
    sample = torch.as_tensor(sample)
    tracer = _Tracer(sample)
    handles = []
    named = leaves(model, is_leaf)
    for name, module in named.items():

        def pre(mod, args, kwargs, name=name):
            tracer.depth += 1
            if tracer.depth == 1:
                tracer.pending.append((name, args, kwargs))

        def post(mod, args, kwargs, output, name=name):
            tracer.depth -= 1
            if tracer.depth == 0:
                key, args, kwargs = tracer.pending.pop()
                tracer.new_call(key, mod, list(args), output, kwargs={k: tracer.get(v) for k, v in kwargs.items()})

        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(module.register_forward_hook(post, with_kwargs=True))
    try:
        with torch.no_grad(), _Mode(tracer):
            result = model(sample)
    finally:
        for h in handles:
            h.remove()

    def convert(value):
        if isinstance(value, torch.Tensor):
            return tracer.get(value)
        if isinstance(value, (list, tuple)):
            return type(value)(convert(v) for v in value) if not hasattr(value, "_fields") else tuple(convert(v) for v in value)
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return None

    return Trace(calls=tracer.calls, output=convert(result), sample_shape=tuple(sample.shape))


__all__ = ["Call", "Input", "Opaque", "Out", "Source", "Stack", "Sum", "Term", "Trace", "leaves", "trace"]
