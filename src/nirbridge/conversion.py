"""convert(), plan() and check(): from any source (native model, Graph, nir.NIRGraph, .nir
path) to any target (a backend name or "nir"), exactly, or with a report of what would differ.

    model = convert(net, to="norse")                  # strict: GapError unless all exact
    model = convert(net, to="norse", strict=False)    # approximations allowed, GapWarning
    p = plan(net, to="norse"); p.report; model = p.build()   # the report and the model, planned once
    report = check(net, to="norse", probe=x)          # converts nothing

One conversion: the source becomes a Graph (exported by its backend if it is a native model)
and its policy is resolved (`nirbridge.semantics.resolve_policy`: given > the graph's metadata
> the source backend's preset > `nir` at the inferred dt > `nir`); `rewrite.lower` chooses the
target's exact rewrites and asks the target's handler of every node once; the answers make
one gap report and one build plan; `Plan.build` refuses (strict) or has the target build
the native model from that plan.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backends.base import Backend, BuildPlan, NodePlan
from .backends.registry import backends, get_backend
from .compare import compare
from .errors import GapError, NirbridgeError, PluginError, UnknownBackendError
from .io import load
from .ir import SPIKING_TYPES, Graph
from .reference import simulate
from .report import GRAPH_NODE, POLICY_NODE, Gap, GapReport
from .result import SimulationResult
from .rewrite import lower
from .semantics import Policy, resolve_policy, with_policy

NIR_TARGET = "nir"


@dataclass
class Source:
    """A resolved source: its graph, the policy it runs under and where that policy came from."""

    graph: Graph
    policy: Policy
    policy_origin: str
    kind: str
    backend: Backend | None = None
    notes: list[str] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)  # what the export only approximates


@dataclass
class Plan:
    """What a conversion will do: the graph the target runs (rewrites applied, policy in its
    metadata), the policy, the report, the target backend (None for "nir") and one `NodePlan`
    per node. `build()` makes the model from it."""

    graph: Graph
    policy: Policy
    report: GapReport
    backend: Backend | None
    source: Source
    nodes: dict[str, NodePlan] = field(default_factory=dict)

    def build(self, *, strict: bool = True, warn: bool = True) -> Any:
        """The target's model (a Graph for "nir"). Strict: `GapError` with the report unless
        every node and the policy are exact. Otherwise approximations give a `GapWarning`
        (unless `warn=False`); unsupported nodes always raise `GapError`, since nothing is
        dropped."""
        report = self.report
        if report.unsupported or (strict and not report.ok):
            raise GapError(report)
        if self.backend is None:
            model = self.graph
        else:
            model = self.backend.build(BuildPlan(self.graph, self.policy, self.nodes, report, self.source.graph))
            if model is None:
                raise PluginError(f"backend {self.backend.name!r}: build returned None instead of a model")
        if warn and not report.ok:
            report.warn(stacklevel=4)
        return model


def run(backend: Backend, native: Any, x: Any, *, record: tuple[str, ...] = ()) -> SimulationResult:
    """`backend.simulate(native, x, record=)`, with its answer checked: a plugin that returns
    anything but a `SimulationResult` raises `PluginError` naming it."""
    result = backend.simulate(native, x, record=tuple(record))
    if not isinstance(result, SimulationResult):
        raise PluginError(f"backend {backend.name!r}: simulate returned {type(result).__name__}, not a nirbridge SimulationResult")
    return result


def _is_nir(obj: Any) -> bool:
    nir = sys.modules.get("nir")
    return nir is not None and isinstance(obj, getattr(nir, "NIRNode", nir.NIRGraph))


def _source_backend(obj: Any, source: str | Backend | None) -> Backend:
    if isinstance(source, Backend):
        return source
    if source is not None:
        return get_backend(source)
    installed = backends()
    found = []
    for record in installed.values():
        if not record.could_accept(obj):
            continue  # not even the right kind of object: leave its framework unimported
        try:
            if record.load().accepts(obj):
                found.append(record.name)
        except Exception:  # a plugin's accepts() must not break detection for the others
            continue
    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if not found:
        raise UnknownBackendError(
            f"no installed backend accepts a {kind}; installed: {', '.join(installed)} "
            "(pass a Graph, a nir.NIRGraph, a .nir path, or source=<backend>)"
        )
    if len(found) > 1:
        raise UnknownBackendError(f"several backends accept a {kind}: {', '.join(found)}; pass source=<backend>")
    return get_backend(found[0])


def resolve_source(src: Any, *, source: str | Backend | None = None, policy: Policy | str | None = None, sample: Any = None) -> Source:
    """Turn any source into a Graph and the policy it runs under (`resolve_policy`)."""
    backend: Backend | None = None
    export_gaps: list[Gap] = []
    if isinstance(src, Graph):
        graph, kind = src, "graph"
    elif isinstance(src, (str, os.PathLike)):
        graph, kind = load(src), os.fspath(src)
    elif _is_nir(src):
        graph, kind = Graph.from_nir(src), "nir.NIRGraph"
    else:
        backend = _source_backend(src, source)
        exported = backend.export(src, policy=Policy.preset(policy) if isinstance(policy, str) else policy, sample=sample)
        if not (isinstance(exported, tuple) and len(exported) == 2 and isinstance(exported[0], Graph)):
            raise PluginError(f"backend {backend.name!r}: export returned {type(exported).__name__}, not (Graph, gaps)")
        graph, export_gaps = exported[0], list(exported[1])
        kind = backend.name
    if backend is None and source is not None:
        backend = source if isinstance(source, Backend) else get_backend(source)
    preset = backend.preset if backend is not None else None
    resolved = resolve_policy(graph, policy, preset=preset, owner=getattr(backend, "name", ""))
    gaps = export_gaps if kind == getattr(backend, "name", None) else []
    return Source(graph, resolved.policy, resolved.origin, kind, backend, list(resolved.notes), gaps)


def _exact_elsewhere(node_type: str) -> list[str]:
    """Backends already in use (and the built-in one) that run `node_type` exactly, for
    suggestions; none when the registry itself is broken, which must not hide the report.
    Backends not loaded yet are not loaded for this."""
    try:
        found = backends()
        loaded = [(n, r.load()) for n, r in found.items() if r.loaded or n == "numpy"]
    except NirbridgeError:
        return []
    return [n for n, b in loaded if (s := b.support.get(node_type)) is not None and s.status == "exact"]


def _target(to: str | Backend) -> Backend | None:
    if isinstance(to, Backend):
        return to
    if to == NIR_TARGET:
        return None
    return get_backend(to)


def plan(src: Any, to: str | Backend, *, source: str | Backend | None = None, policy: Policy | str | None = None, sample: Any = None) -> Plan:
    """Resolve the source, choose the target's rewrites, plan every node once and build the
    gap report; builds nothing."""
    resolved = resolve_source(src, source=source, policy=policy, sample=sample)
    backend = _target(to)
    graph = with_policy(resolved.graph, resolved.policy)
    notes = [f"policy {resolved.policy_origin}", *resolved.notes]
    if backend is None:
        approximate = {gap.node: gap for gap in resolved.gaps}
        gaps = [approximate.get(name) or Gap(name, node.type, "exact", maps_to=f"NIR {node.type}") for name, node in graph.walk()]
        report = GapReport(gaps, source=resolved.kind, target=NIR_TARGET, policy=resolved.policy, notes=notes)
        return Plan(graph, resolved.policy, report, None, resolved)
    policy_support = backend.supports_policy(resolved.policy, graph=resolved.graph)
    gaps = [Gap(POLICY_NODE, "Policy", policy_support.status, policy_support.maps_to, policy_support.reason, policy_support.suggestion)]
    gaps += resolved.gaps
    nodes: dict[str, NodePlan] = {}
    if not backend.can_import:
        gaps.append(Gap(GRAPH_NODE, "NIRGraph", "unsupported", reason=f"backend {backend.name} cannot build models from NIR", suggestion="convert to another backend"))
        lowered = graph
    else:
        lowering = lower(graph, backend, resolved.policy, others=_exact_elsewhere)
        gaps += lowering.gaps
        lowered, nodes = lowering.graph, lowering.plans
        if lowering.rewritten:
            notes.append(f"rewrites applied for {backend.name}: " + ", ".join(f"{n} ({how})" for n, how in lowering.rewritten.items()))
    report = GapReport(gaps, source=resolved.kind, target=backend.name, policy=resolved.policy, notes=notes)
    return Plan(with_policy(lowered, resolved.policy), resolved.policy, report, backend, resolved, nodes)


def convert(src: Any, to: str | Backend, *, source: str | Backend | None = None, policy: Policy | str | None = None, strict: bool = True, sample: Any = None):
    """Convert `src` to backend `to` (or "nir" for a Graph carrying the policy) and return the
    model. Strict (default): `GapError` with the full report before anything is built unless
    every node and the policy are exact. `strict=False`: approximations are allowed and
    announced with a `GapWarning`; unsupported nodes still raise `GapError`. For the report
    and the model together, use `plan(...)` and `Plan.build()`."""
    return plan(src, to, source=source, policy=policy, sample=sample).build(strict=strict)


def check(
    src: Any,
    to: str | Backend,
    *,
    source: str | Backend | None = None,
    policy: Policy | str | None = None,
    sample: Any = None,
    probe: Any = None,
):
    """The GapReport of converting `src` to `to`, without converting. With `probe` (an input
    shaped (time, batch, *features)), approximate nodes get `measured`: the fraction of spikes
    that differ between the NumPy reference and the target on that input."""
    try:
        p = plan(src, to, source=source, policy=policy, sample=sample)
    except GapError as exc:  # the source could not even be exported
        report = exc.report
        if not report.target:
            report.target = to.name if isinstance(to, Backend) else str(to)
        return report
    if probe is not None and p.backend is not None and p.report.approximate and not p.report.unsupported:
        _measure(p, probe)
    return p.report


def _measure(p: Plan, probe: Any) -> None:
    spiking = [name for name, node in p.source.graph.walk() if node.type in SPIKING_TYPES]
    reference = simulate(p.graph, np.asarray(probe), policy=p.policy, record=spiking)
    other = run(p.backend, p.build(strict=False, warn=False), np.asarray(probe), record=tuple(spiking))
    nodes = compare(reference, other, p.graph, spiking)
    total = [c for n, c in nodes.items() if n in spiking and c.spike_total]
    overall = sum(c.spike_diffs for c in total) / sum(c.spike_total for c in total) if total else None
    measured = []
    for gap in p.report.gaps:
        if gap.status == "approximate":
            cmp = nodes.get(gap.node)
            value = cmp.spike_fraction if cmp is not None and cmp.spike_total else overall
            gap = Gap(gap.node, gap.node_type, gap.status, gap.maps_to, gap.reason, gap.suggestion, value)
        measured.append(gap)
    p.report.gaps = measured
    p.report.notes.append(f"measured on a probe input of shape {tuple(np.shape(probe))}")
