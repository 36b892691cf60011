"""Record what a torch model computes on a sample input, as calls of its layers.

`trace(model, sample, is_leaf=, lead=)` runs the model once with forward hooks on its leaf
layers (the ones an exporter maps to NIR nodes) and a `TorchFunctionMode` that follows tensors
between them, and returns a `Trace`: every leaf call in order, with the provenance of each
tensor argument. It handles the models people write:

- one step per call (`nn.Sequential` with layers keeping their own state);
- a time loop inside `forward` (`for t in ...: spk, mem = self.lif(self.fc(x[t]), mem)`):
  the k-th call of a layer belongs to time step k, and a value made at step k-1 and read at
  step k is marked as such (`Term.delay = 1`); a state passed back in is recognised by its
  place in the layer's output (`Out.path`);
- whole sequences (`lead=2`: every layer's input is (time, batch, ...), as Norse's time modules);
- sums of layer outputs (`fc1(x) + fc2(s)`: two edges into the consumer), flattening views
  (`x.view(x.shape[0], -1)`, `x.view(-1, F)`, `x.flatten(1)`, `torch.flatten`), time indexing
  or slicing of the input (`x[t]`, `x[t, :, :]`, `x[:T]`), scaling by a constant (`10 * x`),
  `F.avg_pool2d`, `F.max_pool2d` and `F.relu` (pseudo-layers, `Call.op`), `torch.stack` of
  outputs over time, writing them into a preallocated tensor (`out[t] = v`), detach/clone,
  casts that keep every value (to a wider float), and narrowing casts (a `cast` pseudo-layer:
  exact on spikes).

Anything else applied to a traced tensor outside a leaf is kept as an `Opaque` provenance
that names the operation, so the exporter can refuse it with a reason. Tensors made from no
traced tensor (zeros for initial states, constants) are `Const`, which says whether they are
all zero. `preserved(model)` restores everything a run changes in the model (`export` traces
inside it), so tracing leaves the user's model as it was.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from nirbridge.errors import NirbridgeError

Path = tuple[int, ...]

# ----------------------------------------------------------------------------- provenance


@dataclass(frozen=True)
class Input:
    """The sample, a slice of its time axis (`x[:T]`), or time step `index` of it (`x[t]`)."""

    index: int | None = None


@dataclass(frozen=True)
class Out:
    """The tensor at `path` in the output of call number `call` (`()`: a single-tensor output,
    `(1,)`: the second element of a tuple, `(1, 0)`: the first tensor of that element)."""

    call: int
    path: Path = ()


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


@dataclass(frozen=True)
class Const:
    """A tensor made from no traced tensor (an initial state, a constant)."""

    zero: bool


Source = Input | Out | Sum | Stack | Opaque | None
#: what a call received: a Source, a Const, a tuple of those (a state tuple), or None
Arg = Any


@dataclass
class Call:
    """One call of a leaf layer (or of a pseudo-layer: `op` set, `module` None).

    `key` identifies the layer across time steps (its qualified name, or `op@file:line`);
    `step` is how many earlier calls had the same key; `args`/`kwargs` describe the arguments
    (see `Arg`); `shapes` are the positional arguments' shapes; `out_shapes` the shape of
    every tensor of the output by path; `params` the constant arguments of a pseudo-layer."""

    index: int
    key: str
    module: torch.nn.Module | None
    step: int
    args: list[Arg]
    shapes: list[tuple[int, ...] | None]
    out_shapes: dict[Path, tuple[int, ...]]
    kwargs: dict[str, Arg] = field(default_factory=dict)
    op: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: paths holding a tensor already at an earlier path (Norse returns the spikes again in its state)
    aliases: dict[Path, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Term:
    """One contribution to a value: the output at `path` of layer `key`, made `delay` steps
    before the step that reads it (0 or 1), or the model input (`key` None)."""

    key: str | None
    path: Path = ()
    delay: int = 0


@dataclass
class Trace:
    calls: list[Call]
    output: Any  # the forward's return value, tensors replaced by their Source (or Const)
    sample_shape: tuple[int, ...]
    lead: int = 1  # leading dimensions that are not features: (batch,) or (time, batch)

    def by_key(self) -> dict[str, list[Call]]:
        """Calls grouped by layer key, in first-call order."""
        out: dict[str, list[Call]] = {}
        for call in self.calls:
            out.setdefault(call.key, []).append(call)
        return out

    def input_offsets(self) -> set[int]:
        """For every call reading a time step of the input (`x[t]`): that index minus the
        call's step. One value when every layer reads the input of the step it runs."""
        def indices(source: Any) -> set[int]:
            if isinstance(source, Input):
                return set() if source.index is None else {source.index}
            return {i for part in source.parts for i in indices(part)} if isinstance(source, Sum) else set()

        return {i - call.step for call in self.calls for i in (indices(call.args[0]) if call.args else ())}

    def terms(self, source: Source, step: int) -> tuple[list[Term], str | None]:
        """The contributions a value read at `step` is made of, or an error message."""
        if source is None or isinstance(source, Const):
            return [], None
        if isinstance(source, Input):
            return [Term(None)], None
        if isinstance(source, Out):
            call = self.calls[source.call]
            return [Term(call.key, source.path, step - call.step)], None
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
        if isinstance(source, tuple):
            return [], "a tuple of tensors"
        return [], f"computed by `{source.op}` outside a layer, which has no NIR equivalent"


