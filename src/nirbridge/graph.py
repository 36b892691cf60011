"""The validated graph model: one pydantic model per NIR primitive, plus `Graph`.

Arrays stay numpy arrays with their dtype (no copies). A `Graph` validates itself on
construction and reports every problem at once, each with a dotted path
(`nodes.lif1.tau[3]: must be > 0, got -0.02`). Shapes exclude the batch dimension, as in NIR;
0-d (scalar) neuron parameters, as older NIR files store them, apply to any input shape.
Metadata values are kept in one form: Python scalars, str, numpy arrays, lists of str, dicts.

`Graph.from_nir(nir_graph)` and `graph.to_nir()` convert losslessly both ways.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Annotated, Any, ClassVar, Literal, Type, Union

import numpy as np
import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

from .errors import GraphValidationError, Problem

Shape = tuple[int, ...]


def _as_array(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple, int, float, np.generic)) and not isinstance(value, bool):
        return np.asarray(value)
    return value  # left for the type check below (strings, None, ...)


def _array_json(value: np.ndarray) -> Any:
    return value.tolist()


def _plain(value: Any) -> Any:
    """Metadata values in one canonical form, whoever produced them: numpy scalars and 0-d
    arrays become Python scalars, bytes become str, string arrays become lists of str."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (np.generic, np.ndarray)) and value.ndim == 0:
        return _plain(value.item())
    return value


Metadata = Annotated[dict[str, Any], BeforeValidator(lambda v: _plain(v) if isinstance(v, dict) else v)]


def _nir_value(value: Any) -> Any:
    """0-d arrays travel to `nir` as numpy scalars: `nir.write` cannot compress 0-d arrays."""
    return value[()] if isinstance(value, np.ndarray) and value.ndim == 0 else value


Array = Annotated[
    np.ndarray,
    BeforeValidator(_as_array),
    PlainSerializer(_array_json, when_used="json"),
    WithJsonSchema({"type": "array", "description": "n-dimensional numeric array (nested lists)"}),
]
Padding = Annotated[
    Union[Literal["same", "valid"], np.ndarray],
    BeforeValidator(_as_array),
    PlainSerializer(lambda v: v if isinstance(v, str) else v.tolist(), when_used="json"),
    WithJsonSchema({"oneOf": [{"enum": ["same", "valid"]}, {"type": "array"}]}),
]


def _arrays_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.tobytes() == b.tobytes()
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_arrays_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_arrays_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


#: set while a Graph is being built, so nested graphs leave validation to the outermost one
_BUILDING: ContextVar[bool] = ContextVar("nirbridge_graph_building", default=False)


class ShapeError(Exception):
    """Internal: a node cannot take the shape it is given."""


# ----------------------------------------------------------------------------- nodes


