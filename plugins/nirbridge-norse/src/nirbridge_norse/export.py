"""Norse model -> NIR Graph (`to_nir`).

The model is run once on `sample` with forward hooks on every module it calls; the hooks give
the dataflow (which module's output feeds which module) and the shapes. Works for
`norse.torch.SequentialState`, `torch.nn.Sequential` and custom modules whose forward passes
tensors from module to module (a flattening `view`/`reshape` between modules is recognised;
other arithmetic outside modules is reported). A forward that loops over time steps calling
the same modules each step is read from its first step.

Parameter mapping (Norse -> NIR at the policy's dt; Norse stores inverse time constants):

    LIFBoxCell   v += dt tau_mem_inv (x + v_leak - v)      -> LIF(tau = 1/tau_mem_inv, r = 1)
    LIFCell/LIF  i += x; v += dt tau_mem_inv (v_leak - v + i); i -= dt tau_syn_inv i
                                                             -> CubaLIF(tau_syn, tau_mem, r = 1, w_in = 1),
                                                                synapse input `impulse`
    LIBoxCell    -> LI        LICell/LI -> CubaLI (like LIFCell)
    IAFCell/IAF  v += x                                      -> IF(r = 1), input `impulse`
    LIFRecurrentCell/LIFRecurrent -> nested graph: Linear(input_weights) -> CubaLIF, with
                 CubaLIF -> Linear(recurrent_weights) -> CubaLIF closing the cycle (one step late)
    LILinearCell -> Linear(input_weights) -> CubaLI
                 (both on vector inputs only: Norse applies input_weights to the last dimension)

Norse starts a neuron at v = v_leak (IAF: v = v_reset); NIR starts at 0. For spiking neurons
the potential is shifted (u = v - v_leak: v_leak' = 0, v_th' = v_th - v_leak, v_reset' =
v_reset - v_leak), which changes no spike. A cell with its own `dt` other than the policy's
gets its time constants scaled so that dt/tau per step is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nirbridge import ir as g
from nirbridge.errors import GapError, NirbridgeError
from nirbridge.report import Gap, GapReport
from nirbridge.semantics import Policy, unit_gain
from nirbridge_torch import export_stateless

THRESHOLD_METHODS = ("super", "heaviside", "triangle", "tanh", "circ", "heavi_erfc")
BINARY_TYPES = ("IF", "LIF", "CubaLIF", "Threshold")


def _norse():
    import norse.torch as norse

    return norse


def _cell_types():
    n = _norse()
    return {
        "lif_box": (n.LIFBoxCell,),
        "lif": (n.LIFCell, n.LIF),
        "li_box": (n.LIBoxCell,),
        "li": (n.LICell, n.LI),
        "iaf": (n.IAFCell, n.IAF),
        "lif_rec": (n.LIFRecurrentCell, n.LIFRecurrent),
        "li_linear": (n.LILinearCell,),
    }


TORCH_LAYERS = (
    torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Flatten, torch.nn.AvgPool2d,
    torch.nn.LPPool2d, torch.nn.MaxPool2d, torch.nn.Identity,
)


def is_norse_module(module: torch.nn.Module) -> bool:
    return type(module).__module__.startswith("norse.")


def _is_time_module(module: torch.nn.Module) -> bool:
    from norse.torch.module.snn import SNN, SNNRecurrent

    return isinstance(module, (SNN, SNNRecurrent, _norse().Lift))


def _leaf(module: torch.nn.Module) -> bool:
    """Modules traced as one node (their children, if any, are not traced separately)."""
    if isinstance(module, TORCH_LAYERS) or isinstance(module, _norse().Lift):
        return True
    if isinstance(module, (_norse().SequentialState, torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)):
        return False
    if is_norse_module(module):
        return True
    return not any(True for _ in module.children())


@dataclass
class _Call:
    name: str
    module: torch.nn.Module
    input: Any
    output: Any


@dataclass
class _Builder:
    """Collects nodes, edges, gaps and per-node policy overrides while walking the calls."""

    policy: Policy
    nodes: dict[str, g.Node] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    binary: set[str] = field(default_factory=set)
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)

    def gap(self, name: str, kind: str, status: str, maps_to: str = "", reason: str = "", suggestion: str = "") -> None:
        self.gaps.append(Gap(name, kind, status, maps_to=maps_to, reason=reason, suggestion=suggestion))

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.nodes:
            name, i = f"{base}_{i}", i + 1
        return name


def _array(t, shape: tuple[int, ...]) -> np.ndarray:
    """A Norse parameter (scalar or per-neuron tensor) as a float32 array of the neuron shape."""
    value = np.asarray(torch.as_tensor(t).detach().cpu().numpy(), dtype=np.float32)
    return np.ascontiguousarray(np.broadcast_to(value, shape)).astype(np.float32)


def to_nir(model: torch.nn.Module, *, policy: Policy | None = None, sample: Any = None) -> g.Graph:
    """The NIR graph of a Norse model (see the module docstring), with the policy it runs
    under in its metadata. Raises `GapError` listing every module that cannot be exported."""
    from .build import NorseGraph

    if isinstance(model, NorseGraph):
        return export_imported(model)
    if not isinstance(model, torch.nn.Module):
        raise NirbridgeError(f"to_nir: expected a torch.nn.Module, got {type(model).__name__}")
    time_mode = any(_is_time_module(m) for m in model.modules())
    if sample is None:
        first = next((m for m in model.modules() if isinstance(m, torch.nn.Linear)), None)
        if first is None:
            raise NirbridgeError("to_nir: pass sample=<input tensor> (batch, *features), or (time, batch, *features) for Norse's time-sequence modules")
        sample = torch.zeros((1, 1, first.in_features) if time_mode else (1, first.in_features))
    sample = torch.as_tensor(np.asarray(sample) if not isinstance(sample, torch.Tensor) else sample, dtype=torch.get_default_dtype())
    lead = 2 if time_mode else 1
    if sample.ndim <= lead:
        raise NirbridgeError(f"to_nir: sample must be shaped ({'time, ' if time_mode else ''}batch, *features), got {tuple(sample.shape)}")
    calls = _trace(model, sample)
    dt = policy.dt if policy is not None else next(
        (float(m.dt) for c in calls for m in [c.module] if hasattr(m, "dt") and is_norse_module(m)), 1e-3
    )
    base = policy if policy is not None else Policy.preset("norse", dt=dt)
    base = base.with_type_override("CubaLIF", input="impulse").with_type_override("CubaLI", input="impulse")
    problems = []
    for f, norse_value in (("integration", "euler"), ("reset_timing", "immediate"), ("threshold", "gt"), ("current_order", "current_first")):
        if getattr(base, f) != norse_value:
            problems.append(f"{f}={getattr(base, f)!r}: Norse models compute {norse_value!r}")
    b = _Builder(base)
    for p in problems:
        b.gap("(policy)", "Policy", "unsupported", reason=p, suggestion="export without a policy (the norse preset at the model's dt) or with another dt only")
    b.nodes["input"] = g.Input(shape=np.array(sample.shape[lead:], dtype=np.int64))
    outs = _walk(b, calls, sample, lead)
    if any(gp.status == "unsupported" for gp in b.gaps):
        raise GapError(GapReport(b.gaps, source="norse", target="nir", policy=base))
    if not outs:
        fed = {s for s, _ in b.edges}
        outs = [n for n in b.nodes if n not in fed and n != "input" and "." not in n]
    for i, name in enumerate(outs):
        out = "output" if i == 0 else f"output_{i}"
        b.nodes[out] = g.Output(shape=np.array(_out_shape(b, name), dtype=np.int64))
        b.edges.append((name, out))
    report = GapReport(b.gaps, source="norse", target="nir", policy=base)
    if report.unsupported:
        raise GapError(report)
    final = base
    for name, fields in b.overrides.items():
        final = final.with_override(name, **fields)
    graph = g.Graph(nodes=b.nodes, edges=b.edges, metadata=final.to_metadata())
    return graph


def _out_shape(b: _Builder, name: str) -> tuple[int, ...]:
    graph = g.Graph.model_construct(nodes=b.nodes, edges=b.edges, metadata={}, type="NIRGraph")
    return tuple(graph.shapes()[name][1])


def _trace(model: torch.nn.Module, sample: torch.Tensor) -> list[_Call]:
    """Run `model` on `sample`, recording every call of a leaf module in order."""
    calls: list[_Call] = []
    handles = []
    names = {}
    skip: set[int] = set()
    for name, module in model.named_modules():
        if id(module) in skip or module is model and not _leaf(module):
            continue
        if _leaf(module):
            names[id(module)] = name or type(module).__name__
            for sub in module.modules():
                if sub is not module:
                    skip.add(id(sub))

            def hook(mod, args, out, _name=name or type(module).__name__):
                calls.append(_Call(_name, mod, args[0] if args else None, out))

            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            result = model(sample)
    finally:
        for h in handles:
            h.remove()
    tensors = result if isinstance(result, (tuple, list)) else (result,)
    outputs = [id(t) for t in tensors if isinstance(t, torch.Tensor)]
    calls.append(_Call("(output)", None, sample, outputs))
    return calls


def _first_output(out: Any) -> Any:
    return out[0] if isinstance(out, (tuple, list)) else out


def _node_name(qualname: str) -> str:
    return qualname.replace(".", "_") or "module"


def _walk(b: _Builder, calls: list[_Call], sample: torch.Tensor, lead: int) -> list[str]:
    """Turn the recorded calls into nodes and edges; returns the nodes the model returns."""
    final = calls.pop()
    produced: dict[int, str] = {}
    keep: list[Any] = []  # keep tensors alive so ids stay unique
    counts: dict[int, int] = {}
    for c in calls:
        counts[id(c.module)] = counts.get(id(c.module), 0) + 1
    repeats = set(counts.values())
    if len(repeats) == 1 and (steps := repeats.pop()) > 1 and lead == 1:
        per_step = len(calls) // steps
        calls = calls[:per_step]  # a forward looping over time: read its first step
        counts = {k: 1 for k in counts}
        b.nodes["input"] = g.Input(shape=np.array(sample.shape[2:], dtype=np.int64))
    for c in calls:
        name = _node_name(c.name)
        x = c.input
        if counts[id(c.module)] > 1:
            if name not in {gp.node for gp in b.gaps}:
                b.gap(name, type(c.module).__name__, "unsupported",
                      reason=f"called {counts[id(c.module)]} times in one forward (shared weights or a loop nirbridge cannot unroll)",
                      suggestion="use one module per layer")
            continue
        source = _source(b, x, sample, produced, lead)
        if source is None:
            b.gap(name, type(c.module).__name__, "unsupported",
                  reason="its input is computed outside modules (arithmetic or functional calls in forward), which cannot be exported",
                  suggestion="express that computation with modules (e.g. torch.nn.Flatten instead of torch.flatten)")
            continue
        in_shape = tuple(int(n) for n in x.shape[lead:])
        out_name = _convert(b, name, c.module, source, in_shape, lead)
        out = _first_output(c.output)
        if isinstance(out, torch.Tensor):
            # an unsupported module still names its output, so what follows is judged on its own
            produced[id(out)] = out_name if out_name is not None else name
            keep.append(out)
    return [produced[i] for i in final.output if i in produced]


def _source(b: _Builder, x: Any, sample: torch.Tensor, produced: dict[int, str], lead: int) -> str | None:
    """The node whose output `x` is ("input" for the sample), inserting a Flatten node when
    `x` is a flattening view of a node's output; None when `x` comes from elsewhere."""
    if not isinstance(x, torch.Tensor):
        return None
    if x is sample or (lead == 1 and x._base is sample and x.shape == sample.shape[1:] and x.ndim == sample.ndim - 1):
        return "input" if x is sample or _is_step_view(x, sample) else None
    if id(x) in produced:
        return produced[id(x)]
    base = x._base
    candidates = [(id(t), n) for t, n in ((base, None),)] if base is not None else []
    for key, _ in candidates:
        src = produced.get(key) or ("input" if base is sample else None)
        if src is None:
            continue
        src_shape = tuple(base.shape[lead:]) if src != "input" else tuple(sample.shape[lead:])
        batch = tuple(base.shape[:lead])
        if tuple(x.shape[:lead]) == batch and x.ndim == lead + 1 and int(np.prod(src_shape)) == int(x.shape[-1]):
            name = b.fresh(f"{src}_flatten")
            b.nodes[name] = g.Flatten(start_dim=0, end_dim=-1, input_type=np.array(src_shape, dtype=np.int64))
            b.edges.append((src, name))
            b.gap(name, "Flatten", "exact", maps_to="Flatten", reason="view/reshape between modules")
            if src in b.binary:
                b.binary.add(name)
            return name
    return None


