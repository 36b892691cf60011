"""Recovering the dt an exporter assumed from a graph's parameters (`Policy.infer`)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..ir import Graph

#: estimates agreeing within this relative tolerance name the same dt (float32 parameters
#: derived by a few float32 operations stay within ~1e-6 of each other)
INFER_RTOL = 1e-5

Confidence = Literal["none", "low", "medium", "high"]

_TIME_CONSTANTS = {
    "LIF": (("tau", "r"),),
    "LI": (("tau", "r"),),
    "CubaLIF": (("tau_syn", "w_in"), ("tau_mem", "r")),
    "CubaLI": (("tau_syn", "w_in"), ("tau_mem", "r")),
}


class DtInference(BaseModel):
    """What `Policy.infer` found.

    `dt`: the step the exporter assumed, rounded to the fewest significant digits that stay
    within `INFER_RTOL` of every estimate, or None. `confidence`: `none` (no evidence),
    `low` (one estimate, or nodes disagree), `medium` (several agreeing estimates from one
    node), `high` (agreeing estimates from two or more nodes and none against).
    `evidence`: per neuron node, what its parameters say.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    dt: float | None
    confidence: Confidence
    evidence: dict[str, str]
    message: str


def infer_dt(graph) -> DtInference:
    """See `Policy.infer`."""
    if not isinstance(graph, Graph):
        graph = Graph.from_nir(graph)
    evidence: dict[str, str] = {}
    estimates: list[tuple[str, float, float]] = []  # node, smallest and largest tau/gain
    for name, node in graph.walk():
        pairs = _TIME_CONSTANTS.get(node.type)
        if pairs is None:
            if node.type in ("IF", "I"):
                evidence[name] = f"{node.type} has no time constant: no evidence"
            continue
        parts = []
        for tau_field, gain_field in pairs:
            label = f"{tau_field}/{gain_field}"
            tau = np.asarray(getattr(node, tau_field), np.float64)
            gain = np.asarray(getattr(node, gain_field), np.float64)
            if gain.size == 0 or np.all(gain == 1):
                parts.append(f"{gain_field} = 1: no evidence")
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = tau / gain
            if not np.all(np.isfinite(ratio) & (ratio > 0)):
                parts.append(f"{label} not finite and > 0: no evidence")
                continue
            lo, hi = float(ratio.min()), float(ratio.max())
            if hi - lo > INFER_RTOL * hi:
                parts.append(f"{label} varies from {lo:.6g} to {hi:.6g} across neurons: no single dt")
                continue
            estimates.append((name, lo, hi))
            parts.append(f"{label} = {_round_sig([(lo, hi)]):.6g}")
        evidence[name] = "; ".join(parts)
    if not estimates:
        return DtInference(
            dt=None, confidence="none", evidence=evidence,
            message="no evidence of dt: no LIF/LI/CubaLIF/CubaLI node has r or w_in != 1; "
            "the graph does not record the step it was made for",
        )
    clusters: list[list[tuple[str, float, float]]] = []
    for est in sorted(estimates, key=lambda e: e[1]):
        if clusters and est[2] - clusters[-1][0][1] <= INFER_RTOL * est[2]:
            clusters[-1].append(est)
        else:
            clusters.append([est])

    def weight(cluster):
        return (len({e[0] for e in cluster}), len(cluster))

    clusters.sort(key=weight, reverse=True)
    best = clusters[0]
    nodes = sorted({e[0] for e in best})
    if len(clusters) > 1 and weight(clusters[1]) == weight(best):
        values = ", ".join(f"{_round_sig([e[1:] for e in c]):.6g}" for c in clusters)
        return DtInference(dt=None, confidence="none", evidence=evidence,
                           message=f"no dt: the estimates disagree, none has more support ({values})")
    dt = _round_sig([e[1:] for e in best])
    others = [e for c in clusters[1:] for e in c]
    for node_name in sorted({e[0] for e in others}):
        evidence[node_name] += f" (disagrees with dt = {dt:.6g})"
    conventions = "r = tau/dt, w_in = tau_syn/dt"
    if others:
        against = sorted({e[0] for e in others})
        message = (f"dt = {dt:.6g} from {len(best)} estimate(s) in {', '.join(nodes)} ({conventions}); "
                   f"disagreeing: {', '.join(against)}")
        confidence: Confidence = "low"
    else:
        confidence = "high" if len(nodes) >= 2 else "medium" if len(best) >= 2 else "low"
        message = f"dt = {dt:.6g} from {len(best)} agreeing estimate(s) in {len(nodes)} node(s) ({conventions})"
    return DtInference(dt=dt, confidence=confidence, evidence=evidence, message=message)


def _round_sig(ranges: list[tuple[float, float]]) -> float:
    """The value with the fewest significant digits within INFER_RTOL of every (min, max)."""
    lo = min(r[0] for r in ranges)
    hi = max(r[1] for r in ranges)
    center = (lo + hi) / 2
    for digits in range(1, 18):
        value = float(f"{center:.{digits - 1}e}")
        if abs(value - lo) <= INFER_RTOL * lo and abs(value - hi) <= INFER_RTOL * hi:
            return value
    return center
