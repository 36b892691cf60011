"""Run a nirbridge Graph whose nodes are torch modules, one time step per call.

Nested graphs are flattened and cycles broken by `nirbridge.topology.schedule` (a delayed edge
carries its source's value of the previous step, zero at step 0), so every torch backend
follows the same rule as the NumPy reference. Stateful node modules may define
`reset_state()` (called by `GraphModule.reset`) and `record_state() -> dict[str, Tensor]`
(the `v`, `I`, `spikes` of the last step, used when a node is recorded).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from nirbridge.ir import Graph, Input, Output
from nirbridge.result import SimulationResult
from nirbridge.topology import flatten, schedule


def _key(name: str) -> str:
    return name.replace(".", "__")


class GraphModule(torch.nn.Module):
    """One step per `forward(x)` (x: (batch, *features), or a dict per Input node); state is
    kept inside until `reset()`. Returns the Output node's value, or a dict for several."""

    def __init__(self, graph: Graph, modules: Mapping[str, torch.nn.Module]):
        super().__init__()
        self.graph = flatten(graph)
        self.schedule = schedule(self.graph)
        self.input_shapes = {n: s[0] for n, s in self.graph.shapes().items()}
        self.node_modules = torch.nn.ModuleDict({_key(n): m for n, m in modules.items()})
        self.names = {_key(n): n for n in modules}
        self._previous: dict[str, torch.Tensor] = {}
        self.last_values: dict[str, torch.Tensor] = {}

    def module(self, name: str) -> torch.nn.Module:
        return self.node_modules[_key(name)]

    def reset(self) -> None:
        self._previous = {}
        self.last_values = {}
        for module in self.node_modules.values():
            if hasattr(module, "reset_state"):
                module.reset_state()

    def forward(self, x):
        nodes = self.graph.nodes
        inputs = [n for n in self.schedule.order if isinstance(nodes[n], Input)]
        feed = x if isinstance(x, Mapping) else {inputs[0]: x}
        batch = next(iter(feed.values())).shape[0]
        values: dict[str, torch.Tensor] = {}
        for name in self.schedule.order:
            if name in feed:
                values[name] = feed[name]
                continue
            total = None
            for source, delayed in self.schedule.sources[name]:
                value = self._previous.get(source) if delayed else values[source]
                if value is not None:
                    total = value if total is None else total + value
            if total is None:
                total = torch.zeros((batch, *self.input_shapes[name]), dtype=torch.get_default_dtype())
            values[name] = total if isinstance(nodes[name], Output) else self.module(name)(total)
        self._previous = {s: values[s] for s, _ in self.schedule.delayed}
        self.last_values = values
        outputs = {n: values[n] for n in self.schedule.order if isinstance(nodes[n], Output)}
        return next(iter(outputs.values())) if len(outputs) == 1 else outputs

    def recorded(self, name: str) -> dict[str, torch.Tensor]:
        """State of node `name` after the last step: its `record_state()`, or its output `y`."""
        if _key(name) in self.node_modules:
            module = self.module(name)
            if hasattr(module, "record_state"):
                return module.record_state()
        return {"y": self.last_values[name]}


def run_sequence(model: GraphModule, x, *, record=()) -> SimulationResult:
    """Reset `model`, run it over x shaped (time, batch, ...) and return numpy arrays."""
    x = x if isinstance(x, Mapping) else {None: x}
    seq = {k: torch.as_tensor(np.asarray(v), dtype=torch.get_default_dtype()) for k, v in x.items()}
    steps = next(iter(seq.values())).shape[0]
    model.reset()
    outputs: dict[str, list] = {}
    states: dict[str, dict[str, list]] = {name: {} for name in record}
    with torch.no_grad():
        for t in range(steps):
            step = {k: v[t] for k, v in seq.items()}
            model(step[None] if None in step else step)
            for name, node in model.graph.nodes.items():
                if isinstance(node, Output):
                    outputs.setdefault(name, []).append(model.last_values[name])
            for name in record:
                for var, value in model.recorded(name).items():
                    states[name].setdefault(var, []).append(value)
    stack = lambda values: torch.stack(values).detach().cpu().numpy()  # noqa: E731
    return SimulationResult(
        outputs={k: stack(v) for k, v in outputs.items()},
        states={n: {var: stack(v) for var, v in s.items()} for n, s in states.items()},
    )
