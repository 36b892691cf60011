"""Run a nirbridge Graph whose nodes are torch modules, one time step per call.

Nested graphs are flattened and cycles broken by `nirbridge.topology.schedule` (a delayed edge
carries its source's value of the previous step, zero at step 0), so every torch backend
follows the same rule as the NumPy reference. A node with several incoming edges receives
their sum, added in edge order. Stateful node modules may define `reset_state()` (called by
`GraphModule.reset`) and `record_state() -> dict[str, Tensor]` (the `v`, `I`, `spikes` of the
last step, used when a node is recorded). The schedule is compiled once into a list of slots,
so a step costs the modules' own work and little else.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from nirbridge.ir import Graph, Input, Output
from nirbridge.result import SimulationResult
from nirbridge.topology import flatten, schedule


def module_key(name: str) -> str:
    """The key of node `name` in `GraphModule.node_modules` (torch keys have no dots)."""
    return name.replace(".", "__")


class GraphModule(torch.nn.Module):
    """One step per `forward(x)` (x: (batch, *features), or a dict per Input node); state is
    kept inside until `reset()`. Returns the Output node's value, or a dict for several."""

    def __init__(self, graph: Graph, modules: Mapping[str, torch.nn.Module]):
        super().__init__()
        self.graph = flatten(graph)
        self.schedule = schedule(self.graph)
        self.node_modules = torch.nn.ModuleDict({module_key(n): m for n, m in modules.items()})
        self.names = {module_key(n): n for n in modules}  # module key -> node name
        nodes, order = self.graph.nodes, self.schedule.order
        slot = {name: i for i, name in enumerate(order)}
        shapes = self.graph.shapes()
        self._slots = slot
        self._inputs = [(name, slot[name]) for name in order if isinstance(nodes[name], Input)]
        self._outputs = [(name, slot[name]) for name in order if isinstance(nodes[name], Output)]
        #: per node in order: slot, module key (None for Input/Output), sources as (slot, delayed), input shape
        self._program = [
            (slot[name], None if isinstance(nodes[name], Output) else module_key(name),
             tuple((slot[s], delayed) for s, delayed in self.schedule.sources[name]), tuple(shapes[name][0]))
            for name in order if not isinstance(nodes[name], Input)
        ]
        self._previous: list | None = None
        self._values: list | None = None

    def module(self, name: str) -> torch.nn.Module:
        return self.node_modules[module_key(name)]

    def reset(self) -> None:
        self._previous = self._values = None
        for module in self.node_modules.values():
            if hasattr(module, "reset_state"):
                module.reset_state()

    def forward(self, x):
        values: list = [None] * len(self._slots)
        if isinstance(x, Mapping):
            for name, s in self._inputs:
                values[s] = x[name]
            first = values[self._inputs[0][1]]
        else:
            values[self._inputs[0][1]] = first = x
        previous, modules = self._previous, self.node_modules
        for s, key, sources, shape in self._program:
            total = None
            for source, delayed in sources:
                value = (previous[source] if previous is not None else None) if delayed else values[source]
                if value is not None:
                    total = value if total is None else total + value
            if total is None:
                total = torch.zeros((first.shape[0], *shape), dtype=first.dtype, device=first.device)
            values[s] = total if key is None else modules[key](total)
        self._previous = self._values = values
        if len(self._outputs) == 1:
            return values[self._outputs[0][1]]
        return {name: values[s] for name, s in self._outputs}

    @property
    def last_values(self) -> dict[str, torch.Tensor]:
        """Every node's output of the last step, by name."""
        if self._values is None:
            return {}
        return {name: self._values[s] for name, s in self._slots.items()}

    def recorded(self, name: str) -> dict[str, torch.Tensor]:
        """State of node `name` after the last step: its `record_state()`, or its output `y`."""
        if module_key(name) in self.node_modules:
            module = self.module(name)
            if hasattr(module, "record_state"):
                return module.record_state()
        return {"y": self._values[self._slots[name]]}


def run_sequence(model: GraphModule, x, *, record=()) -> SimulationResult:
    """Reset `model`, run it over x shaped (time, batch, ...) and return numpy arrays."""
    x = x if isinstance(x, Mapping) else {None: x}
    seq = {k: torch.as_tensor(np.asarray(v), dtype=torch.get_default_dtype()) for k, v in x.items()}
    steps = next(iter(seq.values())).shape[0]
    model.reset()
    outputs: dict[str, list] = {name: [] for name, _ in model._outputs}
    states: dict[str, dict[str, list]] = {name: {} for name in record}
    with torch.no_grad():
        for t in range(steps):
            step = {k: v[t] for k, v in seq.items()}
            model(step[None] if None in step else step)
            for name, s in model._outputs:
                outputs[name].append(model._values[s])
            for name in record:
                for var, value in model.recorded(name).items():
                    states[name].setdefault(var, []).append(value)
    stack = lambda values: torch.stack(values).detach().cpu().numpy()  # noqa: E731
    return SimulationResult(
        outputs={k: stack(v) for k, v in outputs.items()},
        states={n: {var: stack(v) for var, v in s.items()} for n, s in states.items()},
    )
