"""Norse models as users write them in Norse's docs and tutorials (written here, sized small):
SequentialState stacks of cells, the docs' `SNN` with a recurrent cell and a time loop that
flattens each frame with `.view(-1, F)`, the MNIST `ConvNet` (functional max pooling of spikes,
a constant factor, ReLU of spikes, a preallocated output), time-sequence modules with `Lift`."""

from __future__ import annotations

import norse.torch as norse
import numpy as np
import torch
import torch.nn.functional as F
from corpus_harness import Case, scaled, seeded, spikes

T, B = 30, 4


def _p(**kw):
    return norse.LIFParameters(**{k: v if isinstance(v, str) else torch.as_tensor(v) for k, v in kw.items()})


class DocsSNN(torch.nn.Module):
    """The Norse docs' `SNN`: LIFRecurrentCell -> Linear(no bias) -> LICell over a time loop
    that flattens each frame, recording states into attributes when asked."""

    def __init__(self, input_features=64, hidden_features=20, output_features=5, record=True, dt=1e-3):
        super().__init__()
        self.l1 = norse.LIFRecurrentCell(input_features, hidden_features, p=_p(alpha=100.0, v_th=0.3), dt=dt, autapses=False)
        self.input_features = input_features
        self.fc_out = torch.nn.Linear(hidden_features, output_features, bias=False)
        self.out = norse.LICell(dt=dt)
        self.hidden_features, self.output_features, self.record = hidden_features, output_features, record

    def forward(self, x):
        seq_length, batch_size, _, _, _ = x.shape
        s1 = so = None
        voltages = []
        if self.record:
            self.recording = torch.zeros(seq_length, batch_size, self.hidden_features)
        for ts in range(seq_length):
            z = x[ts, :, :, :].view(-1, self.input_features)
            z, s1 = self.l1(z, s1)
            z = self.fc_out(z)
            vo, so = self.out(z, so)
            if self.record:
                self.recording[ts, :] = s1.v
            voltages += [vo]
        return torch.stack(voltages)


class ConvNet(torch.nn.Module):
    """Norse's MNIST `ConvNet`: conv -> LIFCell -> F.max_pool2d -> 10 * conv -> LIFCell ->
    max pool -> view(-1, F) -> Linear -> LIFCell -> LICell(relu(z)), into preallocated voltages."""

    def __init__(self, features=2):
        super().__init__()
        self.features = features
        self.conv1 = torch.nn.Conv2d(2, 6, 3)
        self.conv2 = torch.nn.Conv2d(6, 8, 3)
        self.fc1 = torch.nn.Linear(features * features * 8, 20)
        self.lif0, self.lif1, self.lif2 = (norse.LIFCell(p=_p(method="super", alpha=100.0, v_th=0.3)) for _ in range(3))
        self.out = norse.LICell()

    def forward(self, x):
        seq_length, batch_size = x.shape[:2]
        s0 = s1 = s2 = so = None
        voltages = torch.zeros(seq_length, batch_size, 20, device=x.device, dtype=x.dtype)
        for ts in range(seq_length):
            z = self.conv1(x[ts, :])
            z, s0 = self.lif0(z, s0)
            z = F.max_pool2d(z, 2, 2)
            z = 10 * self.conv2(z)
            z, s1 = self.lif1(z, s1)
            z = F.max_pool2d(z, 2, 2)
            z = z.view(-1, self.features**2 * 8)
            z = self.fc1(z)
            z, s2 = self.lif2(z, s2)
            v, so = self.out(F.relu(z), so)
            voltages[ts, :, :] = v
        return voltages


def mlp_state():
    """SequentialState of cells, stepped with its state."""
    return norse.SequentialState(torch.nn.Linear(16, 12), norse.LIFCell(p=_p(v_th=0.3)), torch.nn.Linear(12, 6),
                                 norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.tensor(200.0), v_th=torch.tensor(0.2))))


