"""`Graph`: a validated NIR graph of named nodes (possibly nested graphs) and directed edges.

A Graph validates itself on construction and reports every problem at once (`checker`), each
with a dotted path. `Graph.from_nir(nir_graph)` and `graph.to_nir()` convert losslessly both ways.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar
from typing import Annotated, Any, Literal, Union

import pydantic
from pydantic import Field

from ..checker import graph_problems
from ..errors import GraphValidationError, Problem
from ..shape_inference import Shapes, format_shape, infer_shapes
from ..table import table
from .base import Node, Shape, ShapeError, as_shape
from .conv import Conv1d, Conv2d
from .delay import Delay
from .flatten import Flatten
from .linear import Affine, Linear, Scale
from .neuron import IF, LI, LIF, CubaLI, CubaLIF, I
from .nir_interop import fields_from_nir, to_nir
from .pooling import AvgPool2d, SumPool2d
from .ports import Input, Output
from .threshold import Threshold

AnyNode = Annotated[
    Union[
        Input, Output, Affine, Linear, Scale, Threshold, Delay, Flatten, Conv1d, Conv2d,
        SumPool2d, AvgPool2d, I, IF, LI, LIF, CubaLI, CubaLIF, "Graph",
    ],
    Field(discriminator="type"),
]

#: set while a Graph is being built, so nested graphs leave validation to the outermost one
_BUILDING: ContextVar[bool] = ContextVar("nirbridge_graph_building", default=False)


class Graph(Node):
    """A NIR graph: named nodes (possibly nested graphs), directed edges, metadata.

    Edges may name nodes inside nested graphs with dotted paths (`sub.lif`); an edge into a
    nested graph by its own name feeds the nested graph's Input node. A node with several
    incoming edges receives their sum. Cycles are allowed (recurrence).
    """

    type: Literal["NIRGraph"] = "NIRGraph"
    nodes: dict[str, AnyNode]
    edges: list[tuple[str, str]]

    def __init__(self, **data: Any) -> None:
        if _BUILDING.get():  # a nested graph: the outermost graph validates the whole tree
            super().__init__(**data)
            return
        token = _BUILDING.set(True)
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            raise GraphValidationError(problems=_pydantic_problems(exc)) from None
        finally:
            _BUILDING.reset(token)
        problems = list(self.problems())
        if problems:
            raise GraphValidationError(problems=problems)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Graph:
        """Build from plain data (node dicts with a `type` key); validates everything."""
        if not isinstance(data, dict):
            raise GraphValidationError(problems=[Problem("", f"a graph must be a mapping of nodes, edges and metadata, got {type(data).__name__}")])
        return cls(**{k: v for k, v in data.items() if k != "type"})

    # -- structure --------------------------------------------------------------
    def resolve(self, name: str) -> tuple[Graph, str] | None:
        """Find the graph holding node `name` (exact name first, then a dotted path)."""
        if name in self.nodes:
            return self, name
        head, sep, rest = name.partition(".")
        while sep:
            sub = self.nodes.get(head)
            if isinstance(sub, Graph):
                found = sub.resolve(rest)
                if found:
                    return found
            more, sep, rest = rest.partition(".")
            head = f"{head}.{more}"
        return None

    def inputs(self) -> dict[str, Input]:
        return {k: n for k, n in self.nodes.items() if isinstance(n, Input)}

    def outputs(self) -> dict[str, Output]:
        return {k: n for k, n in self.nodes.items() if isinstance(n, Output)}

    def input_shape(self) -> Shape | None:
        ins = list(self.inputs().values())
        return as_shape(ins[0].shape) if len(ins) == 1 else None

    def output_shape(self, input_shape: Shape) -> Shape:
        outs = list(self.outputs().values())
        if len(outs) != 1:
            raise ShapeError(f"a nested graph used as a node needs exactly one Output, has {len(outs)}")
        return as_shape(outs[0].shape)

    def parameter_count(self) -> int:
        return sum(n.parameter_count() for n in self.nodes.values())

    def walk(self, prefix: str = "") -> Iterator[tuple[str, Node]]:
        """Every node, depth first, with its dotted name; nested graphs included."""
        for name, node in self.nodes.items():
            yield prefix + name, node
            if isinstance(node, Graph):
                yield from node.walk(f"{prefix}{name}.")

    def shapes(self) -> Shapes:
        """(input shape, output shape) of every top-level node, inferred through the edges."""
        return infer_shapes(self)[0]

    # -- validation -------------------------------------------------------------
    def problems(self) -> Iterator[Problem]:
        yield from graph_problems(self)

    # -- NIR --------------------------------------------------------------------
    def to_nir(self):
        """The `nir.NIRGraph` of this graph (not type-checked by nir: nir 1.0.8 rejects valid
        graphs with 0-d parameters or grouped convolutions)."""
        return to_nir(self)

    @classmethod
    def from_nir(cls, graph) -> Graph:
        """Convert a `nir.NIRGraph` (or any NIR node, wrapped alone) into a validated Graph."""
        return cls(**fields_from_nir(graph, NODE_TYPES))

    # -- reporting --------------------------------------------------------------
    def summary(self) -> str:
        """A table of nodes: name, type, input and output shapes, parameter count."""
        rows = [("node", "type", "input", "output", "params")]

        def add(graph: Graph, prefix: str) -> None:
            shapes = graph.shapes()
            for name, node in graph.nodes.items():
                i, o = shapes.get(name, (None, None))
                rows.append((prefix + name, node.type, format_shape(i), format_shape(o), str(node.parameter_count())))
                if isinstance(node, Graph):
                    add(node, f"{prefix}{name}.")

        add(self, "")
        totals = f"{sum(1 for _ in self.walk())} nodes, {len(self.edges)} edges, {self.parameter_count()} parameters"
        return table(rows) + "\n" + totals

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """JSON schema of the graph model (arrays as nested lists)."""
        return cls.model_json_schema()


#: NIR type name -> nirbridge class, for every primitive and the nested graph
NODE_TYPES: dict[str, type[Node]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        Input, Output, Affine, Linear, Scale, Threshold, Delay, Flatten, Conv1d, Conv2d,
        SumPool2d, AvgPool2d, I, IF, LI, LIF, CubaLI, CubaLIF, Graph,
    )
}
Graph.model_rebuild()


def _pydantic_problems(exc: pydantic.ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = err["loc"]
        path = ""
        for i, part in enumerate(loc):
            if isinstance(part, int):
                path += f"[{part}]"
            elif i >= 2 and loc[i - 2] == "nodes" and part in NODE_TYPES:
                continue  # the discriminator tag pydantic inserts after a node name
            else:
                path += f".{part}" if path else str(part)
        kind, msg = err["type"], err["msg"]
        if kind == "union_tag_invalid":
            msg = f"unknown node type {err.get('ctx', {}).get('tag')!r}"
        elif kind == "union_tag_not_found":
            msg = "missing node type"
        elif kind == "extra_forbidden":
            msg = "unknown key"
        elif kind == "missing":
            msg = "missing"
        elif kind == "is_instance_of":
            msg = f"must be an array, got {type(err.get('input')).__name__}"
        problems.append(Problem(path, msg))
    return problems