# ----------------------------------------------------------------------------- tracer

_IDENTITY = {"detach", "clone", "contiguous", "to", "float", "double", "half", "bfloat16", "type", "requires_grad_", "cpu", "cuda", "detach_"}
_ADD = {"add", "__add__", "__radd__", "__iadd__", "add_"}
_MUL = {"mul", "__mul__", "__rmul__", "mul_", "__imul__"}
_VIEW = {"flatten", "view", "reshape"}


def _avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None): ...
def _max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False): ...
def _relu(input, inplace=False): ...


#: functional calls recorded as pseudo-layers: torch name -> (op, signature for the constant arguments)
_FUNCTIONAL = {
    "avg_pool2d": ("avg_pool2d", inspect.signature(_avg_pool2d)),
    "max_pool2d": ("max_pool2d", inspect.signature(_max_pool2d)),
    "relu": ("relu", inspect.signature(_relu)),
    "relu_": ("relu", inspect.signature(_relu)),
}


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _paths(value: Any, path: Path = ()) -> Iterator[tuple[Path, torch.Tensor]]:
    """Every tensor of a (nested) output with its path."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _paths(v, path + (i,))


def _shape(value: Any) -> tuple[int, ...] | None:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def _is_time_index(index: Any) -> bool:
    """`x[t]`, `x[t, :, ...]` or `x[a:b]`: one time step or a slice of the time axis."""
    items = index if isinstance(index, tuple) else (index,)
    if not items:
        return False
    head, rest = items[0], items[1:]
    whole = all(r is Ellipsis or (isinstance(r, slice) and r == slice(None)) for r in rest)
    step = isinstance(head, int) or (isinstance(head, torch.Tensor) and head.ndim == 0 and not head.is_floating_point())
    return whole and (step or (isinstance(head, slice) and head.step in (None, 1)))


def _widens(src: torch.dtype, dst: torch.dtype) -> bool:
    """Whether casting from `src` to `dst` keeps every value (float16/bfloat16 -> float32 -> float64)."""
    order = {torch.float16: 1, torch.bfloat16: 1, torch.float32: 2, torch.float64: 3}
    return src in order and dst in order and order[dst] > order[src]


def _scalar(value: Any) -> float | None:
    """A constant factor: a Python number, or an untraced one-element tensor."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    return None


