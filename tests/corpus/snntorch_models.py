"""snnTorch models as users write them in snnTorch's tutorials and docs (written here, sized
small): the classic time-loop networks, `init_hidden` Sequentials, convolutional networks with
functional pooling, membrane readouts, standalone recurrent neurons, models in other dtypes."""

from __future__ import annotations

import numpy as np
import snntorch as snn
import torch
import torch.nn as nn
import torch.nn.functional as F
from corpus_harness import Case, scaled, seeded, spikes

T, B = 30, 4


# ----------------------------------------------------------------------------- tutorial 5: the MLP


class TimeLoopMLP(nn.Module):
    """Tutorial 5: fc1 -> Leaky -> fc2 -> Leaky, a loop over x[step] with explicit membranes."""

    def __init__(self, n_in=64, hidden=32, n_out=10, beta=0.9):
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(n_in, hidden), snn.Leaky(beta=beta)
        self.fc2, self.lif2 = nn.Linear(hidden, n_out), snn.Leaky(beta=beta)

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spk2_rec, mem2_rec = [], []
        for step in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(x[step]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)


class StaticMLP(TimeLoopMLP):
    """Tutorial 5 as written: the same (flattened) image at every one of `num_steps` steps."""

    num_steps = 25

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spk2_rec, mem2_rec = [], []
        for _ in range(self.num_steps):
            cur1 = self.fc1(x.view(x.shape[0], -1))
            spk1, mem1 = self.lif1(cur1, mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)


class SynapticNet(nn.Module):
    """The docs' Synaptic example: init_synaptic, a static input repeated over the steps."""

    num_steps = 25

    def __init__(self, n_in=64, hidden=32, n_out=10):
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(n_in, hidden), snn.Synaptic(alpha=0.9, beta=0.85)
        self.fc2, self.lif2 = nn.Linear(hidden, n_out), snn.Synaptic(alpha=0.9, beta=0.85)

    def forward(self, x):
        syn1, mem1 = self.lif1.init_synaptic()
        syn2, mem2 = self.lif2.init_synaptic()
        spk2_rec = []
        for _ in range(self.num_steps):
            spk1, syn1, mem1 = self.lif1(self.fc1(x), syn1, mem1)
            spk2, syn2, mem2 = self.lif2(self.fc2(spk1), syn2, mem2)
            spk2_rec.append(spk2)
        return torch.stack(spk2_rec, dim=0)


class SeedNet(nn.Module):
    """The seed paper's network: Synaptic layers; keeps its state in an attribute during forward."""

    def __init__(self, n_in=64, hidden=32, n_out=10):
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(n_in, hidden), snn.Synaptic(alpha=0.5, beta=0.8)
        self.fc2 = nn.Linear(hidden, n_out)
        self.lif2 = snn.Synaptic(alpha=0.5, beta=0.8, threshold=torch.ones(n_out), learn_alpha=True, learn_beta=True, learn_threshold=True)
        self.state = None

    def forward(self, x):
        syn1, mem1 = self.lif1.reset_mem()
        syn2, mem2 = self.lif2.reset_mem()
        self.state = [syn1, mem1, syn2, mem2]
        spikes_rec = []
        for step in range(x.shape[0]):
            spk1, syn1, mem1 = self.lif1(self.fc1(x[step].flatten(1)), syn1, mem1)
            spk2, syn2, mem2 = self.lif2(self.fc2(spk1), syn2, mem2)
            self.state = [syn1, mem1, syn2, mem2]
            spikes_rec.append(spk2)
        return torch.stack(spikes_rec)


def sequential_mlp():
    """Tutorial 5's Sequential form: init_hidden neurons, one call per step."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), snn.Leaky(beta=0.9, init_hidden=True),
                         nn.Linear(32, 10), snn.Leaky(beta=0.9, init_hidden=True, output=True))


# ----------------------------------------------------------------------------- tutorial 6 and the NIR tutorial: CSNNs


def csnn_sequential_pool_before_spikes():
    """Tutorial 6's Sequential CSNN: MaxPool2d between Conv2d and Leaky."""
    return nn.Sequential(nn.Conv2d(2, 8, 3), nn.MaxPool2d(2), snn.Leaky(beta=0.5, init_hidden=True),
                         nn.Conv2d(8, 8, 3), nn.MaxPool2d(2), snn.Leaky(beta=0.5, init_hidden=True),
                         nn.Flatten(), nn.Linear(8 * 2 * 2, 10), snn.Leaky(beta=0.5, init_hidden=True, output=True))


