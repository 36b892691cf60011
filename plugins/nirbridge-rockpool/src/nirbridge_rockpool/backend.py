"""`RockpoolBackend`: the `rockpool` backend of nirbridge. The torch toolkit
(`nirbridge_torch.backend.TorchBackend`) does the work; this is Rockpool's table and quirks."""

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
from .neurons import LAYER, POLICY_CELL, RockpoolGraph, plan_neuron
from .plugin import DESCRIPTION

NEURON_MAPS = {
    "IF": f"{LAYER} (tau_mem = inf, + input gain), where Rockpool has the policy; else {POLICY_CELL}",
    "LIF": f"{LAYER} (+ input gain and leak), where Rockpool has the policy; else {POLICY_CELL}",
    "I": POLICY_CELL,
    "LI": POLICY_CELL,
    "CubaLI": POLICY_CELL,
    "CubaLIF": POLICY_CELL,
}


class RockpoolBackend(TorchBackend):
    """Rockpool 3.1 torch models <-> NIR: export traces a Rockpool model on a sample
    (batch, time, features); import builds stock LIFNeuronTorch modules where they compute
    the node's policy bit for bit as the reference, the policy neuron elsewhere (named in the report)."""

    name = "rockpool"
    preset = "rockpool"
    description = DESCRIPTION
    model_class = RockpoolGraph
    neuron_handlers = {t: Handler(Support("exact", maps_to=m), plan=plan_neuron) for t, m in NEURON_MAPS.items()}

    def framework(self):
        return export.FRAMEWORK

    def is_native(self, module: Any) -> bool:
        return export.is_rockpool_module(module)

    def simulate_native(self, model: torch.nn.Module, x: np.ndarray) -> SimulationResult:
        return simulate_native(model, x)

    def supports_policy(self, policy: Policy, graph: Graph | None = None) -> Support:
        """Every policy is exact: LIFNeuronTorch where Rockpool computes it, the policy neuron elsewhere."""
        return Support("exact", maps_to=f"Rockpool modules where Rockpool has the policy, {POLICY_CELL} elsewhere; dt={policy.dt:g}")


def simulate_native(model: torch.nn.Module, x: np.ndarray) -> SimulationResult:
    """Run a user's Rockpool model on x (time, batch, features) from its initial state (fed as
    (batch, time, features)); returns the output as (time, batch, features)."""
    seq = torch.as_tensor(np.asarray(x), dtype=torch.get_default_dtype())
    export.reset_states(model)
    with torch.no_grad():
        out = torch.nn.Module.__call__(model, seq.transpose(0, 1))  # the torch API: the output alone
    export.reset_states(model)
    return SimulationResult(outputs={"output": out.transpose(0, 1).detach().cpu().numpy()})
