"""What a backend is: handlers per NIR node type, a builder, and the light record a plugin
registers.

A backend declares one `Handler` per NIR node type it knows. `nirbridge.convert` asks each
node's handler once (`Backend.plan_node`): the answer, a `NodePlan`, says whether the backend
runs that node exactly under the node's policy (exact / approximate with the reason /
unsupported with a suggestion) and, unless unsupported, how to build it. The plans of every
node make one `BuildPlan` and one gap report; `Backend.build(plan)` makes the native model
from it without deciding anything again. The support matrix, the conformance suite's claims
and the README table come from the same handlers (`Handler.declared`).

A plugin registers `BackendRecord`s: a name, a preset and where the backend class lives, so
listing and looking up backends imports no framework until a backend is used.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import PluginError, PolicyError, ResourceLimitError
from ..ir import Graph, Node
from ..report import STATUSES, GapReport, Status
from ..result import SimulationResult
from ..semantics import Policy, delay_steps, policy_differences

#: what a backend name must look like; "nir" is reserved for `convert(..., to="nir")`
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
RESERVED_NAMES = frozenset({"nir"})


@dataclass(frozen=True)
class Support:
    """How a backend carries a node (or a node type): `maps_to` names the native construct;
    `reason` says what differs (approximate) or why not (unsupported); `suggestion` what to do."""

    status: Status
    maps_to: str = ""
    reason: str = ""
    suggestion: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise PluginError(f"Support.status: must be one of {', '.join(STATUSES)}, got {self.status!r}")


@dataclass(frozen=True)
class NodePlan:
    """The decision for one node of one conversion: its `support` under its effective `policy`
    and, unless unsupported, `build()`, which makes the native piece (None: nothing to build,
    e.g. a port, or a node another node's piece absorbs). `detail`: what the backend decided,
    for its own use when it assembles the model."""

    name: str
    node: Node
    policy: Policy
    support: Support
    build: Callable[[], Any] | None = None
    detail: Any = None


#: plans one node: (name, node, its effective policy, the graph it is in) -> NodePlan
Planner = Callable[[str, Node, Policy, Graph], NodePlan]


@dataclass(frozen=True)
class Handler:
    """How a backend carries one NIR node type.

    `declared` is the claim for the type in general (support matrix, conformance suite).
    A node is planned by `plan(name, node, policy, graph)` when given, else it gets `declared`
    and, unless unsupported, a builder calling `build(node, policy)`."""

    declared: Support
    build: Callable[[Node, Policy], Any] | None = None
    plan: Planner | None = None

    def plan_node(self, name: str, node: Node, policy: Policy, graph: Graph) -> NodePlan:
        if self.plan is not None:
            return self.plan(name, node, policy, graph)
        build = self.build
        if self.declared.status == "unsupported" or build is None:
            return NodePlan(name, node, policy, self.declared)
        return NodePlan(name, node, policy, self.declared, lambda: build(node, policy))


def exact(maps_to: str, build: Callable[[Node, Policy], Any] | None = None) -> Handler:
    """A handler that runs its node type exactly, built by `build(node, policy)`."""
    return Handler(Support("exact", maps_to=maps_to), build=build)


def unsupported(reason: str, suggestion: str = "") -> Handler:
    """A handler that refuses its node type, saying why and what to do instead."""
    return Handler(Support("unsupported", reason=reason, suggestion=suggestion))



def delay_problem(name: str, node: Node, policy: Policy) -> Support | None:
    """Why a Delay node cannot run as a delay line at the policy's dt (an unsupported Support
    with a suggestion), None when it can: `semantics.delay_steps`' rule, shared by every backend."""
    try:
        delay_steps(name, node, policy.dt, np.shape(node.delay))
    except PolicyError as exc:
        return Support("unsupported", reason=str(exc), suggestion="choose a dt that divides every delay")
    except ResourceLimitError as exc:
        return Support("unsupported", reason=str(exc), suggestion="shorten the delay")
    return None


def lazy_exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A plugin package's module `__getattr__`: `names` maps each public name to the submodule
    that defines it, imported on first use, so that importing the package (as its entry point
    does) imports no framework."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{module}", package), name)

    return __getattr__

@dataclass(frozen=True)
class BuildPlan:
    """Everything a backend builds a native model from: the graph to run (rewrites applied,
    the policy in its metadata), the policy, one `NodePlan` per node (dotted names inside
    nested graphs), the conversion's gap report, and `source`, the graph as it was given
    (before rewrites; what exporting the built model should give back)."""

    graph: Graph
    policy: Policy
    nodes: Mapping[str, NodePlan]
    report: GapReport
    source: Graph