class _Tracer:
    def __init__(self, sample: torch.Tensor, lead: int):
        self.prov: dict[int, Source] = {}
        self.keep: list[torch.Tensor] = []  # keeps traced tensors alive so ids stay unique
        self.calls: list[Call] = []
        self.count: dict[str, int] = {}
        self.depth = 0
        self.lead = lead
        self.pending: list[tuple[str, tuple, dict]] = []
        self.set(sample, Input())

    def set(self, tensor: torch.Tensor, source: Source) -> None:
        self.prov[id(tensor)] = source
        self.keep.append(tensor)

    def get(self, value: Any) -> Source:
        return self.prov.get(id(value)) if isinstance(value, torch.Tensor) else None

    def traced(self, value: Any) -> bool:
        return isinstance(value, torch.Tensor) and id(value) in self.prov

    def describe(self, value: Any) -> Arg:
        if isinstance(value, torch.Tensor):
            if id(value) in self.prov:
                return self.prov[id(value)]
            return Const(bool(value.numel() == 0 or not torch.any(value != 0)))
        if isinstance(value, (list, tuple)):
            return tuple(self.describe(v) for v in value)
        if isinstance(value, dict):
            return tuple(self.describe(v) for v in value.values())
        return None

    def new_call(self, key: str, module, args, output, *, kwargs=None, op=None, params=None) -> Call:
        step = self.count.get(key, 0)
        self.count[key] = step + 1
        found = list(_paths(output))
        call = Call(
            index=len(self.calls), key=key, module=module, step=step,
            args=[self.describe(a) for a in args], shapes=[_shape(a) for a in args],
            out_shapes={p: tuple(t.shape) for p, t in found},
            kwargs={k: self.describe(v) for k, v in (kwargs or {}).items()}, op=op, params=dict(params or {}),
        )
        self.calls.append(call)
        seen: dict[int, Path] = {}
        for path, tensor in found:  # a tensor returned twice (spikes, and again in the state) is its first place
            if id(tensor) in seen:
                call.aliases[path] = seen[id(tensor)]
            else:
                seen[id(tensor)] = path
                self.set(tensor, Out(call.index, path))
        return call

    # -- torch functions outside leaf layers -----------------------------------------
    def on_op(self, func, args, kwargs, out) -> None:
        name = getattr(func, "__name__", str(func))
        if name == "__setitem__":
            self.on_setitem(args)
            return
        inputs = _tensors(args) + _tensors(kwargs)
        traced = [t for t in inputs if id(t) in self.prov]
        if not traced or not isinstance(out, (torch.Tensor, tuple, list)):
            return
        first = self.get(traced[0])
        if isinstance(out, (tuple, list)):
            split = name == "unbind" and isinstance(first, Input) and (args[1] if len(args) > 1 else kwargs.get("dim", 0)) == 0
            for o in _tensors(out):
                self.set(o, first if split else Opaque(name, tuple(self.get(t) for t in traced)))
            return
        source = self.on_tensor_op(name, func, args, kwargs, out, traced, first)
        if source is not None:
            self.set(out, source)

    def on_tensor_op(self, name, func, args, kwargs, out, traced, first) -> Source:
        """The provenance of `out`, or None when a pseudo-layer call was recorded instead."""
        single = len(traced) == 1 and bool(args) and args[0] is traced[0]
        if name in _IDENTITY and single:
            src = traced[0]
            if out.shape != src.shape:
                return Opaque(f"{name} to shape {tuple(out.shape)}", (first,))
            if out.dtype == src.dtype or _widens(src.dtype, out.dtype):
                return first
            self.new_call(f"cast@{_site()}", None, [src], out, op="cast", params={"dtype": str(out.dtype).replace("torch.", "")})
            return None
        if name == "__getitem__" and isinstance(first, Input) and single and _is_time_index(args[1]):
            head = args[1][0] if isinstance(args[1], tuple) else args[1]
            return Input(int(head)) if first.index is None and not isinstance(head, slice) else first
        if name in _ADD and len(args) >= 2 and not kwargs.get("alpha"):
            a, b = args[0], args[1]
            if self.traced(a) and self.traced(b) and a.shape == b.shape:
                return Sum((self.get(a), self.get(b)))
            const = b if self.traced(a) else a
            if isinstance(const, torch.Tensor) and not self.traced(const) and not torch.any(const != 0) and out.shape == traced[0].shape:
                return first  # adding zeros (an initial state)
        if name in _MUL and len(traced) == 1 and len(args) == 2 and out.shape == traced[0].shape:
            factor = _scalar(args[1] if args[0] is traced[0] else args[0])
            if factor is not None:
                self.new_call(f"scale@{_site()}", None, [traced[0]], out, op="scale", params={"scale": factor})
                return None
        if name == "stack" and len(traced) == len(_tensors(args)):
            return Stack(tuple(self.get(t) for t in traced))
        if name in _VIEW and single:
            return self.on_view(name, traced[0], out, first)
        if name in _FUNCTIONAL and single:
            op, signature = _FUNCTIONAL[name]
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            params = {k: v for k, v in bound.arguments.items() if k != "input"}
            self.new_call(f"{op}@{_site()}", None, [traced[0]], out, op=op, params=params)
            return None
        return Opaque(name, tuple(self.get(t) for t in traced))

    def on_view(self, name: str, src: torch.Tensor, out: torch.Tensor, first: Source) -> Source:
        lead = self.lead
        if tuple(out.shape) == tuple(src.shape):
            return first
        if src.ndim > lead + 1 and tuple(out.shape) == (*src.shape[:lead], math.prod(src.shape[lead:])):
            self.new_call(f"flatten@{_site()}", None, [src], out, op="flatten")
            return None
        return Opaque(f"{name} to shape {tuple(out.shape)}", (first,))

    def on_setitem(self, args) -> None:
        """`out[t] = v` with v traced: `out` holds a stack of what is written into it."""
        if len(args) != 3 or not isinstance(args[0], torch.Tensor) or not self.traced(args[2]):
            return
        target, value = args[0], args[2]
        held = self.get(target)
        if held is None or isinstance(held, Stack):
            parts = held.parts if isinstance(held, Stack) else ()
            self.set(target, Stack(parts + (self.get(value),)))
        else:
            self.set(target, Opaque("__setitem__", (held, self.get(value))))


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
        if is_leaf(module) or not any(True for _ in module.children()):
            found[prefix or type(module).__name__.lower()] = module
            return
        for name, child in module.named_children():
            visit(child, f"{prefix}.{name}" if prefix else name)

    visit(model, "")
    return found


