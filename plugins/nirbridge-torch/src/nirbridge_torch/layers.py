"""Stateless NIR nodes <-> torch modules, shared by every torch backend.

`build_stateless(node, policy=)` gives the torch module computing a stateless NIR node;
`export_stateless(module, input_shape)` gives the NIR node of a plain torch layer, or None
when the module is not one. Shapes exclude the batch dimension (NIR), torch's include it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nirbridge import ir as g
from nirbridge.errors import PolicyError
from nirbridge.semantics import Policy


def _tensor(array) -> torch.Tensor:
    return torch.tensor(np.array(array), dtype=torch.get_default_dtype())  # a copy: training must not write into the graph


def _pair(value, n: int) -> tuple[int, ...]:
    arr = np.atleast_1d(np.asarray(value))
    return tuple(int(v) for v in (np.repeat(arr, n) if arr.size == 1 else arr))


class Scale(torch.nn.Module):
    """y = scale * x."""

    def __init__(self, scale):
        super().__init__()
        self.scale = torch.nn.Parameter(_tensor(scale))

    def forward(self, x):
        return x * self.scale


class Threshold(torch.nn.Module):
    """y = x > threshold (or >= when `ge`), as 0/1 floats."""

    def __init__(self, threshold, ge: bool = False):
        super().__init__()
        self.threshold = torch.nn.Parameter(_tensor(threshold), requires_grad=False)
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
        self.steps = torch.as_tensor(steps, dtype=torch.long)
        self.depth = int(self.steps.max()) + 1 if self.steps.numel() else 1
        self.reset_state()

    def reset_state(self) -> None:
        self.buffer = None
        self.t = 0

    def forward(self, x):
        if self.buffer is None:
            self.buffer = torch.zeros((self.depth, *x.shape), dtype=x.dtype)
        self.buffer[self.t % self.depth] = x
        index = (self.t - self.steps) % self.depth
        out = torch.gather(self.buffer, 0, index.expand(x.shape).unsqueeze(0)).squeeze(0)
        out = torch.where((self.t - self.steps) >= 0, out, torch.zeros_like(out))
        self.t += 1
        return out


def delay_steps(node: g.Delay, dt: float, name: str = "delay") -> np.ndarray:
    """delay/dt as integers; PolicyError when a delay is not a whole number of steps."""
    steps = np.asarray(node.delay, dtype=np.float64) / dt
    rounded = np.round(steps)
    if not np.allclose(steps, rounded, rtol=0, atol=1e-6):
        raise PolicyError(f"nodes.{name}.delay: {node.delay.ravel()[:3]} is not a multiple of dt={dt}")
    return rounded.astype(np.int64)


def build_stateless(node: g.Node, *, policy: Policy, name: str = "node") -> torch.nn.Module:
    """The torch module computing a stateless NIR node (Affine, Linear, Scale, Conv1d/2d,
    Flatten, SumPool2d, AvgPool2d, Threshold, Delay)."""
    if isinstance(node, (g.Affine, g.Linear)):
        out_f, in_f = node.weight.shape
        layer = torch.nn.Linear(in_f, out_f, bias=isinstance(node, g.Affine))
        with torch.no_grad():
            layer.weight.copy_(_tensor(node.weight))
            if isinstance(node, g.Affine):
                layer.bias.copy_(_tensor(node.bias))
        return layer
    if isinstance(node, (g.Conv1d, g.Conv2d)):
        n = node.ndim
        cls = torch.nn.Conv1d if n == 1 else torch.nn.Conv2d
        padding = node.padding if isinstance(node.padding, str) else _pair(node.padding, n)
        layer = cls(
            int(node.weight.shape[1] * int(node.groups)),
            int(node.weight.shape[0]),
            tuple(node.weight.shape[2:]),
            stride=_pair(node.stride, n),
            padding=padding,
            dilation=_pair(node.dilation, n),
            groups=int(node.groups),
        )
        with torch.no_grad():
            layer.weight.copy_(_tensor(node.weight))
            layer.bias.copy_(_tensor(node.bias))
        return layer
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
        return Delay(delay_steps(node, policy.dt, name))
    raise TypeError(f"{type(node).__name__} is not a stateless node")


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def export_stateless(module: torch.nn.Module, input_shape: tuple[int, ...]) -> g.Node | None:
    """The NIR node of a plain torch layer given its (batch-free) input shape, else None."""
    if isinstance(module, torch.nn.Linear):
        if module.bias is None:
            return g.Linear(weight=_array(module.weight))
        return g.Affine(weight=_array(module.weight), bias=_array(module.bias))
    if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)):
        if module.padding_mode != "zeros":
            return None
        n = 1 if isinstance(module, torch.nn.Conv1d) else 2
        bias = module.bias if module.bias is not None else torch.zeros(module.out_channels)
        cls = g.Conv1d if n == 1 else g.Conv2d
        padding = module.padding if isinstance(module.padding, str) else np.array(module.padding, dtype=np.int64)
        return cls(
            weight=_array(module.weight),
            bias=_array(bias),
            stride=np.array(module.stride, dtype=np.int64),
            padding=padding,
            dilation=np.array(module.dilation, dtype=np.int64),
            groups=np.array(module.groups, dtype=np.int64),
            input_shape=np.array(input_shape[1:], dtype=np.int64),
        )
    if isinstance(module, torch.nn.Flatten):
        start = module.start_dim - 1 if module.start_dim > 0 else module.start_dim
        end = module.end_dim - 1 if module.end_dim > 0 else module.end_dim
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
