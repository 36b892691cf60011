"""Stateless nodes as maps over stacked samples: every map takes `x` shaped (N, *in_shape)
and returns (N, *out_shape), where N is the steps of a chunk x batch. A map treats the N
samples independently, so stacking time steps changes nothing but speed (up to the summation
order inside BLAS, which may depend on N; see `engine`).

    Affine   y = x W^T + b               Linear  y = x W^T          Scale  y = s * x
    Conv     y[o] = b[o] + sum_{c,k} W[o, c, k] x_pad[c, stride*p + dilation*k]   (per group)
    SumPool  y = sum of each window      AvgPool y = SumPool / kernel area (padding counts as 0)
    Flatten  reshape                     Threshold  y = x > threshold (or >=, per policy)

Arithmetic order: Affine and Conv sum their products in one BLAS matrix product (its order),
then add the bias; SumPool adds the window's elements row by row of the kernel, left to
right, starting from the first; AvgPool then divides by the area.
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import Problem, SimulationError
from ..ir import (
    Affine,
    AvgPool2d,
    Conv,
    Conv1d,
    Conv2d,
    Flatten,
    Linear,
    Node,
    Output,
    Pool2d,
    Scale,
    ShapeError,
    SumPool2d,
    Threshold,
)
from ..semantics import Policy

Shape = tuple[int, ...]
Map = Callable[[np.ndarray], np.ndarray]
#: nodes whose output is computed (and so must stay finite); the others pass values along
ARITHMETIC = (Affine, Linear, Scale, Conv1d, Conv2d, SumPool2d, AvgPool2d)

STATELESS = (Affine, Linear, Scale, Threshold, Flatten, Conv1d, Conv2d, SumPool2d, AvgPool2d, Output)


def _error(name: str, field: str, message: str) -> SimulationError:
    path = f"nodes.{name}" + (f".{field}" if field else "")
    return SimulationError(problems=[Problem(path, message)])


def _ints(name: str, field: str, value, n: int) -> tuple[int, ...]:
    arr = np.atleast_1d(np.asarray(value))
    if arr.dtype.kind not in "iu" or arr.size not in (1, n):
        raise _error(name, field, f"must be 1 or {n} integers, got {value!r}")
    return tuple(int(v) for v in np.broadcast_to(arr, (n,)))


def cast(name: str, field: str, value, dtype) -> np.ndarray:
    """`value` as an array of `dtype`; SimulationError naming the node, field and element if a
    value is NaN or infinite there (float64 parameters beyond the float32 range overflow)."""
    arr = np.asarray(value, dtype=dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        if arr.size and not (np.isfinite(arr.sum()) or np.isfinite(arr).all()):
            idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0]) if arr.ndim else ()
            given = np.asarray(value)[idx] if np.shape(value) == arr.shape else value
            where = f"[{', '.join(map(str, idx))}]" if idx else ""
            raise _error(name, f"{field}{where}", f"{given} is not finite in {np.dtype(dtype)}")
    return arr


def _elementwise(name: str, field: str, value: np.ndarray, in_shape: Shape, dtype) -> np.ndarray:
    """A parameter applied elementwise: cast to dtype, checked to broadcast onto the input."""
    try:
        shape = np.broadcast_shapes(value.shape, in_shape)
    except ValueError:
        shape = None
    if shape != tuple(in_shape):
        raise _error(name, field, f"shape {value.shape} does not fit the input shape {tuple(in_shape)}")
    return cast(name, field, value, dtype)


class Buffers:
    """The arrays a map writes into, kept from one call to the next: a run allocates them
    once (and once more for a shorter last chunk), not at every chunk of steps; fresh memory
    costs a page fault per 4 KiB, which is several times the arithmetic of these maps. What a
    map returns lives here and is valid until its next call."""

    def __init__(self, dtype):
        self.dtype, self.arrays = np.dtype(dtype), {}

    def get(self, key: str, shape: Shape) -> np.ndarray:
        """The array kept under `key` if it has `shape`, else a new one of zeros (kept)."""
        arr = self.arrays.get(key)
        if arr is None or arr.shape != shape:
            arr = self.arrays[key] = np.zeros(shape, self.dtype)
        return arr


class Layer(NamedTuple):
    """A stateless node ready to run: `map` (N, *in_shape) -> (N, *out_shape); `arrays`: the
    arrays `map` keeps in its `Buffers`, each as (the field that sizes it, named when the array
    would be too large; elements per sample)."""

    map: Map
    out_shape: Shape
    arrays: tuple[tuple[str, int], ...] = ()


def build(name: str, node: Node, policy: Policy, in_shape: Shape, dtype) -> Layer:
    """The map of a stateless node for inputs of `in_shape` (without time and batch), and the
    output shape. Parameters are cast to `dtype` once, here."""
    in_shape = tuple(int(n) for n in in_shape)
    size = prod(in_shape)
    buffers = Buffers(dtype)
    if isinstance(node, Output):
        return Layer(lambda x: x, in_shape)
    if isinstance(node, (Affine, Linear)):
        return _affine(name, node, in_shape, buffers)
    if isinstance(node, Scale):
        s = _elementwise(name, "scale", node.scale, in_shape, dtype)
        return Layer(lambda x: np.multiply(x, s, out=buffers.get("y", x.shape)), in_shape, (("", size),))
    if isinstance(node, Threshold):
        th = _elementwise(name, "threshold", node.threshold, in_shape, dtype)
        test = np.greater if policy.threshold == "gt" else np.greater_equal
        return Layer(lambda x: test(x, th, out=buffers.get("y", x.shape)), in_shape, (("", size),))
    if isinstance(node, Flatten):
        try:
            out_shape = tuple(int(n) for n in node.output_shape(in_shape))
        except ShapeError as exc:
            raise _error(name, "start_dim", str(exc)) from None
        return Layer(lambda x: x.reshape((x.shape[0],) + out_shape), out_shape)
    if isinstance(node, Conv):
        return _conv(name, node, in_shape, buffers)
    if isinstance(node, Pool2d):
        return _pool(name, node, in_shape, buffers)
    raise _error(name, "", f"{node.type} is not a stateless node")


def _affine(name: str, node: Affine | Linear, in_shape: Shape, buffers: Buffers) -> Layer:
    dtype = buffers.dtype
    w = cast(name, "weight", node.weight, dtype)
    if w.ndim != 2 or not in_shape or in_shape[-1] != w.shape[1]:
        raise _error(name, "weight", f"shape {w.shape} does not take input shape {in_shape} (needs (out, {in_shape[-1] if in_shape else '?'}))")
    wt = w.T  # (in, out) view: BLAS reads the transpose in place
    out_shape = in_shape[:-1] + (w.shape[0],)
    bias = None
    if isinstance(node, Affine):
        bias = cast(name, "bias", node.bias, dtype)
        if bias.shape != (w.shape[0],):
            raise _error(name, "bias", f"shape {bias.shape} does not match weight rows ({w.shape[0]},)")
        bias = bias if bias.any() else None  # a zero bias adds nothing

    def affine(x: np.ndarray) -> np.ndarray:
        rows = x.reshape(-1, w.shape[1])
        y = np.matmul(rows, wt, out=buffers.get("y", (rows.shape[0], w.shape[0])))  # one GEMM for all samples
        if bias is not None:
            y += bias
        return y.reshape((x.shape[0],) + out_shape)

    return Layer(affine, out_shape, (("weight", prod(out_shape)),))


def _conv(name: str, node: Conv, in_shape: Shape, buffers: Buffers) -> Layer:
    """Convolution as im2col + one matrix product per sample and group: the windows of the
    zero-padded input are copied once into columns (samples, groups, channels x kernel,
    output positions), and y[n, g] = W[g] @ columns[n, g], which is already laid out as
    (samples, channels, *positions). Each output sums its channels x kernel products in the
    BLAS kernel's order, then adds the bias."""
    nd, dtype = node.ndim, buffers.dtype
    w = cast(name, "weight", node.weight, dtype)
    c_out, c_group, kernel = w.shape[0], w.shape[1], w.shape[2:]
    groups = int(np.asarray(node.groups).reshape(-1)[0]) if np.asarray(node.groups).size == 1 else 0
    if groups < 1 or c_out % groups:
        raise _error(name, "groups", f"must be a positive divisor of {c_out} output channels, got {node.groups!r}")
    if len(in_shape) != nd + 1 or in_shape[0] != c_group * groups:
        raise _error(name, "weight", f"shape {w.shape} with groups={groups} does not take input shape {in_shape}")
    stride = _ints(name, "stride", node.stride, nd)
    dilation = _ints(name, "dilation", node.dilation, nd)
    if min(stride + dilation) < 1:
        raise _error(name, "stride" if min(stride) < 1 else "dilation", f"must be >= 1, got {min(stride + dilation)}")
    span = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel))
    if isinstance(node.padding, str):
        if node.padding == "valid":
            pads = ((0, 0),) * nd
        else:  # "same": PyTorch's rule, extra padding at the end; needs stride 1
            if any(s != 1 for s in stride):
                raise _error(name, "padding", f"'same' needs stride 1 (as in PyTorch), got stride {stride}")
            pads = tuple(((s - 1) // 2, s - 1 - (s - 1) // 2) for s in span)
    else:
        pads = tuple((p, p) for p in _ints(name, "padding", node.padding, nd))
        if min(p for p, _ in pads) < 0:
            raise _error(name, "padding", f"must be >= 0, got {node.padding!r}")
    spatial = tuple(n + lo + hi for n, (lo, hi) in zip(in_shape[1:], pads))
    if any(n < s for n, s in zip(spatial, span)):
        raise _error(name, "weight", f"kernel span {span} larger than the padded input {spatial}")
    out_spatial = tuple((n - s) // st + 1 for n, s, st in zip(spatial, span, stride))
    bias = cast(name, "bias", node.bias, dtype)
    if bias.shape != (c_out,):
        raise _error(name, "bias", f"shape {bias.shape} does not match {c_out} output channels")
    k_size, positions = c_group * prod(kernel), prod(out_spatial)
    w_groups = w.reshape(groups, c_out // groups, k_size)  # (groups, out per group, in per group x kernel)
    bias = bias.reshape(c_out, 1) if bias.any() else None  # a zero bias adds nothing
    inside = (slice(None), slice(None)) + tuple(slice(lo, lo + n) for (lo, _), n in zip(pads, in_shape[1:]))
    # the windows as a strided view of the padded input: kernel element k of output position p
    # reads spatial index stride * p + dilation * k of each channel; `grid` is the step of one
    # index along each spatial dimension, in elements
    grid = tuple(prod(spatial[i + 1 :]) for i in range(nd))
    steps = tuple(d * g for d, g in zip(dilation, grid)) + tuple(st * g for st, g in zip(stride, grid))

    def conv(x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        padded = buffers.get("padded", (n, in_shape[0]) + spatial)  # the border stays zero
        padded[inside] = x
        item, (s_n, s_c) = padded.itemsize, padded.strides[:2]
        windows = as_strided(  # (n, C, *kernel, *out), in bounds by construction
            padded, (n, in_shape[0]) + kernel + out_spatial, (s_n, s_c) + tuple(item * k for k in steps), writeable=False
        )
        cols = buffers.get("columns", windows.shape)
        np.copyto(cols, windows)  # the one copy
        y = np.matmul(w_groups, cols.reshape(n, groups, k_size, positions), out=buffers.get("y", (n, groups, c_out // groups, positions)))
        y = y.reshape(n, c_out, positions)
        if bias is not None:
            y += bias
        return y.reshape((n, c_out) + out_spatial)

    field = "padding" if any(lo or hi for lo, hi in pads) else "weight"
    arrays = (("padding", in_shape[0] * prod(spatial)), (field, groups * k_size * positions), (field, c_out * positions))
    return Layer(conv, (c_out,) + out_spatial, arrays)


def _pool(name: str, node: Pool2d, in_shape: Shape, buffers: Buffers) -> Layer:
    """Sum (or mean) over each window, as a fixed-order sum of strided slices of the zero-padded
    input (one vectorised add per kernel offset, row by row of the kernel), then / area."""
    if len(in_shape) != 3:
        raise _error(name, "kernel_size", f"expects input (channels, height, width), got {in_shape}")
    kernel = _ints(name, "kernel_size", node.kernel_size, 2)
    stride = _ints(name, "stride", node.stride, 2)
    padding = _ints(name, "padding", node.padding, 2)
    if min(kernel + stride) < 1 or min(padding) < 0:
        field = "kernel_size" if min(kernel) < 1 else "stride" if min(stride) < 1 else "padding"
        raise _error(name, field, f"must be >= {0 if field == 'padding' else 1}, got {getattr(node, field)!r}")
    padded = tuple(n + 2 * p for n, p in zip(in_shape[1:], padding))
    if any(n < k for n, k in zip(padded, kernel)):
        raise _error(name, "kernel_size", f"{kernel} larger than the padded input {padded}")
    out_hw = tuple((n - k) // s + 1 for n, k, s in zip(padded, kernel, stride))
    area = None if isinstance(node, SumPool2d) else np.asarray(prod(kernel), dtype=buffers.dtype)
    inside = (slice(None), slice(None), slice(padding[0], padding[0] + in_shape[1]), slice(padding[1], padding[1] + in_shape[2]))
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    out_shape = (in_shape[0],) + out_hw

    def pool(x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        if any(padding):
            full = buffers.get("padded", (n, in_shape[0]) + padded)  # the border stays zero
            full[inside] = x
            x = full
        parts = [x[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw] for i in range(kh) for j in range(kw)]
        y = buffers.get("y", (n,) + out_shape)
        if len(parts) == 1:
            np.copyto(y, parts[0])
        else:
            np.add(parts[0], parts[1], out=y)
        for part in parts[2:]:
            y += part
        if area is not None:
            y /= area
        return y

    field = "padding" if any(padding) else "kernel_size"
    return Layer(pool, out_shape, (("padding", in_shape[0] * prod(padded) if any(padding) else 0), (field, prod(out_shape))))