class Node(BaseModel):
    """Base of every NIR primitive. Subclasses declare `type`, their array fields and, where
    shapes are not fixed by parameters, how an input shape maps to an output shape."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    metadata: Metadata = Field(default_factory=dict)

    #: fields holding real-valued parameters (float arrays, finite)
    float_fields: ClassVar[tuple[str, ...]] = ()
    #: fields holding integer arrays (shapes, strides)
    int_fields: ClassVar[tuple[str, ...]] = ()
    #: fields that must be strictly positive
    positive_fields: ClassVar[tuple[str, ...]] = ()
    #: float fields that must all share one shape (neuron parameters)
    same_shape_fields: ClassVar[tuple[str, ...]] = ()

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return all(
            _arrays_equal(getattr(self, k), getattr(other, k)) for k in type(self).model_fields
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def kind(self) -> str:
        return self.type  # type: ignore[attr-defined]

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: v for k in type(self).model_fields if isinstance(v := getattr(self, k), np.ndarray)}

    def parameter_count(self) -> int:
        return int(sum(a.size for k, a in self.arrays().items() if k in self.float_fields))

    # -- shapes -----------------------------------------------------------------
    def input_shape(self) -> Shape | None:
        """The input shape the node's own parameters fix, or None if it takes any."""
        shape = self._param_shape()
        return shape

    def output_shape(self, input_shape: Shape) -> Shape:
        """Output shape for a given input shape; raises ShapeError when impossible."""
        return input_shape

    def _param_shape(self) -> Shape | None:
        """The shape the parameters fix; None for 0-d (scalar) parameters, which broadcast."""
        if self.same_shape_fields:
            shape = getattr(self, self.same_shape_fields[0]).shape
            return tuple(int(n) for n in shape) if shape else None
        return None

    # -- validation -------------------------------------------------------------
    def problems(self) -> Iterator[Problem]:
        """Every problem of this node alone, with paths relative to the node."""
        for name in self.float_fields + self.int_fields:
            value = getattr(self, name)
            if value is None or isinstance(value, str):
                continue
            if not isinstance(value, np.ndarray):
                yield Problem(name, f"must be an array, got {type(value).__name__}")
                continue
            kind = value.dtype.kind
            if name in self.float_fields and kind != "f":
                yield Problem(name, f"must be a float array, got dtype {value.dtype}")
                continue
            if name in self.int_fields and kind not in "iu":
                yield Problem(name, f"must be an integer array, got dtype {value.dtype}")
                continue
            if value.size == 0:
                continue
            # one reduction first: a NaN or inf makes the sum non-finite (so does overflow, rarely:
            # then the elementwise test decides); no temporary array when all is well
            if kind == "f" and not _all_finite(value):
                bad = ~np.isfinite(value)
                yield Problem(f"{name}{_first_index(bad)}", f"must be finite, got {value[tuple(_idx(bad))]!s}")
                continue
            if name in self.positive_fields and not value.min() > 0:
                bad = ~(value > 0)
                yield Problem(f"{name}{_first_index(bad)}", f"must be > 0, got {value[tuple(_idx(bad))]!s}")
        if self.same_shape_fields:
            ref = self.same_shape_fields[0]
            ref_shape = getattr(self, ref).shape
            for name in self.same_shape_fields[1:]:
                value = getattr(self, name)
                if isinstance(value, np.ndarray) and value.shape != ref_shape:
                    yield Problem(name, f"shape {value.shape} differs from {ref} shape {ref_shape}")

    # -- NIR --------------------------------------------------------------------
    def to_nir(self):
        import nir

        fields = {k: _nir_value(getattr(self, k)) for k in type(self).model_fields if k != "type"}
        return getattr(nir, self.type)(**fields)

    @classmethod
    def _fields_from_nir(cls, node) -> dict[str, Any]:
        return {k: getattr(node, k) for k in cls.model_fields if k != "type"}


def _all_finite(value: np.ndarray) -> bool:
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(value.sum()) or np.isfinite(value).all())


def _idx(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.argwhere(mask)[0]] if mask.ndim else []


def _first_index(mask: np.ndarray) -> str:
    idx = _idx(mask)
    return "[" + ", ".join(map(str, idx)) + "]" if idx else ""


def _as_shape(value: np.ndarray | None) -> Shape | None:
    if value is None:
        return None
    return tuple(int(n) for n in np.atleast_1d(value))


def _shape_problems(name: str, value: np.ndarray) -> Iterator[Problem]:
    """A shape field: a 1-d integer array of sizes >= 1 (the dtype is checked elsewhere)."""
    if value.dtype.kind not in "iu":
        return
    if value.ndim != 1 or value.size == 0:
        yield Problem(name, f"must be a non-empty 1-d array of sizes, got shape {value.shape}")
    elif (value < 1).any():
        yield Problem(name, f"sizes must be >= 1, got {value.tolist()}")


def _pair(value: Any, n: int) -> tuple[int, ...]:
    arr = np.atleast_1d(np.asarray(value))
    if arr.size == 1:
        return tuple(int(arr[0]) for _ in range(n))
    if arr.size != n:
        raise ShapeError(f"expected {n} values, got {arr.size}")
    return tuple(int(x) for x in arr)


class _Port(Node):
    """A graph's Input or Output: a fixed shape (without batch)."""

    shape: Array
    int_fields: ClassVar = ("shape",)

    def input_shape(self) -> Shape | None:
        return _as_shape(self.shape)

    def problems(self):
        yield from super().problems()
        yield from _shape_problems("shape", self.shape)


class Input(_Port):
    """Graph input of a fixed shape (without batch)."""

    type: Literal["Input"] = "Input"

    def to_nir(self):
        import nir

        return nir.Input(input_type={"input": self.shape}, metadata=self.metadata)

    @classmethod
    def _fields_from_nir(cls, node):
        return {"shape": node.input_type["input"], "metadata": node.metadata}


