"""snnTorch model -> nirbridge Graph: snnTorch's mapping table for the torch toolkit's export
builder (`nirbridge_torch.exporting`, which traces the model and wires the pieces).

Neuron parameters follow snnTorch's convention at the policy's dt (docs/semantics.md):

    Leaky      LIF      tau = dt/(1 - beta), r = tau/dt, v_leak = 0, v_reset = 0
    Synaptic   CubaLIF  tau_syn = dt/(1 - alpha), w_in = tau_syn/dt, tau_mem = dt/(1 - beta), r = tau_mem/dt
    Leaky with beta = 1: IF with r = 1/dt (v += x)
    Lapicque   LIF      tau = dt R C / time_step, r = R  (mem = (1 - ts/RC) mem + ts/C x)
    RLeaky/RSynaptic: subgraph {input -> lif -> w_rec -> lif -> output}; w_rec is the Linear or
               Conv2d recurrence, or Scale(V) for one-to-one recurrence; a recurrent bias moves
               in front of the neuron (the builder does that)
    graded_spikes_factor f != 1: a Scale(f) node after the neuron
    Leaky/Synaptic with reset_mechanism="none" read only through the membrane (the regression
               tutorials' output layer): LI / CubaLI (I when beta = 1)

(`exact` integration uses the same maths with a = exp(-dt/tau); see nirbridge.semantics.)
Reset mechanism and timing travel as per-node policy overrides (`semantics.neuron_semantics`).
"""

from __future__ import annotations

import numpy as np
import snntorch as snn
import torch

from nirbridge import ir as g
from nirbridge.errors import GapError, PolicyError
from nirbridge.report import Gap, GapReport
from nirbridge.semantics import Policy, leaky_to_nir, synaptic_to_nir
from nirbridge_torch.exporting import Framework, Layer, Piece, full
from nirbridge_torch.exporting import export as export_model
from nirbridge_torch.layers import export_stateless, to_array

from .semantics import neuron_semantics

NEURONS = (snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic, snn.Lapicque)
#: per neuron class: state argument -> (its position after the input, its path in the output)
STATE_ARGS = {
    "Leaky": {"mem": (1, (1,))},
    "Lapicque": {"mem": (1, (1,))},
    "Synaptic": {"syn": (1, (1,)), "mem": (2, (2,))},
    "RLeaky": {"spk": (1, (0,)), "mem": (2, (1,))},
    "RSynaptic": {"spk": (1, (0,)), "syn": (2, (1,)), "mem": (3, (2,))},
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


def neuron_problems(module, *, spiking: bool = True) -> list[str]:
    """Why a neuron module cannot be exported at all (empty when it can); `spiking=False`:
    only its membrane is read, so its spike function does not matter."""
    problems = []
    if spiking and getattr(module, "inhibition", False):
        problems.append("inhibition=True (only the largest membrane may spike) has no NIR form")
    if getattr(module, "state_quant", False):
        problems.append("state_quant quantizes the state; NIR states are real-valued")
    if spiking and (problem := _spike_fn_problem(module)) is not None:
        problems.append(problem)
    if spiking and bool((to_array(module.threshold) < 0).any()):
        problems.append("a negative threshold: snnTorch counts the initial state (0) as above threshold and resets at step 0")
    return problems


# ----------------------------------------------------------------------------- neurons


def _node(layer: Layer, kind: str, *, spiking: bool) -> tuple[g.Node, str, dict[str, str]]:
    """The NIR neuron of an snnTorch neuron (spiking, or read through its membrane), its
    type and the policy fields it needs; `PolicyError`/`ValueError` when it has none."""
    module, name, shape, policy = layer.module, layer.name, layer.shape, layer.policy
    zeros = np.zeros(shape, dtype=np.float32)
    thr = full(module.threshold, shape, f"{name}.threshold") if spiking else None
    limits = dict(v_threshold=thr, v_reset=zeros) if spiking else {}
    if kind in ("Leaky", "RLeaky"):
        beta = full(module.beta.clamp(0, 1), shape, f"{name}.beta")
        if np.all(beta == 1):
            eff = policy.for_node(name, "IF" if spiking else "I")
            r = np.full(shape, 1.0 if eff.input == "impulse" else 1 / policy.dt, dtype=np.float32)
            return (g.IF(r=r, **limits), "IF", {}) if spiking else (g.I(r=r), "I", {})
        if np.any(beta == 1):
            raise ValueError("beta = 1 (no leak) for some neurons only: LIF needs a finite tau everywhere")
        eff = policy.for_node(name, "LIF" if spiking else "LI")
        tau, r = leaky_to_nir(beta, policy.dt, eff.integration)
        if eff.input == "impulse":
            r = np.ones(shape, dtype=np.float32)
        return (g.LIF(tau=tau, r=r, v_leak=zeros, **limits), "LIF", {}) if spiking else (g.LI(tau=tau, r=r, v_leak=zeros), "LI", {})
    if kind == "Lapicque":
        ts = float(to_array(module.time_step))
        R, C = full(module.R, shape).astype(np.float64), full(module.C, shape).astype(np.float64)
        eff = policy.for_node(name, "LIF")
        if eff.integration != "euler" or eff.input != "current":
            raise ValueError(f"Lapicque is a forward-Euler current update; the policy asks for {eff.integration} integration with {eff.input} input")
        return g.LIF(tau=(policy.dt * R * C / ts).astype(np.float32), r=R.astype(np.float32), v_leak=zeros, **limits), "LIF", {}
    alpha, beta = full(module.alpha.clamp(0, 1), shape, f"{name}.alpha"), full(module.beta.clamp(0, 1), shape, f"{name}.beta")
    eff = policy.for_node(name, "CubaLIF" if spiking else "CubaLI")
    tau_syn, tau_mem, r, w_in = synaptic_to_nir(alpha, beta, policy.dt, eff.integration)
    if eff.input == "impulse":
        w_in = np.ones(shape, dtype=np.float32)
    common = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=zeros, w_in=w_in)
    node = g.CubaLIF(**common, **limits) if spiking else g.CubaLI(**common)
    return node, node.type, {"current_order": "current_first"}