def _is_step_view(x: torch.Tensor, sample: torch.Tensor) -> bool:
    """x is sample[t] for some t (a forward looping over time)."""
    return x.storage_offset() % int(np.prod(sample.shape[1:]) or 1) == 0 and x.stride() == sample.stride()[1:]


def _convert(b: _Builder, name: str, module: torch.nn.Module, source: str, in_shape: tuple[int, ...], lead: int) -> str | None:
    """Add the node(s) of one module fed by `source`; returns the node whose output is the
    module's output, or None when the module is unsupported."""
    n = _norse()
    kind = type(module).__name__
    inner = module.lifted_module if isinstance(module, n.Lift) else module
    if isinstance(inner, torch.nn.Identity):
        return source
    if isinstance(inner, torch.nn.MaxPool2d):
        from nirbridge.rewrite import maxpool2d

        rw = maxpool2d(name, kernel_size=inner.kernel_size, stride=inner.stride, padding=inner.padding,
                       input_shape=in_shape, binary_input=source in b.binary, dilation=inner.dilation,
                       ceil_mode=inner.ceil_mode, taken=set(b.nodes))
        b.gaps.append(rw.gap)
        if not rw.nodes:
            return None
        b.nodes.update(rw.nodes)
        b.edges += [(source, rw.input)] + rw.edges
        b.binary.add(rw.output)
        return rw.output
    if isinstance(inner, torch.nn.LPPool2d):
        if float(inner.norm_type) != 1.0 or inner.ceil_mode:
            b.gap(name, kind, "unsupported", reason=f"LPPool2d with p={inner.norm_type}{', ceil_mode' if inner.ceil_mode else ''} has no NIR form (p = 1 is SumPool2d)",
                  suggestion="use LPPool2d(1, ...) (sum pooling) or AvgPool2d")
            return None
        k = np.array(_pair(inner.kernel_size), dtype=np.int64)
        s = np.array(_pair(inner.stride if inner.stride is not None else inner.kernel_size), dtype=np.int64)
        node = g.SumPool2d(kernel_size=k, stride=s, padding=np.zeros(2, dtype=np.int64))
        return _add(b, name, node, source, kind, "SumPool2d (p = 1)")
    if isinstance(inner, torch.nn.Flatten) and lead == 2 and not isinstance(module, n.Lift):
        inner = torch.nn.Flatten(inner.start_dim - 1 if inner.start_dim > 0 else inner.start_dim,
                                 inner.end_dim - 1 if inner.end_dim > 0 else inner.end_dim)
    if isinstance(inner, TORCH_LAYERS):
        node = export_stateless(inner, in_shape)
        if node is None:
            b.gap(name, kind, "unsupported", reason=f"{type(inner).__name__} with these settings ({inner.extra_repr()}) has no exact NIR form",
                  suggestion="use zero padding, count_include_pad=True, ceil_mode=False")
            return None
        out = _add(b, name, node, source, kind, node.type)
        if isinstance(node, g.Flatten) and source in b.binary:
            b.binary.add(out)
        return out
    types = _cell_types()
    for family, classes in types.items():
        if isinstance(module, classes):
            return _neuron(b, name, family, module, source, in_shape)
    reason = f"{kind} has no NIR equivalent" if is_norse_module(module) else f"{kind} is not a module nirbridge can export"
    b.gap(name, kind, "unsupported", reason=reason,
          suggestion="use LIFBoxCell, LIFCell, LIBoxCell, LICell, IAFCell, LIFRecurrentCell and Linear/Conv/pooling layers")
    return None


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else tuple(int(x) for x in v)


