"""Rockpool model -> NIR Graph: Rockpool's mapping table for the torch toolkit's export builder.

A Rockpool torch module takes a whole sequence `(batch, time, features)`; time constants are
in seconds and `dt` is a module parameter (every module of a model must share it: it is the
graph's dt). With alpha = exp(-dt/tau_mem), beta = exp(-dt/tau_syn) (Rockpool's float32
values; the graph's tau is the float32 tau whose exact decay rounds to them):

    LinearTorch          Linear(weight.T), Affine(weight.T, bias) with has_bias=True
    LIFNeuronTorch       LIF(tau_mem, r = 1, v_leak = bias/(1 - alpha))      v = alpha v + x + bias
    LIFTorch, 1 synapse  CubaLIF(tau_syn, tau_mem, w_in = beta,               i = beta (i + x + w_rec s)
                                 r = 1/(1 - alpha), v_leak = bias/(1 - alpha))  v = alpha v + i + bias
        w_rec            the CubaLIF and Linear(w_rec.T) in a subgraph, the Linear closing the cycle
    LIFTorch, n synapses a subgraph LI(tau_syn, r = beta) (one per synapse, neuron-major)
                         -> Linear (sums each neuron's synapses) -> LIF(tau_mem, r = 1), w_rec
                         from the LIF back to the LI
    ExpSynTorch          LI(tau, r = beta, v_leak = 0)                        i = beta (i + x)
    max_spikes_per_dt    max_spikes (policy override where not the preset's 2**16)
    Sequential, Residual traced through (Residual's `out + x` is two edges into the next layer)

Under the `rockpool` preset (impulse input, exact decay, `>=`, subtract, multi spikes). The
reference computes `a_syn I + w_in x` where Rockpool computes `beta (i + x)`, and adds a bias
with the input where Rockpool adds it after: equal up to the last bit, which can flip a spike
only where v is within rounding of the threshold (a nonzero bias is reported `approximate`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from rockpool.nn.modules.torch import ExpSynTorch, LIFNeuronTorch, LIFTorch, LinearTorch
from rockpool.nn.modules.torch import lif_neuron_torch as _lnt
from rockpool.nn.modules.torch import lif_torch as _lt

from nirbridge import ir as g
from nirbridge.report import GRAPH_NODE, Gap
from nirbridge.semantics import Policy, exact_unit_gain
from nirbridge_torch.exporting import Framework, Layer, Piece, full
from nirbridge_torch.layers import tau_of_decay, to_array
from nirbridge_torch.tracing import Trace

SUGGESTION = "use LIFTorch, LIFNeuronTorch, ExpSynTorch and LinearTorch (in Sequential or Residual), or torch layers"
#: the spike functions whose forward is `(v >= threshold) * floor(v / threshold)`, capped
SPIKE_FNS = {fn.apply for fn in (_lt.StepPWL, _lt.PeriodicExponential, _lnt.StepPWL)}
#: the preset's cap of spikes per step (Rockpool's default `max_spikes_per_dt = 2**16`)
MAX_SPIKES = 2**16
#: Rockpool layers with no NIR form, by class name, and why
UNSUPPORTED = {
    "LIFBitshiftTorch": "bit-shift decays with a quantised (floor) update; no NIR neuron rounds its state",
    "aLIFTorch": "an after-hyperpolarisation current (a second state fed by the neuron's own spikes); no NIR neuron has one",
    "RateTorch": "a rate neuron with a rectifying activation; NIR has no rate neuron",
    "UpDownTorch": "delta (up/down) spike encoding with a state of its own; NIR has no such node",
    "LowPass": "a low-pass filter emitting rates; use ExpSynTorch",
    "TimeStepDropout": "random dropout of time steps; NIR graphs are deterministic",
    "UnitDropout": "random dropout of units; NIR graphs are deterministic",
    "BooleanState": "a boolean state helper, no layer",
    "TorchFFwdStack": "weights applied with an internal matrix product between layers: use Sequential with LinearTorch",
}
LEAVES = (LIFTorch, LIFNeuronTorch, ExpSynTorch, LinearTorch)


def is_rockpool_module(module: torch.nn.Module) -> bool:
    return type(module).__module__.startswith("rockpool.")


def is_leaf(module: torch.nn.Module) -> bool:
    """Rockpool layers (and layers nirbridge refuses) are traced as one; combinators are traced through."""
    return is_rockpool_module(module) and (isinstance(module, LEAVES) or type(module).__name__ in UNSUPPORTED
                                           or not any(True for _ in module.named_children()))


def decays(module) -> dict[str, np.ndarray]:
    """Rockpool's float32 decay factors of a neuron layer, as it computes them (any leak_mode)."""
    if isinstance(module, ExpSynTorch):
        return {"beta": to_array(torch.exp(-module.dt / module.tau))}
    if isinstance(module, LIFNeuronTorch):
        return {"alpha": to_array(_lnt.tau_to_decay(module.dt, module.tau_mem))}
    return {"alpha": to_array(module.alpha), "beta": to_array(module.beta)}


