"""The study's network and its training in snnTorch.

SeedNet: x -> fc1 -> Synaptic -> fc2 -> Synaptic, snnTorch defaults (reset by subtraction,
applied one step late: ``reset_delay=True``). Per layer and step t, with input current c[t]:

    I[t] = alpha I[t-1] + c[t]
    U[t] = beta U[t-1] + I[t] - theta S[t-1]
    S[t] = H(U[t] - theta)                       (H(0) = 0; surrogate gradient in training)

starting from I = U = S = 0. Layer 1 has fixed alpha, beta and theta = 1; layer 2 learns alpha,
beta (snnTorch clamps both to [0, 1] when stepping) and one threshold per neuron.

Training: BPTT over the whole sequence, Adam, loss = sum over t of cross-entropy(U2[t], label);
the prediction is the output neuron with the most spikes.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import snntorch as snn
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .datasets import make_loader


class SeedNet(torch.nn.Module):
    """fc1 -> Synaptic(alpha, beta) -> fc2 -> Synaptic(learnable alpha, beta, threshold[n_out])."""

    def __init__(self, n_in: int, n_hidden: int = 128, n_out: int = 10, *, alpha: float = 0.5,
                 beta: float = 0.8):
        super().__init__()
        self.config = dict(n_in=n_in, n_hidden=n_hidden, n_out=n_out, alpha=alpha, beta=beta)
        self.fc1 = torch.nn.Linear(n_in, n_hidden)
        self.lif1 = snn.Synaptic(alpha=alpha, beta=beta)
        self.fc2 = torch.nn.Linear(n_hidden, n_out)
        self.lif2 = snn.Synaptic(alpha=alpha, beta=beta, threshold=torch.ones(n_out),
                                 learn_alpha=True, learn_beta=True, learn_threshold=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (T, B, *shape) -> (output spikes, output membranes), each (T, B, n_out)."""
        syn1, mem1 = self.lif1.reset_mem()
        syn2, mem2 = self.lif2.reset_mem()
        spikes, membranes = [], []
        for step in range(x.shape[0]):
            cur1 = self.fc1(x[step].flatten(1))
            spk1, syn1, mem1 = self.lif1(cur1, syn1, mem1)
            cur2 = self.fc2(spk1)
            spk2, syn2, mem2 = self.lif2(cur2, syn2, mem2)
            spikes.append(spk2)
            membranes.append(mem2)
        return torch.stack(spikes), torch.stack(membranes)


def build_model(dataset, *, hidden: int = 128, alpha: float = 0.5, beta: float = 0.8,
                seed: int = 0) -> SeedNet:
    """A SeedNet sized for ``dataset`` (its ``input_shape`` flattened, ``n_classes`` outputs)."""
    torch.manual_seed(seed)
    return SeedNet(math.prod(dataset.input_shape), hidden, dataset.n_classes, alpha=alpha, beta=beta)


def sequence_loss(membranes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """sum_t cross-entropy(membranes[t], labels), membranes (T, B, classes)."""
    return sum(F.cross_entropy(m, labels) for m in membranes)


def fit(net: torch.nn.Module, dataset, batch_step, *, epochs: int, batch_size: int, lr: float, seed: int,
        progress: bool, desc: str = "train") -> dict:
    """BPTT with Adam. ``batch_step(x, y) -> (loss, scores)``, scores (B, classes) for the
    running accuracy. Trains in place; returns per-epoch mean ``loss``, train ``accuracy``
    and ``seconds``."""
    torch.manual_seed(seed)
    loader = make_loader(dataset, batch_size, shuffle=True, seed=seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    history = {"loss": [], "accuracy": [], "seconds": []}
    net.train()
    for epoch in range(epochs):
        start, total_loss, correct, seen = time.perf_counter(), 0.0, 0, 0
        bar = tqdm(loader, desc=f"{desc} {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for x, y in bar:
            loss, scores = batch_step(x, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(y)
            correct += (scores.argmax(1) == y).sum().item()
            seen += len(y)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
        history["loss"].append(total_loss / seen)
        history["accuracy"].append(correct / seen)
        history["seconds"].append(time.perf_counter() - start)
    net.eval()
    return history


def train(net: SeedNet, dataset, *, epochs: int = 20, batch_size: int = 64, lr: float = 1e-3,
          seed: int = 0, progress: bool = True) -> dict:
    """Train ``net`` in place (loss: `sequence_loss`; accuracy by output spike count); see `fit`."""

    def batch_step(x, y):
        spikes, membranes = net(x)
        return sequence_loss(membranes, y), spikes.sum(0)

    return fit(net, dataset, batch_step, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=progress)


def as_model_fn(net: torch.nn.Module):
    """``model_fn(x_seq) -> output spikes (T, B, classes)`` of a SeedNet, without gradients."""

    def model_fn(x):
        with torch.no_grad():
            return net(torch.as_tensor(x, dtype=torch.float32))[0]

    return model_fn


def save_model(net: SeedNet, path: str | Path) -> None:
    """``path`` (state dict, for ``torch.load(weights_only=True)``) and ``path.json`` (config)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    path.with_suffix(path.suffix + ".json").write_text(json.dumps(net.config, indent=2))


def load_model(path: str | Path) -> SeedNet:
    """The SeedNet written by ``save_model``."""
    path = Path(path)
    net = SeedNet(**json.loads(path.with_suffix(path.suffix + ".json").read_text()))
    net.load_state_dict(torch.load(path, weights_only=True))
    return net.eval()
