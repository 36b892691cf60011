"""`everywhere_and_back`: a framework's own model, converted to every other backend and back
to its framework, must emit the spikes of the framework's own run, layer by layer.

    counts = everywhere_and_back(net, x, source="sinabs", sample=s, spikes=native_spikes,
                                 output=native_output, targets=["numpy", "snntorch", "norse"])

`spikes` maps graph node names to the native run's spikes (counts where the framework emits
counts), all shaped (time, batch, ...) as `x`. Checked, each with 0 differing entries: the
NumPy reference on the exported graph; every target converted from the model; that target's
model converted back to `source`; the graph imported into `source`. Outputs (spikes or, for a
readout, potentials) agree within 1e-6 relative. Returns {direction: (entries compared,
entries differing)}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..backends.registry import get_backend
from ..conversion import convert, run
from ..reference import simulate
from ..result import SimulationResult


def _check(direction: str, result: SimulationResult, spikes: Mapping[str, np.ndarray], output: np.ndarray | None,
           counts: dict[str, tuple[int, int]]) -> None:
    compared = differing = 0
    for name, want in spikes.items():
        got = np.asarray(result.states[name]["spikes"]).reshape(want.shape)
        bad = int(np.count_nonzero(got != want))
        assert bad == 0, f"{direction}: {bad} of {want.size} spike entries of {name} differ from the native run"
        compared, differing = compared + want.size, differing + bad
    if output is not None:
        got = np.asarray(result.output).reshape(output.shape)
        scale = max(1.0, float(np.max(np.abs(output)))) if output.size else 1.0
        np.testing.assert_allclose(got, output, rtol=1e-6, atol=1e-6 * scale, err_msg=f"{direction}: output")
    counts[direction] = (compared, differing)


def everywhere_and_back(model: Any, x: np.ndarray, *, source: str, sample: Any, spikes: Mapping[str, np.ndarray],
                        output: np.ndarray | None = None, targets: Sequence[str] = ()) -> dict[str, tuple[int, int]]:
    """See the module doc."""
    record = tuple(spikes)
    graph = convert(model, to="nir", sample=sample)
    counts: dict[str, tuple[int, int]] = {}
    _check(f"{source} -> numpy reference", simulate(graph, x, record=list(record)), spikes, output, counts)
    home = get_backend(source)
    _check(f"{source} -> NIR -> {source}", run(home, convert(graph, to=source), x, record=record), spikes, output, counts)
    for target in targets:
        there = convert(model, to=target, sample=sample)
        _check(f"{source} -> {target}", run(get_backend(target), there, x, record=record), spikes, output, counts)
        back = convert(there, to=source)
        _check(f"{source} -> {target} -> {source}", run(home, back, x, record=record), spikes, output, counts)
    return counts