class FunctionalCSNN(nn.Module):
    """Tutorial 6's class CSNN: `F.max_pool2d(self.conv1(x), 2)` before the neuron."""

    def __init__(self):
        super().__init__()
        self.conv1, self.lif1 = nn.Conv2d(2, 8, 3), snn.Leaky(beta=0.5)
        self.fc1, self.lif2 = nn.Linear(8 * 7 * 7, 10), snn.Leaky(beta=0.5)

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        out = []
        for step in range(x.shape[0]):
            spk1, mem1 = self.lif1(F.max_pool2d(self.conv1(x[step]), 2), mem1)
            spk2, mem2 = self.lif2(self.fc1(spk1.view(spk1.shape[0], -1)), mem2)
            out.append(spk2)
        return torch.stack(out)


class SpikePoolCSNN(nn.Module):
    """A CSNN pooling its spikes: `F.max_pool2d(spk, 2)`, `x.view(batch, -1)`."""

    def __init__(self):
        super().__init__()
        self.conv1, self.lif1 = nn.Conv2d(2, 6, 3, padding=1), snn.Leaky(beta=0.8)
        self.conv2, self.lif2 = nn.Conv2d(6, 8, 3, padding=1), snn.Leaky(beta=0.8)
        self.fc, self.lif3 = nn.Linear(8 * 4 * 4, 10), snn.Leaky(beta=0.8)

    def forward(self, x):
        mem1, mem2, mem3 = self.lif1.init_leaky(), self.lif2.init_leaky(), self.lif3.init_leaky()
        out = []
        for step in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.conv1(x[step]), mem1)
            spk2, mem2 = self.lif2(self.conv2(F.max_pool2d(spk1, 2)), mem2)
            z = F.max_pool2d(spk2, 2)
            spk3, mem3 = self.lif3(self.fc(z.view(z.shape[0], -1)), mem3)
            out.append(spk3)
        return torch.stack(out)


class AvgPoolCSNN(nn.Module):
    """The NIR tutorial's CSNN: `F.avg_pool2d` after spikes, `torch.flatten`, init_hidden neurons."""

    def __init__(self):
        super().__init__()
        self.conv1, self.lif1 = nn.Conv2d(2, 8, 3, padding=1), snn.Leaky(beta=0.9, init_hidden=True)
        self.fc1, self.lif2 = nn.Linear(8 * 8 * 8, 10), snn.Leaky(beta=0.9, init_hidden=True)

    def forward(self, x):
        z = F.avg_pool2d(self.lif1(self.conv1(x)), 2)
        return self.lif2(self.fc1(torch.flatten(z, 1)))