def _add(b: _Builder, name: str, node: g.Node, source: str, kind: str, maps_to: str) -> str:
    name = b.fresh(name)
    b.nodes[name] = node
    b.edges.append((source, name))
    b.gap(name, kind, "exact", maps_to=maps_to)
    return name


def _neuron(b: _Builder, name: str, family: str, module: torch.nn.Module, source: str, in_shape: tuple[int, ...]) -> str | None:
    p = module.p
    kind = type(module).__name__
    problems = []
    method = getattr(p, "method", "super")
    if method not in THRESHOLD_METHODS:
        problems.append(f"threshold method {method!r} (deterministic methods: {', '.join(THRESHOLD_METHODS)})")
    dt_cell = float(getattr(module, "dt", b.policy.dt))
    scale = b.policy.dt / dt_cell  # tau_nir = scale / tau_inv keeps dt/tau per step
    reset = "to_reset"
    if family == "lif_box":
        rm = getattr(p, "reset_method", None)
        from norse.torch.functional.reset import reset_subtract, reset_value

        if rm is reset_subtract:
            reset = "subtract"
        elif rm is not reset_value:
            problems.append(f"reset_method {getattr(rm, '__name__', rm)!r} (known: reset_value, reset_subtract)")
    if family in ("lif_rec", "li_linear"):
        hidden = int(module.hidden_size)
        shape = (hidden,)
        if len(in_shape) != 1:
            problems.append(f"input of shape {in_shape}: {kind} applies input_weights to the last dimension only and keeps "
                            f"a state per leading index, which a NIR Linear (a matrix on a vector) cannot express; flatten the input first")
    else:
        shape = in_shape
    try:
        arr = {k: _array(getattr(p, k), shape) for k in p._fields if k not in ("method", "alpha", "reset_method")}
    except ValueError as exc:
        problems.append(f"parameters do not broadcast to the neuron shape {shape}: {exc}")
        arr = {}
    if arr and family in ("li_box", "li", "li_linear") and np.any(arr["v_leak"] != 0):
        problems.append("v_leak != 0: Norse starts v at v_leak, NIR at 0, and a leaky integrator's output is v itself")
    if arr and family == "lif_box" and reset == "subtract" and np.any(arr["v_leak"] != 0):
        problems.append("reset_subtract with v_leak != 0: NIR starts v at 0, and the shift that makes that exact would change the subtracted threshold")
    if arr and any(not np.all(np.isfinite(a)) for a in arr.values()):
        problems.append("non-finite parameters")
    for key in ("tau_mem_inv", "tau_syn_inv"):
        if key in arr and np.any(arr[key] <= 0):
            problems.append(f"{key} must be > 0")
    if getattr(module, "autapses", False) is not False and family == "lif_rec":
        pass  # autapses only change the recurrent weights' diagonal, exported as is
    if problems:
        b.gap(name, kind, "unsupported", reason="; ".join(problems))
        return None

    def inv(key: str) -> np.ndarray:
        return (scale / arr[key].astype(np.float64)).astype(np.float32)

    zeros = np.zeros(shape, np.float32)
    ones = np.ones(shape, np.float32)
    if family == "lif_box":
        node = g.LIF(tau=inv("tau_mem_inv"), r=ones, v_leak=zeros, v_threshold=arr["v_th"] - arr["v_leak"], v_reset=arr["v_reset"] - arr["v_leak"])
        out = _add(b, name, node, source, kind, "LIF")
        if reset == "subtract":
            b.overrides[out] = {"reset": "subtract"}
    elif family == "iaf":
        eff = b.policy.for_node(name, "IF")
        r = ones if eff.input == "impulse" else np.full(shape, 1.0 / b.policy.dt, np.float32)
        node = g.IF(r=r, v_threshold=arr["v_th"] - arr["v_reset"], v_reset=zeros)
        out = _add(b, name, node, source, kind, "IF")
    elif family == "li_box":
        node = g.LI(tau=inv("tau_mem_inv"), r=ones, v_leak=zeros)
        out = _add(b, name, node, source, kind, "LI")
    elif family in ("lif", "li"):
        node = _cuba(b, family, arr, inv, shape)
        out = _add(b, name, node, source, kind, node.type)
    else:  # recurrent / linear cells: a nested graph
        cuba = _cuba(b, "li" if family == "li_linear" else "lif", arr, inv, shape)
        w_in = module.input_weights.detach().cpu().numpy().astype(np.float32)
        nodes = {"input": g.Input(shape=np.array(in_shape, dtype=np.int64)), "w_in": g.Linear(weight=w_in),
                 "neuron": cuba, "output": g.Output(shape=np.array(shape, dtype=np.int64))}
        edges = [("input", "w_in"), ("w_in", "neuron"), ("neuron", "output")]
        if family == "lif_rec":
            nodes["w_rec"] = g.Linear(weight=module.recurrent_weights.detach().cpu().numpy().astype(np.float32))
            edges = [("input", "w_in"), ("w_in", "neuron"), ("neuron", "w_rec"), ("w_rec", "neuron"), ("neuron", "output")]
        name = b.fresh(name)
        b.nodes[name] = g.Graph(nodes=nodes, edges=edges)
        b.edges.append((source, name))
        b.gap(name, kind, "exact", maps_to="NIRGraph (Linear -> " + cuba.type + (", recurrent Linear" if family == "lif_rec" else "") + ")")
        out = name
    if family in ("lif_box", "iaf", "lif", "lif_rec"):
        b.binary.add(out)
    return out


