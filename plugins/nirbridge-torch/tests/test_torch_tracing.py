"""`trace` records layer calls, time steps, sums, views and the operations it cannot map."""

from __future__ import annotations

import torch
import torch.nn as nn

from nirbridge_torch.tracing import Const, Input, Opaque, Out, Stack, Sum, Term, trace


class Loop(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.rec = nn.Linear(4, 4, bias=False)
        self.act = nn.ReLU()

    def forward(self, x):
        h = torch.zeros(x.shape[1], 4)
        outs = []
        for t in range(x.shape[0]):
            h = self.act(self.fc(x[t]) + self.rec(h))
            outs.append(h)
        return torch.stack(outs)


def test_time_loop_sums_and_stack():
    tr = trace(Loop(), torch.rand(3, 2, 3), is_leaf=lambda m: False)
    calls = tr.by_key()
    assert [len(v) for v in calls.values()] == [3, 3, 3]
    act1 = calls["act"][1]
    assert isinstance(act1.args[0], Sum)
    terms, error = tr.terms(act1.args[0], 1)
    assert error is None and Term("fc", (), 0) in terms and Term("rec", (), 0) in terms
    rec1 = calls["rec"][1]
    assert tr.terms(rec1.args[0], 1) == ([Term("act", (), 1)], None)  # last step's output
    assert calls["rec"][0].args[0] == Const(zero=True)  # the zero initial state
    assert calls["fc"][0].args[0] == Input(0) and calls["fc"][2].args[0] == Input(2)  # x[t]
    assert isinstance(tr.output, Stack) and all(isinstance(p, Out) for p in tr.output.parts)


def test_flatten_view_and_unknown_operations():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.fc = nn.Linear(8, 2)

        def forward(self, x):
            y = self.conv(x)
            return self.fc(torch.tanh(y).view(y.shape[0], -1)), self.fc(y.flatten(1))

    tr = trace(Net(), torch.rand(2, 1, 4, 4), is_leaf=lambda m: False)
    keys = [c.key for c in tr.calls]
    assert keys[0] == "conv" and keys[1].startswith("flatten@") and keys[2] == "fc"
    assert keys[3].startswith("flatten@") and keys[3] != keys[1] and keys[4] == "fc"
    first_flatten = tr.calls[1]
    assert isinstance(first_flatten.args[0], Opaque) and "tanh" in str(first_flatten.args[0])
    _, error = tr.terms(first_flatten.args[0], 0)
    assert "tanh" in error
    assert tr.calls[3].args[0] == Out(0) and tr.calls[4].args[0] == Out(3)


def test_trace_leaves_no_hooks_behind():
    net = Loop()
    trace(net, torch.rand(2, 2, 3), is_leaf=lambda m: False)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
