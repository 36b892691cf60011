"""`NorseBackend`: the `norse` backend of nirbridge."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from nirbridge import ir as g
from nirbridge import plan
from nirbridge.backends.base import Backend, BuildPlan, Handler, Support
from nirbridge.ir import Graph
from nirbridge.result import SimulationResult
from nirbridge.semantics import Policy

from . import build, export
from .cells import native_reason


def _handler(maps_to: str, *, native_only: bool) -> Handler:
    def plan(name, node, policy, graph):
        return build.plan_node(name, node, policy, native_only=native_only)

    return Handler(Support("exact", maps_to=maps_to), plan=plan)


_DECLARED = {
    "Affine": "torch.nn.Linear",
    "Linear": "torch.nn.Linear (no bias)",
    "Scale": "Scale module",
    "Conv1d": "torch.nn.Conv1d",
    "Conv2d": "torch.nn.Conv2d",
    "Flatten": "torch.nn.Flatten",
    "SumPool2d": "sum pooling (avg_pool2d, divisor 1)",
    "AvgPool2d": "torch.nn.AvgPool2d",
    "Threshold": "Threshold module",
    "Delay": "Delay module (ring buffer, delay/dt steps)",
    "I": "PolicyCell (Norse has no plain integrator)",
    "IF": "norse.torch.IAFCell (+ Scale for r, dt); PolicyCell for subtract reset",
    "LI": "norse.torch.LIBoxCell (+ Scale for r)",
    "LIF": "norse.torch.LIFBoxCell (+ Scale for r); reset_subtract",
    "CubaLI": "norse.torch.LICell (+ Scale for w_in, r)",
    "CubaLIF": "norse.torch.LIFCell (+ Scale for w_in, r)",
}


class NorseBackend(Backend):
    """Norse 1.1 models <-> NIR. `native_only=True` builds stock Norse cells only and reports
    the policies Norse lacks as approximate, measured on `probe` (a generated input when None);
    the default builds exact cells on Norse's functional API for them."""

    name: ClassVar[str] = "norse"
    preset: ClassVar[str] = "norse"
    description: ClassVar[str] = "Norse (norse.torch) cells and torch layers"

    def __init__(self, native_only: bool = False, probe=None):
        self.native_only = native_only
        self.probe = probe
        declared = dict(_DECLARED)
        if native_only:  # stock cells only: no integrator, no policy cells
            declared["IF"] = "norse.torch.IAFCell (+ Scale for r, dt)"
        self.handlers = {t: _handler(m, native_only=native_only) for t, m in declared.items()}
        if native_only:
            self.handlers["I"] = Handler(
                Support("unsupported", reason="Norse has no plain integrator (I) and native_only builds stock Norse cells only",
                        suggestion="convert with native_only=False"),
                plan=self.handlers["I"].plan,
            )

    def build(self, plan: BuildPlan) -> build.NorseGraph:
        return build.build_model(plan, native_only=self.native_only, probe=self.probe)

    def accepts(self, obj: Any) -> bool:
        if isinstance(obj, build.NorseGraph):
            return True
        return isinstance(obj, torch.nn.Module) and any(export.is_norse_module(m) for m in obj.modules())

    def export(self, obj: Any, *, policy: Policy | None = None, sample: Any = None):
        return export.to_nir(obj, policy=policy, sample=sample), []

    def simulate(self, native: Any, x: np.ndarray, *, record: tuple[str, ...] = ()) -> SimulationResult:
        from nirbridge_torch import GraphModule, run_sequence

        if isinstance(native, GraphModule):
            return run_sequence(native, x, record=record)
        return simulate_native(native, x)

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
    time_mode = any(export._is_time_module(m) for m in model.modules())
    with torch.no_grad():
        if time_mode:
            out = model(seq)
            out = out[0] if isinstance(out, tuple) else out
        else:
            state, outs = None, []
            # SequentialState and bare Norse cells take and return their state
            from norse.torch.module.snn import SNNCell, SNNRecurrentCell

            n = export._norse()
            stateful = isinstance(model, (n.SequentialState, SNNCell, SNNRecurrentCell, n.LILinearCell))
            for t in range(seq.shape[0]):
                if stateful:
                    y, state = model(seq[t], state)
                else:
                    y = model(seq[t])
                    y = y[0] if isinstance(y, tuple) else y
                outs.append(y)
            out = torch.stack(outs)
    return SimulationResult(outputs={"output": out.detach().cpu().numpy()})