def _membrane_piece(layer: Layer, kind: str) -> Piece:
    """A neuron read only through its membrane: NIR's LI (CubaLI, I) when it never resets."""
    module, name = layer.module, layer.name
    mem = STATE_ARGS[kind]["mem"][1]
    if layer.reads != {mem} or kind not in ("Leaky", "Synaptic") or module.reset_mechanism != "none":
        what = "its membrane" if mem in layer.reads else "its synaptic current"
        return Piece.refused(name, kind, f"the model reads {what}, not its spikes: NIR edges carry a spiking neuron's spikes only "
                             "(a Leaky or Synaptic with reset_mechanism='none' read only through its membrane is NIR's LI / CubaLI)",
                             "return or pass on the spikes, or use reset_mechanism='none' for a membrane readout")
    problems = neuron_problems(module, spiking=False)
    try:
        node, nir_type, fields = _node(layer, kind, spiking=False)
    except (PolicyError, ValueError) as exc:
        problems.append(f"{exc} (snnTorch clamps beta/alpha to [0, 1]; 1 means no leak)")
    if problems:
        return Piece.refused(name, kind, "; ".join(problems), UNSUPPORTED_SUGGESTION)
    piece = Piece.node(name, node, kind, maps_to=f"{nir_type} (the membrane, reset_mechanism='none')")
    piece.output_path, piece.overrides = mem, {name: fields}
    return piece