def trace(model: torch.nn.Module, sample: torch.Tensor, *, is_leaf: Callable[[torch.nn.Module], bool], lead: int = 1) -> Trace:
    """Run `model(sample)` once (no gradients) and record its leaf calls; see the module doc.
    The model's state is not restored here: run inside `preserved(model)`."""
    sample = torch.as_tensor(sample)
    tracer = _Tracer(sample, lead)
    handles = []
    for name, module in leaves(model, is_leaf).items():

        def pre(mod, args, kwargs, name=name):
            tracer.depth += 1
            if tracer.depth == 1:
                tracer.pending.append((name, args, kwargs))

        def post(mod, args, kwargs, output, name=name):
            tracer.depth -= 1
            if tracer.depth == 0:
                key, args, kwargs = tracer.pending.pop()
                tracer.new_call(key, mod, list(args), output, kwargs=kwargs)

        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(module.register_forward_hook(post, with_kwargs=True))
    try:
        with torch.no_grad(), _Mode(tracer):
            result = model(sample)
    finally:
        for h in handles:
            h.remove()
    return Trace(calls=tracer.calls, output=tracer.describe(result), sample_shape=tuple(sample.shape), lead=lead)


# ----------------------------------------------------------------------------- the model's state


def _held_tensors(value: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif depth < 4 and isinstance(value, (list, tuple)):
        for v in value:
            yield from _held_tensors(v, depth + 1)
    elif depth < 4 and isinstance(value, dict):
        for v in value.values():
            yield from _held_tensors(v, depth + 1)


@contextmanager
def preserved(model: torch.nn.Module):
    """Run a block that may change `model` (a forward keeping state in attributes, neurons
    with hidden state) and restore it afterwards: every module's attributes, buffers and
    registered parameters and submodules as they were, and the values of tensors it held that
    were changed in place. A parameter changed in place raises `NirbridgeError` (the values
    it had are not kept, so that exporting a large model copies no weights)."""
    saved = []
    for module in torch.nn.Module.modules(model):  # Rockpool's Module API overrides modules()
        attrs = {k: v for k, v in vars(module).items() if k not in ("_parameters", "_buffers", "_modules")}
        buffers = dict(module._buffers)
        held = {id(t): t for t in _held_tensors(list(attrs.values()) + list(buffers.values())) if not isinstance(t, torch.nn.Parameter)}
        values = [(t, t._version, t.detach().clone()) for t in held.values()]
        saved.append((module, attrs, buffers, dict(module._parameters), dict(module._modules), values))
    versions = [(name, p, p._version) for name, p in model.named_parameters()]
    try:
        yield
    finally:
        for module, attrs, buffers, params, modules, values in saved:
            for key in [k for k in vars(module) if k not in attrs and k not in ("_parameters", "_buffers", "_modules")]:
                del module.__dict__[key]
            module.__dict__.update(attrs)
            for registry, old in ((module._buffers, buffers), (module._parameters, params), (module._modules, modules)):
                registry.clear()
                registry.update(old)
            with torch.no_grad():
                for tensor, version, value in values:
                    if tensor._version != version:
                        tensor.set_(value) if tensor.shape != value.shape else tensor.copy_(value)
    changed = [name for name, p, version in versions if p._version != version]
    if changed:
        raise NirbridgeError(f"running the model changed parameter{'s' if len(changed) > 1 else ''} {', '.join(changed)} in place; "
                             "export runs the model once and must leave it unchanged (do not write into parameters in forward)")


__all__ = ["Call", "Const", "Input", "Opaque", "Out", "Source", "Stack", "Sum", "Term", "Trace", "leaves", "preserved", "trace"]
