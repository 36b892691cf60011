"""The Norse-first path: a small convolutional SNN written and trained in Norse, then moved to
snnTorch (and the NumPy reference, and back to Norse) with nirbridge.

Network (``norse.torch.SequentialState``), input (2, H, W) event frames, per time step:

    Conv2d(2, c1, 3, padding 1) -> LIFCell -> MaxPool2d(2)
    -> Conv2d(c1, c2, 3, padding 1) -> LIFCell -> MaxPool2d(2)
    -> Flatten -> Linear(c2 (H//4) (W//4), classes) -> LIFCell

with Norse's default LIF parameters (dt = 1 ms, tau_syn = 5 ms, tau_mem = 10 ms, v_th = 1). The
weights of the default initialisation are multiplied by ``gain`` (4) so that every layer spikes
from the start (with gain 1 the output layer is silent on these inputs and nothing learns).
Training: BPTT over the whole sequence, Adam, loss = cross-entropy of the output spike counts;
the prediction is the output neuron with the most spikes, as for the SeedNet.

NIR has no max pooling; the Norse exporter writes each MaxPool2d, whose input is spikes, as
SumPool2d followed by Threshold(0.5), which is exactly the same on 0/1 input.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import nirbridge

from .compare import SpikeMonitor, first_difference, row
from .datasets import make_loader
from .train import fit

ORIGINAL = "Norse CSNN, trained (original)"
#: positions of the LIFCells in the SequentialState
LIF_LAYERS = {"lif1": 1, "lif2": 4, "lif3": 8}
#: targets of the converted model (from the saved NIR file): backend -> table label
TARGETS = {
    "snntorch": "snnTorch (nirbridge)",
    "numpy": "NumPy reference (nirbridge)",
    "norse": "Norse (nirbridge, back from the NIR file)",
}


def build_csnn(input_shape, n_classes: int, *, channels=(8, 16), gain: float = 4.0, seed: int = 0):
    """The network of the module doc for inputs (2, H, W)."""
    import norse.torch as norse

    c_in, h, w = input_shape
    c1, c2 = channels
    torch.manual_seed(seed)
    layers = [
        torch.nn.Conv2d(c_in, c1, 3, padding=1), norse.LIFCell(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(c1, c2, 3, padding=1), norse.LIFCell(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(c2 * (h // 4) * (w // 4), n_classes), norse.LIFCell(),
    ]
    with torch.no_grad():
        for layer in layers:
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
                layer.weight.mul_(gain)
    return norse.SequentialState(*layers)


def run_csnn(net, x) -> torch.Tensor:
    """Output spikes (time, batch, classes) of the network on x (time, batch, 2, H, W)."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    state, out = None, []
    for t in range(x.shape[0]):
        y, state = net(x[t], state)
        out.append(y)
    return torch.stack(out)


def train_csnn(net, dataset, *, epochs: int = 4, batch_size: int = 64, lr: float = 2e-3, seed: int = 0,
               progress: bool = True) -> dict:
    """Train in place on the cross-entropy of output spike counts; see `train.fit`."""

    def batch_step(x, y):
        counts = run_csnn(net, x).sum(0)
        return F.cross_entropy(counts, y), counts

    return fit(net, dataset, batch_step, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
               progress=progress, desc="train Norse CSNN")


def norse_first(name: str, train_set, test_set, folder: Path, *, epochs: int = 4, batch_size: int = 64,
                seed: int = 0, progress: bool = True) -> dict:
    """Train the CSNN on ``train_set``, convert it, evaluate every model on ``test_set`` with the
    same batches. Returns ``rows``, ``history``, ``train_seconds``, ``nir_file`` and ``nodes``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    net = build_csnn(train_set.input_shape, train_set.n_classes, seed=seed)
    start = time.perf_counter()
    history = train_csnn(net, train_set, epochs=epochs, batch_size=batch_size, seed=seed, progress=progress)
    train_seconds = time.perf_counter() - start

    sample = torch.zeros(1, *train_set.input_shape)  # one time step: the cells carry the time
    path = folder / "norse_csnn.nir"
    nirbridge.save(nirbridge.convert(net, to="nir", sample=sample), path)
    graph = nirbridge.load(path)

    loader = make_loader(test_set, batch_size)

    def original_fn(x):
        with torch.no_grad():
            return run_csnn(net, x)

    with SpikeMonitor({n: net[i] for n, i in LIF_LAYERS.items()}) as monitor:
        ev = nirbridge.evaluate(path, loader, backends=list(TARGETS), original=original_fn, progress=progress)
    output = next(iter(graph.outputs()))
    rows = [row(name, "norse-first", ORIGINAL, ev["original"], output, route="trained in Norse",
                firing_rates=monitor.rates(), is_original=True, backend="norse (original)")]
    for backend, label in TARGETS.items():
        r = row(name, "norse-first", label, ev[backend], output, route=f"NIR file -> nirbridge.convert(to={backend!r})",
                backend=backend)
        if backend != "numpy" and r["differing_spikes"]:
            r["first_difference"] = first_difference(graph, ev[backend], backend)
        rows.append(r)
    return {
        "rows": rows, "history": history, "train_seconds": train_seconds, "epochs": epochs,
        "nir_file": str(path), "nodes": {n: node.type for n, node in graph.nodes.items()},
    }
