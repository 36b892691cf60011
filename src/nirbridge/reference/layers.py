"""Stateless nodes as maps over stacked samples: every map takes `x` shaped (N, *in_shape)
and returns (N, *out_shape), where N is time x batch (all steps at once) or batch (one step).
A map treats the N samples independently, so stacking time steps changes nothing but speed
(up to the summation order inside BLAS; see `engine`).

    Affine   y = x W^T + b               Linear  y = x W^T          Scale  y = s * x
    Conv     y[o] = b[o] + sum_{c,k} W[o, c, k] x_pad[c, stride*p + dilation*k]   (per group)
    SumPool  y = sum of each window      AvgPool y = SumPool / kernel area (padding counts as 0)
    Flatten  reshape                     Threshold  y = x > threshold (or >=, per policy)
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

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

STATELESS = (Affine, Linear, Scale, Threshold, Flatten, Conv1d, Conv2d, SumPool2d, AvgPool2d, Output)


def _error(name: str, field: str, message: str) -> SimulationError:
    path = f"nodes.{name}" + (f".{field}" if field else "")
    return SimulationError(problems=[Problem(path, message)])


def _ints(name: str, field: str, value, n: int) -> tuple[int, ...]:
    arr = np.atleast_1d(np.asarray(value))
    if arr.dtype.kind not in "iu" or arr.size not in (1, n):
        raise _error(name, field, f"must be 1 or {n} integers, got {value!r}")
    return tuple(int(v) for v in np.broadcast_to(arr, (n,)))


def _elementwise(name: str, field: str, value: np.ndarray, in_shape: Shape, dtype) -> np.ndarray:
    """A parameter applied elementwise: cast to dtype, checked to broadcast onto the input."""
    try:
        shape = np.broadcast_shapes(value.shape, in_shape)
    except ValueError:
        shape = None
    if shape != tuple(in_shape):
        raise _error(name, field, f"shape {value.shape} does not fit the input shape {tuple(in_shape)}")
    return np.asarray(value, dtype=dtype)


def build(name: str, node: Node, policy: Policy, in_shape: Shape, dtype) -> tuple[Map, Shape]:
    """The map of a stateless node for inputs of `in_shape` (without time and batch), and the
    output shape. Parameters are cast to `dtype` once, here."""
    in_shape = tuple(int(n) for n in in_shape)
    if isinstance(node, Output):
        return (lambda x: x), in_shape
    if isinstance(node, (Affine, Linear)):
        return _affine(name, node, in_shape, dtype)
    if isinstance(node, Scale):
        s = _elementwise(name, "scale", node.scale, in_shape, dtype)
        return (lambda x: x * s), in_shape
    if isinstance(node, Threshold):
        th = _elementwise(name, "threshold", node.threshold, in_shape, dtype)
        test = np.greater if policy.threshold == "gt" else np.greater_equal
        return (lambda x: test(x, th).astype(dtype)), in_shape
    if isinstance(node, Flatten):
        try:
            out_shape = tuple(int(n) for n in node.output_shape(in_shape))
        except ShapeError as exc:
            raise _error(name, "start_dim", str(exc)) from None
        return (lambda x: x.reshape((x.shape[0],) + out_shape)), out_shape
    if isinstance(node, Conv):
        return _conv(name, node, in_shape, dtype)
    if isinstance(node, Pool2d):
        return _pool(name, node, in_shape, dtype)
    raise _error(name, "", f"{node.type} is not a stateless node")


def _affine(name: str, node: Affine | Linear, in_shape: Shape, dtype) -> tuple[Map, Shape]:
    w = np.asarray(node.weight, dtype=dtype)
    if w.ndim != 2 or not in_shape or in_shape[-1] != w.shape[1]:
        raise _error(name, "weight", f"shape {w.shape} does not take input shape {in_shape} (needs (out, {in_shape[-1] if in_shape else '?'}))")
    wt = w.T  # (in, out) view: BLAS reads the transpose in place
    out_shape = in_shape[:-1] + (w.shape[0],)
    bias = None
    if isinstance(node, Affine):
        bias = np.asarray(node.bias, dtype=dtype)
        if bias.shape != (w.shape[0],):
            raise _error(name, "bias", f"shape {bias.shape} does not match weight rows ({w.shape[0]},)")

    def affine(x: np.ndarray) -> np.ndarray:
        y = x.reshape(-1, w.shape[1]) @ wt  # one GEMM for all samples
        if bias is not None:
            y += bias
        return y.reshape((x.shape[0],) + out_shape)

    return affine, out_shape


def _conv(name: str, node: Conv, in_shape: Shape, dtype) -> tuple[Map, Shape]:
    """Convolution as im2col + one (grouped) GEMM: windows of the padded input become rows of
    (samples x output positions, channels x kernel) and meet the weight in one matmul."""
    nd = node.ndim
    w = np.asarray(node.weight, dtype=dtype)
    c_out, c_group, kernel = w.shape[0], w.shape[1], w.shape[2:]
    groups = int(np.asarray(node.groups).reshape(-1)[0]) if np.asarray(node.groups).size == 1 else 0
    if groups < 1 or c_out % groups:
        raise _error(name, "groups", f"must be a positive divisor of {c_out} output channels, got {node.groups!r}")
    if len(in_shape) != nd + 1 or in_shape[0] != c_group * groups:
        raise _error(name, "weight", f"shape {w.shape} with groups={groups} does not take input shape {in_shape}")
    stride = _ints(name, "stride", node.stride, nd)
    dilation = _ints(name, "dilation", node.dilation, nd)
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
    spatial = tuple(n + lo + hi for n, (lo, hi) in zip(in_shape[1:], pads))
    if any(n < s for n, s in zip(spatial, span)):
        raise _error(name, "weight", f"kernel span {span} larger than the padded input {spatial}")
    out_spatial = tuple((n - s) // st + 1 for n, s, st in zip(spatial, span, stride))
    bias = np.asarray(node.bias, dtype=dtype)
    if bias.shape != (c_out,):
        raise _error(name, "bias", f"shape {bias.shape} does not match {c_out} output channels")
    k_size = c_group * prod(kernel)
    # weight per group as (groups, c_group * kernel, c_out / groups)
    w_groups = w.reshape(groups, c_out // groups, k_size).transpose(0, 2, 1)
    pad_width = ((0, 0), (0, 0)) + pads
    needs_pad = any(lo or hi for lo, hi in pads)
    picks = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)
    picks += tuple(slice(None, None, d) for d in dilation)
    axes = tuple(range(2, 2 + nd))

    def conv(x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        if needs_pad:
            x = np.pad(x, pad_width)
        windows = sliding_window_view(x, span, axis=axes)[picks]  # (n, C, *out, *kernel)
        cols = np.moveaxis(windows, 1, 1 + nd).reshape(-1, groups, k_size)  # copies once
        if groups == 1:
            y = cols[:, 0, :] @ w_groups[0]
        else:
            y = np.matmul(cols.transpose(1, 0, 2), w_groups).transpose(1, 0, 2).reshape(-1, c_out)
        y += bias
        return np.ascontiguousarray(np.moveaxis(y.reshape((n,) + out_spatial + (c_out,)), -1, 1))

    return conv, (c_out,) + out_spatial


def _pool(name: str, node: Pool2d, in_shape: Shape, dtype) -> tuple[Map, Shape]:
    """Sum (or mean) over each window, as a fixed-order sum of strided slices of the zero-padded
    input (one vectorised add per kernel offset)."""
    if len(in_shape) != 3:
        raise _error(name, "kernel_size", f"expects input (channels, height, width), got {in_shape}")
    kernel = _ints(name, "kernel_size", node.kernel_size, 2)
    stride = _ints(name, "stride", node.stride, 2)
    padding = _ints(name, "padding", node.padding, 2)
    padded = tuple(n + 2 * p for n, p in zip(in_shape[1:], padding))
    if any(n < k for n, k in zip(padded, kernel)):
        raise _error(name, "kernel_size", f"{kernel} larger than the padded input {padded}")
    out_hw = tuple((n - k) // s + 1 for n, k, s in zip(padded, kernel, stride))
    area = None if isinstance(node, SumPool2d) else np.asarray(prod(kernel), dtype=dtype)
    pad_width = ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1]))
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw

    def pool(x: np.ndarray) -> np.ndarray:
        if any(padding):
            x = np.pad(x, pad_width)
        y = None
        for i in range(kh):
            for j in range(kw):
                part = x[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
                y = part.copy() if y is None else np.add(y, part, out=y)
        if area is not None:
            y /= area
        return y

    return pool, (in_shape[0],) + out_hw
