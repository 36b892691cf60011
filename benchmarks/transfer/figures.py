"""The study's figures: per test sample, the input, and for every layer the membrane potential
and spikes over time, of the original model and a converted one overlaid
(``nirbridge.plot.plot_result`` with ``compare=``; spikes present in only one are circled).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nirbridge.result import SimulationResult

#: the SeedNet layers, named as in its NIR graph
LAYERS = ("lif1", "lif2")


def record_seednet(net, x) -> SimulationResult:
    """Run a SeedNet on x (time, batch, ...) recording each layer's ``spikes``, ``I`` and ``v``
    (snnTorch's ``syn`` and ``mem``) through forward hooks on its neurons."""
    seen = {name: {"spikes": [], "I": [], "v": []} for name in LAYERS}
    handles = []
    for name in LAYERS:
        def hook(module, args, output, name=name):
            spk, syn, mem = output
            for var, value in zip(("spikes", "I", "v"), (spk, syn, mem)):
                seen[name][var].append(value.detach().clone())

        handles.append(getattr(net, name).register_forward_hook(hook))
    try:
        with torch.no_grad():
            spikes, _ = net(torch.as_tensor(np.asarray(x), dtype=torch.float32))
    finally:
        for h in handles:
            h.remove()
    return SimulationResult(
        outputs={"output": spikes.numpy()},
        states={n: {var: torch.stack(v).numpy() for var, v in s.items()} for n, s in seen.items()},
    )


def plot_samples(original: SimulationResult, converted: SimulationResult, x, *, indices, labels_of,
                 graph, names: tuple[str, str], folder: Path, suffix: str = "", title: str = "") -> list[Path]:
    """One PNG per batch entry: ``folder/sample_<index><suffix>.png``. ``indices`` are the test
    set positions of the batch entries, ``labels_of`` their labels."""
    from nirbridge.plot import plot_result

    paths = []
    for b, (index, label) in enumerate(zip(indices, labels_of)):
        path = Path(folder) / f"sample_{index}{suffix}.png"
        plot_result(
            original, nodes=LAYERS, compare=converted, input=np.asarray(x), graph=graph, batch=b,
            labels=names, path=path, title=f"{title}test sample {index} (label {label})",
        )
        paths.append(path)
    return paths