class ReLUCNN(nn.Module):
    """A conv net with ReLU between layers (an ANN habit): ReLU of currents has no NIR node."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc, self.lif = nn.Conv2d(2, 4, 3), nn.Linear(4 * 14 * 14, 10), snn.Leaky(beta=0.9, init_hidden=True)

    def forward(self, x):
        return self.lif(self.fc(F.relu(self.conv(x)).flatten(1)))


# ----------------------------------------------------------------------------- regression tutorials


class RegressionNet(nn.Module):
    """Regression tutorial 1: Leaky layers with per-neuron random beta and threshold, and a
    Leaky(reset_mechanism="none") whose membrane is the output."""

    def __init__(self, hidden=16):
        super().__init__()
        self.fc_in, self.lif_in = nn.Linear(1, hidden), snn.Leaky(beta=torch.rand(hidden), threshold=torch.rand(hidden) * 0.5 + 0.1, learn_beta=True)
        self.fc_hidden = nn.Linear(hidden, hidden)
        self.lif_hidden = snn.Leaky(beta=torch.rand(hidden), threshold=torch.rand(hidden) * 0.5 + 0.1, learn_beta=True)
        self.fc_out, self.li_out = nn.Linear(hidden, 1), snn.Leaky(beta=torch.rand(1), threshold=1.0, learn_beta=True, reset_mechanism="none")

    def forward(self, x):
        mem_1, mem_2, mem_3 = self.lif_in.init_leaky(), self.lif_hidden.init_leaky(), self.li_out.init_leaky()
        mem_3_rec = []
        for step in range(x.shape[0]):
            spk_in, mem_1 = self.lif_in(self.fc_in(x[step, :, :]), mem_1)
            spk_hidden, mem_2 = self.lif_hidden(self.fc_hidden(spk_in), mem_2)
            _, mem_3 = self.li_out(self.fc_out(spk_hidden), mem_3)
            mem_3_rec.append(mem_3)
        return torch.stack(mem_3_rec)


class RLeakyNet(nn.Module):
    """Regression tutorial 2: Linear -> RLeaky(linear_features) twice, a static input."""

    num_steps = 25

    def __init__(self, n_in=64, hidden=24):
        super().__init__()
        self.fc1, self.rlif1 = nn.Linear(n_in, hidden), snn.RLeaky(beta=0.9, linear_features=hidden)
        self.fc2, self.rlif2 = nn.Linear(hidden, 10), snn.RLeaky(beta=0.9, linear_features=10)

    def forward(self, x):
        spk1, mem1 = self.rlif1.init_rleaky()
        spk2, mem2 = self.rlif2.init_rleaky()
        rec = []
        for _ in range(self.num_steps):
            spk1, mem1 = self.rlif1(self.fc1(x), spk1, mem1)
            spk2, mem2 = self.rlif2(self.fc2(spk1), spk2, mem2)
            rec.append(spk2)
        return torch.stack(rec)


class Standalone(nn.Module):
    """Regression tutorial 2's first examples: a recurrent neuron fed the input directly."""

    def __init__(self, neuron):
        super().__init__()
        self.rlif = neuron

    def forward(self, x):
        state = self.rlif.init_rleaky() if isinstance(self.rlif, snn.RLeaky) else self.rlif.init_rsynaptic()
        rec = []
        for step in range(x.shape[0]):
            state = self.rlif(x[step], *state)
            rec.append(state[0])
        return torch.stack(rec)


def _standalone(neuron_fn, bias_gain=1.0):
    def make():
        model = Standalone(neuron_fn())
        rec = getattr(model.rlif, "recurrent", None)
        with torch.no_grad():
            if isinstance(rec, (nn.Linear, nn.Conv2d)):
                rec.weight.mul_(0.5)
                rec.bias.uniform_(0.02 * bias_gain, 0.1 * bias_gain)
        return model
    return make


# ----------------------------------------------------------------------------- other forms


class LapicqueGraded(nn.Module):
    """Lapicque and a graded-spike Leaky, init_hidden, one call per step."""

    def __init__(self):
        super().__init__()
        self.fc1, self.lap = nn.Linear(16, 12), snn.Lapicque(R=5.1, C=5e-3, time_step=1e-3, threshold=0.5, init_hidden=True)
        self.fc2, self.lif = nn.Linear(12, 6), snn.Leaky(beta=0.8, init_hidden=True, graded_spikes_factor=0.5)

    def forward(self, x):
        return self.lif(self.fc2(self.lap(self.fc1(x))))


class AlphaNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.alpha = nn.Linear(16, 8), snn.Alpha(alpha=0.9, beta=0.8, init_hidden=True)

    def forward(self, x):
        return self.alpha(self.fc(x))


class NoStatePassed(nn.Module):
    """A loop that starts the membrane again from a non-zero constant every step."""

    def __init__(self):
        super().__init__()
        self.fc, self.lif = nn.Linear(16, 8), snn.Leaky(beta=0.9)

    def forward(self, x):
        out = []
        for step in range(x.shape[0]):
            spk, _ = self.lif(self.fc(x[step]), torch.full((x.shape[1], 8), 0.5))
            out.append(spk)
        return torch.stack(out)