class Output(_Port):
    """Graph output of a fixed shape (without batch)."""

    type: Literal["Output"] = "Output"

    def to_nir(self):
        import nir

        return nir.Output(output_type={"output": self.shape}, metadata=self.metadata)

    @classmethod
    def _fields_from_nir(cls, node):
        return {"shape": node.output_type["output"], "metadata": node.metadata}


class Affine(Node):
    """y = W x + b, W of shape (out, in)."""

    type: Literal["Affine"] = "Affine"
    weight: Array
    bias: Array
    float_fields: ClassVar = ("weight", "bias")

    def input_shape(self) -> Shape | None:
        return (int(self.weight.shape[-1]),) if self.weight.ndim >= 2 else None

    def output_shape(self, input_shape: Shape) -> Shape:
        return (int(self.weight.shape[-2]),)

    def problems(self):
        yield from super().problems()
        if self.weight.ndim != 2:
            yield Problem("weight", f"must be 2-dimensional (out, in), got shape {self.weight.shape}")
        elif self.bias.shape != self.weight.shape[:1]:
            yield Problem("bias", f"shape {self.bias.shape} does not match weight rows ({self.weight.shape[0]},)")


class Linear(Node):
    """y = W x, W of shape (out, in)."""

    type: Literal["Linear"] = "Linear"
    weight: Array
    float_fields: ClassVar = ("weight",)

    input_shape = Affine.input_shape
    output_shape = Affine.output_shape

    def problems(self):
        yield from super().problems()
        if self.weight.ndim != 2:
            yield Problem("weight", f"must be 2-dimensional (out, in), got shape {self.weight.shape}")


class Scale(Node):
    """y = s * x, elementwise."""

    type: Literal["Scale"] = "Scale"
    scale: Array
    float_fields: ClassVar = ("scale",)
    same_shape_fields: ClassVar = ("scale",)


class Threshold(Node):
    """y = 1 if x > threshold else 0 (Heaviside)."""

    type: Literal["Threshold"] = "Threshold"
    threshold: Array
    float_fields: ClassVar = ("threshold",)
    same_shape_fields: ClassVar = ("threshold",)


class Delay(Node):
    """y(t) = x(t - delay), delay in seconds per element."""

    type: Literal["Delay"] = "Delay"
    delay: Array
    float_fields: ClassVar = ("delay",)
    same_shape_fields: ClassVar = ("delay",)

    def problems(self):
        yield from super().problems()
        if self.delay.dtype.kind == "f" and np.isfinite(self.delay).all() and (self.delay < 0).any():
            bad = self.delay < 0
            yield Problem(f"delay{_first_index(bad)}", f"must be >= 0, got {self.delay[tuple(_idx(bad))]!s}")


class Flatten(Node):
    """Flattens dimensions start_dim..end_dim of the (batch-free) input."""

    type: Literal["Flatten"] = "Flatten"
    start_dim: int = 1
    end_dim: int = -1
    input_type: Array | None = None

    def input_shape(self) -> Shape | None:
        return _as_shape(self.input_type)

    def output_shape(self, input_shape: Shape) -> Shape:
        n = len(input_shape)
        start = self.start_dim + n if self.start_dim < 0 else self.start_dim
        end = self.end_dim + n if self.end_dim < 0 else self.end_dim
        if not (0 <= start <= end < n):
            raise ShapeError(f"start_dim={self.start_dim}, end_dim={self.end_dim} invalid for input shape {input_shape}")
        return input_shape[:start] + (math.prod(input_shape[start : end + 1]),) + input_shape[end + 1 :]

    def problems(self):
        yield from super().problems()
        if self.input_type is not None:
            if self.input_type.dtype.kind not in "iu":
                yield Problem("input_type", f"must be an integer array, got dtype {self.input_type.dtype}")
            else:
                yield from _shape_problems("input_type", self.input_type)

    def to_nir(self):
        import nir

        return nir.Flatten(
            input_type={"input": self.input_type},
            start_dim=self.start_dim,
            end_dim=self.end_dim,
            metadata=self.metadata,
        )

    @classmethod
    def _fields_from_nir(cls, node):
        return {
            "start_dim": int(node.start_dim),
            "end_dim": int(node.end_dim),
            "input_type": node.input_type.get("input"),
            "metadata": node.metadata,
        }


