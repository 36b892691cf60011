"""Norse model -> NIR Graph (`to_nir`): Norse's mapping table for the torch toolkit's export
builder (`nirbridge_torch.exporting`, which traces the model and wires the pieces). Works for
`norse.torch.SequentialState`, `torch.nn.Sequential`, custom modules (a time loop in forward
included, as the Norse docs' `SNN`), and Norse's time-sequence modules (`LIF`, `Lift(...)`:
the sample is then (time, batch, ...)).

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
    Lift(layer)  -> the layer's node

Norse starts a neuron at v = v_leak (IAF: v = v_reset); NIR starts at 0. For spiking neurons
the potential is shifted (u = v - v_leak: v_leak' = 0, v_th' = v_th - v_leak, v_reset' =
v_reset - v_leak), which changes no spike; a LIBoxCell or LICell (their output is v) and a
LIFBoxCell with reset_subtract keep v_leak and start at it (policy override `initial_v="v_leak"`). A cell with its own `dt` other than the policy's
gets its time constants scaled so that dt/tau per step is unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nirbridge import ir as g
from nirbridge.errors import GapError, NirbridgeError
from nirbridge.report import Gap
from nirbridge.semantics import Policy, unit_gain, with_policy
from nirbridge_torch.exporting import Framework, Layer, Piece, export, full, torch_piece
from nirbridge_torch.importing import graph_of
from nirbridge_torch.layers import DtypeError
from nirbridge_torch.tracing import Trace

THRESHOLD_METHODS = ("super", "heaviside", "triangle", "tanh", "circ", "heavi_erfc")
SUGGESTION = "use LIFBoxCell, LIFCell, LIBoxCell, LICell, IAFCell, LIFRecurrentCell and Linear/Conv/pooling layers"
#: Norse modules with no NIR neuron, by class name prefix, and why
UNSUPPORTED = {
    "LSNN": "an adaptive threshold (a second state raising the threshold after each spike); no NIR neuron has one",
    "LIFAdEx": "an exponential spike-initiation term and an adaptation current; no NIR neuron has them",
    "LIFEx": "an exponential spike-initiation term; no NIR neuron has one",
    "CobaLIF": "conductance-based synapses (input scaled by the distance to reversal potentials); NIR's synapses are current-based",
    "Izhikevich": "a quadratic membrane with a recovery variable; no NIR neuron has one",
    "LIFRefrac": "a refractory period; NIR neurons have none",
    "LIFCorrelation": "a plasticity trace; NIR graphs have fixed weights",
}


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


def is_norse_module(module: torch.nn.Module) -> bool:
    return type(module).__module__.startswith("norse.")


def is_time_module(module: torch.nn.Module) -> bool:
    """Norse modules that take whole (time, batch, ...) sequences."""
    from norse.torch.module.snn import SNN, SNNRecurrent

    return isinstance(module, (SNN, SNNRecurrent, _norse().Lift))


def is_leaf(module: torch.nn.Module) -> bool:
    """Modules traced as one layer: Norse's cells and lifted layers (not its containers)."""
    return is_norse_module(module) and not isinstance(module, _norse().SequentialState)


# ----------------------------------------------------------------------------- neurons


def _reset(p) -> str | None:
    """The NIR reset of a LIFBoxCell's reset_method, None when unknown."""
    from norse.torch.functional.reset import reset_subtract, reset_value

    return {reset_subtract: "subtract", reset_value: "to_reset"}.get(p.reset_method)


def _parameters(layer: Layer, family: str, shape: tuple[int, ...]) -> tuple[dict[str, np.ndarray], list[str]]:
    """The cell's parameters at the neuron shape, and why NIR cannot hold the cell (if so)."""
    p = layer.module.p
    problems = []
    if getattr(p, "method", "super") not in THRESHOLD_METHODS:
        problems.append(f"threshold method {p.method!r} (deterministic methods: {', '.join(THRESHOLD_METHODS)})")
    if family == "lif_box" and _reset(p) is None:
        problems.append(f"reset_method {getattr(p.reset_method, '__name__', p.reset_method)!r} (known: reset_value, reset_subtract)")
    if family in ("lif_rec", "li_linear") and len(layer.shape) != 1:
        problems.append(f"input of shape {layer.shape}: {layer.kind} applies input_weights to the last dimension only and keeps "
                        "a state per leading index, which a NIR Linear (a matrix on a vector) cannot express; flatten the input first")
    try:
        arr = {k: full(getattr(p, k), shape, f"{layer.name}.p.{k}") for k in p._fields if k not in ("method", "alpha", "reset_method")}
    except DtypeError:
        raise
    except NirbridgeError as exc:
        return {}, problems + [f"parameters do not fit the neuron shape {shape}: {exc}"]
    if "v_leak" in arr and np.any(arr["v_leak"] != 0) and family == "li_linear":
        problems.append("v_leak != 0: Norse starts v at v_leak, NIR at 0, and a leaky integrator's output is v itself")
    if any(not np.all(np.isfinite(a)) for a in arr.values()):
        problems.append("non-finite parameters")
    problems += [f"{key} must be > 0" for key in ("tau_mem_inv", "tau_syn_inv") if key in arr and np.any(arr[key] <= 0)]
    return arr, problems