def name_problem(name: Any) -> str | None:
    """Why `name` cannot be a backend name, or None when it can."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        return f"backend name must be lowercase letters, digits, '-' or '_' starting with a letter, got {name!r}"
    if name in RESERVED_NAMES:
        return f"backend name {name!r} is reserved"
    return None


class Backend:
    """Subclass, set `name`, `preset`, `description` and `handlers`, and implement what the
    backend can do:

    - `build(plan)`: the native model of a `BuildPlan` (import from NIR);
    - `accepts(obj)` and `export(obj, policy=, sample=)`: a native model to a `Graph` (export);
    - `simulate(native, x, record=)`: run a native model on x shaped (time, batch, *features)
      and return a `SimulationResult` of numpy arrays.

    `supports_policy` says whether the backend reproduces a policy as a whole (default:
    exact when the graph's nodes use only what the backend's preset does)."""

    name: ClassVar[str] = ""
    #: name of the Policy preset describing this backend's native semantics
    preset: ClassVar[str] = "nir"
    description: ClassVar[str] = ""
    #: NIR node type -> Handler; Input and Output are always exact, other types not listed
    #: are unsupported
    handlers: ClassVar[Mapping[str, Handler]] = {}
    #: node types whose `r` the backend cannot represent (it runs them as r = 1); conversion
    #: moves r != 1 into a Scale node inserted in front of the node
    unit_r: ClassVar[frozenset[str]] = frozenset()

    @property
    def support(self) -> dict[str, Support]:
        """The declared support per node type (from the handlers)."""
        return {kind: handler.declared for kind, handler in self.handlers.items()}

    def plan_node(self, name: str, node: Node, policy: Policy, graph: Graph) -> NodePlan:
        """The decision for one node under its effective `policy` (asked once per conversion)."""
        handler = self.handlers.get(node.type)
        if handler is not None:
            return handler.plan_node(name, node, policy, graph)
        if node.type in ("Input", "Output"):
            return NodePlan(name, node, policy, Support("exact", maps_to=f"{node.type.lower()} of the model"))
        return NodePlan(name, node, policy, Support("unsupported", reason=f"{self.name} has no {node.type} node"))

    def plan_graph(self, graph: Graph, policy: Policy) -> dict[str, NodePlan]:
        """The plan of every node of `graph` (dotted names inside nested graphs), each planned
        once under its effective policy. Override to add decisions that span several nodes
        (then replace the plans of the nodes concerned)."""
        return {name: self.plan_node(name, node, policy.for_node(name, node.type), graph) for name, node in graph.walk()}

    def build(self, plan: BuildPlan) -> Any:
        raise NotImplementedError(f"backend {self.name!r} cannot build models from NIR")

    def accepts(self, obj: Any) -> bool:
        return False

    def export(self, obj: Any, *, policy: Policy | None = None, sample: Any = None) -> tuple[Graph, list]:
        """The graph of a native model and the `Gap`s of what it only approximates (an empty
        list when exact). Raises `GapError` listing every part that cannot be exported."""
        raise NotImplementedError(f"backend {self.name!r} cannot export models")

    def simulate(self, native: Any, x: np.ndarray, *, record: tuple[str, ...] = ()) -> SimulationResult:
        raise NotImplementedError(f"backend {self.name!r} cannot simulate")

    # -- capabilities -------------------------------------------------------------
    @property
    def can_export(self) -> bool:
        return type(self).export is not Backend.export

    @property
    def can_import(self) -> bool:
        return type(self).build is not Backend.build

    @property
    def can_simulate(self) -> bool:
        return type(self).simulate is not Backend.simulate

    def supports_policy(self, policy: Policy, graph: Graph | None = None) -> Support:
        """Whether this backend reproduces `policy` exactly (on `graph`, when given: only the
        fields its nodes use count). Default: exact when those fields equal the backend's
        preset, type and node overrides included; otherwise approximate, naming each field
        that differs. Time constants are converted at the policy's dt, so any dt is exact."""
        native = Policy.preset(self.preset)
        diffs = policy_differences(policy, native, graph)
        if not diffs:
            return Support("exact", maps_to=f"{self.name} native semantics (preset {self.preset!r}) at dt={policy.dt:g}")
        return Support(
            "approximate",
            maps_to=f"{self.name} native semantics (preset {self.preset!r})",
            reason="; ".join(diffs),
            suggestion=f"convert to a backend that reproduces these semantics, or retrain the model under Policy.preset({self.preset!r})",
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


@dataclass(frozen=True)
class BackendRecord:
    """What a plugin registers for one backend, without importing its framework.

    `factory`: "package.module:attribute" naming the Backend class (or a callable returning a
    Backend instance), imported on first use. `model_types`: fully qualified names of the
    classes the backend's native models derive from (e.g. "torch.nn.modules.module.Module"),
    so that finding the backend of a model only loads backends that could accept it (empty:
    always ask). `distribution` is filled in by the registry."""

    name: str
    factory: str | Callable[[], Backend]
    preset: str = "nir"
    description: str = ""
    model_types: tuple[str, ...] = ()
    distribution: str = ""
    _loaded: list = field(default_factory=list, repr=False, compare=False)

    def load(self) -> Backend:
        """The backend instance (made once)."""
        if not self._loaded:
            factory = self.factory
            if isinstance(factory, str):
                module, _, attribute = factory.partition(":")
                factory = getattr(importlib.import_module(module), attribute)
            backend = factory()
            if not isinstance(backend, Backend):
                raise PluginError(f"{self.distribution or self.name}: factory of backend {self.name!r} returned "
                                  f"{type(backend).__name__}, not a nirbridge Backend")
            if backend.name != self.name:
                raise PluginError(f"{self.distribution or self.name}: record {self.name!r} made a backend named {backend.name!r}")
            self._loaded.append(backend)
        return self._loaded[0]

    @property
    def loaded(self) -> bool:
        return bool(self._loaded)

    def could_accept(self, obj: Any) -> bool:
        """Whether a model of `obj`'s class may be this backend's (by `model_types`)."""
        if not self.model_types:
            return True
        names = {f"{c.__module__}.{c.__qualname__}" for c in type(obj).__mro__}
        return any(t in names for t in self.model_types)

    @classmethod
    def of(cls, backend: Backend) -> BackendRecord:
        """The record of an existing backend instance (tests, in-process plugins)."""
        record = cls(backend.name, lambda: backend, preset=backend.preset, description=backend.description)
        record._loaded.append(backend)
        return record
