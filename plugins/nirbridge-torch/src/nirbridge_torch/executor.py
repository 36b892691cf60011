"""Run a nirbridge Graph whose nodes are torch modules, one time step per call.

Nested graphs are flattened and cycles broken by `nirbridge.topology.schedule` (a delayed edge
carries its source's value of the previous step, zero at step 0), so every torch backend
follows the same rule as the NumPy reference. A node with several incoming edges receives
their sum, added in edge order. Stateful node modules may define `reset_state()` (called by
`GraphModule.reset`) and `record_state() -> dict[str, Tensor]` (the `v`, `I`, `spikes` of the
last step, used when a node is recorded). The schedule is compiled once into a list of slots,
per-step values live in a plain namespace (`nn.Module.__setattr__` costs microseconds), and a
step keeps no intermediate value alive after it (unless `keep_values`, for recording): its
memory is reused at once, as in a plain `nn.Sequential`. A step costs the modules' own work
and little else.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace

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
        self._delayed = {slot[s] for s, _ in self.schedule.delayed}
        self.step_values = SimpleNamespace(previous=None, values=None)  # this step's and, where read, last step's values
        self.keep_values = False  # keep every node's value of the last step (`last_values`, recording)

    def module(self, name: str) -> torch.nn.Module:
        return self.node_modules[module_key(name)]

    def reset(self) -> None:
        self.step_values.previous = self.step_values.values = None
        for module in self.node_modules.values():
            if hasattr(module, "reset_state"):
                module.reset_state()

    def forward(self, x):
        values: list = [None] * len(self._slots)
        if isinstance(x, torch.Tensor):
            values[self._inputs[0][1]] = first = x
        else:
            for name, s in self._inputs:
                values[s] = x[name]
            first = values[self._inputs[0][1]]
        now, modules = self.step_values, self.node_modules
        previous = now.previous
        for s, key, sources, shape in self._program:
            if len(sources) == 1 and not sources[0][1]:  # one edge from this step: most nodes
                total = values[sources[0][0]]
            else:
                total = None
                for source, delayed in sources:
                    value = (previous[source] if previous is not None else None) if delayed else values[source]
                    if value is not None:
                        total = value if total is None else total + value
                if total is None:
                    total = torch.zeros((first.shape[0], *shape), dtype=first.dtype, device=first.device)
            values[s] = total if key is None else modules[key](total)
        now.values = values if self.keep_values else None
        if self._delayed:  # only what the next step reads
            now.previous = [values[i] if i in self._delayed else None for i in range(len(values))]
        if len(self._outputs) == 1:
            return values[self._outputs[0][1]]
        return {name: values[s] for name, s in self._outputs}

    @property
    def last_values(self) -> dict[str, torch.Tensor]:
        """Every node's output of the last step, by name (kept while `keep_values` is set)."""
        values = self.step_values.values
        if values is None:
            return {}
        return {name: values[s] for name, s in self._slots.items()}

    def recorded(self, name: str) -> dict[str, torch.Tensor]:
        """State of node `name` after the last step: its `record_state()`, or its output `y`."""
        if module_key(name) in self.node_modules:
            module = self.module(name)
            if hasattr(module, "record_state"):
                return module.record_state()
        return {"y": self.step_values.values[self._slots[name]]}


def model_device(model: torch.nn.Module) -> torch.device:
    """Where a model's tensors are (the CPU for a model without any)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def run_sequence(model: GraphModule, x, *, record=()) -> SimulationResult:
    """Reset `model`, run it over x shaped (time, batch, ...) on the model's device and return
    numpy arrays."""
    x = x if isinstance(x, Mapping) else {None: x}
    device = model_device(model)
    seq = {k: torch.as_tensor(np.asarray(v), dtype=torch.get_default_dtype(), device=device) for k, v in x.items()}
    steps = next(iter(seq.values())).shape[0]
    model.reset()
    outputs: dict[str, list] = {name: [] for name, _ in model._outputs}
    states: dict[str, dict[str, list]] = {name: {} for name in record}
    keep, model.keep_values = model.keep_values, True
    try:
        with torch.no_grad():
            for t in range(steps):
                step = {k: v[t] for k, v in seq.items()}
                model(step[None] if None in step else step)
                for name, s in model._outputs:
                    outputs[name].append(model.step_values.values[s])
                for name in record:
                    for var, value in model.recorded(name).items():
                        states[name].setdefault(var, []).append(value)
    finally:
        model.keep_values = keep
    stack = lambda values: torch.stack(values).detach().cpu().numpy()  # noqa: E731
    return SimulationResult(
        outputs={k: stack(v) for k, v in outputs.items()},
        states={n: {var: stack(v) for var, v in s.items()} for n, s in states.items()},
    )
