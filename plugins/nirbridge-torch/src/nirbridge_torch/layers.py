"""Stateless NIR nodes <-> torch modules, shared by every torch backend.

`build_stateless(node, policy=)` gives the torch module computing a stateless NIR node;
`export_stateless(module, input_shape)` gives the NIR node of a plain torch layer, or None
when the module is not one. Shapes exclude the batch dimension (NIR), torch's include it.

Graph arrays are float32. `to_array` turns a parameter into one: float16, bfloat16 and float32
values exactly; float64 values only where every one is a float32 (else `DtypeError` naming
the parameter and the first value that would change). Built layers get their parameters
without a random initialisation and with one copy of the graph's arrays (`tensor`).
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from nirbridge import ir as g
from nirbridge.errors import NirbridgeError
from nirbridge.semantics import Policy, delay_steps

#: the dtype of exported graph arrays
GRAPH_DTYPE = np.float32


class DtypeError(NirbridgeError):
    """A parameter whose values the graph's float32 arrays cannot hold exactly."""


def to_array(value, what: str = "parameter") -> np.ndarray:
    """A tensor (or number) as a float32 array with exactly its values; see the module doc."""
    if isinstance(value, torch.Tensor):
        t = value.detach()
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        arr = t.cpu().numpy()
    else:
        arr = np.asarray(value)
    if arr.dtype == GRAPH_DTYPE:
        return arr.copy()
    out = arr.astype(GRAPH_DTYPE)
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4:
        same = (out.astype(arr.dtype) == arr) | (np.isnan(arr) & np.isnan(out))
        if not same.all():
            idx = tuple(int(i) for i in np.argwhere(~same)[0])
            where = what + ("[" + ", ".join(map(str, idx)) + "]" if idx else "")
            raise DtypeError(f"{where} = {float(arr[idx])!r} ({arr.dtype}) has no exact float32 value, and NIR graphs hold float32; "
                             "cast the model to float32 (model.float()) if that rounding is acceptable")
    return out


def tensor(array) -> torch.Tensor:
    """A torch copy of a graph array in the default dtype: one copy (training must not write
    into the graph, whose arrays the caller may still hold), no initialisation."""
    arr = np.asarray(array)
    if arr.dtype.kind != "f" or not arr.dtype.isnative:
        return torch.tensor(arr, dtype=torch.get_default_dtype())
    with warnings.catch_warnings():  # a read-only array is only read here
        warnings.simplefilter("ignore", UserWarning)
        source = torch.from_numpy(arr)
    return torch.empty(arr.shape, dtype=torch.get_default_dtype()).copy_(source)


def compact(array) -> torch.Tensor:
    """A neuron parameter of a graph array as a tensor: 0-d when every element is the same
    (the same values, broadcast, as the NumPy reference does: less memory traffic per step),
    else a copy of the array."""
    arr = np.asarray(array)
    if arr.ndim and arr.size and (arr == arr.reshape(-1)[0]).all():
        return tensor(arr.reshape(-1)[0])
    return tensor(arr)


def _pair(value, n: int) -> tuple[int, ...]:
    arr = np.atleast_1d(np.asarray(value))
    return tuple(int(v) for v in (np.repeat(arr, n) if arr.size == 1 else arr))


class Scale(torch.nn.Module):
    """y = scale * x."""

    def __init__(self, scale):
        super().__init__()
        self.scale = torch.nn.Parameter(tensor(scale))

    def forward(self, x):
        return x * self.scale


class Threshold(torch.nn.Module):
    """y = x > threshold (or >= when `ge`), as 0/1 floats."""

    def __init__(self, threshold, ge: bool = False):
        super().__init__()
        self.threshold = torch.nn.Parameter(tensor(threshold), requires_grad=False)
        self.ge = ge

    def forward(self, x):
        return ((x >= self.threshold) if self.ge else (x > self.threshold)).to(x.dtype)


class SumPool2d(torch.nn.Module):
    """Sum over each window (zero padding)."""

    def __init__(self, kernel_size, stride, padding):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, count_include_pad=True, divisor_override=1)


class Delay(torch.nn.Module):
    """y[k] = x[k - d] per element, d in steps (zero before the start)."""

    def __init__(self, steps: np.ndarray):
        super().__init__()
        self.register_buffer("steps", torch.as_tensor(steps, dtype=torch.long))  # moves with .to(device)
        self.depth = int(steps.max()) + 1 if np.size(steps) else 1
        self.reset_state()

    def reset_state(self) -> None:
        self.now = SimpleNamespace(buffer=None, t=0)  # per-step state: no nn.Module.__setattr__ per step

    def forward(self, x):
        now = self.now
        if now.buffer is None:
            now.buffer = torch.zeros((self.depth, *x.shape), dtype=x.dtype, device=x.device)
        steps = self.steps
        now.buffer[now.t % self.depth] = x
        index = (now.t - steps) % self.depth
        out = torch.gather(now.buffer, 0, index.expand(x.shape).unsqueeze(0)).squeeze(0)
        out = torch.where((now.t - steps) >= 0, out, torch.zeros_like(out))
        now.t += 1
        return out


def _linear(weight, bias) -> torch.nn.Linear:
    """A Linear holding one copy of the graph's arrays (built on the meta device: no
    initialisation that would be overwritten)."""
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    layer.weight = torch.nn.Parameter(tensor(weight))
    if bias is not None:
        layer.bias = torch.nn.Parameter(tensor(bias))
    return layer


