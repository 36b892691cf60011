"""convert() and check(): from any source (native model, Graph, nir.NIRGraph, .nir path) to
any target (a backend name or "nir"), exactly, or with a report of what would differ.

    model = convert(net, to="norse")                  # strict: GapError unless all exact
    model, report = convert(net, to="norse", strict=False)
    report = check(net, to="norse", probe=x)          # converts nothing

The policy (how the graph is stepped) is, in order of precedence: the one given, the one in
the graph's metadata, the source backend's preset, the one `Policy.infer` reads from the
parameters, and the "nir" preset (with a note saying nothing better was found).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backends.base import Backend
from .backends.registry import backends, get_backend
from .compare import compare
from .errors import GapError, NirbridgeError, PluginError, UnknownBackendError
from .io import load
from .ir import SPIKING_TYPES, Graph
from .reference import simulate
from .report import GRAPH_NODE, POLICY_NODE, Gap, GapReport
from .rewrite import lower
from .semantics import Policy, with_policy

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
    metadata), the policy, the report, and the target backend (None for "nir")."""

    graph: Graph
    policy: Policy
    report: GapReport
    backend: Backend | None
    source: Source


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
    for backend in installed.values():
        try:
            if backend.accepts(obj):
                found.append(backend)
        except Exception:  # a plugin's accepts() must not break detection for the others
            continue
    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if not found:
        raise UnknownBackendError(
            f"no installed backend accepts a {kind}; installed: {', '.join(installed)} "
            "(pass a Graph, a nir.NIRGraph, a .nir path, or source=<backend>)"
        )
    if len(found) > 1:
        raise UnknownBackendError(f"several backends accept a {kind}: {', '.join(b.name for b in found)}; pass source=<backend>")
    return found[0]


def resolve_source(src: Any, *, source: str | Backend | None = None, policy: Policy | None = None, sample: Any = None) -> Source:
    """Turn any source into a Graph and the policy it runs under (see the module docstring)."""
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
        graph, export_gaps = backend.export(src, policy=policy, sample=sample)
        if not isinstance(graph, Graph):
            raise PluginError(f"{backend.name}: to_nir returned {type(graph).__name__}, not a nirbridge.Graph")
        kind = backend.name
    if backend is None and source is not None:
        backend = source if isinstance(source, Backend) else get_backend(source)
    notes: list[str] = []
    if policy is not None:
        chosen, origin = policy, "given explicitly"
    elif (stored := Policy.from_metadata(graph.metadata)) is not None:
        chosen, origin = stored, "read from the graph's metadata"
    elif backend is not None:
        chosen, origin = Policy.preset(backend.preset), f"preset {backend.preset!r} of source backend {backend.name}"
    else:
        inferred = Policy.infer(graph)
        if inferred.dt is not None:
            chosen = Policy.preset("nir", dt=inferred.dt)
            origin = f"preset 'nir' at the dt inferred from the parameters ({inferred.message})"
            notes.append(f"semantics other than dt are not recorded in the graph; assumed the 'nir' preset (confidence in dt: {inferred.confidence})")
        else:
            chosen = Policy.preset("nir")
            origin = "preset 'nir': nothing in the graph says how it was stepped"
            notes.append(f"no policy in the graph and no dt inferable ({inferred.message}); assumed the 'nir' preset at dt={chosen.dt:g}")
    chosen.check(graph)
    return Source(graph, chosen, origin, kind, backend, notes, export_gaps if kind == getattr(backend, "name", None) else [])


def _exact_elsewhere(node_type: str) -> list[str]:
    """Installed backends that run `node_type` exactly (for suggestions); none when the
    registry itself is broken, which must not hide the report."""
    try:
        found = backends()
    except NirbridgeError:
        return []
    return [n for n, b in found.items() if (s := b.support.get(node_type)) is not None and s.status == "exact"]


def _target(to: str | Backend) -> Backend | None:
    if isinstance(to, Backend):
        return to
    if to == NIR_TARGET:
        return None
    return get_backend(to)


def plan(src: Any, to: str | Backend, *, source: str | Backend | None = None, policy: Policy | None = None, sample: Any = None) -> Plan:
    """Resolve the source, choose the target's rewrites and build the gap report; builds nothing."""
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
    if not backend.can_import:
        gaps.append(Gap(GRAPH_NODE, "NIRGraph", "unsupported", reason=f"backend {backend.name} cannot build models from NIR", suggestion="convert to another backend"))
        lowered = graph
    else:
        lowering = lower(graph, backend, resolved.policy, others=_exact_elsewhere)
        gaps += lowering.gaps
        lowered = lowering.graph
        if lowering.rewritten:
            notes.append(f"rewrites applied for {backend.name}: " + ", ".join(f"{n} ({how})" for n, how in lowering.rewritten.items()))
    report = GapReport(gaps, source=resolved.kind, target=backend.name, policy=resolved.policy, notes=notes)
    return Plan(with_policy(lowered, resolved.policy), resolved.policy, report, backend, resolved)


def convert(src: Any, to: str | Backend, *, source: str | Backend | None = None, policy: Policy | None = None, strict: bool = True, sample: Any = None):
    """Convert `src` to backend `to` (or "nir" for a Graph carrying the policy).

    Strict (default): returns the model, or raises `GapError` with the full report before
    building anything unless every node and the policy are exact. Non-strict: returns
    `(model, report)`, warning (`GapWarning`) about approximations; unsupported nodes still
    raise `GapError`, since nothing is dropped."""
    p = plan(src, to, source=source, policy=policy, sample=sample)
    report = p.report
    if report.unsupported or (strict and not report.ok):
        raise GapError(report)
    model = p.graph if p.backend is None else p.backend.from_nir(p.graph, policy=p.policy)
    if model is None:
        raise PluginError(f"{p.backend.name}: from_nir returned None")
    if strict:
        return model
    if not report.ok:
        report.warn(stacklevel=3)
    return model, report


def check(
    src: Any,
    to: str | Backend,
    *,
    source: str | Backend | None = None,
    policy: Policy | None = None,
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
    native = p.backend.from_nir(p.graph, policy=p.policy)
    other = p.backend.simulate(native, np.asarray(probe), record=tuple(spiking))
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
