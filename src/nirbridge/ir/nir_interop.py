"""Conversion between nirbridge nodes and the `nir` package's nodes, both ways, losslessly.

`to_nir(node)` builds the `nir` node (a `nir.NIRGraph` for a graph); `fields_from_nir(nir_graph)`
gives the plain data (node dicts with a `type` key) that `Graph(**fields)` validates. NIR's
own conventions differ from the field names here in a few places (ports and Flatten keep their
shapes in `input_type`/`output_type` dicts; `nir.Conv1d` takes its length as a scalar).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import GraphValidationError, Problem
from .kinds import GRAPH_TYPE


def nir_value(value: Any) -> Any:
    """0-d arrays travel to `nir` as numpy scalars: `nir.write` cannot compress 0-d arrays."""
    return value[()] if isinstance(value, np.ndarray) and value.ndim == 0 else value


def _fields(node) -> dict[str, Any]:
    return {k: getattr(node, k) for k in type(node).model_fields if k != "type"}


def to_nir(node):
    """The `nir` node of a nirbridge node (a `nir.NIRGraph` for a `Graph`)."""
    import nir

    kind = node.type
    if kind == GRAPH_TYPE:
        return nir.NIRGraph(
            nodes={k: to_nir(n) for k, n in node.nodes.items()},
            edges=list(node.edges),
            metadata=dict(node.metadata),
            type_check=False,
        )
    if kind == "Input":
        return nir.Input(input_type={"input": node.shape}, metadata=node.metadata)
    if kind == "Output":
        return nir.Output(output_type={"output": node.shape}, metadata=node.metadata)
    if kind == "Flatten":
        return nir.Flatten(input_type={"input": node.input_type}, start_dim=node.start_dim, end_dim=node.end_dim,
                           metadata=node.metadata)
    if kind in ("Conv1d", "Conv2d"):
        spatial = node.input_shape_value
        if spatial is not None and kind == "Conv1d":
            spatial = spatial.reshape(())  # nir.Conv1d takes the length as a scalar
        fields = {k: nir_value(v) for k, v in _fields(node).items() if k != "input_shape_value"}
        return getattr(nir, kind)(input_shape=nir_value(spatial), **fields)
    if kind in ("SumPool2d", "AvgPool2d"):
        pool = getattr(nir, kind)(kernel_size=nir_value(node.kernel_size), stride=nir_value(node.stride),
                                  padding=nir_value(node.padding))
        pool.metadata = node.metadata
        return pool
    converted = getattr(nir, kind)(**{k: nir_value(v) for k, v in _fields(node).items()})
    if kind in ("CubaLI", "CubaLIF"):
        converted.w_in = nir_value(node.w_in)  # nir multiplies w_in by ones, which can change its dtype
    return converted


def _node_fields(kind: str, node, field_names) -> dict[str, Any]:
    if kind == "Input":
        return {"shape": node.input_type["input"], "metadata": node.metadata}
    if kind == "Output":
        return {"shape": node.output_type["output"], "metadata": node.metadata}
    if kind == "Flatten":
        return {"start_dim": int(node.start_dim), "end_dim": int(node.end_dim),
                "input_type": node.input_type.get("input"), "metadata": node.metadata}
    if kind in ("Conv1d", "Conv2d"):
        names = [k for k in field_names if k != "input_shape_value"]
        fields = {k: getattr(node, k) for k in names} | {"input_shape_value": node.input_shape}
        if fields["bias"] is None:  # NIR's own tests build convolutions without a bias: zero, exactly
            weight = np.asarray(fields["weight"])
            fields["bias"] = np.zeros(weight.shape[:1], weight.dtype if weight.dtype.kind == "f" else np.float32)
        return fields
    return {k: getattr(node, k) for k in field_names}


def fields_from_nir(graph, node_types: dict[str, Any], path: str = "", problems: list[Problem] | None = None) -> dict[str, Any]:
    """Plain data (node dicts with a `type` key) for a `nir.NIRGraph` (or any NIR node, wrapped
    alone). `node_types` maps NIR type names to nirbridge classes; a node of any other class
    (never looked up by name elsewhere) is a problem, all of them raised together."""
    import nir

    top = problems is None
    problems = [] if top else problems
    if not isinstance(graph, nir.NIRGraph):
        graph = nir.NIRGraph(nodes={"node": graph}, edges=[], type_check=False)
    nodes: dict[str, Any] = {}
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        cls = node_types.get(kind)
        if cls is None or type(node) is not getattr(nir, kind, None):
            problems.append(Problem(f"{path}nodes.{name}", f"unknown node type {kind!r}"))
        elif kind == GRAPH_TYPE:
            nodes[name] = {"type": kind, **fields_from_nir(node, node_types, f"{path}nodes.{name}.", problems)}
        else:
            names = [k for k in cls.model_fields if k != "type"]
            nodes[name] = {"type": kind, **_node_fields(kind, node, names)}
            if kind == "Output" and np.size(_known(nodes[name]["shape"])) == 0:
                nodes[name]["shape"] = _upstream_shape(graph, name)
    if top and problems:
        raise GraphValidationError(problems=problems)
    edges = [tuple(x.decode() if isinstance(x, bytes) else x for x in edge) for edge in graph.edges]
    metadata = graph.metadata if isinstance(graph.metadata, dict) else {}
    return {"nodes": nodes, "edges": edges, "metadata": dict(metadata)}


def _known(shape: Any) -> Any:
    return () if shape is None else shape


def _upstream_shape(graph, name: str) -> Any:
    """The shape reaching an Output whose own shape nir left undefined (None, or empty when a
    0-d neuron fed it): the output type `nir` inferred for the nearest node upstream that has
    one, along a chain of single edges; None (refused by the checks) when there is none."""
    current, seen = name, set()
    while current not in seen:
        seen.add(current)
        sources = [src for src, dst in graph.edges if dst == current]
        if len(sources) != 1 or sources[0] not in graph.nodes:
            return None
        current = sources[0]
        shape = (getattr(graph.nodes[current], "output_type", None) or {}).get("output")
        if shape is not None and np.size(shape) > 0:
            return np.asarray(shape, dtype=np.int64)
    return None