def _conv_out(length: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


class _ConvBase(Node):
    weight: Array
    bias: Array
    stride: Array
    padding: Padding
    dilation: Array
    groups: Array
    input_shape_: ClassVar[str] = "input_shape"
    ndim: ClassVar[int] = 1
    float_fields: ClassVar = ("weight", "bias")
    int_fields: ClassVar = ("stride", "dilation", "groups")

    def input_shape(self) -> Shape | None:  # type: ignore[override]
        spatial = getattr(self, "input_shape_value")
        if spatial is None or self.weight.ndim != self.ndim + 2:
            return None
        return (int(self.weight.shape[1] * int(self.groups)),) + _pair(spatial, self.ndim)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != self.ndim + 1:
            raise ShapeError(f"expects (channels, {self.ndim} spatial dims), got {input_shape}")
        channels = int(self.weight.shape[1] * int(self.groups))
        if input_shape[0] != channels:
            raise ShapeError(f"expects {channels} input channels, got shape {input_shape}")
        kernel = self.weight.shape[2:]
        stride, dilation = _pair(self.stride, self.ndim), _pair(self.dilation, self.ndim)
        if isinstance(self.padding, str):
            if self.padding == "same":
                return (int(self.weight.shape[0]),) + tuple(input_shape[1:])
            padding = (0,) * self.ndim
        else:
            padding = _pair(self.padding, self.ndim)
        spatial = tuple(
            _conv_out(n, k, s, p, d) for n, k, s, p, d in zip(input_shape[1:], kernel, stride, padding, dilation)
        )
        if min(spatial) < 1:
            raise ShapeError(f"input {input_shape} too small for kernel {tuple(kernel)}")
        return (int(self.weight.shape[0]),) + spatial

    def problems(self):
        yield from super().problems()
        w = self.weight
        if w.ndim != self.ndim + 2:
            yield Problem("weight", f"must have {self.ndim + 2} dimensions, got shape {w.shape}")
            return
        if self.groups.dtype.kind not in "iu":
            pass  # reported as a dtype problem above
        elif self.groups.size != 1 or int(self.groups) < 1:
            yield Problem("groups", f"must be a positive integer, got {self.groups.tolist()}")
        elif w.shape[0] % int(self.groups):
            yield Problem("groups", f"{int(self.groups)} does not divide {w.shape[0]} output channels")
        if self.bias.shape != (w.shape[0],):
            yield Problem("bias", f"shape {self.bias.shape} does not match {w.shape[0]} output channels")
        same = isinstance(self.padding, str) and self.padding == "same"
        if same and self.stride.dtype.kind in "iu" and (self.stride != 1).any():
            yield Problem("padding", f"'same' needs stride 1, got stride {self.stride.tolist()}")
        for name in ("stride", "dilation") + (() if isinstance(self.padding, str) else ("padding",)):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.dtype.kind not in "iu":
                if name == "padding":
                    yield Problem(name, f"must be an integer array or 'same'/'valid', got {value!r}")
                continue
            if value.size not in (1, self.ndim):
                yield Problem(name, f"must have 1 or {self.ndim} values, got {value.size}")
            elif (value < (0 if name == "padding" else 1)).any():
                yield Problem(name, f"must be {'>= 0' if name == 'padding' else '>= 1'}, got {value.tolist()}")
        spatial = self.input_shape_value
        if spatial is not None:
            if spatial.dtype.kind not in "iu":
                yield Problem("input_shape", f"must be an integer array, got dtype {spatial.dtype}")
            elif spatial.ndim > 1 or spatial.size != self.ndim or (self.ndim == 2 and spatial.ndim != 1):
                yield Problem("input_shape", f"must hold {self.ndim} spatial size(s), got shape {spatial.shape}")
            elif (spatial < 1).any():
                yield Problem("input_shape", f"sizes must be >= 1, got {spatial.tolist()}")

    def to_nir(self):
        import nir

        spatial = self.input_shape_value
        if spatial is not None and self.ndim == 1:
            spatial = spatial.reshape(())  # nir.Conv1d takes the length as a scalar
        return getattr(nir, self.type)(
            input_shape=_nir_value(spatial),
            weight=self.weight,
            bias=self.bias,
            stride=_nir_value(self.stride),
            padding=_nir_value(self.padding),
            dilation=_nir_value(self.dilation),
            groups=_nir_value(self.groups),
            metadata=self.metadata,
        )

    @classmethod
    def _fields_from_nir(cls, node):
        spatial = node.input_shape
        return {
            "weight": node.weight,
            "bias": node.bias,
            "stride": node.stride,
            "padding": node.padding,
            "dilation": node.dilation,
            "groups": node.groups,
            "input_shape_value": None if spatial is None else spatial,
            "metadata": node.metadata,
        }


class Conv1d(_ConvBase):
    """1-d convolution; weight (C_out, C_in/groups, K); input (C_in, N)."""

    type: Literal["Conv1d"] = "Conv1d"
    input_shape_value: Array | None = Field(default=None, alias="input_shape")
    model_config = ConfigDict(populate_by_name=True)
    ndim: ClassVar[int] = 1


class Conv2d(_ConvBase):
    """2-d convolution; weight (C_out, C_in/groups, KH, KW); input (C_in, H, W)."""

    type: Literal["Conv2d"] = "Conv2d"
    input_shape_value: Array | None = Field(default=None, alias="input_shape")
    model_config = ConfigDict(populate_by_name=True)
    ndim: ClassVar[int] = 2


class _Pool2d(Node):
    kernel_size: Array
    stride: Array
    padding: Array
    int_fields: ClassVar = ("kernel_size", "stride", "padding")

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ShapeError(f"expects (channels, height, width), got {input_shape}")
        k, s, p = (_pair(getattr(self, n), 2) for n in ("kernel_size", "stride", "padding"))
        spatial = tuple(_conv_out(n, k[i], s[i], p[i], 1) for i, n in enumerate(input_shape[1:]))
        if min(spatial) < 1:
            raise ShapeError(f"input {input_shape} too small for kernel {k}")
        return (input_shape[0],) + spatial

    def problems(self):
        yield from super().problems()
        for name in self.int_fields:
            value = getattr(self, name)
            if value.dtype.kind in "iu":
                if value.size not in (1, 2):
                    yield Problem(name, f"must have 1 or 2 values, got {value.size}")
                elif (value < (0 if name == "padding" else 1)).any():
                    yield Problem(name, f"must be {'>= 0' if name == 'padding' else '>= 1'}, got {value.tolist()}")

    def to_nir(self):
        import nir

        node = getattr(nir, self.type)(
            kernel_size=_nir_value(self.kernel_size), stride=_nir_value(self.stride), padding=_nir_value(self.padding)
        )
        node.metadata = self.metadata
        return node


class SumPool2d(_Pool2d):
    """Sum over each kernel window."""

    type: Literal["SumPool2d"] = "SumPool2d"


class AvgPool2d(_Pool2d):
    """Mean over each kernel window (padding counts as zeros)."""

    type: Literal["AvgPool2d"] = "AvgPool2d"


class I(Node):  # noqa: E742
    """Integrator: dv/dt = r I."""

    type: Literal["I"] = "I"
    r: Array
    float_fields: ClassVar = ("r",)
    same_shape_fields: ClassVar = ("r",)


class IF(Node):
    """Integrate-and-fire: dv/dt = r I; spike when v > v_threshold, then v = v_reset."""

    type: Literal["IF"] = "IF"
    r: Array
    v_threshold: Array
    v_reset: Array
    float_fields: ClassVar = ("r", "v_threshold", "v_reset")
    same_shape_fields: ClassVar = float_fields


class LI(Node):
    """Leaky integrator: tau dv/dt = (v_leak - v) + r I."""

    type: Literal["LI"] = "LI"
    tau: Array
    r: Array
    v_leak: Array
    float_fields: ClassVar = ("tau", "r", "v_leak")
    positive_fields: ClassVar = ("tau",)
    same_shape_fields: ClassVar = float_fields


class LIF(Node):
    """Leaky integrate-and-fire: tau dv/dt = (v_leak - v) + r I; spike when v > v_threshold."""

    type: Literal["LIF"] = "LIF"
    tau: Array
    r: Array
    v_leak: Array
    v_threshold: Array
    v_reset: Array
    float_fields: ClassVar = ("tau", "r", "v_leak", "v_threshold", "v_reset")
    positive_fields: ClassVar = ("tau",)
    same_shape_fields: ClassVar = float_fields


class CubaLI(Node):
    """Current-based LI: tau_syn dI/dt = -I + w_in S; tau_mem dv/dt = (v_leak - v) + r I."""

    type: Literal["CubaLI"] = "CubaLI"
    tau_syn: Array
    tau_mem: Array
    r: Array
    v_leak: Array
    w_in: Array
    float_fields: ClassVar = ("tau_syn", "tau_mem", "r", "v_leak", "w_in")
    positive_fields: ClassVar = ("tau_syn", "tau_mem")
    same_shape_fields: ClassVar = float_fields

    def to_nir(self):
        node = super().to_nir()
        node.w_in = _nir_value(self.w_in)  # nir multiplies w_in by ones, which can change its dtype
        return node


class CubaLIF(Node):
    """Current-based LIF: CubaLI plus spike when v > v_threshold, then v = v_reset."""

    type: Literal["CubaLIF"] = "CubaLIF"
    tau_syn: Array
    tau_mem: Array
    r: Array
    v_leak: Array
    v_threshold: Array
    v_reset: Array
    w_in: Array
    float_fields: ClassVar = ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in")
    positive_fields: ClassVar = ("tau_syn", "tau_mem")
    same_shape_fields: ClassVar = float_fields

    def to_nir(self):
        node = super().to_nir()
        node.w_in = _nir_value(self.w_in)  # nir multiplies w_in by ones, which can change its dtype
        return node


NEURON_TYPES = frozenset({"I", "IF", "LI", "LIF", "CubaLI", "CubaLIF"})
SPIKING_TYPES = frozenset({"IF", "LIF", "CubaLIF", "Threshold"})

AnyNode = Annotated[
    Union[
        Input, Output, Affine, Linear, Scale, Threshold, Delay, Flatten, Conv1d, Conv2d,
        SumPool2d, AvgPool2d, I, IF, LI, LIF, CubaLI, CubaLIF, "Graph",
    ],
    Field(discriminator="type"),
]


# ----------------------------------------------------------------------------- graph


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
        return _as_shape(ins[0].shape) if len(ins) == 1 else None

    def output_shape(self, input_shape: Shape) -> Shape:
        outs = list(self.outputs().values())
        if len(outs) != 1:
            raise ShapeError(f"a nested graph used as a node needs exactly one Output, has {len(outs)}")
        return _as_shape(outs[0].shape)

    def parameter_count(self) -> int:
        return sum(n.parameter_count() for n in self.nodes.values())

    def walk(self, prefix: str = "") -> Iterator[tuple[str, Node]]:
        """Every node, depth first, with its dotted name; nested graphs included."""
        for name, node in self.nodes.items():
            yield prefix + name, node
            if isinstance(node, Graph):
                yield from node.walk(f"{prefix}{name}.")

    def shapes(self) -> dict[str, tuple[Shape | None, Shape | None]]:
        """(input shape, output shape) of every top-level node, inferred through the edges."""
        shapes, _ = _infer_shapes(self)
        return shapes

    # -- validation -------------------------------------------------------------
    def problems(self) -> Iterator[Problem]:
        yield from _graph_problems(self, depth=0)

    # -- NIR --------------------------------------------------------------------
    def to_nir(self):
        import nir

        return nir.NIRGraph(
            nodes={k: n.to_nir() for k, n in self.nodes.items()},
            edges=list(self.edges),
            metadata=dict(self.metadata),
            type_check=False,
        )

    @classmethod
    def from_nir(cls, graph) -> Graph:
        """Convert a `nir.NIRGraph` (or any NIR node, wrapped alone) into a validated Graph."""
        return cls(**_graph_fields_from_nir(graph))

    @classmethod
    def _fields_from_nir(cls, graph):
        return _graph_fields_from_nir(graph)

    # -- reporting --------------------------------------------------------------
    def summary(self) -> str:
        """A table of nodes: name, type, input and output shapes, parameter count."""
        rows = [("node", "type", "input", "output", "params")]
        shapes = self.shapes()

        def add(graph: Graph, prefix: str, shapes) -> None:
            for name, node in graph.nodes.items():
                i, o = shapes.get(name, (None, None))
                rows.append((prefix + name, node.type, _fmt(i), _fmt(o), str(node.parameter_count())))
                if isinstance(node, Graph):
                    add(node, f"{prefix}{name}.", node.shapes())

        add(self, "", shapes)
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"{sum(1 for _ in self.walk())} nodes, {len(self.edges)} edges, {self.parameter_count()} parameters")
        return "\n".join(lines)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """JSON schema of the graph model (arrays as nested lists)."""
        return cls.model_json_schema()


