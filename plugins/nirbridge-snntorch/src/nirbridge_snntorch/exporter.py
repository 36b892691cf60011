"""snnTorch model -> nirbridge Graph.

The model runs once on `sample` under `nirbridge_torch.tracing.trace`; each layer it calls
becomes a node (or a small subgraph), each tensor passed between layers an edge. Neuron
parameters follow snnTorch's convention at the policy's dt (docs/semantics.md):

    Leaky      LIF      tau = dt/(1 - beta), r = tau/dt, v_leak = 0, v_reset = 0
    Synaptic   CubaLIF  tau_syn = dt/(1 - alpha), w_in = tau_syn/dt, tau_mem = dt/(1 - beta), r = tau_mem/dt
    Leaky with beta = 1: IF with r = 1/dt (v += x)
    Lapicque   LIF      tau = dt R C / time_step, r = R  (mem = (1 - ts/RC) mem + ts/C x)
    RLeaky/RSynaptic: subgraph {input -> lif -> w_rec -> lif -> output}; w_rec is the Linear or
               Conv2d recurrence, or Scale(V) for one-to-one recurrence
    graded_spikes_factor f != 1: a Scale(f) node after the neuron

(`exact` integration uses the same maths with a = exp(-dt/tau); see nirbridge.semantics.)
Reset mechanism and timing travel as per-node policy overrides (`semantics.neuron_semantics`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import snntorch as snn
import torch

from nirbridge import ir as g
from nirbridge.errors import GapError, NirbridgeError, PolicyError
from nirbridge.report import GRAPH_NODE, Gap, GapReport
from nirbridge.rewrite import maxpool2d
from nirbridge.semantics import Policy, leaky_to_nir, synaptic_to_nir
from nirbridge.topology import flatten, schedule
from nirbridge_torch.layers import export_stateless
from nirbridge_torch.tracing import Input, Out, Stack, Trace, trace

from .semantics import neuron_semantics

NEURONS = (snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic, snn.Lapicque)
#: per neuron class: positional state arguments after the input -> index of that state in the output tuple
STATE_ARGS = {
    "Leaky": {"mem": 1},
    "Lapicque": {"mem": 1},
    "Synaptic": {"syn": 1, "mem": 2},
    "RLeaky": {"spk": 0, "mem": 1},
    "RSynaptic": {"spk": 0, "syn": 1, "mem": 2},
}
UNSUPPORTED = {
    "Alpha": "Alpha neurons have two coupled synaptic currents (excitatory and inhibitory); no NIR neuron has them",
    "SLSTM": "spiking LSTM cells have gates; NIR has no gated neurons",
    "SConv2dLSTM": "spiking conv LSTM cells have gates; NIR has no gated neurons",
    "LeakyParallel": "LeakyParallel is an RNN-based approximation, not the LIF update NIR describes",
    "LeakyKernel": "LeakyKernel runs a time-convolution over the whole sequence; no NIR node does",
    "StateLeaky": "StateLeaky integrates without a per-step reset rule NIR can state",
    "LinearLeaky": "LinearLeaky fuses a layer with a state model NIR does not describe",
    "SpikingNeuron": "custom snnTorch neuron: its update is unknown",
}
UNSUPPORTED_SUGGESTION = "replace it with Leaky, Synaptic, RLeaky or RSynaptic, or export the rest of the model"


def is_leaf(module: torch.nn.Module) -> bool:
    return isinstance(module, snn.SpikingNeuron)


@dataclass
class Piece:
    """The NIR form of one traced layer: `nodes` (empty when refused), internal `edges`,
    `entry`/`exit` node names for edges in and out, and facts later steps need."""

    gap: Gap
    nodes: dict[str, g.Node] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    entry: str = ""
    exit: str = ""
    flat_entry: str = ""
    flat_exit: str = ""
    binary: bool = False
    spiking: bool = False
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)  # node -> policy fields
    extra_bias: np.ndarray | None = None  # a recurrent bias to fold into the layer feeding this one
    neuron: bool = False


def _np(t) -> np.ndarray:
    return np.asarray(t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t, dtype=np.float32)


def _full(value, shape) -> np.ndarray:
    """A scalar or per-neuron value broadcast to the layer shape, as float32."""
    arr = _np(value)
    try:
        return np.ascontiguousarray(np.broadcast_to(arr, shape), dtype=np.float32)
    except ValueError:
        raise NirbridgeError(f"value of shape {arr.shape} does not broadcast to the layer shape {shape}") from None


def _spike_fn_problem(module) -> str | None:
    probe = torch.tensor([-1.0, -1e-6, 0.0, 1e-6, 1.0])
    try:
        with torch.no_grad():
            out = module.spike_grad(probe.clone())
    except Exception as exc:  # a spike function that cannot run alone
        return f"spike_grad could not be probed ({type(exc).__name__}: {exc})"
    if not torch.equal(torch.as_tensor(out, dtype=probe.dtype), (probe > 0).to(probe.dtype)):
        return "spike_grad's forward pass is not the Heaviside step (mem - threshold > 0)"
    return None


def neuron_problems(module) -> list[str]:
    """Why a neuron module cannot be exported at all (empty when it can)."""
    problems = []
    if getattr(module, "inhibition", False):
        problems.append("inhibition=True (only the largest membrane may spike) has no NIR form")
    if getattr(module, "state_quant", False):
        problems.append("state_quant quantizes the state; NIR states are real-valued")
    if (problem := _spike_fn_problem(module)) is not None:
        problems.append(problem)
    if bool((_np(module.threshold) < 0).any()):
        problems.append("a negative threshold: snnTorch counts the initial state (0) as above threshold and resets at step 0")
    return problems


# ----------------------------------------------------------------------------- layers


def _neuron_piece(name: str, module, shape, policy: Policy, call) -> Piece:
    kind = type(module).__name__
    problems = neuron_problems(module)
    sem = neuron_semantics(kind, module.reset_mechanism, bool(getattr(module, "reset_delay", True)))
    thr = _full(module.threshold, shape)
    zeros = np.zeros(shape, dtype=np.float32)
    node: g.Node | None = None
    nir_type = "CubaLIF" if kind in ("Synaptic", "RSynaptic") else "LIF"
    fields: dict[str, str] = {"reset": sem.reset, "reset_timing": sem.reset_timing, "threshold": "gt"}
    if not problems:
        try:
            if kind in ("Leaky", "RLeaky"):
                beta = _full(module.beta.clamp(0, 1), shape)
                if np.all(beta == 1):
                    nir_type = "IF"
                    eff = policy.for_node(name, "IF")
                    r = np.full(shape, 1.0 if eff.input == "impulse" else 1 / policy.dt, dtype=np.float32)
                    node = g.IF(r=r, v_threshold=thr, v_reset=zeros)
                elif np.any(beta == 1):
                    problems.append("beta = 1 (no leak) for some neurons only: LIF needs a finite tau everywhere")
                else:
                    eff = policy.for_node(name, "LIF")
                    tau, r = leaky_to_nir(beta, policy.dt, eff.integration)
                    if eff.input == "impulse":
                        r = np.ones(shape, dtype=np.float32)
                    node = g.LIF(tau=tau, r=r, v_leak=zeros, v_threshold=thr, v_reset=zeros)
            elif kind == "Lapicque":
                ts = float(_np(module.time_step))
                R, C = _full(module.R, shape).astype(np.float64), _full(module.C, shape).astype(np.float64)
                eff = policy.for_node(name, "LIF")
                if eff.integration != "euler" or eff.input != "current":
                    problems.append("Lapicque is a forward-Euler current update; the policy asks for "
                                    f"{eff.integration} integration with {eff.input} input")
                else:
                    tau = (policy.dt * R * C / ts).astype(np.float32)
                    node = g.LIF(tau=tau, r=R.astype(np.float32), v_leak=zeros, v_threshold=thr, v_reset=zeros)
            else:
                alpha = _full(module.alpha.clamp(0, 1), shape)
                beta = _full(module.beta.clamp(0, 1), shape)
                eff = policy.for_node(name, "CubaLIF")
                tau_syn, tau_mem, r, w_in = synaptic_to_nir(alpha, beta, policy.dt, eff.integration)
                if eff.input == "impulse":
                    w_in = np.ones(shape, dtype=np.float32)
                fields["current_order"] = "current_first"
                node = g.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=zeros, v_threshold=thr,
                                 v_reset=zeros, w_in=w_in)
        except PolicyError as exc:
            problems.append(f"{exc} (snnTorch clamps beta/alpha to [0, 1]; 1 means no leak)")
    if problems:
        return Piece(Gap(name, kind, "unsupported", reason="; ".join(problems), suggestion=UNSUPPORTED_SUGGESTION))
    status = "exact" if sem.exact else "approximate"
    maps_to = f"{nir_type} (reset {sem.reset}, {sem.reset_timing})"
    gsf = _np(module.graded_spikes_factor)
    recurrent = kind in ("RLeaky", "RSynaptic")
    inner = "lif" if recurrent else name
    nodes: dict[str, g.Node] = {inner: node}
    edges: list[tuple[str, str]] = []
    out_node = inner
    graded = not np.all(gsf == 1)
    if graded:
        out_node = f"{inner}_graded"
        nodes[out_node] = g.Scale(scale=_full(gsf, shape))
        edges.append((inner, out_node))
        maps_to += f" + Scale({float(gsf.ravel()[0]):g}) for graded spikes"
    piece = Piece(Gap(name, kind, status, maps_to=maps_to, reason=sem.reason), neuron=True, spiking=True, binary=not graded)
    if not recurrent:
        piece.nodes, piece.edges = nodes, edges
        piece.entry = piece.flat_entry = inner
        piece.exit = piece.flat_exit = out_node
        piece.overrides = {inner: fields}
        return piece
    # recurrent: a nested graph with the recurrence closing a cycle through the neuron
    rec = module.recurrent
    bias = None
    if isinstance(rec, torch.nn.Linear):
        w_rec = g.Linear(weight=_np(rec.weight).copy())
        if rec.bias is not None and bool((rec.bias != 0).any()):
            bias = _np(rec.bias).copy()
        rec_text = "Linear"
    elif isinstance(rec, torch.nn.Conv2d):
        conv = export_stateless(rec, tuple(shape))
        if conv is None:
            return Piece(Gap(name, kind, "unsupported", reason="recurrent Conv2d with non-zero padding mode"))
        if bool((rec.bias != 0).any()):
            bias = np.broadcast_to(_np(rec.bias)[:, None, None], shape).copy()
        w_rec = conv.model_copy(update={"bias": np.zeros_like(conv.bias)})
        rec_text = "Conv2d"
    else:
        w_rec = g.Scale(scale=_full(rec.V, shape))
        rec_text = "Scale(V)"
    nodes["w_rec"] = w_rec
    shape_arr = np.asarray(shape, dtype=np.int64)
    sub = g.Graph(
        nodes={"input": g.Input(shape=shape_arr), **nodes, "output": g.Output(shape=shape_arr)},
        edges=[("input", inner), *edges, (out_node, "w_rec"), ("w_rec", inner), (out_node, "output")],
    )
    piece.nodes = {name: sub}
    piece.entry = piece.exit = name
    piece.flat_entry, piece.flat_exit = f"{name}.{inner}", f"{name}.{out_node}"
    piece.overrides = {f"{name}.{inner}": fields}
    piece.extra_bias = bias
    piece.gap = Gap(name, kind, status, maps_to=f"subgraph {maps_to} with recurrent {rec_text}", reason=sem.reason)
    return piece


def _layer_piece(name: str, call, shape, policy: Policy, sources_binary: bool) -> Piece:
    module = call.module
    if call.op == "flatten":
        node = g.Flatten(start_dim=0, end_dim=-1, input_type=np.asarray(shape, dtype=np.int64))
        return Piece(Gap(name, "flatten", "exact", maps_to="Flatten"), {name: node}, [], name, name, name, name,
                     binary=sources_binary)
    kind = type(module).__name__
    if isinstance(module, NEURONS) and type(module) in NEURONS:
        return _neuron_piece(name, module, shape, policy, call)
    if isinstance(module, torch.nn.MaxPool2d):
        rw = maxpool2d(name, kernel_size=module.kernel_size, stride=module.stride, padding=module.padding,
                       input_shape=tuple(shape), binary_input=sources_binary, dilation=module.dilation,
                       ceil_mode=module.ceil_mode)
        if not rw.nodes:
            return Piece(rw.gap)
        return Piece(rw.gap, dict(rw.nodes), list(rw.edges), rw.input, rw.output, rw.input, rw.output, binary=True)
    node = export_stateless(module, tuple(shape))
    if node is not None:
        return Piece(Gap(name, kind, "exact", maps_to=node.type), {name: node}, [], name, name, name, name,
                     binary=isinstance(module, torch.nn.Flatten) and sources_binary)
    reason = UNSUPPORTED.get(kind)
    if reason is None and isinstance(module, snn.SpikingNeuron):
        reason = f"snnTorch {kind} has no NIR equivalent"
    if reason is None:
        reason = f"{kind} is not a layer nirbridge can map to NIR"
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.AvgPool2d)):
            reason = f"{kind} with these options (padding mode, ceil_mode, divisor) has no NIR equivalent"
    return Piece(Gap(name, kind, "unsupported", reason=reason, suggestion=UNSUPPORTED_SUGGESTION))


# ----------------------------------------------------------------------------- the model


def _names(keys: list[str]) -> dict[str, str]:
    out, taken = {}, set()
    for key in keys:
        base = key.split("@")[0] if "@" in key else key
        name, i = base, 1
        while name in taken or name in ("input", "output"):
            name, i = f"{base}_{i}", i + 1
        taken.add(name)
        out[key] = name
    return out


def _output_sources(value, found: list, ignored: list) -> None:
    if isinstance(value, (list, tuple)):
        for v in value:
            _output_sources(v, found, ignored)
    elif isinstance(value, dict):
        for v in value.values():
            _output_sources(v, found, ignored)
    elif value is not None:
        found.append(value)


def export(model: torch.nn.Module, *, sample, policy: Policy | None = None) -> tuple[g.Graph | None, GapReport]:
    """(graph, report): the graph is None when any layer is unsupported. See `to_nir`."""
    policy = policy or Policy.preset("snntorch")
    if sample is None:
        raise NirbridgeError("snntorch export needs `sample`: an input the model's forward takes "
                             "(batch first; a time loop inside forward takes its whole sequence)")
    sample = torch.as_tensor(np.asarray(sample) if not isinstance(sample, torch.Tensor) else sample,
                             dtype=torch.get_default_dtype())
    saved = _save_state(model)
    try:
        for module in model.modules():
            if isinstance(module, snn.SpikingNeuron) and getattr(module, "init_hidden", False):
                module.reset_mem()
        tr = trace(model, sample, is_leaf=is_leaf)
    except Exception as exc:
        raise NirbridgeError(f"running the model on the sample failed: {type(exc).__name__}: {exc}") from exc
    finally:
        _restore_state(saved)
    return build(tr, policy)


def _save_state(model: torch.nn.Module) -> list:
    """Every module's buffers and plain tensor attributes (snnTorch keeps hidden state there),
    so that tracing leaves the model as it was."""
    saved = []
    for module in model.modules():
        tensors = {k: v for k, v in vars(module).items() if isinstance(v, torch.Tensor)}
        saved.append((module, dict(module._buffers), tensors))
    return saved


def _restore_state(saved: list) -> None:
    for module, buffers, tensors in saved:
        module._buffers.clear()
        module._buffers.update(buffers)
        for k, v in tensors.items():
            setattr(module, k, v)


def build(tr: Trace, policy: Policy) -> tuple[g.Graph | None, GapReport]:
    gaps: list[Gap] = []
    notes: list[str] = []
    report = GapReport(gaps, source="snntorch", target="nir", policy=policy, notes=notes)
    groups = tr.by_key()
    if not groups:
        gaps.append(Gap(GRAPH_NODE, "model", "unsupported", reason="the model called no layer on the sample"))
        return None, report
    counts = {k: len(v) for k, v in groups.items()}
    steps = max(counts.values())
    irregular = [k for k, n in counts.items() if n != steps]
    if irregular:
        gaps.append(Gap(GRAPH_NODE, "model", "unsupported",
                        reason=f"layers called an unequal number of times per run ({', '.join(f'{k}: {counts[k]}' for k in counts)}): "
                        "not one call per layer per time step"))
        return None, report
    names = _names(list(groups))
    pieces: dict[str, Piece] = {}
    data_terms: dict[str, list] = {}
    input_shape = None
    binary: dict[str, bool] = {}
    for key, calls in groups.items():
        name = names[key]
        first = calls[0]
        later = calls[1] if steps > 1 else None
        module = first.module
        neuron = module is not None and is_leaf(module)
        problems = []
        if neuron:
            problems += _state_problems(tr, key, calls, type(module).__name__)
        # the data input: argument 0
        if not first.args or first.shapes[0] is None:
            problems.append("called without a tensor input")
            terms = []
        else:
            ref = later or first
            terms, error = tr.terms(ref.args[0], ref.step)
            if error:
                problems.append(f"its input is {error}")
            extra = [a for a in (first.args[1:] if not neuron else []) if a is not None]
            if extra:
                problems.append("takes several tensor inputs")
            if not terms and not error:
                problems.append("its input comes from no traced tensor (a constant)")
            if later is not None and not error:
                early, _ = tr.terms(first.args[0], 0)
                if sorted(map(repr, early)) != sorted(map(repr, [t for t in terms if t.delay == 0])):
                    problems.append("its input is wired differently at the first time step")
            bad_delay = [t for t in terms if t.delay not in (0, 1)]
            if bad_delay:
                problems.append("reads a value made more than one step earlier")
            for t in terms:
                if t.key is not None and t.index not in (None, 0):
                    problems.append(f"reads state output {t.index} of {names.get(t.key, t.key)} (membrane or current); "
                                    "NIR edges carry a neuron's spikes only")
            if any(t.key is None for t in terms):
                shape_in = first.shapes[0][1:]
                if input_shape is not None and input_shape != shape_in:
                    problems.append(f"reads the input with shape {shape_in}, another layer with {input_shape}")
                input_shape = shape_in
        shape = tuple(first.shapes[0][1:]) if first.shapes and first.shapes[0] is not None else ()
        src_binary = bool(terms) and len(terms) == 1 and terms[0].key is not None and binary.get(terms[0].key, False)
        if problems:
            kind = first.op or type(module).__name__
            pieces[key] = Piece(Gap(name, kind, "unsupported", reason="; ".join(problems)))
        else:
            pieces[key] = _layer_piece(name, first, shape, policy, src_binary)
        binary[key] = pieces[key].binary
        data_terms[key] = terms
        gaps.append(pieces[key].gap)
    # outputs
    found: list = []
    _output_sources(tr.output, found, [])
    outputs: list[str] = []
    for src in found:
        parts = src.parts if isinstance(src, Stack) else (src,)
        keys = set()
        for part in parts:
            if isinstance(part, Out):
                call = tr.calls[part.call]
                neuron = call.module is not None and is_leaf(call.module)
                if neuron and part.index not in (None, 0):
                    keys.add(None)  # a state record, not a signal
                    continue
                keys.add(call.key)
            elif isinstance(part, Input):
                keys.add("<input>")
            else:
                keys.add("<opaque>")
        keys.discard(None)
        if not keys:
            continue
        if len(keys) != 1 or next(iter(keys)) in ("<input>", "<opaque>"):
            gaps.append(Gap(GRAPH_NODE, "output", "unsupported",
                            reason="a model output is not the output of one layer (or its stack over time steps)"))
            continue
        key = next(iter(keys))
        if key not in outputs:
            outputs.append(key)
    if not outputs:
        gaps.append(Gap(GRAPH_NODE, "output", "unsupported", reason="the model returns no layer output NIR can carry "
                        "(membrane potentials are states, not outputs)"))
    if len(outputs) < len([s for s in found if s is not None]):
        notes.append("returned membrane/current traces are states, not graph outputs: record them with simulate(record=...)")
    # recurrent biases fold into the single layer feeding the neuron
    consumers: dict[str, list[str]] = {}
    for key, terms in data_terms.items():
        for t in terms:
            if t.key is not None:
                consumers.setdefault(t.key, []).append(key)
    for key, piece in pieces.items():
        if piece.extra_bias is None:
            continue
        terms = data_terms[key]
        feeder = terms[0].key if len(terms) == 1 and terms[0].delay == 0 else None
        fpiece = pieces.get(feeder) if feeder else None
        fnode = fpiece.nodes.get(names[feeder]) if fpiece and fpiece.nodes else None
        if (fnode is None or consumers.get(feeder) != [key] or feeder in outputs
                or not isinstance(fnode, (g.Linear, g.Affine, g.Conv1d, g.Conv2d))):
            piece.gap = Gap(piece.gap.node, piece.gap.node_type, "unsupported",
                            reason="the recurrent layer has a bias: snnTorch adds it at step 0 too, while NIR's delayed "
                            "recurrent edge carries zero at step 0; it can be moved into the layer feeding the neuron "
                            "only when that is a single Linear/Conv layer feeding nothing else",
                            suggestion="create the neuron's recurrent layer without bias, or feed it from one Linear/Conv layer")
            gaps[list(pieces).index(key)] = piece.gap
            continue
        bias = piece.extra_bias
        if isinstance(fnode, g.Linear):
            new = g.Affine(weight=fnode.weight, bias=bias.reshape(-1).astype(np.float32))
        elif isinstance(fnode, g.Affine):
            new = fnode.model_copy(update={"bias": (fnode.bias + bias.reshape(-1)).astype(np.float32)})
        else:
            per_channel = bias.reshape(bias.shape[0], -1)[:, 0]
            new = fnode.model_copy(update={"bias": (fnode.bias + per_channel).astype(np.float32)})
        fpiece.nodes[names[feeder]] = new
        notes.append(f"the recurrent bias of {names[key]} was moved into {names[feeder]} (exact: snnTorch adds it every step)")
    if any(gp.status == "unsupported" for gp in gaps) or input_shape is None:
        if input_shape is None and not any(gp.status == "unsupported" for gp in gaps):
            gaps.append(Gap(GRAPH_NODE, "input", "unsupported", reason="no layer reads the model input"))
        return None, report
    # assemble
    nodes: dict[str, g.Node] = {"input": g.Input(shape=np.asarray(input_shape, dtype=np.int64))}
    edges: list[tuple[str, str]] = []
    delayed_expected: set[tuple[str, str]] = set()
    for key, piece in pieces.items():
        nodes.update(piece.nodes)
        edges += piece.edges
        for t in data_terms[key]:
            src = "input" if t.key is None else pieces[t.key].exit
            edges.append((src, piece.entry))
            if t.delay:
                flat_src = pieces[t.key].flat_exit
                delayed_expected.add((flat_src, piece.flat_entry))
    for i, key in enumerate(outputs):
        out_name = "output" if i == 0 else f"output_{i}"
        shape_out = _output_shape(tr, groups[key][0])
        nodes[out_name] = g.Output(shape=np.asarray(shape_out, dtype=np.int64))
        edges.append((pieces[key].exit, out_name))
    edges = list(dict.fromkeys(edges))
    node_policy = policy
    for piece in pieces.values():
        for node_name, fields in piece.overrides.items():
            kind = _node_type(nodes, node_name)
            eff = policy.for_node(node_name, kind)
            diff = {k: v for k, v in fields.items() if getattr(eff, k) != v}
            if diff:
                node_policy = node_policy.with_override(node_name, **diff)
    graph = g.Graph(nodes=nodes, edges=edges, metadata=node_policy.to_metadata())
    # the recurrence the model computes must be the one NIR's cycle rule gives
    flat = flatten(graph)
    sched = schedule(flat)
    inner_cycles = {(s, d) for s, d in sched.delayed if any(s.startswith(p.exit + ".") for p in pieces.values() if p.flat_exit != p.exit)}
    mismatched = (set(sched.delayed) - inner_cycles) ^ delayed_expected
    if mismatched:
        gaps.append(Gap(GRAPH_NODE, "recurrence", "unsupported",
                        reason="values the model reads from the previous step do not close cycles the way NIR's "
                        f"one-step cycle rule does (edges {sorted(mismatched)})",
                        suggestion="use RLeaky/RSynaptic for recurrence"))
        return None, report
    report.policy = node_policy
    return graph, report


def _node_type(nodes: dict[str, g.Node], dotted: str) -> str | None:
    head, _, rest = dotted.partition(".")
    node = nodes.get(dotted) or nodes.get(head)
    if isinstance(node, g.Graph) and rest:
        return _node_type(node.nodes, rest)
    return node.type if node is not None else None


def _output_shape(tr: Trace, call) -> tuple[int, ...]:
    shape = call.output_shapes[0]
    return tuple(shape[1:]) if shape else ()


def _state_problems(tr: Trace, key: str, calls, kind: str) -> list[str]:
    """Explicit state arguments must start at zero and carry the neuron's own previous state."""
    states = STATE_ARGS.get(kind)
    if states is None:
        return []
    problems = []
    names = list(states)
    for call in calls:
        args = list(zip(names, call.args[1:], call.zero[1:] if len(call.zero) > 1 else [None] * len(call.args[1:])))
        args += [(k, v, None) for k, v in call.kwargs.items() if k in states]
        for state, src, zero in args:
            if call.step == 0 or src is None:
                if src is not None:
                    problems.append(f"its initial {state} comes from another layer")
                elif zero is False and call.step == 0:
                    problems.append(f"its initial {state} is not zero")
                elif call.step > 0 and zero is False:
                    problems.append(f"its {state} is replaced by a constant at step {call.step}")
                continue
            ok = isinstance(src, Out) and tr.calls[src.call].key == key and tr.calls[src.call].step == call.step - 1 \
                and src.index == states[state]
            if not ok:
                problems.append(f"its {state} argument at step {call.step} is not its own {state} of the previous step")
        if problems:
            break
    return problems


def to_nir(model: torch.nn.Module, *, sample, policy: Policy | None = None, allow_approximate: bool = False) -> g.Graph:
    """Export an snnTorch model; `GapError` (with the full report) when any layer is
    unsupported, or approximate and `allow_approximate` is False. A model built by `from_nir`
    gives back its graph with current parameter values (no sample needed)."""
    from .importer import SnnTorchGraphModule, graph_of

    if isinstance(model, SnnTorchGraphModule):
        return graph_of(model)
    graph, report = export(model, sample=sample, policy=policy)
    if graph is None or report.unsupported or (report.approximate and not allow_approximate):
        raise GapError(report)
    if report.approximate:
        report.warn()
    return graph
