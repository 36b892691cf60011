"""Exact graph rewrites, and the choice of rewrites that lets a backend run a graph exactly.

- `avgpool_to_sumpool`: AvgPool2d = SumPool2d followed by Scale(1/k²) (padding counts as
  zeros in both, docs/semantics.md).
- `fold_r`: the `r` of an I, IF, LI or LIF node moves into a Scale node inserted in front of
  it and the node gets r = 1 (its input enters only as r*x), for backends that cannot
  represent r. Only the inserted node is new; no other node's weights are touched.
- `maxpool2d`: for exporters. NIR has no max pooling; on binary input (spikes) a max pool is
  exactly SumPool2d followed by Threshold(0.5). On other input there is no exact form.
- nested graphs are inlined (`topology.flatten`) for backends without nested graphs.

Inserted nodes are named after the node they serve (`lif1_r`, `pool1_scale`, `pool1_sum`);
the original names keep their role, so recording `lif1` still reads the neuron.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backends.base import Backend, NodePlan
from .errors import GraphValidationError, Problem
from .ir import SPIKING_TYPES, AvgPool2d, Graph, Node, Scale, ShapeError, SumPool2d, Threshold, pair
from .report import Gap
from .semantics import Policy
from .topology import flatten

Edge = tuple[str, str]

#: node types whose input x enters only as r*x, so r can move into a Scale in front without
#: changing any state (in CubaLI/CubaLIF r scales the current I, which folding would change)
R_TYPES = frozenset({"I", "IF", "LI", "LIF"})


# ----------------------------------------------------------------------------- graph surgery


@dataclass
class _Insert:
    """Put `node` named after `name` + `suffix` before or after node `name`, which becomes `replacement`."""

    where: str  # "before" | "after"
    suffix: str
    node: Node
    replacement: Node


def _fresh(taken: Collection[str], base: str) -> str:
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def _apply(graph: Graph, decide: Callable[[str, Node], _Insert | None], prefix: str = "") -> tuple[Graph, dict[str, str], dict[str, str]]:
    """Apply `decide` to every node (nested graphs too, names dotted). Returns the new graph
    and the renames of edge destinations and sources that the enclosing graph must apply."""
    nodes: dict[str, Node] = {}
    into: dict[str, str] = {}  # old destination -> new destination
    out_of: dict[str, str] = {}  # old source -> new source
    internal: list[Edge] = []
    taken = set(graph.nodes)
    for name, node in graph.nodes.items():
        if isinstance(node, Graph):
            sub, sub_in, sub_out = _apply(node, decide, f"{prefix}{name}.")
            nodes[name] = sub
            into |= {f"{name}.{a}": f"{name}.{b}" for a, b in sub_in.items()}
            out_of |= {f"{name}.{a}": f"{name}.{b}" for a, b in sub_out.items()}
            continue
        change = decide(prefix + name, node)
        if change is None:
            nodes[name] = node
            continue
        new = _fresh(taken, f"{name}{change.suffix}")
        taken.add(new)
        if change.where == "before":
            nodes[new], nodes[name] = change.node, change.replacement
            into[name] = new
            internal.append((new, name))
        else:
            nodes[name], nodes[new] = change.replacement, change.node
            out_of[name] = new
            internal.append((name, new))
    edges = [(out_of.get(s, s), into.get(d, d)) for s, d in graph.edges] + internal
    return Graph(nodes=nodes, edges=edges, metadata=dict(graph.metadata)), into, out_of


def _selected(names: Collection[str] | None, name: str) -> bool:
    return names is None or name in names


def avgpool_to_sumpool(graph: Graph, names: Collection[str] | None = None) -> Graph:
    """Replace AvgPool2d nodes (all, or those in `names`, dotted for nested graphs) by
    SumPool2d followed by Scale(1/k²). The SumPool2d keeps the name; the Scale is `<name>_scale`."""
    shapes = _all_shapes(graph)

    def decide(name: str, node: Node) -> _Insert | None:
        if not isinstance(node, AvgPool2d) or not _selected(names, name):
            return None
        out_shape = shapes.get(name, (None, None))[1]
        if out_shape is None:
            raise GraphValidationError(problems=[Problem(f"nodes.{name}", "output shape unknown: cannot size the Scale that replaces AvgPool2d")])
        kh, kw = pair(node.kernel_size, 2)
        scale = Scale(scale=np.full(out_shape, 1.0 / (kh * kw), dtype=np.float32))
        pool = SumPool2d(kernel_size=node.kernel_size, stride=node.stride, padding=node.padding, metadata=node.metadata)
        return _Insert("after", "_scale", scale, pool)

    return _apply(graph, decide)[0]


def fold_r(graph: Graph, names: Collection[str] | None = None, types: Collection[str] = R_TYPES) -> Graph:
    """Give neurons of `types` (all, or those in `names`) r = 1, with their r in a Scale node
    `<name>_r` inserted in front of them. Neurons whose r is already 1 are left alone."""

    def decide(name: str, node: Node) -> _Insert | None:
        if node.type not in types or not _selected(names, name) or np.all(node.r == 1):
            return None
        scale = Scale(scale=node.r.copy())
        return _Insert("before", "_r", scale, node.replace(r=np.ones_like(node.r)))

    return _apply(graph, decide)[0]


def _all_shapes(graph: Graph, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    shapes = {prefix + k: v for k, v in graph.shapes().items()}
    for name, node in graph.nodes.items():
        if isinstance(node, Graph):
            shapes |= _all_shapes(node, f"{prefix}{name}.")
    return shapes


# ----------------------------------------------------------------------------- max pooling


@dataclass
class MaxPoolRewrite:
    """What replaces a max pool: `nodes` to add (in order: `input` first, `output` last) and
    the `edges` between them, plus the `gap` to put in the exporter's report. When the max pool
    has no exact form, `nodes` is empty and `gap.status` is "unsupported"."""

    gap: Gap
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    input: str = ""
    output: str = ""


MAXPOOL_SUGGESTION = (
    "move the max pool directly after a spiking layer, where its input is binary spikes "
    "(max of spikes = SumPool2d + Threshold(0.5), exact), or use AvgPool2d"
)


def maxpool2d(
    name: str,
    *,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    input_shape: tuple[int, int, int],
    binary_input: bool,
    dilation: Any = 1,
    ceil_mode: bool = False,
    taken: Collection[str] = (),
) -> MaxPoolRewrite:
    """The exact NIR form of a 2-d max pool over input shaped (C, H, W), if there is one.

    With binary input the max of a window is 1 iff the window's sum is >= 1, so the pool
    becomes SumPool2d (`<name>_sum`) followed by Threshold(0.5) (named `name`, so edges from
    the max pool leave from it). Zero padding equals -inf padding here because every window
    holds at least one real element. Non-binary input, dilation or ceil_mode: unsupported."""
    stride = kernel_size if stride is None else stride
    problems = []
    if not binary_input:
        problems.append("its input is not binary spikes, and NIR has no max pooling (the max of real values is not a sum)")
    if np.any(np.asarray(dilation) != 1):
        problems.append(f"dilation {pair(dilation, 2)} has no NIR pooling equivalent")
    if ceil_mode:
        problems.append("ceil_mode=True has no NIR pooling equivalent")
    if problems:
        suggestion = MAXPOOL_SUGGESTION if not binary_input else "use dilation=1 and ceil_mode=False"
        return MaxPoolRewrite(Gap(name, "MaxPool2d", "unsupported", reason="; ".join(problems), suggestion=suggestion))
    as_int = lambda v: np.asarray(pair(v, 2), dtype=np.int64)  # noqa: E731
    pool = SumPool2d(kernel_size=as_int(kernel_size), stride=as_int(stride), padding=as_int(padding))
    try:
        out_shape = pool.output_shape(tuple(int(n) for n in input_shape))
    except ShapeError as exc:
        raise GraphValidationError(problems=[Problem(f"nodes.{name}", f"max pool: {exc}")]) from None
    sum_name = _fresh(set(taken) | {name}, f"{name}_sum")
    nodes = {sum_name: pool, name: Threshold(threshold=np.full(out_shape, 0.5, dtype=np.float32))}
    gap = Gap(name, "MaxPool2d", "exact", maps_to="SumPool2d + Threshold(0.5) (exact on spikes)")
    return MaxPoolRewrite(gap, nodes, [(sum_name, name)], input=sum_name, output=name)


def emits_binary(graph: Graph, name: str) -> bool:
    """Whether node `name` only ever outputs 0 or 1: a spiking node, or a Flatten/Delay whose
    single input emits binary values."""
    seen: set[str] = set()

    def binary(ref: str) -> bool:
        if ref in seen:
            return True  # a cycle of shape-only nodes adds nothing non-binary
        seen.add(ref)
        found = graph.resolve(ref)
        if found is None:
            return False
        node = found[0].nodes[found[1]]
        if node.type in SPIKING_TYPES:
            return True
        if node.type in ("Flatten", "Delay"):
            incoming = [s for s, d in graph.edges if d == ref]
            return len(incoming) == 1 and binary(incoming[0])
        return False

    return binary(name)


# ----------------------------------------------------------------------------- per backend


def _declared_exact(backend: Backend, node_type: str) -> bool:
    support = backend.support.get(node_type)
    return support is not None and support.status == "exact"


def alternatives(backend: Backend) -> dict[str, str]:
    """Node types this backend runs exactly only through a rewrite -> what they become."""
    via: dict[str, str] = {}
    if not _declared_exact(backend, "AvgPool2d") and _declared_exact(backend, "SumPool2d") and _declared_exact(backend, "Scale"):
        via["AvgPool2d"] = "SumPool2d + Scale"
    if not _declared_exact(backend, "NIRGraph"):
        via["NIRGraph"] = "inlining"
    if _declared_exact(backend, "Scale"):
        for node_type in sorted(set(backend.unit_r) & R_TYPES):
            via[node_type] = f"Scale(r) + {node_type}(r = 1)"
    return via


def _suggest(node_type: str, others: Collection[str]) -> str:
    where = f" ({', '.join(others)} run {node_type} exactly)" if others else ""
    return f"replace the {node_type} node, or convert to a backend that supports it{where}"


@dataclass
class Lowering:
    """What `backend` runs: `graph` with the rewrites applied, one Gap per node of the input
    graph, the rewritten nodes with what each became, and one `NodePlan` per node of `graph`
    (each node planned once)."""

    graph: Graph
    gaps: list[Gap]
    rewritten: dict[str, str]
    plans: dict[str, NodePlan]


def lower(graph: Graph, backend: Backend, policy: Policy, others: Callable[[str], Collection[str]] = lambda t: ()) -> Lowering:
    """Apply the exact rewrites `backend` needs (from its declared handlers: inlining, AvgPool2d
    as SumPool2d + Scale, r into a Scale), plan every node of the result once
    (`Backend.plan_graph`), and report every node of the input graph. `others(node_type)` names
    other backends that run a type exactly (for suggestions)."""
    via = alternatives(backend)
    rewritten: dict[str, str] = {}
    lowered = graph
    if "NIRGraph" in via and any(isinstance(n, Graph) for n in graph.nodes.values()):
        rewritten |= {name: "inlined" for name, node in graph.walk() if isinstance(node, Graph)}
        lowered = flatten(graph)
    avg = {name for name, node in lowered.walk() if node.type == "AvgPool2d" and "AvgPool2d" in via}
    unit_r = {name for name, node in lowered.walk() if node.type in backend.unit_r and node.type in R_TYPES and not np.all(node.r == 1)}
    fold = unit_r if "Scale" in {t for t, s in backend.support.items() if s.status == "exact"} else set()
    if avg:
        lowered = avgpool_to_sumpool(lowered, avg)
        rewritten |= {n: via["AvgPool2d"] for n in sorted(avg)}
    if fold:
        lowered = fold_r(lowered, fold)
        rewritten |= {n: "Scale(r) + r = 1" for n in sorted(fold)}
    plans = backend.plan_graph(lowered, policy)
    gaps: list[Gap] = []
    for name, node in graph.walk():
        plan = plans.get(name)
        if name in avg:
            kh, kw = pair(node.kernel_size, 2)
            gaps.append(Gap(name, node.type, "exact", maps_to=f"SumPool2d + Scale(1/{kh * kw}) (exact rewrite)"))
        elif plan is None:  # inlined: a nested graph or one of its ports
            what = "inlined into the enclosing graph (exact)" if isinstance(node, Graph) else "port of an inlined graph"
            gaps.append(Gap(name, node.type, "exact", maps_to=what))
        elif name in unit_r and plan.support.status != "unsupported":
            support = plan.support
            if name in fold:
                maps_to = f"Scale(r) + {support.maps_to or node.type} with r = 1 (exact rewrite)"
                gaps.append(Gap(name, node.type, support.status, maps_to, support.reason, support.suggestion))
            else:
                reason = f"{backend.name} runs {node.type} with r = 1 only and has no Scale node to carry r"
                suggestion = "multiply r into the weights of the layer feeding this node, if that layer feeds nothing else"
                gaps.append(Gap(name, node.type, "unsupported", reason=reason, suggestion=suggestion))
        else:
            support = plan.support
            suggestion = support.suggestion
            if support.status == "unsupported" and not suggestion:
                suggestion = _suggest(node.type, [n for n in others(node.type) if n != backend.name])
            gaps.append(Gap(name, node.type, support.status, support.maps_to, support.reason, suggestion))
    return Lowering(lowered, gaps, rewritten, plans)


__all__ = [
    "Lowering",
    "MaxPoolRewrite",
    "alternatives",
    "avgpool_to_sumpool",
    "emits_binary",
    "fold_r",
    "lower",
    "maxpool2d",
]
