"""`TorchBackend`: what every torch backend shares, so that a framework's backend is its
mapping tables and its quirks.

A subclass sets `name`, `preset`, `description`, `model_class` (its `ConvertedModel`
subclass, so converted models are told apart by backend), `neuron_handlers` (how its
framework runs each NIR neuron type) and `framework()` (its side of export, see
`exporting.Framework`), and says which modules are its framework's (`is_native`). It gets:
handlers for every stateless node type; `build` (one module per node, `importing.build_model`);
`export` of a native model (the one export builder) and of a converted one (`graph_of`: the
graph it came from, trained values included); `simulate` (`run_sequence`, or the subclass's
`simulate_native` for a user's model); `accepts`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from nirbridge.backends.base import Backend, BuildPlan, Handler
from nirbridge.errors import GapError
from nirbridge.result import SimulationResult
from nirbridge.semantics import Policy, with_policy

from .executor import GraphModule, run_sequence
from .exporting import Framework, export
from .importing import ConvertedModel, build_model, graph_of, stateless_handlers


class TorchBackend(Backend):
    model_class: ClassVar[type[ConvertedModel]] = ConvertedModel
    neuron_handlers: ClassVar[dict[str, Handler]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "neuron_handlers" in cls.__dict__:
            cls.handlers = {**stateless_handlers(), **cls.neuron_handlers}

    def framework(self) -> Framework:
        raise NotImplementedError(f"backend {self.name!r} cannot export models")

    def is_native(self, module: torch.nn.Module) -> bool:
        """Whether `module` is one of this framework's layers."""
        return False

    def build(self, plan: BuildPlan) -> ConvertedModel:
        return build_model(plan, self.model_class)

    def accepts(self, obj: Any) -> bool:
        if isinstance(obj, self.model_class):
            return True
        return isinstance(obj, torch.nn.Module) and any(self.is_native(m) for m in torch.nn.Module.modules(obj))

    def export(self, obj: Any, *, policy: Policy | None = None, sample: Any = None):
        """The graph of a model this backend converted (with current parameter values), or of
        a native model run once on `sample`, and the gaps it only approximates. `GapError`
        when any layer is unsupported."""
        if isinstance(obj, self.model_class):
            return with_policy(graph_of(obj), policy or obj.policy), []
        graph, report = export(obj, sample=sample, framework=self.framework(), policy=policy)
        if graph is None or report.unsupported:
            raise GapError(report)
        return graph, report.approximate

    def simulate(self, native: Any, x: np.ndarray, *, record: tuple[str, ...] = ()) -> SimulationResult:
        if isinstance(native, GraphModule):
            return run_sequence(native, x, record=tuple(record))
        return self.simulate_native(native, x)

    def simulate_native(self, model: torch.nn.Module, x: np.ndarray) -> SimulationResult:
        raise NotImplementedError(f"backend {self.name!r} runs converted models only")
