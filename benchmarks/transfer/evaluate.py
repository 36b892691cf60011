"""Evaluate any backend's model on a dataset: accuracy by output spike count.

A model is a callable ``model_fn(x_seq) -> spikes``, x_seq (T, B, *input_shape), spikes
(T, B, classes), torch tensors or NumPy arrays. The prediction of sample b is
argmax_c sum_t spikes[t, b, c] (ties: the lowest class). Backends see the same batches when
evaluated with the same ``batch_size`` (padding of event batches depends on it).
"""

from __future__ import annotations

import time

import numpy as np
from tqdm.auto import tqdm

from .datasets import make_loader


def evaluate(model_fn, data, *, batch_size: int = 64, as_numpy: bool = False,
             keep_spikes: bool = False, progress: bool = True, desc: str = "evaluate") -> dict:
    """Run ``model_fn`` over ``data``: a dataset, or a DataLoader from ``make_loader``.

    ``as_numpy`` passes x as a float32 NumPy array instead of a torch tensor. Returns
    ``accuracy``, ``predictions`` (n,), ``labels`` (n,), ``spike_counts`` (n, classes),
    ``seconds_per_sample`` (time inside ``model_fn``) and, with ``keep_spikes``,
    ``output_spikes`` (T_max, n, classes) padded with zeros after each batch's end.
    """
    from torch.utils.data import DataLoader

    loader = data if isinstance(data, DataLoader) else make_loader(data, batch_size)
    counts, labels, spikes, seconds = [], [], [], 0.0
    for x, y in tqdm(loader, desc=desc, disable=not progress, leave=False):
        if as_numpy:
            x = np.asarray(x, dtype=np.float32)
        start = time.perf_counter()
        out = _numpy(model_fn(x))
        seconds += time.perf_counter() - start
        if out.ndim != 3 or out.shape[1] != len(y):
            raise ValueError(f"model_fn must return spikes (T, B={len(y)}, classes), got {out.shape}")
        counts.append(out.sum(axis=0))
        labels.append(_numpy(y).astype(np.int64))
        if keep_spikes:
            spikes.append(out)
    counts, labels = np.concatenate(counts), np.concatenate(labels)
    predictions = counts.argmax(axis=1)
    result = {
        "accuracy": float((predictions == labels).mean()),
        "predictions": predictions,
        "labels": labels,
        "spike_counts": counts,
        "seconds_per_sample": seconds / len(labels),
    }
    if keep_spikes:
        steps = max(s.shape[0] for s in spikes)
        result["output_spikes"] = np.concatenate(
            [np.pad(s, ((0, steps - s.shape[0]), (0, 0), (0, 0))) for s in spikes], axis=1
        )
    return result


def _numpy(a) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().cpu().numpy()
    return np.asarray(a)