def _tau(alpha: np.ndarray, dt: float) -> np.ndarray:
    """The graph's tau of a Rockpool decay factor (see `tau_of_decay`)."""
    a = np.asarray(alpha, np.float32)
    with np.errstate(divide="ignore"):
        start = np.where(a < 1, (-dt / np.log(a.astype(np.float64))), np.inf).astype(np.float32)
    return tau_of_decay(a, start, dt)


def _problems(module, threshold: np.ndarray | None) -> list[str]:
    problems = []
    if float(getattr(module, "noise_std", 0.0)) != 0:
        problems.append(f"noise_std={float(module.noise_std)} adds random noise every step; NIR graphs are deterministic")
    if threshold is not None:
        if module.spike_generation_fn not in SPIKE_FNS:
            problems.append(f"spike_generation_fn {module.spike_generation_fn!r} (known: StepPWL, PeriodicExponential)")
        if np.any(threshold <= 0):
            problems.append("a threshold <= 0 (the spike count floor(v / threshold) needs a positive threshold)")
    return problems


def _spike_fields(module) -> dict:
    m = float(module.max_spikes_per_dt)
    if not np.isfinite(m) or m >= 2**31:
        return {"spikes": "multi", "max_spikes": None}
    return {"spikes": "multi", "max_spikes": max(int(m), 1)}


def _leak(bias: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, bool]:
    """v_leak with c v_leak = bias (c = 1 - alpha, the exact current gain), and whether any is nonzero."""
    if not np.any(bias):
        return np.zeros_like(bias), False
    c = 1 - alpha.astype(np.float64)
    return np.where(c > 0, bias / np.where(c > 0, c, 1), 0).astype(np.float32), True


def _neuron(layer: Layer) -> Piece:
    module, name = layer.module, layer.name
    dt = layer.policy.dt
    spiking = not isinstance(module, ExpSynTorch)
    out = (module.size_out,)
    threshold = full(module.threshold, out, f"{name}.threshold") if spiking else None
    problems = _problems(module, threshold)
    if float(module.dt) != dt:
        problems.append(f"dt={module.dt} differs from the graph's dt={dt} (every module of a model must share one dt)")
    if problems:
        return Piece.refused(name, layer.kind, "; ".join(problems), SUGGESTION)
    k = decays(module)
    if isinstance(module, ExpSynTorch):
        beta = np.ascontiguousarray(np.broadcast_to(k["beta"], out))
        return Piece.node(name, g.LI(tau=_tau(beta, dt), r=beta, v_leak=np.zeros(out, np.float32)), layer.kind, maps_to="LI (r = beta)")
    alpha = np.ascontiguousarray(np.broadcast_to(k["alpha"], out))
    tau_mem = _tau(alpha, dt)
    bias = full(module.bias, out, f"{name}.bias")
    v_leak, biased = _leak(bias, alpha)
    zeros = np.zeros(out, np.float32)
    fields = _spike_fields(module)
    if isinstance(module, LIFNeuronTorch):
        piece = Piece.node(name, g.LIF(tau=tau_mem, r=np.ones(out, np.float32), v_leak=v_leak, v_threshold=threshold, v_reset=zeros),
                           layer.kind, maps_to="LIF (r = 1)", binary=fields["max_spikes"] == 1)
    else:
        piece = _lif_torch(layer, alpha, tau_mem, v_leak, threshold, fields)
    if biased:
        piece.gap = replace(piece.gap, status="approximate", reason="Rockpool adds the bias after the input, the reference "
                            "with it (c v_leak): the same sum rounded in another order")
    return piece


