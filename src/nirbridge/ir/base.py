"""The base of the validated graph model: array field types, metadata normalisation, and
`Node`, the pydantic model every NIR primitive derives from.

Arrays stay numpy arrays with their dtype. Shapes exclude the batch dimension, as in NIR;
0-d (scalar) neuron parameters, as older NIR files store them, apply to any input shape.
Metadata values are kept in one form: Python scalars, str, numpy arrays, lists of str, dicts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal, Union

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema, model_validator

from ..errors import Problem

Shape = tuple[int, ...]
#: the smallest magnitude that rounds to inf in float32 (the largest float32 plus half an ulp):
#: parameters from it on would become inf in the working dtype
FLOAT32_OVERFLOW = 2.0**128 - 2.0**103


def as_array(value: Any) -> Any:
    """Field values as read-only numpy arrays that nothing else can change: lists and numbers
    become arrays; torch tensors become CPU copies (no grad; bfloat16 as float32, exactly); an
    array that is writeable, or a view of one, is copied. Anything else is left for the type
    checks (strings, None, ...)."""
    if _is_tensor(value):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()  # numpy has no bfloat16; float32 holds every bfloat16 exactly
        value = value.numpy()
    if isinstance(value, (list, tuple, int, float, np.generic)) and not isinstance(value, bool):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        return frozen(value)
    return value


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.split(".")[0] == "torch" and hasattr(value, "detach")


def frozen(arr: np.ndarray) -> np.ndarray:
    """`arr` if no one can write to it (read-only, and so is whatever it views), else a
    read-only copy."""
    base = arr
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            arr = np.array(arr)
            break
        base = base.base
    arr.flags.writeable = False
    return arr


def array_json(value: np.ndarray) -> Any:
    return value.tolist()


class FrozenDict(dict):
    """A dict that cannot change: graph metadata. Change it with `graph.replace(metadata=...)`."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("metadata is read-only: make a changed copy with .replace(metadata={...})")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):  # pickle builds it whole (workers of `evaluate(engine="ray")` receive graphs)
        return type(self), (dict(self),)