def _conv(node: g.Conv1d | g.Conv2d) -> torch.nn.Module:
    n = node.ndim
    cls = torch.nn.Conv1d if n == 1 else torch.nn.Conv2d
    padding = node.padding if isinstance(node.padding, str) else _pair(node.padding, n)
    layer = cls(
        int(node.weight.shape[1] * int(node.groups)), int(node.weight.shape[0]), tuple(node.weight.shape[2:]),
        stride=_pair(node.stride, n), padding=padding, dilation=_pair(node.dilation, n), groups=int(node.groups), device="meta",
    )
    layer.weight = torch.nn.Parameter(tensor(node.weight))
    layer.bias = torch.nn.Parameter(tensor(node.bias))
    return layer


def build_stateless(node: g.Node, *, policy: Policy, name: str = "node") -> torch.nn.Module:
    """The torch module computing a stateless NIR node (Affine, Linear, Scale, Conv1d/2d,
    Flatten, SumPool2d, AvgPool2d, Threshold, Delay)."""
    if isinstance(node, (g.Affine, g.Linear)):
        return _linear(node.weight, node.bias if isinstance(node, g.Affine) else None)
    if isinstance(node, (g.Conv1d, g.Conv2d)):
        return _conv(node)
    if isinstance(node, g.Flatten):
        start = node.start_dim + 1 if node.start_dim >= 0 else node.start_dim
        end = node.end_dim + 1 if node.end_dim >= 0 else node.end_dim
        return torch.nn.Flatten(start, end)
    if isinstance(node, g.SumPool2d):
        return SumPool2d(_pair(node.kernel_size, 2), _pair(node.stride, 2), _pair(node.padding, 2))
    if isinstance(node, g.AvgPool2d):
        return torch.nn.AvgPool2d(_pair(node.kernel_size, 2), _pair(node.stride, 2), _pair(node.padding, 2), count_include_pad=True)
    if isinstance(node, g.Scale):
        return Scale(node.scale)
    if isinstance(node, g.Threshold):
        return Threshold(node.threshold, ge=policy.for_node(name, "Threshold").threshold == "ge")
    if isinstance(node, g.Delay):
        return Delay(delay_steps(name, node, policy.dt, np.shape(node.delay)))
    raise TypeError(f"{type(node).__name__} is not a stateless node")


def export_stateless(module: torch.nn.Module, input_shape: tuple[int, ...], *, name: str = "", lead: int = 1) -> g.Node | None:
    """The NIR node of a plain torch layer given its (batch-free) input shape, else None.
    `lead`: the leading dimensions the module sees before the features (a Flatten's dims
    count them). Parameters go through `to_array` (`DtypeError` when float32 cannot hold them)."""
    prefix = f"{name}." if name else ""
    if isinstance(module, torch.nn.Linear):
        if module.bias is None:
            return g.Linear(weight=to_array(module.weight, prefix + "weight"))
        return g.Affine(weight=to_array(module.weight, prefix + "weight"), bias=to_array(module.bias, prefix + "bias"))
    if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)):
        if module.padding_mode != "zeros":
            return None
        n = 1 if isinstance(module, torch.nn.Conv1d) else 2
        bias = to_array(module.bias, prefix + "bias") if module.bias is not None else np.zeros(module.out_channels, GRAPH_DTYPE)
        cls = g.Conv1d if n == 1 else g.Conv2d
        padding = module.padding if isinstance(module.padding, str) else np.array(module.padding, dtype=np.int64)
        return cls(
            weight=to_array(module.weight, prefix + "weight"), bias=bias, stride=np.array(module.stride, dtype=np.int64),
            padding=padding, dilation=np.array(module.dilation, dtype=np.int64), groups=np.array(module.groups, dtype=np.int64),
            input_shape=np.array(input_shape[1] if n == 1 else input_shape[1:], dtype=np.int64),  # nir.Conv1d: a scalar length
        )
    if isinstance(module, torch.nn.Flatten):
        start = module.start_dim - lead if module.start_dim > 0 else module.start_dim
        end = module.end_dim - lead if module.end_dim > 0 else module.end_dim
        if start < 0 and module.start_dim > 0:
            return None  # flattens a leading (batch or time) dimension
        return g.Flatten(start_dim=start, end_dim=end, input_type=np.array(input_shape, dtype=np.int64))
    if isinstance(module, torch.nn.AvgPool2d):
        if module.ceil_mode or not module.count_include_pad or module.divisor_override:
            return None
        return g.AvgPool2d(
            kernel_size=np.array(_pair(module.kernel_size, 2), dtype=np.int64),
            stride=np.array(_pair(module.stride or module.kernel_size, 2), dtype=np.int64),
            padding=np.array(_pair(module.padding, 2), dtype=np.int64),
        )
    return None


__all__ = ["GRAPH_DTYPE", "Delay", "DtypeError", "Scale", "SumPool2d", "Threshold", "build_stateless", "compact", "export_stateless", "tau_of_decay", "tensor", "to_array"]


def tau_of_decay(alpha, start, dt: float) -> np.ndarray:
    """The float32 tau nearest `start` whose exact decay as the reference computes it
    (exp(-dt/tau) in float64, rounded once) is the float32 `alpha` a framework steps with
    (torch's float32 exp can be one ulp off the correctly rounded value); `start` where no
    float32 tau gives alpha. The taus whose decay rounds to alpha lie between those of the
    midpoints of alpha and its float32 neighbours."""
    alpha = np.asarray(alpha, np.float32)
    start = np.asarray(start, np.float32)
    a = alpha.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        edges = [-dt / np.log((a + np.nextafter(alpha, np.float32(side)).astype(np.float64)) / 2) for side in (0, 1)]
        near = np.clip(start.astype(np.float64), np.minimum(*edges), np.maximum(*edges)).astype(np.float32)
        tau = start
        for candidate in (np.nextafter(near, np.float32(0)), np.nextafter(near, np.float32(np.inf)), near, start):
            tau = np.where(np.exp(-dt / candidate.astype(np.float64)).astype(np.float32) == alpha, candidate, tau)
    return tau
