"""Shared test utilities: run snnTorch modules natively, compare with the NumPy reference."""

from __future__ import annotations

import numpy as np
import snntorch as snn
import torch

from nirbridge.compare import compare
from nirbridge.result import SimulationResult


class Loop(torch.nn.Module):
    """The snnTorch tutorials' model shape: fc -> neuron, a time loop over x (time, batch, n_in)
    with explicit state; returns spikes, mem (and syn) stacked over time."""

    def __init__(self, fc: torch.nn.Module, lif: torch.nn.Module):
        super().__init__()
        self.fc, self.lif = fc, lif

    def forward(self, x):
        kind = type(self.lif).__name__
        spikes, mems, syns = [], [], []
        # zero states of the layer's shape (RSynaptic with reset_delay=False fails on the
        # empty tensors `reset_mem()` returns)
        n = self.fc.out_features
        zeros = lambda: torch.zeros(x.shape[1], n)  # noqa: E731
        state = {"Leaky": 1, "Lapicque": 1, "Synaptic": 2, "RLeaky": 2, "RSynaptic": 3}[kind]
        state = tuple(zeros() for _ in range(state))
        for t in range(x.shape[0]):
            res = self.lif(self.fc(x[t]), *state)
            if kind in ("Leaky", "Lapicque"):
                state = (res[1],)
            elif kind == "Synaptic":
                state = (res[1], res[2])
            else:
                state = tuple(res)
            spikes.append(res[0])
            mems.append(res[-1])
            if kind in ("Synaptic", "RSynaptic"):
                syns.append(res[1])
        out = (torch.stack(spikes), torch.stack(mems))
        return out + ((torch.stack(syns),) if syns else ())


def run_native(model: Loop, x: np.ndarray) -> dict[str, np.ndarray]:
    """spikes, v (and I) of `model.lif` over x, from the installed snnTorch."""
    with torch.no_grad():
        res = model(torch.as_tensor(x))
    out = {"spikes": res[0].numpy(), "v": res[1].numpy()}
    if len(res) > 2:
        out["I"] = res[2].numpy()
    return out


def native_result(states: dict[str, np.ndarray], node: str, output: np.ndarray | None = None) -> SimulationResult:
    out = states["spikes"] if output is None else output
    return SimulationResult(outputs={"output": out}, states={node: dict(states)})


def assert_matches(reference: SimulationResult, other: SimulationResult, graph, nodes: list[str]) -> dict:
    """Identical spikes (flips only at rounding ties), potentials within DESIGN.md's tolerance."""
    cmp = compare(reference, other, graph, nodes)
    bad = {n: c for n, c in cmp.items() if not c.ok}
    assert not bad, "; ".join(
        f"{n}: first differing step {c.first_diff_step}, max |dv| {c.max_dv}, {c.spike_diffs}/{c.spike_total} spikes differ, missing {c.missing}"
        for n, c in bad.items()
    )
    return cmp


def rate(spikes: np.ndarray) -> float:
    return float(np.mean(spikes != 0))


def assert_fires(spikes: np.ndarray, lo: float = 0.01, hi: float = 0.99, what: str = "layer") -> float:
    r = rate(spikes)
    assert lo < r < hi, f"{what} firing rate {r:.3f} outside ({lo}, {hi}): a silent or saturated layer proves nothing"
    return r


def make_neuron(kind: str, n: int, *, beta, alpha=None, threshold=1.0, reset="subtract", reset_delay=True,
                init_hidden=False, recurrence="linear", V=None, **extra):
    """An snnTorch neuron of `kind` with the given parameters (tensors for vectors)."""
    common = dict(threshold=threshold, reset_mechanism=reset, init_hidden=init_hidden, **extra)
    if kind == "Leaky":
        return snn.Leaky(beta=beta, reset_delay=reset_delay, **common)
    if kind == "Synaptic":
        return snn.Synaptic(alpha=alpha, beta=beta, reset_delay=reset_delay, **common)
    if kind == "Lapicque":
        return snn.Lapicque(beta=beta, **common)
    rec = dict(all_to_all=False, V=V) if recurrence == "one_to_one" else dict(all_to_all=True, linear_features=n)
    if kind == "RLeaky":
        return snn.RLeaky(beta=beta, reset_delay=reset_delay, **rec, **common)
    return snn.RSynaptic(alpha=alpha, beta=beta, reset_delay=reset_delay, **rec, **common)