class TypedMLP(TimeLoopMLP):
    """Tutorial 5's MLP in another dtype: snnTorch emits float32 spikes, so the model casts
    them to its own dtype before the next layer."""

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spk2_rec = []
        for step in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(x[step]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1.to(x.dtype)), mem2)
            spk2_rec.append(spk2)
        return torch.stack(spk2_rec, dim=0)


def _typed(dtype, exact_values=True):
    def make():
        torch.manual_seed(3)
        model = scaled(TypedMLP(16, 12, 6), 3.0, 0.02)
        if exact_values:  # float32 values held in another dtype (model.double() of a float32 model)
            return model.to(dtype)
        with torch.no_grad():
            model = model.to(dtype)
            model.fc1.weight.add_(1e-12)  # values no float32 holds
        return model
    return make


def _flat(rng, shape=(B, 64), rate=0.3):
    return spikes(rng, shape, rate)


CASES = [
    Case("tutorial5_time_loop_mlp", seeded(lambda: scaled(TimeLoopMLP(), 3.0, 0.02)), lambda rng: spikes(rng, (T, B, 64)),
         source="snnTorch tutorial 5"),
    Case("tutorial5_static_image_loop", seeded(lambda: scaled(StaticMLP(), 2.0, 0.01)), lambda rng: spikes(rng, (B, 1, 8, 8)),
         style="static", steps=StaticMLP.num_steps, source="snnTorch tutorial 5 (x.view(batch, -1) of an image, repeated)"),
    Case("tutorial5_sequential_init_hidden", seeded(lambda: scaled(sequential_mlp(), 3.0, 0.02)), lambda rng: spikes(rng, (T, B, 1, 8, 8)),
         style="step", source="snnTorch tutorial 5 / the NIR export docs"),
    Case("synaptic_docs_example", seeded(lambda: scaled(SynapticNet(), 1.0, 0.005)), lambda rng: spikes(rng, (B, 64)),
         style="static", steps=SynapticNet.num_steps, source="snnTorch docs: example_snn_synaptic"),
    Case("seed_paper_net_state_attribute", seeded(lambda: scaled(SeedNet(), 2.0, 0.01)), lambda rng: spikes(rng, (T, B, 1, 8, 8)),
         source="the seed paper's network (state kept in self.state during forward)"),
    Case("sample_is_a_slice", seeded(lambda: scaled(TimeLoopMLP(), 3.0, 0.02)), lambda rng: spikes(rng, (T, B, 64)),
         sample=lambda x: torch.cat([x, x])[T // 2:T // 2 + 5], source="sample = x[a:b] of a longer tensor"),
    Case("sample_is_a_view", seeded(lambda: scaled(TimeLoopMLP(), 3.0, 0.02)), lambda rng: spikes(rng, (T, B, 64)),
         sample=lambda x: x.reshape(T, B, 8, 8).view(T, B, 64)[:4], source="sample = x.view(...)"),
    Case("tutorial6_sequential_maxpool_before_spikes", seeded(csnn_sequential_pool_before_spikes), lambda rng: spikes(rng, (T, B, 2, 14, 14)),
         style="step", expect="NIR has no max pooling", refused_node="1", source="snnTorch tutorial 6 (Sequential)"),
    Case("tutorial6_functional_maxpool_before_spikes", seeded(FunctionalCSNN), lambda rng: spikes(rng, (T, B, 2, 16, 16)),
         expect="NIR has no max pooling", source="snnTorch tutorial 6 (F.max_pool2d(self.conv1(x), 2))"),
    Case("csnn_functional_maxpool_after_spikes", seeded(lambda: scaled(SpikePoolCSNN(), 2.0, 0.03)), lambda rng: spikes(rng, (T, B, 2, 16, 16)),
         source="F.max_pool2d on spikes, x.view(batch, -1)"),
    Case("nir_tutorial_avg_pool2d_flatten", seeded(lambda: scaled(AvgPoolCSNN(), 2.0, 0.02)), lambda rng: spikes(rng, (T, B, 2, 16, 16)),
         style="step", source="snnTorch's NIR tutorial (F.avg_pool2d, torch.flatten)"),
    Case("relu_of_currents", seeded(ReLUCNN), lambda rng: spikes(rng, (T, B, 2, 16, 16)), style="step",
         expect="ReLU of values that are not spikes has no NIR node"),
    Case("regression1_membrane_output", seeded(lambda: scaled(RegressionNet(), 2.0, 0.05)), lambda rng: rng.uniform(0, 1, (T, B, 1)).astype(np.float32),
         source="snnTorch regression tutorial 1 (Leaky(reset_mechanism='none') membrane as output)"),
    Case("regression2_rleaky_net", seeded(lambda: scaled(RLeakyNet(), 1.5, 0.02)), lambda rng: spikes(rng, (B, 64)),
         style="static", steps=RLeakyNet.num_steps, source="snnTorch regression tutorial 2 (RLeaky(linear_features=N))"),
    Case("rleaky_standalone_linear", seeded(_standalone(lambda: snn.RLeaky(beta=0.9, linear_features=10))), lambda rng: spikes(rng, (T, B, 10)),
         source="snnTorch regression tutorial 2 (RLeaky(linear_features=10), no layer in front)"),
    Case("rleaky_standalone_one_to_one", seeded(_standalone(lambda: snn.RLeaky(beta=0.9, all_to_all=False, V=0.5))), lambda rng: spikes(rng, (T, B, 10)),
         source="snnTorch regression tutorial 2 (RLeaky(all_to_all=False))"),
    Case("rleaky_standalone_conv", seeded(_standalone(lambda: snn.RLeaky(beta=0.9, conv2d_channels=3, kernel_size=(5, 5)))),
         lambda rng: spikes(rng, (T, B, 3, 8, 8)), source="snnTorch regression tutorial 2 (RLeaky(conv2d_channels=3, kernel_size=(5, 5)))"),
    Case("rsynaptic_standalone", seeded(_standalone(lambda: snn.RSynaptic(alpha=0.8, beta=0.9, linear_features=10))), lambda rng: spikes(rng, (T, B, 10)),
         source="snnTorch docs: RSynaptic(linear_features=N)"),
    Case("lapicque_and_graded_spikes", seeded(lambda: scaled(LapicqueGraded(), 2.0, 0.03)), lambda rng: spikes(rng, (T, B, 16)), style="step",
         source="snnTorch docs: Lapicque, graded_spikes_factor"),
    Case("alpha_neuron", seeded(AlphaNet), lambda rng: spikes(rng, (T, B, 16)), style="step", expect="two coupled synaptic currents"),
    Case("state_replaced_each_step", seeded(NoStatePassed), lambda rng: spikes(rng, (T, B, 16)), expect="NIR neurons start from zero"),
    Case("float64_model_of_float32_values", _typed(torch.float64), lambda rng: spikes(rng, (T, B, 16)), source="model.double()"),
    Case("float64_model", _typed(torch.float64, exact_values=False), lambda rng: spikes(rng, (T, B, 16)),
         expect="has no exact float32 value", refused_node="fc1"),
    Case("float16_model", _typed(torch.float16), lambda rng: spikes(rng, (T, B, 16)), source="model.half()"),
    Case("bfloat16_model", _typed(torch.bfloat16), lambda rng: spikes(rng, (T, B, 16)), source="model.to(torch.bfloat16)"),
]


class ReadsLastStep(nn.Module):
    """A loop that feeds each step the previous frame (`x[step - 1]`)."""

    def __init__(self):
        super().__init__()
        self.fc, self.lif = nn.Linear(16, 8), snn.Leaky(beta=0.9)

    def forward(self, x):
        mem, out = self.lif.init_leaky(), []
        for step in range(1, x.shape[0]):
            spk, mem = self.lif(self.fc(x[step - 1] + x[step]), mem)
            out.append(spk)
        return torch.stack(out)


CASES.append(Case("input_of_another_step", seeded(ReadsLastStep), lambda rng: spikes(rng, (T, B, 16)),
                  expect="NIR feeds every layer the input of the current step"))
