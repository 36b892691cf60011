"""The study's network, its training, and its evaluation with nirbridge.evaluate."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
pytest.importorskip("tonic")

from benchmarks.transfer.__main__ import main  # noqa: E402
from benchmarks.transfer.datasets import load_dataset  # noqa: E402
from benchmarks.transfer.train import (  # noqa: E402
    SeedNet,
    as_model_fn,
    build_model,
    load_model,
    save_model,
    sequence_loss,
    train,
)

import nirbridge  # noqa: E402

torch.set_num_threads(1)


def active_net(seed=0, n_in=12, n_hidden=16, n_out=5):
    """A SeedNet whose neurons spike often, with distinct learnable output parameters."""
    torch.manual_seed(seed)
    net = SeedNet(n_in, n_hidden, n_out, alpha=0.6, beta=0.85)
    with torch.no_grad():
        net.fc1.weight.mul_(4.0)
        net.fc2.weight.mul_(4.0)
        net.lif2.alpha.fill_(0.7)
        net.lif2.beta.fill_(0.75)
        net.lif2.threshold.copy_(torch.linspace(0.5, 1.5, n_out))
    return net


def test_forward_equals_a_step_loop_over_fresh_snntorch_modules():
    net = active_net()
    x = torch.rand(15, 3, 2, 6)
    spikes, membranes = net(x)
    assert spikes.shape == membranes.shape == (15, 3, 5)

    lif1 = snn.Synaptic(alpha=0.6, beta=0.85)
    lif2 = snn.Synaptic(alpha=0.7, beta=0.75, threshold=torch.linspace(0.5, 1.5, 5))
    syn1 = mem1 = syn2 = mem2 = torch.zeros(())
    for t in range(15):
        spk1, syn1, mem1 = lif1(net.fc1(x[t].reshape(3, -1)), syn1, mem1)
        spk2, syn2, mem2 = lif2(net.fc2(spk1), syn2, mem2)
        assert torch.equal(spikes[t], spk2) and torch.allclose(membranes[t], mem2)
    assert 0 < spikes.mean() < 1


def test_forward_follows_the_documented_equations():
    """I = a I + c;  U = b U + I - theta S_prev;  S = [U > theta], per layer."""
    net = active_net(seed=1)
    x = torch.rand(20, 4, 12)
    spikes, membranes = net(x)

    def layer(currents, a, b, theta):
        i = u = s = torch.zeros_like(currents[0])
        out_s, out_u = [], []
        for c in currents:
            i = a * i + c
            u = b * u + i - theta * s
            s = (u > theta).float()
            out_s.append(s)
            out_u.append(u)
        return torch.stack(out_s), torch.stack(out_u)

    with torch.no_grad():
        s1, _ = layer(net.fc1(x), 0.6, 0.85, 1.0)
        s2, u2 = layer(net.fc2(s1), 0.7, 0.75, torch.linspace(0.5, 1.5, 5))
    assert s1.mean() > 0.05 and s2.mean() > 0.05
    assert torch.equal(spikes, s2)
    assert torch.allclose(membranes, u2, atol=1e-5)


def test_only_the_output_layer_learns_its_neuron_parameters():
    net = SeedNet(64, 32, 10)
    names = {n for n, _ in net.named_parameters()}
    assert {"lif2.alpha", "lif2.beta", "lif2.threshold"} <= names
    assert not {"lif1.alpha", "lif1.beta", "lif1.threshold"} & names
    assert net.lif2.threshold.shape == (10,)
    assert net.lif1.reset_mechanism == net.lif2.reset_mechanism == "subtract"
    assert net.lif1.reset_delay and net.lif2.reset_delay


def test_sequence_loss_sums_cross_entropy_over_time():
    membranes = torch.randn(4, 3, 10)
    labels = torch.tensor([1, 7, 3])
    log_p = torch.log_softmax(membranes, dim=-1)
    expected = -log_p[:, torch.arange(3), labels].mean(dim=1).sum()
    assert torch.allclose(sequence_loss(membranes, labels), expected)


@pytest.fixture(scope="module")
def small_digits():
    return load_dataset("digits", T=8, limit=240)


@pytest.fixture(scope="module")
def trained(small_digits):
    train_set, _ = small_digits
    net = build_model(train_set, hidden=48, seed=0)
    history = train(net, train_set, epochs=6, batch_size=16, seed=0, progress=False)
    return net, history


def test_training_lowers_the_loss_and_beats_chance(small_digits, trained):
    net, history = trained
    assert len(history["loss"]) == len(history["accuracy"]) == len(history["seconds"]) == 6
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    test = small_digits[1]
    sample = torch.as_tensor(np.stack([test[i][0] for i in range(2)], axis=1))
    result = nirbridge.evaluate(net, test, backends=[], original=as_model_fn(net), sample=sample, batch_size=50, progress=False)
    assert result["original"].accuracy > 0.5  # chance: 0.1
    assert result["original"].agreement == 1.0  # the exported graph (the reference) predicts the same


def test_training_is_seeded(small_digits, trained):
    train_set, _ = small_digits
    subset = train_set.subset(range(64))
    runs = []
    for _ in range(2):
        net = build_model(subset, hidden=16, seed=5)
        runs.append((train(net, subset, epochs=1, batch_size=16, seed=5, progress=False)["loss"],
                     net.fc1.weight.detach().clone()))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


def test_saved_model_reloads_with_the_same_outputs(tmp_path):
    net = active_net(seed=2)
    save_model(net, tmp_path / "m" / "model.pt")
    again = load_model(tmp_path / "m" / "model.pt")
    x = torch.rand(6, 2, 12)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(net(x), again(x)))
    assert json.loads((tmp_path / "m" / "model.pt.json").read_text())["alpha"] == 0.6


def test_command_line_trains_evaluates_and_writes_results(tmp_path, capsys):
    code = main(["--dataset", "digits", "--epochs", "2", "--T", "4", "--hidden", "16", "--limit", "80",
                 "--out", str(tmp_path), "--no-progress", "--threads", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    metrics = json.loads((tmp_path / "digits" / "train.json").read_text())
    assert metrics["train_samples"] == metrics["test_samples"] == 80 and metrics["epochs"] == 2
    assert f"{metrics['test_accuracy']:.1%}" in printed
    net = load_model(tmp_path / "digits" / "model.pt")
    assert net.config["n_hidden"] == 16 and net.config["n_in"] == 64


def test_command_line_reports_missing_data(tmp_path, capsys):
    code = main(["--dataset", "nmnist", "--data-dir", str(tmp_path), "--no-download", "--out",
                 str(tmp_path / "out")])
    assert code == 2
    assert "N-MNIST not found" in capsys.readouterr().err
