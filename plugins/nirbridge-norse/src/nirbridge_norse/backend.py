"""`NorseBackend`: the `norse` backend of nirbridge. The torch toolkit
(`nirbridge_torch.backend.TorchBackend`) does the work; this is Norse's table and quirks."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from nirbridge import ir as g
from nirbridge import plan
from nirbridge.backends.base import BuildPlan, Handler, Support
from nirbridge.ir import Graph
from nirbridge.result import SimulationResult
from nirbridge.semantics import Policy
from nirbridge_torch.backend import TorchBackend
from nirbridge_torch.importing import stateless_handlers

from . import build, export
from .cells import native_reason

NEURON_MAPS = {
    "I": "PolicyNeuron (Norse has no plain integrator)",
    "IF": "norse.torch.IAFCell (+ Scale for r, dt); PolicyNeuron for subtract reset",
    "LI": "norse.torch.LIBoxCell (+ Scale for r)",
    "LIF": "norse.torch.LIFBoxCell (+ Scale for r); reset_subtract",
    "CubaLI": "norse.torch.LICell (+ Scale for w_in, r)",
    "CubaLIF": "norse.torch.LIFCell (+ Scale for w_in, r)",
}


def _neuron(maps_to: str, *, native_only: bool) -> Handler:
    def plan_node(name, node, policy, graph):
        return build.plan_neuron(name, node, policy, native_only=native_only)

    return Handler(Support("exact", maps_to=maps_to), plan=plan_node)


class NorseBackend(TorchBackend):
    """Norse 1.1 models <-> NIR. `native_only=True` builds stock Norse cells only and reports
    the policies Norse lacks as approximate, measured on `probe` (a generated input when None);
    the default runs those nodes on the exact policy neuron."""

    name: ClassVar[str] = "norse"
    preset: ClassVar[str] = "norse"
    description: ClassVar[str] = "Norse (norse.torch) cells and torch layers"
    model_class = build.NorseGraph
    neuron_handlers = {t: _neuron(m, native_only=False) for t, m in NEURON_MAPS.items()}

    def __init__(self, native_only: bool = False, probe=None):
        self.native_only = native_only
        self.probe = probe
        if native_only:  # stock cells only: no integrator, no policy neurons
            neurons = {t: _neuron(m, native_only=True) for t, m in NEURON_MAPS.items()}
            neurons["IF"] = _neuron("norse.torch.IAFCell (+ Scale for r, dt)", native_only=True)
            neurons["I"] = Handler(Support("unsupported", reason="Norse has no plain integrator (I) and native_only builds stock Norse cells only",
                                           suggestion="convert with native_only=False"), plan=neurons["I"].plan)
            self.handlers = {**stateless_handlers(), **neurons}

    def build(self, plan: BuildPlan) -> build.NorseGraph:
        return build.build_model(plan, native_only=self.native_only, probe=self.probe)

    def framework(self):
        return export.FRAMEWORK

    def is_native(self, module: Any) -> bool:
        return export.is_norse_module(module)

    def export(self, obj: Any, *, policy: Policy | None = None, sample: Any = None):
        return export.to_nir(obj, policy=policy, sample=sample), []

    def simulate_native(self, model: torch.nn.Module, x: np.ndarray) -> SimulationResult:
        return simulate_native(model, x)

    def supports_policy(self, policy: Policy, graph: Graph | None = None) -> Support:
        if not self.native_only:
            return Support("exact", maps_to=f"Norse cells where the policy is Norse's, {build.POLICY_CELL} elsewhere; dt={policy.dt:g}")
        # stock cells: what they cannot reproduce, per neuron of `graph` (else per node type)
        if graph is not None:
            subjects = [(name, node) for name, node in graph.walk() if isinstance(node, build.NEURONS)]
        else:
            subjects = [("", kind.model_construct()) for kind in build.NEURONS]
        found: dict[str, list[str]] = {}
        for name, node in subjects:
            if isinstance(node, g.I):
                continue  # no stock cell at all: unsupported per node, whatever the policy
            why = native_reason(node, policy.for_node(name, node.type))
            for part in filter(None, why.split("; ")):
                found.setdefault(part, []).append(name or node.type)
        if not found:
            return Support("exact", maps_to=f"stock Norse cells (Norse's semantics) at dt={policy.dt:g}")
        return Support(
            "approximate",
            maps_to="stock Norse cells (Norse's semantics)",
            reason="; ".join(f"{why} ({'nodes' if graph is not None else 'for'} {', '.join(dict.fromkeys(who))})" for why, who in found.items()),
            suggestion="convert with native_only=False for exact cells",
        )


def from_nir(graph: Graph, *, policy: Policy | None = None, native_only: bool = False, probe=None) -> build.NorseGraph:
    """The Norse model of `graph` under `policy` (default: the graph's own, else the `norse`
    preset). `GapError` lists every node that cannot be built. With `native_only`, stock Norse
    cells only: what they only approximate is reported in `model.report`, measured on `probe`."""
    backend = NorseBackend(native_only=native_only, probe=probe)
    return plan(graph, backend, source=backend, policy=policy).build(strict=False, warn=False)


def simulate_native(model: torch.nn.Module, x: np.ndarray) -> SimulationResult:
    """Run a user's Norse model on x (time, batch, ...): models of Norse time-sequence modules
    take the whole sequence, models of cells (a bare cell or a SequentialState) one step at a
    time with their state, other modules one step at a time as they are."""
    seq = torch.as_tensor(np.asarray(x), dtype=torch.get_default_dtype())
    with torch.no_grad():
        if any(export.is_time_module(m) for m in model.modules()):
            out = model(seq)
            out = out[0] if isinstance(out, tuple) else out
        else:
            import norse.torch as n
            from norse.torch.module.snn import SNNCell, SNNRecurrentCell

            stateful = isinstance(model, (n.SequentialState, SNNCell, SNNRecurrentCell, n.LILinearCell))
            state, outs = None, []
            for t in range(seq.shape[0]):
                if stateful:
                    y, state = model(seq[t], state)
                else:
                    y = model(seq[t])
                    y = y[0] if isinstance(y, tuple) else y
                outs.append(y)
            out = torch.stack(outs)
    return SimulationResult(outputs={"output": out.detach().cpu().numpy()})
