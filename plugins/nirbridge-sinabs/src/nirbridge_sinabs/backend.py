"""`SinabsBackend`: the `sinabs` backend of nirbridge. The torch toolkit
(`nirbridge_torch.backend.TorchBackend`) does the work; this is Sinabs' table and quirks."""

from __future__ import annotations

from typing import Any

import numpy as np
import sinabs.layers as sl
import torch

from nirbridge.backends.base import Handler, Support
from nirbridge.errors import NirbridgeError
from nirbridge.ir import Graph
from nirbridge.result import SimulationResult
from nirbridge.semantics import Policy
from nirbridge_torch.backend import TorchBackend

from . import export
from .neurons import LAYERS, POLICY_CELL, SinabsGraph, plan_neuron

NEURON_MAPS = {
    "I": f"{LAYERS['I']} (+ input gain)",
    "IF": f"{LAYERS['IF']} (+ input gain), where Sinabs has the policy; else {POLICY_CELL}",
    "LI": f"{LAYERS['LI']} (train_alphas, + input gain and leak)",
    "LIF": f"{LAYERS['LIF']} (train_alphas, + input gain and leak), where Sinabs has the policy; else {POLICY_CELL}",
    "CubaLI": POLICY_CELL,
    "CubaLIF": POLICY_CELL,
}


class SinabsBackend(TorchBackend):
    """Sinabs 3.1 models <-> NIR: export traces a Sinabs model on a sample (its own input
    layout); import builds stock Sinabs layers (IAF, LIF, ExpLeak) where they compute the
    node's policy bit for bit as the reference, the policy neuron elsewhere (named in the report)."""

    name = "sinabs"
    preset = "sinabs"
    description = "Sinabs 3.1 (IAF, LIF, ExpLeak and their Squeeze forms, SumPool2d; torch layers; sinabs.from_model)"
    model_class = SinabsGraph
    neuron_handlers = {t: Handler(Support("exact", maps_to=m), plan=plan_neuron) for t, m in NEURON_MAPS.items()}

    def framework(self):
        return export.FRAMEWORK

    def is_native(self, module: Any) -> bool:
        return export.is_sinabs_module(module)

    def simulate_native(self, model: torch.nn.Module, x: np.ndarray) -> SimulationResult:
        return simulate_native(model, x)

    def supports_policy(self, policy: Policy, graph: Graph | None = None) -> Support:
        """Every policy is exact: stock Sinabs layers where they compute it, the policy neuron elsewhere."""
        return Support("exact", maps_to=f"Sinabs layers where Sinabs has the policy, {POLICY_CELL} elsewhere; dt={policy.dt:g}")


def simulate_native(model: torch.nn.Module, x: np.ndarray) -> SimulationResult:
    """Run a user's Sinabs model on x (time, batch, ...) from zero state: fed as (batch, time,
    ...), or (batch*time, ...) when it has Squeeze layers (their batch_size / num_timesteps
    must fit x); returns the output as (time, batch, ...)."""
    seq = torch.as_tensor(np.asarray(x), dtype=torch.get_default_dtype())
    steps, batch = seq.shape[:2]
    squeeze = [m for m in model.modules() if isinstance(m, sl.SqueezeMixin)]
    for m in squeeze:
        if m.batch_size not in (-1, batch) or m.num_timesteps not in (-1, steps):
            raise NirbridgeError(f"{type(m).__name__} has batch_size={m.batch_size}, num_timesteps={m.num_timesteps}: "
                                 f"the input has {steps} steps of batch {batch}")
    export.reset_states(model)
    feed = seq.transpose(0, 1)
    with torch.no_grad():
        out = model(feed.reshape(batch * steps, *seq.shape[2:]) if squeeze else feed)
    out = out.reshape(batch, steps, *out.shape[1 + (not squeeze):]).transpose(0, 1)
    return SimulationResult(outputs={"output": out.detach().cpu().numpy()})
