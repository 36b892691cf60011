"""`NorseBackend`: the `norse` backend of nirbridge."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from nirbridge import ir as g
from nirbridge.backends.base import Backend, Support
from nirbridge.ir import Graph, Node
from nirbridge.result import SimulationResult
from nirbridge.semantics import Policy

from . import build, export
from .cells import native_reason

_exact = lambda maps_to, reason="": Support("exact", maps_to=maps_to, reason=reason)  # noqa: E731


class NorseBackend(Backend):
    """Norse 1.1 models <-> NIR. `native_only=True` builds stock Norse cells only and reports
    the policies Norse lacks as approximate (measured); the default builds exact cells on
    Norse's functional API for them."""

    name: ClassVar[str] = "norse"
    preset: ClassVar[str] = "norse"
    description: ClassVar[str] = "Norse (norse.torch) cells and torch layers"
    support: ClassVar[dict[str, Support]] = {
        "Affine": _exact("torch.nn.Linear"),
        "Linear": _exact("torch.nn.Linear (no bias)"),
        "Scale": _exact("Scale module"),
        "Conv1d": _exact("torch.nn.Conv1d"),
        "Conv2d": _exact("torch.nn.Conv2d"),
        "Flatten": _exact("torch.nn.Flatten"),
        "SumPool2d": _exact("sum pooling (avg_pool2d, divisor 1)"),
        "AvgPool2d": _exact("torch.nn.AvgPool2d"),
        "Threshold": _exact("Threshold module"),
        "Delay": _exact("Delay module (ring buffer, delay/dt steps)"),
        "I": _exact("PolicyCell (Norse has no plain integrator)"),
        "IF": _exact("norse.torch.IAFCell (+ Scale for r, dt); PolicyCell for subtract reset"),
        "LI": _exact("norse.torch.LIBoxCell (+ Scale for r)"),
        "LIF": _exact("norse.torch.LIFBoxCell (+ Scale for r); reset_subtract"),
        "CubaLI": _exact("norse.torch.LICell (+ Scale for w_in, r)"),
        "CubaLIF": _exact("norse.torch.LIFCell (+ Scale for w_in, r)"),
        "NIRGraph": _exact("nested graph run by the shared executor (cycles one step late)"),
    }

    def __init__(self, native_only: bool = False):
        self.native_only = native_only
        if native_only:  # stock cells only: no integrator, no policy cells
            self.support = type(self).support | {
                "I": Support("unsupported", reason="Norse has no plain integrator (I) and native_only builds stock Norse cells only",
                             suggestion="convert with native_only=False"),
                "IF": _exact("norse.torch.IAFCell (+ Scale for r, dt)"),
            }

    def accepts(self, obj: Any) -> bool:
        if isinstance(obj, build.NorseGraph):
            return True
        return isinstance(obj, torch.nn.Module) and any(export.is_norse_module(m) for m in obj.modules())

    def to_nir(self, obj: Any, *, policy: Policy | None = None, sample: Any = None) -> Graph:
        return export.to_nir(obj, policy=policy, sample=sample)

    def from_nir(self, graph: Graph, *, policy: Policy | None = None, native_only: bool | None = None, probe=None) -> build.NorseGraph:
        native = self.native_only if native_only is None else native_only
        return build.from_nir(graph, policy=policy, native_only=native, probe=probe)

    def simulate(self, native: Any, x: np.ndarray, *, record: tuple[str, ...] = ()) -> SimulationResult:
        from nirbridge_torch import GraphModule, run_sequence

        if isinstance(native, GraphModule):
            return run_sequence(native, x, record=record)
        return simulate_native(native, x)

    def node_support(self, name: str, node: Node, *, policy: Policy) -> Support:
        gap = build.plan_node(name, node, policy, native_only=self.native_only)
        return Support(gap.status, maps_to=gap.maps_to, reason=gap.reason, suggestion=gap.suggestion)

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