def _lif_torch(layer: Layer, alpha, tau_mem, v_leak, threshold, fields) -> Piece:
    module, name = layer.module, layer.name
    dt, n, syn = layer.policy.dt, module.size_out, module.n_synapses
    out, zeros = (n,), np.zeros((n,), np.float32)
    beta = np.ascontiguousarray(np.broadcast_to(decays(module)["beta"], (n, syn)), np.float32)
    binary = fields["max_spikes"] == 1
    rec = module._has_rec
    if syn == 1:
        b = beta[:, 0].copy()
        r = exact_unit_gain(tau_mem, dt, "exact", ulps=4)[0]  # nearest 1/c where no r is exact
        neuron = g.CubaLIF(tau_syn=_tau(b, dt), tau_mem=tau_mem, r=r, w_in=b, v_leak=v_leak, v_threshold=threshold, v_reset=zeros)
        if not rec:
            piece = Piece.node(name, neuron, layer.kind, maps_to="CubaLIF (w_in = beta, r = 1/(1 - alpha))", binary=binary)
            piece.overrides = {name: fields}
            return piece
        nodes, edges, inner, last, text = {"lif": neuron}, [("input", "lif")], "lif", "lif", "CubaLIF"
    else:  # synapse j = neuron * syn + s; each neuron sums its synapses
        flat = beta.reshape(-1)
        total = np.kron(np.eye(n, dtype=np.float32), np.ones((1, syn), np.float32))
        nodes = {"syn": g.LI(tau=_tau(flat, dt), r=flat, v_leak=np.zeros(n * syn, np.float32)), "sum": g.Linear(weight=total),
                 "lif": g.LIF(tau=tau_mem, r=np.ones(out, np.float32), v_leak=v_leak, v_threshold=threshold, v_reset=zeros)}
        edges, inner, last, text = [("input", "syn"), ("syn", "sum"), ("sum", "lif")], "syn", "lif", f"LI ({syn} synapses per neuron) -> sum -> LIF"
    if rec:
        nodes["w_rec"] = g.Linear(weight=to_array(module.w_rec, f"{name}.w_rec").T.copy())
        edges += [(last, "w_rec"), ("w_rec", inner)]
        text += " with recurrent Linear(w_rec.T)"
    size_in = np.asarray([module.size_in], np.int64)
    sub = g.Graph(nodes={"input": g.Input(shape=size_in), **nodes, "output": g.Output(shape=np.asarray(out, np.int64))},
                  edges=[*edges, (last, "output")])
    gap = Gap(name, layer.kind, "exact", maps_to=f"subgraph {text}")
    return Piece(gap, {name: sub}, [], name, name, f"{name}.{inner}", f"{name}.{last}", binary=binary, overrides={f"{name}.lif": fields})


def piece(layer: Layer) -> Piece | None:
    """Rockpool's mapping table (plain torch layers are the toolkit's)."""
    module = layer.module
    if isinstance(module, LinearTorch):
        weight = to_array(module.weight, f"{layer.name}.weight").T.copy()
        bias = getattr(module, "bias", None)
        node = g.Linear(weight=weight) if bias is None else g.Affine(weight=weight, bias=full(bias, (weight.shape[0],), f"{layer.name}.bias"))
        return Piece.node(layer.name, node, layer.kind, binary=False)
    if type(module) in (LIFTorch, LIFNeuronTorch, ExpSynTorch):  # subclasses (other dynamics) are refused below
        return _neuron(layer)
    if is_rockpool_module(module):
        return Piece.refused(layer.name, layer.kind, f"{layer.kind} has {UNSUPPORTED.get(layer.kind, 'no NIR equivalent')}", SUGGESTION)
    return None


def model_dt(model: torch.nn.Module) -> float | None:
    """The dt of the model's Rockpool neuron layers (the first one's; None without any)."""
    for m in torch.nn.Module.modules(model):
        if isinstance(m, (LIFTorch, LIFNeuronTorch, ExpSynTorch)):
            return float(m.dt)
    return None


def _policy(model: torch.nn.Module, tr: Trace, given: Policy | None) -> tuple[Policy, list[Gap]]:
    """The given policy, else the `rockpool` preset at the modules' dt; Rockpool's fixed rules must hold in it."""
    dt = model_dt(model)
    base = given if given is not None else Policy.preset("rockpool", **({} if dt is None else {"dt": dt}))
    gaps = [Gap(GRAPH_NODE, "Policy", "unsupported", reason=f"{f}={getattr(base, f)!r}: Rockpool modules compute {value!r}",
                suggestion="export without a policy (the rockpool preset at the modules' dt)")
            for f, value in (("integration", "exact"), ("reset", "subtract"), ("reset_timing", "immediate"), ("threshold", "ge"),
                             ("current_order", "current_first"), ("input", "impulse"), ("initial_v", "zero"), ("v_min", None))
            if getattr(base, f) != value]
    return base, gaps


def reset_states(model: torch.nn.Module) -> None:
    """Every Rockpool state back to its initial value (zeros)."""
    for module in torch.nn.Module.modules(model):
        if is_rockpool_module(module) and hasattr(module, "reset_state"):
            module.reset_state()


FRAMEWORK = Framework("rockpool", is_leaf, piece, _policy, prepare=reset_states, lead=lambda model: 2, suggestion=SUGGESTION)