def _fmt(shape: Shape | None) -> str:
    return "?" if shape is None else str(tuple(shape))


NODE_TYPES: dict[str, Type[Node]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        Input, Output, Affine, Linear, Scale, Threshold, Delay, Flatten, Conv1d, Conv2d,
        SumPool2d, AvgPool2d, I, IF, LI, LIF, CubaLI, CubaLIF, Graph,
    )
}
Graph.model_rebuild()


def _graph_fields_from_nir(graph, path: str = "", problems: list[Problem] | None = None) -> dict[str, Any]:
    """Plain data (node dicts with a `type` key) for a `nir.NIRGraph`; unknown node types are
    collected in `problems` (raised together at the top)."""
    import nir

    top = problems is None
    problems = [] if top else problems
    if not isinstance(graph, nir.NIRGraph):
        graph = nir.NIRGraph(nodes={"node": graph}, edges=[], type_check=False)
    nodes: dict[str, Any] = {}
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        cls = NODE_TYPES.get(kind)
        if cls is None or type(node) is not getattr(nir, kind, None):
            problems.append(Problem(f"{path}nodes.{name}", f"unknown node type {kind!r}"))
        elif cls is Graph:
            nodes[name] = {"type": kind, **_graph_fields_from_nir(node, f"{path}nodes.{name}.", problems)}
        else:
            nodes[name] = {"type": kind, **cls._fields_from_nir(node)}
    if top and problems:
        raise GraphValidationError(problems=problems)
    edges = [tuple(x.decode() if isinstance(x, bytes) else x for x in edge) for edge in graph.edges]
    metadata = graph.metadata if isinstance(graph.metadata, dict) else {}
    return {"nodes": nodes, "edges": edges, "metadata": dict(metadata)}


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