def _cuba(b: _Builder, family: str, arr: dict, inv, shape) -> g.Node:
    eff = b.policy.for_node("", "CubaLIF" if family == "lif" else "CubaLI")
    tau_syn = inv("tau_syn_inv")
    if eff.input == "impulse":
        w_in = np.ones(shape, np.float32)
    else:
        w_in = np.asarray(unit_gain(tau_syn.astype(np.float64), b.policy.dt, "euler"), dtype=np.float32)
    common = dict(tau_syn=tau_syn, tau_mem=inv("tau_mem_inv"), r=np.ones(shape, np.float32), w_in=w_in)
    if family == "li" or "v_th" not in arr:
        return g.CubaLI(v_leak=np.zeros(shape, np.float32), **common)
    return g.CubaLIF(v_leak=np.zeros(shape, np.float32), v_threshold=arr["v_th"] - arr["v_leak"], v_reset=arr["v_reset"] - arr["v_leak"], **common)


def export_imported(model) -> g.Graph:
    """A model built by `from_nir` exports the graph it was built from (with its policy),
    with the weights of its torch layers as they are now."""
    graph = model.source_graph
    changed = {}
    for name, node in model.graph.nodes.items():
        if isinstance(node, (g.Affine, g.Linear, g.Conv1d, g.Conv2d, g.Scale)):
            module = model.module(name)
            current = {k: v.detach().cpu().numpy() for k, v in module.named_parameters()}
            ref = {"weight": getattr(node, "weight", None), "bias": getattr(node, "bias", None), "scale": getattr(node, "scale", None)}
            for k, v in current.items():
                if ref.get(k) is not None and not np.array_equal(np.asarray(ref[k], dtype=v.dtype), v):
                    changed[name] = node.model_copy(update={k2: current[k2].astype(np.asarray(ref[k2]).dtype) for k2 in current if ref.get(k2) is not None})
                    break
    if changed:
        graph = _replace(graph, changed)
    return graph.model_copy(update={"metadata": dict(graph.metadata) | model.policy.to_metadata()})


def _replace(graph: g.Graph, changed: dict[str, g.Node], prefix: str = "") -> g.Graph:
    nodes = {}
    for name, node in graph.nodes.items():
        full = prefix + name
        if isinstance(node, g.Graph):
            nodes[name] = _replace(node, changed, f"{full}.")
        else:
            nodes[name] = changed.get(full, node)
    return g.Graph(nodes=nodes, edges=list(graph.edges), metadata=dict(graph.metadata))