def _neuron(layer: Layer, family: str) -> Piece:
    module, name, kind = layer.module, layer.name, layer.kind
    shape = (int(module.hidden_size),) if family in ("lif_rec", "li_linear") else layer.shape
    arr, problems = _parameters(layer, family, shape)
    if problems:
        return Piece.refused(name, kind, "; ".join(problems))
    scale = layer.policy.dt / float(getattr(module, "dt", layer.policy.dt))  # tau_nir = scale / tau_inv keeps dt/tau per step

    def tau(key: str) -> np.ndarray:
        return (scale / arr[key].astype(np.float64)).astype(np.float32)

    zeros, ones = np.zeros(shape, np.float32), np.ones(shape, np.float32)
    spiking = family in ("lif_box", "iaf", "lif", "lif_rec")
    leak = bool(np.any(arr.get("v_leak", zeros) != 0))
    if family == "lif_box":
        if _reset(module.p) == "subtract":  # the shift would change the subtracted threshold: start at v_leak
            node = g.LIF(tau=tau("tau_mem_inv"), r=ones, v_leak=arr["v_leak"], v_threshold=arr["v_th"], v_reset=arr["v_reset"])
            return _starting_at_v_leak(Piece.node(name, node, kind, binary=True), {"reset": "subtract"}, leak)
        node = g.LIF(tau=tau("tau_mem_inv"), r=ones, v_leak=zeros, v_threshold=arr["v_th"] - arr["v_leak"], v_reset=arr["v_reset"] - arr["v_leak"])
        return Piece.node(name, node, kind, binary=True)
    if family == "iaf":
        r = ones if layer.policy.for_node(name, "IF").input == "impulse" else np.full(shape, 1.0 / layer.policy.dt, np.float32)
        return Piece.node(name, g.IF(r=r, v_threshold=arr["v_th"] - arr["v_reset"], v_reset=zeros), kind, binary=True)
    if family == "li_box":
        return _starting_at_v_leak(Piece.node(name, g.LI(tau=tau("tau_mem_inv"), r=ones, v_leak=arr["v_leak"]), kind), {}, leak)
    cuba = _cuba(layer, "li" if family in ("li", "li_linear") else "lif", arr, tau, shape)
    if family == "li":
        return _starting_at_v_leak(Piece.node(name, cuba, kind), {}, leak)
    if family == "lif":
        return Piece.node(name, cuba, kind, binary=spiking)
    w_in = g.Linear(weight=full(module.input_weights, tuple(module.input_weights.shape), f"{name}.input_weights"))
    nodes = {"input": g.Input(shape=np.array(layer.shape, dtype=np.int64)), "w_in": w_in, "neuron": cuba,
             "output": g.Output(shape=np.array(shape, dtype=np.int64))}
    edges = [("input", "w_in"), ("w_in", "neuron"), ("neuron", "output")]
    if family == "lif_rec":
        nodes["w_rec"] = g.Linear(weight=full(module.recurrent_weights, tuple(module.recurrent_weights.shape), f"{name}.recurrent_weights"))
        edges = [("input", "w_in"), ("w_in", "neuron"), ("neuron", "w_rec"), ("w_rec", "neuron"), ("neuron", "output")]
    gap = Gap(name, kind, "exact", maps_to="NIRGraph (Linear -> " + cuba.type + (", recurrent Linear" if family == "lif_rec" else "") + ")")
    return Piece(gap, {name: g.Graph(nodes=nodes, edges=edges)}, [], name, name, f"{name}.w_in", f"{name}.neuron", binary=spiking)


def _starting_at_v_leak(piece: Piece, overrides: dict[str, str], leak: bool) -> Piece:
    """The piece with its policy overrides, plus `initial_v="v_leak"` where v_leak != 0
    (Norse's state starts at v_leak; the output of a leaky integrator is v itself, so
    shifting v by v_leak is not exact there)."""
    overrides = overrides | ({"initial_v": "v_leak"} if leak else {})
    if overrides:
        piece.overrides = {piece.gap.node: overrides}
    return piece