# ----------------------------------------------------------------------------- validation


def _split(graph: Graph, ref: str) -> tuple[str, str] | None:
    """(top-level node, rest) that an edge endpoint names: exact names first, then dotted
    paths into nested graphs (`sub.lif` -> ("sub", "lif")). None if nothing matches."""
    if ref in graph.nodes:
        return ref, ""
    head, sep, rest = ref.partition(".")
    while sep:
        sub = graph.nodes.get(head)
        if isinstance(sub, Graph) and sub.resolve(rest) is not None:
            return head, rest
        more, sep, rest = rest.partition(".")
        head = f"{head}.{more}"
    return None


def _endpoint_shape(graph: Graph, ref: str, out: bool) -> Shape | None:
    """Output (out=True) or input shape of the node an endpoint names inside nested graphs."""
    found = _split(graph, ref)
    if found is None:
        return None
    name, rest = found
    node = graph.nodes[name]
    if rest:
        return _endpoint_shape(node, rest, out) if isinstance(node, Graph) else None
    shapes, _ = _infer_shapes(graph, set())
    return shapes[name][1 if out else 0]


def _infer_shapes(
    graph: Graph, bad: set[str] | None = None
) -> tuple[dict[str, tuple[Shape | None, Shape | None]], list[Problem]]:
    """Propagate shapes along edges to a fixed point. Returns per-node (in, out) shapes of the
    top-level nodes and the problems found (edge mismatches, impossible shapes). Nodes in
    `bad` (invalid on their own) take part with unknown shapes."""
    bad = bad or set()
    problems: list[Problem] = []
    ins: dict[str, Shape | None] = {}
    outs: dict[str, Shape | None] = {}

    def run(name: str, shape: Shape) -> None:
        node = graph.nodes[name]
        try:
            outs[name] = node.output_shape(shape)
        except ShapeError as exc:
            if not isinstance(node, Graph):  # nested graphs: reported per edge below
                problems.append(Problem(f"nodes.{name}", str(exc)))

    for name, node in graph.nodes.items():
        ins[name] = outs[name] = None
        if name in bad:
            continue
        ins[name] = node.input_shape()
        if ins[name] is not None:
            run(name, ins[name])
    ends = [(_split(graph, s), _split(graph, d)) for s, d in graph.edges]
    direct = [(s[0], d[0]) for s, d in ends if s and d and not s[1] and not d[1]]
    changed = True
    while changed:
        changed = False
        for s, d in direct:
            if outs[s] is not None and ins[d] is None and d not in bad:
                ins[d] = outs[s]
                run(d, ins[d])
                changed = True
    for i, ((src, dst), (s, d)) in enumerate(zip(graph.edges, ends)):
        if not s or not d or s[0] in bad or d[0] in bad:
            continue
        for (name, rest), role in ((s, "Output"), (d, "Input")):
            node = graph.nodes[name]
            if not rest and isinstance(node, Graph):
                n = len(node.outputs() if role == "Output" else node.inputs())
                if n != 1:
                    msg = f"nested graph {name!r} has {n} {role} nodes; name one as '{name}.<node>'"
                    problems.append(Problem(f"edges[{i}]", msg))
        out = outs[s[0]] if not s[1] else _endpoint_shape(graph.nodes[s[0]], s[1], out=True)
        into = ins[d[0]] if not d[1] else _endpoint_shape(graph.nodes[d[0]], d[1], out=False)
        if out is not None and into is not None and tuple(out) != tuple(into):
            problems.append(Problem(f"edges[{i}]", f"{src} outputs shape {_fmt(out)} but {dst} takes {_fmt(into)}"))
    return {n: (ins[n], outs[n]) for n in graph.nodes}, problems