class FrozenList(list):
    """A list that cannot change (metadata lists of strings)."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("metadata is read-only: make a changed copy with .replace(metadata={...})")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __reduce__(self):
        return type(self), (list(self),)


def plain(value: Any) -> Any:
    """Metadata values in one canonical, read-only form, whoever produced them: numpy scalars
    and 0-d arrays become Python scalars, bytes become str, string arrays become lists of str,
    dicts and lists cannot be changed, arrays are read-only."""
    if isinstance(value, dict):
        return FrozenDict({k: plain(v) for k, v in value.items()})
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
        return FrozenList(plain(v) for v in value.tolist())
    if isinstance(value, (np.generic, np.ndarray)) and value.ndim == 0:
        return plain(value.item())
    if isinstance(value, np.ndarray):
        return frozen(value)
    if isinstance(value, list):
        return FrozenList(plain(v) for v in value)
    return value


Metadata = Annotated[dict[str, Any], BeforeValidator(lambda v: plain(v) if isinstance(v, dict) else v),
                     AfterValidator(lambda v: v if isinstance(v, FrozenDict) else FrozenDict(v))]


Array = Annotated[
    np.ndarray,
    BeforeValidator(as_array),
    PlainSerializer(array_json, when_used="json"),
    WithJsonSchema({"type": "array", "description": "n-dimensional numeric array (nested lists)"}),
]
Padding = Annotated[
    Union[Literal["same", "valid"], np.ndarray],
    BeforeValidator(as_array),
    PlainSerializer(lambda v: v if isinstance(v, str) else v.tolist(), when_used="json"),
    WithJsonSchema({"oneOf": [{"enum": ["same", "valid"]}, {"type": "array"}]}),
]


def arrays_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.tobytes() == b.tobytes()
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(arrays_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(arrays_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


class ShapeError(Exception):
    """Internal: a node cannot take the shape it is given."""


# ----------------------------------------------------------------------------- nodes


class Node(BaseModel):
    """Base of every NIR primitive. Subclasses declare `type`, their array fields and, where
    shapes are not fixed by parameters, how an input shape maps to an output shape."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    metadata: Metadata = Field(default_factory=FrozenDict)

    #: fields holding real-valued parameters (float arrays, finite)
    float_fields: ClassVar[tuple[str, ...]] = ()
    #: fields holding integer arrays (shapes, strides)
    int_fields: ClassVar[tuple[str, ...]] = ()
    #: fields that must be strictly positive
    positive_fields: ClassVar[tuple[str, ...]] = ()
    #: float fields that must all share one shape (neuron parameters)
    same_shape_fields: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _integers_as_floats(cls, data: Any) -> Any:
        """Integer arrays given for real-valued parameters (NIR's own tests write e.g.
        `Threshold(np.array([1, 2, 3]))`) become float32, or float64 where float32 cannot hold
        every value exactly; integers beyond 2**53 stay, and the checks refuse them."""
        if not isinstance(data, dict):
            return data
        changed = {}
        for name in cls.float_fields:
            value = as_array(data.get(name))
            if isinstance(value, np.ndarray) and value.dtype.kind in "iu":
                largest = int(np.abs(value.astype(np.float64)).max(initial=0))
                for dtype, exact in ((np.float32, 2**24), (np.float64, 2**53)):
                    if largest <= exact:
                        changed[name] = frozen(value.astype(dtype))
                        break
        return {**data, **changed} if changed else data

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return all(
            arrays_equal(getattr(self, k), getattr(other, k)) for k in type(self).model_fields
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def kind(self) -> str:
        return self.type  # type: ignore[attr-defined]

    def replace(self, **changes: Any):
        """A copy with `changes`, validated again (a Graph revalidates its whole tree). A change
        of the metadata alone leaves the validated arrays as they are (they cannot change)."""
        if changes.keys() == {"metadata"} and isinstance(changes["metadata"], dict):
            return BaseModel.model_copy(self, update={"metadata": plain(dict(changes["metadata"]))})
        return type(self)(**({k: getattr(self, k) for k in type(self).model_fields} | changes))

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False):
        """Nodes cannot change, so a copy is the node itself, and a changed copy is `replace`:
        validated, its arrays read-only."""
        return self.replace(**update) if update else self

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
            if name in self.float_fields and kind in "iu":
                yield Problem(name, f"integers beyond 2**53 cannot become floats exactly, got dtype {value.dtype}")
                continue
            if name in self.float_fields and kind != "f":
                yield Problem(name, f"must be a float array, got dtype {value.dtype}")
                continue
            if kind == "f" and value.dtype.itemsize > 8:
                yield Problem(name, f"extended precision ({value.dtype}) is not supported: convert to float64")
                continue
            if name in self.int_fields and kind not in "iu":
                yield Problem(name, f"must be an integer array, got dtype {value.dtype}")
                continue
            if value.size == 0:
                if name in self.float_fields and value.ndim:
                    yield Problem(name, f"is empty (shape {value.shape}): a layer of size 0 computes nothing")
                continue
            # one reduction first: a NaN or inf makes the sum non-finite (so does overflow, rarely:
            # then the elementwise test decides); no temporary array when all is well
            if kind == "f" and not all_finite(value):
                bad = ~np.isfinite(value)
                yield Problem(f"{name}{index_suffix(bad)}", f"must be finite, got {value[tuple(first_index(bad))]!s}")
                continue
            if kind == "f" and value.dtype.itemsize > 4 and np.abs(value).max() >= FLOAT32_OVERFLOW:
                bad = np.abs(value) >= FLOAT32_OVERFLOW
                yield Problem(f"{name}{index_suffix(bad)}", f"{value[tuple(first_index(bad))]!s} overflows float32, the working dtype")
                continue
            if name in self.positive_fields and not value.min() > 0:
                bad = ~(value > 0)
                yield Problem(f"{name}{index_suffix(bad)}", f"must be > 0, got {value[tuple(first_index(bad))]!s}")
        if self.same_shape_fields:
            ref = self.same_shape_fields[0]
            ref_shape = getattr(self, ref).shape
            for name in self.same_shape_fields[1:]:
                value = getattr(self, name)
                if isinstance(value, np.ndarray) and value.shape != ref_shape:
                    yield Problem(name, f"shape {value.shape} differs from {ref} shape {ref_shape}")


def all_finite(value: np.ndarray) -> bool:
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(value.sum()) or np.isfinite(value).all())


def first_index(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.argwhere(mask)[0]] if mask.ndim else []


def index_suffix(mask: np.ndarray) -> str:
    idx = first_index(mask)
    return "[" + ", ".join(map(str, idx)) + "]" if idx else ""


def as_shape(value: np.ndarray | None) -> Shape | None:
    if value is None:
        return None
    return tuple(int(n) for n in np.atleast_1d(value))


def shape_problems(name: str, value: np.ndarray) -> Iterator[Problem]:
    """A shape field: a 1-d integer array of sizes >= 1 (the dtype is checked elsewhere)."""
    if value.dtype.kind not in "iu":
        return
    if value.ndim != 1 or value.size == 0:
        yield Problem(name, f"must be a non-empty 1-d array of sizes, got shape {value.shape}")
    elif (value < 1).any():
        yield Problem(name, f"sizes must be >= 1, got {value.tolist()}")


def pair(value: Any, n: int) -> tuple[int, ...]:
    arr = np.atleast_1d(np.asarray(value))
    if arr.size == 1:
        return tuple(int(arr[0]) for _ in range(n))
    if arr.size != n:
        raise ShapeError(f"expected {n} values, got {arr.size}")
    return tuple(int(x) for x in arr)