def _cuba(layer: Layer, family: str, arr: dict, tau, shape) -> g.Node:
    kind = "CubaLIF" if family == "lif" else "CubaLI"
    tau_syn = tau("tau_syn_inv")
    if layer.policy.for_node(layer.name, kind).input == "impulse":
        w_in = np.ones(shape, np.float32)
    else:
        w_in = np.asarray(unit_gain(tau_syn.astype(np.float64), layer.policy.dt, "euler"), dtype=np.float32)
    common = dict(tau_syn=tau_syn, tau_mem=tau("tau_mem_inv"), r=np.ones(shape, np.float32), w_in=w_in)
    if kind == "CubaLI" or "v_th" not in arr:  # output v itself: keeps v_leak (and starts at it, see _starting_at_v_leak)
        return g.CubaLI(v_leak=arr.get("v_leak", np.zeros(shape, np.float32)), **common)
    common["v_leak"] = np.zeros(shape, np.float32)
    return g.CubaLIF(v_threshold=arr["v_th"] - arr["v_leak"], v_reset=arr["v_reset"] - arr["v_leak"], **common)


# ----------------------------------------------------------------------------- the framework


def piece(layer: Layer) -> Piece | None:
    """Norse's mapping table: its cells and `Lift` (other layers are the shared torch layers)."""
    module = layer.module
    if isinstance(module, _norse().Lift):
        return torch_piece(layer, module=module.lifted_module, lead=1) or Piece.refused(
            layer.name, layer.kind, f"{type(module.lifted_module).__name__} is not a layer nirbridge can map to NIR", SUGGESTION)
    for family, classes in _cell_types().items():
        if isinstance(module, classes):
            return _neuron(layer, family)
    if is_norse_module(module):
        why = next((reason for prefix, reason in UNSUPPORTED.items() if layer.kind.startswith(prefix)), "no NIR equivalent")
        return Piece.refused(layer.name, layer.kind, f"{layer.kind} has {why}", SUGGESTION)
    return None


def _policy(model: torch.nn.Module, tr: Trace, given: Policy | None) -> tuple[Policy, list[Gap]]:
    """The given policy, else the `norse` preset at the dt of the model's first cell; CubaLIF
    and CubaLI take their input as an impulse (Norse's current jumps by x)."""
    dt = next((float(c.module.dt) for c in tr.calls if c.module is not None and is_norse_module(c.module) and hasattr(c.module, "dt")), 1e-3)
    base = given if given is not None else Policy.preset("norse", dt=dt)
    base = base.with_type_override("CubaLIF", input="impulse").with_type_override("CubaLI", input="impulse")
    gaps = [Gap("(policy)", "Policy", "unsupported", reason=f"{f}={getattr(base, f)!r}: Norse models compute {value!r}",
                suggestion="export without a policy (the norse preset at the model's dt) or with another dt only")
            for f, value in (("integration", "euler"), ("reset_timing", "immediate"), ("threshold", "gt"), ("current_order", "current_first"))
            if getattr(base, f) != value]
    return base, gaps


FRAMEWORK = Framework(
    "norse", is_leaf, piece, _policy,
    state_args=lambda module: {"state": (1, (1,))} if is_norse_module(module) and not is_time_module(module) else {},
    lead=lambda model: 2 if any(is_time_module(m) for m in model.modules()) else 1,
    suggestion=SUGGESTION,
)


def to_nir(model: torch.nn.Module, *, policy: Policy | None = None, sample: Any = None) -> g.Graph:
    """The NIR graph of a Norse model (see the module docstring), with the policy it runs
    under in its metadata. Raises `GapError` listing every module that cannot be exported.
    A model built by `from_nir` gives back its graph with current parameter values."""
    from .build import NorseGraph

    if isinstance(model, NorseGraph):
        return with_policy(graph_of(model), policy or model.policy)
    if not isinstance(model, torch.nn.Module):
        raise NirbridgeError(f"to_nir: expected a torch.nn.Module, got {type(model).__name__}")
    if sample is None:
        first = next((m for m in model.modules() if isinstance(m, torch.nn.Linear)), None)
        if first is None:
            raise NirbridgeError("to_nir: pass sample=<input tensor> (batch, *features), or (time, batch, *features) for Norse's time-sequence modules")
        sample = torch.zeros((1, 1, first.in_features) if FRAMEWORK.lead(model) == 2 else (1, first.in_features))
    graph, report = export(model, sample=sample, framework=FRAMEWORK, policy=policy)
    if graph is None or report.unsupported:
        raise GapError(report)
    return graph