MAX_DEPTH = 32


def _bad_name(name: str) -> bool:
    return not name or "/" in name or "\x00" in name or name == "."


def _graph_problems(
    graph: Graph, depth: int, entered: frozenset[str] = frozenset(), left: frozenset[str] = frozenset()
) -> Iterator[Problem]:
    """Every problem of `graph`. `entered`/`left`: names (possibly dotted) of nodes inside this
    graph that edges of an enclosing graph reach into or start from."""
    if depth > MAX_DEPTH:
        yield Problem("", f"nesting deeper than {MAX_DEPTH} levels")
        return
    touched_in: set[str] = set()
    touched_out: set[str] = set()
    inner_in: dict[str, set[str]] = {}
    inner_out: dict[str, set[str]] = {}

    def touch(ref: str, source: bool) -> tuple[str, str] | None:
        found = _split(graph, ref)
        if found is not None:
            name, rest = found
            (touched_out if source else touched_in).add(name)
            if rest:
                (inner_out if source else inner_in).setdefault(name, set()).add(rest)
        return found

    for ref in entered:
        touch(ref, source=False)
    for ref in left:
        touch(ref, source=True)
    edge_problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    edges_ok = True
    for i, edge in enumerate(graph.edges):
        for role, ref in (("source", edge[0]), ("destination", edge[1])):
            found = touch(ref, source=role == "source")
            if found is None:
                edges_ok = False
                names = ", ".join(sorted(graph.nodes))
                edge_problems.append(Problem(f"edges[{i}]", f"{role} {ref!r} does not exist (nodes: {names})"))
                continue
            name, rest = found
            node = None if rest else graph.nodes[name]  # dotted names may enter a nested Input
            if role == "destination" and isinstance(node, Input):
                edge_problems.append(Problem(f"edges[{i}]", f"Input node {name!r} cannot receive edges"))
            elif role == "source" and isinstance(node, Output):
                edge_problems.append(Problem(f"edges[{i}]", f"Output node {name!r} cannot send edges"))
        if edge in seen:
            edge_problems.append(Problem(f"edges[{i}]", f"duplicate edge {edge[0]} -> {edge[1]}"))
        seen.add(edge)

    bad: set[str] = set()
    for name, node in graph.nodes.items():
        if _bad_name(name):
            bad.add(name)
            yield Problem(f"nodes.{name!r}", "node names must be non-empty, not '.', without '/' or NUL")
        if isinstance(node, Graph):
            inner = _graph_problems(
                node, depth + 1, frozenset(inner_in.get(name, ())), frozenset(inner_out.get(name, ()))
            )
            problems = [Problem(f"nodes.{name}.{p.path}" if p.path else f"nodes.{name}", p.message) for p in inner]
        else:
            problems = [Problem(f"nodes.{name}.{p.path}", p.message) for p in node.problems()]
        if problems:
            bad.add(name)
            yield from problems
    yield from edge_problems
    for name, node in graph.nodes.items():
        if isinstance(node, Input):
            if name not in touched_out:
                yield Problem(f"nodes.{name}", "Input node feeds nothing (orphan)")
        elif isinstance(node, Output):
            if name not in touched_in:
                yield Problem(f"nodes.{name}", "Output node receives nothing (orphan)")
        elif name not in touched_in and name not in touched_out:
            yield Problem(f"nodes.{name}", "node is connected to nothing (orphan)")
        elif name not in touched_in:
            yield Problem(f"nodes.{name}", "node has no incoming edge (only Input nodes may start a path)")
        elif name not in touched_out:
            yield Problem(f"nodes.{name}", "node has no outgoing edge (only Output nodes may end a path)")
    if edges_ok:
        _, shape_problems = _infer_shapes(graph, bad)
        yield from shape_problems
