"""`SpikingJellyBackend`: the `spikingjelly` backend of nirbridge. The torch toolkit
(`nirbridge_torch.backend.TorchBackend`) does the work; this is SpikingJelly's table and quirks."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nirbridge.backends.base import Handler, Support
from nirbridge.ir import Graph
from nirbridge.result import SimulationResult
from nirbridge.semantics import Policy
from nirbridge_torch.backend import TorchBackend

from . import export
from .neurons import POLICY_CELL, SpikingJellyGraph, plan_neuron

NEURON_MAPS = {
    "IF": f"spikingjelly IFNode (+ input gain), where SpikingJelly has the policy; else {POLICY_CELL}",
    "LIF": f"spikingjelly LIFNode (decay_input from the gain), where SpikingJelly has the policy; else {POLICY_CELL}",
    "I": POLICY_CELL,
    "LI": POLICY_CELL,
    "CubaLI": POLICY_CELL,
    "CubaLIF": POLICY_CELL,
}


class SpikingJellyBackend(TorchBackend):
    """SpikingJelly 2.0 models <-> NIR: export traces a model in single-step (sample: one step)
    or multi-step mode (sample: a sequence); import builds single-step IFNode/LIFNode where they
    compute the node's policy, the policy neuron elsewhere (named in the report)."""

    name = "spikingjelly"
    preset = "spikingjelly"
    description = "SpikingJelly 2.0 activation_based (IFNode, LIFNode, ParametricLIFNode, CUBALIFNode; layer.* wrappers; single- and multi-step)"
    model_class = SpikingJellyGraph
    neuron_handlers = {t: Handler(Support("exact", maps_to=m), plan=plan_neuron) for t, m in NEURON_MAPS.items()}

    def framework(self):
        return export.FRAMEWORK

    def is_native(self, module: Any) -> bool:
        return export.is_sj_module(module)

    def simulate_native(self, model: torch.nn.Module, x: np.ndarray) -> SimulationResult:
        return simulate_native(model, x)

    def supports_policy(self, policy: Policy, graph: Graph | None = None) -> Support:
        """Every policy is exact: SpikingJelly nodes where they compute it, the policy neuron elsewhere."""
        return Support("exact", maps_to=f"SpikingJelly nodes where SpikingJelly has the policy, {POLICY_CELL} elsewhere; dt={policy.dt:g}")


def simulate_native(model: torch.nn.Module, x: np.ndarray) -> SimulationResult:
    """Run a user's SpikingJelly model on x (time, batch, ...) from its initial state: the whole
    sequence at once in multi-step mode, one step per call in single-step mode."""
    from spikingjelly.activation_based import functional

    seq = torch.as_tensor(np.asarray(x), dtype=torch.get_default_dtype())
    functional.reset_net(model)
    with torch.no_grad():
        out = model(seq) if export.multi_step(model) else torch.stack([model(step) for step in seq])
    return SimulationResult(outputs={"output": out.detach().cpu().numpy()})