def conv_state():
    """SequentialState: Conv2d -> LIFBoxCell -> MaxPool2d -> Flatten -> Linear -> IAFCell."""
    return norse.SequentialState(
        torch.nn.Conv2d(2, 4, 3, padding=1), norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.tensor(300.0), v_th=torch.tensor(0.2))),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 6), norse.IAFCell(norse.IAFParameters(v_th=torch.tensor(0.5))),
    )


def lifted_sequence():
    """Time-sequence modules: Lift(Conv2d) -> LIF -> Lift(AvgPool2d) -> Flatten(2) -> Linear -> LI."""
    return norse.SequentialState(
        norse.Lift(torch.nn.Conv2d(2, 4, 3, padding=1)), norse.LIF(_p(v_th=0.3)), norse.Lift(torch.nn.AvgPool2d(2)),
        torch.nn.Flatten(2), torch.nn.Linear(4 * 4 * 4, 6), norse.LI(),
    )


class SeqOnly(torch.nn.Module):
    """A time-sequence model whose output is the first element of SequentialState's result."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)[0]


def lsnn():
    return norse.SequentialState(torch.nn.Linear(16, 8), norse.LSNNCell())


def leaky_li():
    return norse.SequentialState(torch.nn.Linear(16, 8), norse.LIFCell(), torch.nn.Linear(8, 4), norse.LIBoxCell(norse.LIBoxParameters(v_leak=torch.tensor(0.5))))


class RestartEachStep(torch.nn.Module):
    """A loop that forgets to pass the state back (the cell restarts every step)."""

    def __init__(self):
        super().__init__()
        self.fc, self.lif = torch.nn.Linear(16, 8), norse.LIFCell()

    def forward(self, x):
        return torch.stack([self.lif(self.fc(x[t]))[0] for t in range(x.shape[0])])


CASES = [
    Case("norse_sequentialstate_mlp", seeded(lambda: scaled(mlp_state(), 2.0, 0.05)), lambda rng: spikes(rng, (T, B, 16)), style="state",
         source="Norse docs: SequentialState of cells"),
    Case("norse_sequentialstate_conv", seeded(lambda: scaled(conv_state(), 1.0, 0.01)), lambda rng: spikes(rng, (T, B, 2, 8, 8)), style="state",
         source="Norse docs: convolutional SequentialState, MaxPool2d after spikes"),
    Case("norse_docs_snn_view_in_time_loop", seeded(lambda: scaled(DocsSNN(), 2.0, 0.02)), lambda rng: spikes(rng, (T, B, 1, 8, 8)),
         source="Norse docs/tutorials: SNN with LIFRecurrentCell, x[ts].view(-1, F), LICell readout, state recording"),
    Case("norse_mnist_convnet", seeded(lambda: scaled(ConvNet(), 1.0, 0.01)), lambda rng: spikes(rng, (T, B, 2, 16, 16)),
         source="Norse's MNIST ConvNet (F.max_pool2d of spikes, 10 * conv, view(-1, F), relu of spikes, voltages[ts] = v)"),
    Case("norse_lifted_time_modules", seeded(lambda: SeqOnly(scaled(lifted_sequence(), 2.0, 0.05))), lambda rng: spikes(rng, (T, B, 2, 8, 8)),
         style="sequence", source="Norse docs: Lift and time-sequence modules (LIF, LI)"),
    Case("norse_lsnn", seeded(lsnn), lambda rng: spikes(rng, (T, B, 16)), style="state", expect="adaptive threshold (a second state raising the threshold after each spike); no NIR neuron has one"),
    Case("norse_li_with_leak", seeded(lambda: scaled(leaky_li(), 3.0, 0.05)), lambda rng: spikes(rng, (T, B, 16)), style="state",
         source="LIBoxCell with v_leak (starts at v_leak: policy override initial_v)"),
    Case("norse_state_not_passed_back", seeded(RestartEachStep), lambda rng: spikes(rng, (T, B, 16)), expect="a NIR neuron carries its state from step to step"),
]

__all__ = ["CASES", "np"]