def _neuron_piece(layer: Layer) -> Piece:
    module, name, shape = layer.module, layer.name, layer.shape
    kind = type(module).__name__
    if layer.reads and layer.main not in layer.reads:
        return _membrane_piece(layer, kind)
    problems = neuron_problems(module)
    sem = neuron_semantics(kind, module.reset_mechanism, bool(getattr(module, "reset_delay", True)))
    node = None
    if not problems:
        try:
            node, nir_type, fields = _node(layer, kind, spiking=True)
        except (PolicyError, ValueError) as exc:
            problems.append(f"{exc} (snnTorch clamps beta/alpha to [0, 1]; 1 means no leak)")
    if problems:
        return Piece.refused(name, kind, "; ".join(problems), UNSUPPORTED_SUGGESTION)
    fields = {"reset": sem.reset, "reset_timing": sem.reset_timing, "threshold": "gt", **fields}
    status = "exact" if sem.exact else "approximate"
    maps_to = f"{nir_type} (reset {sem.reset}, {sem.reset_timing})"
    gsf = to_array(module.graded_spikes_factor)
    recurrent = kind in ("RLeaky", "RSynaptic")
    inner = "lif" if recurrent else name
    nodes: dict[str, g.Node] = {inner: node}
    edges: list[tuple[str, str]] = []
    out_node = inner
    graded = not np.all(gsf == 1)
    if graded:
        out_node = f"{inner}_graded"
        nodes[out_node] = g.Scale(scale=full(gsf, shape))
        edges.append((inner, out_node))
        maps_to += f" + Scale({float(gsf.ravel()[0]):g}) for graded spikes"
    if not recurrent:
        return Piece(Gap(name, kind, status, maps_to=maps_to, reason=sem.reason), nodes, edges, inner, out_node,
                     binary=not graded, overrides={inner: fields})
    rec = _recurrence(module, shape, name)
    if isinstance(rec, str):
        return Piece.refused(name, kind, rec)
    w_rec, bias, rec_text = rec
    nodes["w_rec"] = w_rec
    shape_arr = np.asarray(shape, dtype=np.int64)
    sub = g.Graph(
        nodes={"input": g.Input(shape=shape_arr), **nodes, "output": g.Output(shape=shape_arr)},
        edges=[("input", inner), *edges, (out_node, "w_rec"), ("w_rec", inner), (out_node, "output")],
    )
    gap = Gap(name, kind, status, maps_to=f"subgraph {maps_to} with recurrent {rec_text}", reason=sem.reason)
    return Piece(gap, {name: sub}, [], name, name, f"{name}.{inner}", f"{name}.{out_node}", binary=not graded,
                 overrides={f"{name}.{inner}": fields}, extra_bias=bias)


def _recurrence(module, shape, name: str) -> tuple[g.Node, np.ndarray | None, str] | str:
    """(recurrent node without bias, the bias to move in front of the neuron or None, text),
    or why the recurrence has no NIR form."""
    rec = module.recurrent
    if isinstance(rec, torch.nn.Linear):
        bias = to_array(rec.bias, f"{name}.recurrent.bias") if rec.bias is not None and bool((rec.bias != 0).any()) else None
        return g.Linear(weight=to_array(rec.weight, f"{name}.recurrent.weight")), bias, "Linear"
    if isinstance(rec, torch.nn.Conv2d):
        conv = export_stateless(rec, tuple(shape), name=f"{name}.recurrent")
        if conv is None:
            return "recurrent Conv2d with non-zero padding mode"
        bias = np.broadcast_to(conv.bias[:, None, None], shape).copy() if np.any(conv.bias != 0) else None
        return conv.model_copy(update={"bias": np.zeros_like(conv.bias)}), bias, "Conv2d"
    return g.Scale(scale=full(rec.V, shape, f"{name}.V")), None, "Scale(V)"


# ----------------------------------------------------------------------------- the framework


def piece(layer: Layer) -> Piece | None:
    """snnTorch's mapping table: its neurons (everything else is a shared torch layer)."""
    module = layer.module
    kind = type(module).__name__
    if type(module) in NEURONS:
        return _neuron_piece(layer)
    if isinstance(module, snn.SpikingNeuron):
        return Piece.refused(layer.name, kind, UNSUPPORTED.get(kind, f"snnTorch {kind} has no NIR equivalent"), UNSUPPORTED_SUGGESTION)
    return None


def _prepare(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, snn.SpikingNeuron) and getattr(module, "init_hidden", False):
            module.reset_mem()


FRAMEWORK = Framework(
    "snntorch", is_leaf, piece,
    policy=lambda model, trace, given: (given or Policy.preset("snntorch"), []),
    state_args=lambda module: STATE_ARGS.get(type(module).__name__, {}),
    hidden_state=True,
    prepare=_prepare,
    unknown=lambda module: UNSUPPORTED.get(type(module).__name__),
    suggestion=UNSUPPORTED_SUGGESTION,
)


def export(model: torch.nn.Module, *, sample, policy: Policy | None = None) -> tuple[g.Graph | None, GapReport]:
    """(graph, report): the graph is None when any layer is unsupported. See `to_nir`."""
    return export_model(model, sample=sample, framework=FRAMEWORK, policy=policy)


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
