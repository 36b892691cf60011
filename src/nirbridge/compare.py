"""What "the same" means: comparing two simulation results node by node, and inputs that
make every spiking layer fire (a silent network matches anything).

Tolerances (DESIGN.md, "Fidelity"): spike trains identical; potentials within
rtol=1e-5, atol=1e-6 * max(1, |v_threshold|, max|v|), with max|v| the largest |v| the
reference reaches in that node (a rounding error made while v was large stays in v after a
subtractive reset brings it back near zero; two matrix products that sum in different
orders, as torch's and NumPy's may, differ by such last bits); for nodes without a
threshold (LI, I, CubaLI, stateless nodes) atol=1e-6 * max(1, max|value|). NaN or inf on either side where the other side
does not hold the same value is always a difference (NaN never agrees, not even with NaN). A
flipped spike where the potential of the
side that did not spike lies within that tolerance of the threshold is a rounding tie:
reported (`near_threshold`), not a failure, and what follows it in that batch element
(from that step on, every node) is reported but not judged. Inputs are generated when not
given (Bernoulli spikes at the lowest rate that makes every spiking layer fire); a layer
that never fires is reported (`silent`) and makes the report fail, since a silent network
matches anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import Problem, ResourceLimitError, SimulationError
from .ir import RECORDED_TYPES, SPIKING_TYPES, Graph
from .reference import simulate
from .result import SimulationResult
from .semantics import Policy

RTOL = 1e-5
ATOL = 1e-6
#: Bernoulli rates tried, lowest first, when inputs are generated
RATES = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
#: the most input values `spike_inputs` generates (1 GiB of float32)
MAX_GENERATED = 1 << 28


@dataclass
class NodeComparison:
    """One node (or graph output) of one backend against the reference.

    `identical`: every compared array equal bit for bit. `max_dv`: largest |difference| of
    the potential (or value). `spike_diffs`/`spike_total`: differing and compared spike
    entries. `first_diff_step`: first step with any difference beyond tolerance.
    `near_threshold`: flips excused as rounding ties. `ok`: nothing else differs."""

    node: str
    identical: bool
    ok: bool
    max_dv: float | None = None
    spike_diffs: int = 0
    spike_total: int = 0
    first_diff_step: int | None = None
    near_threshold: int = 0
    missing: list[str] = field(default_factory=list)

    @property
    def spike_fraction(self) -> float:
        return self.spike_diffs / self.spike_total if self.spike_total else 0.0


def _threshold_atol(graph: Graph | None, node: str, base: float = ATOL) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The node's threshold and the absolute tolerance it sets (None, None without one)."""
    found = graph.resolve(node) if graph is not None else None
    model = found[0].nodes[found[1]] if found else None
    vth = getattr(model, "v_threshold", None)
    if vth is None:
        return None, None
    vth = np.asarray(vth, dtype=np.float64)
    return vth, base * np.maximum(1.0, np.abs(vth))


def _pairs(reference: SimulationResult, other: SimulationResult, nodes: list[str]):
    """(name, reference states, other states, missing keys) for recorded nodes and outputs."""
    for name in nodes:
        ref = reference.states.get(name, {})
        got = other.states.get(name, {})
        yield name, ref, got, sorted(set(ref) - set(got))
    for name, value in reference.outputs.items():
        if name in nodes:
            continue
        got = other.outputs.get(name)
        yield name, {"y": value}, ({"y": got} if got is not None else {}), ([] if got is not None else ["y"])


def compare(
    reference: SimulationResult,
    other: SimulationResult,
    graph: Graph | None,
    nodes: list[str],
    *,
    atol: float = ATOL,
    rtol: float = RTOL,
) -> dict[str, NodeComparison]:
    """Compare recorded states of `nodes` and every graph output of `other` with `reference`
    (`graph` supplies the thresholds). `atol`/`rtol`: the tolerance factors (default DESIGN.md's)."""
    base_atol, base_rtol = atol, rtol
    pairs = list(_pairs(reference, other, nodes))
    shape = next((v.shape for _, ref, _, _ in pairs for v in ref.values()), None)
    steps, batch = (shape[0], shape[1]) if shape is not None and len(shape) >= 2 else (0, 0)
    # pass 1: rounding ties (flips at potentials within tolerance of threshold)
    ties: dict[str, np.ndarray] = {}
    diverged = np.full(batch, steps)
    for name, ref, got, _ in pairs:
        if "spikes" not in ref or "spikes" not in got or np.shape(ref["spikes"]) != np.shape(got["spikes"]):
            continue
        flips = np.asarray(ref["spikes"]) != np.asarray(got["spikes"])
        vth, tol = _threshold_atol(graph, name, base_atol)
        tie = np.zeros_like(flips)
        if flips.any() and vth is not None and np.shape(ref.get("v")) == np.shape(got.get("v")) == flips.shape:
            quiet_v = np.where(np.asarray(ref["spikes"]) > 0, np.asarray(got["v"], float), np.asarray(ref["v"], float))
            near = np.abs(quiet_v - vth) <= tol + base_rtol * np.abs(vth)
            if near.shape == flips.shape:
                tie = flips & near
        ties[name] = tie
        for b in range(batch):
            hit = np.nonzero(tie[:, b].reshape(steps, -1).any(axis=1))[0]
            if hit.size:
                diverged[b] = min(diverged[b], int(hit[0]))
    judged = np.arange(steps)[:, None] < diverged[None, :] if steps else None
    # pass 2: differences, judged only before a batch element diverged at a tie
    result: dict[str, NodeComparison] = {}
    for name, ref, got, missing in pairs:
        cmp = NodeComparison(name, identical=not missing, ok=False, missing=list(missing))
        _, tol = _threshold_atol(graph, name, base_atol)
        tie = ties.get(name)
        firsts: list[int] = []
        failed = False
        for key, value in ref.items():
            if key not in got:
                continue
            a, b = np.asarray(value, dtype=np.float64), np.asarray(got[key], dtype=np.float64)
            if a.shape != b.shape:
                cmp.missing.append(f"{key} (shape {b.shape}, expected {a.shape})")
                continue
            cmp.identical &= bool(np.array_equal(a, b))
            unequal_non_finite = ~(np.isfinite(a) & np.isfinite(b)) & ~(a == b)  # NaN never agrees
            if key == "spikes" or (key == "y" and _binary(a) and _binary(b)):
                diff = a != b
                cmp.spike_diffs += int(diff.sum())
                cmp.spike_total += int(diff.size)
                bad = diff
                if key == "spikes" and tie is not None:
                    cmp.near_threshold += int((diff & tie).sum())
                    bad = diff & ~tie
            else:
                with np.errstate(invalid="ignore"):
                    delta = np.where(unequal_non_finite, np.inf, np.abs(a - b))
                if key in ("v", "y") and delta.size:
                    cmp.max_dv = max(cmp.max_dv or 0.0, float(np.nanmax(delta, initial=0.0)))
                finite_a = np.where(np.isfinite(a), np.abs(a), 0.0)
                floor = base_atol * max(1.0, float(finite_a.max(initial=0.0)))
                scale = np.maximum(tol, floor) if key == "v" and tol is not None else floor
                diff = bad = unequal_non_finite | (delta > scale + base_rtol * finite_a)
            if diff.any():
                firsts.append(int(np.nonzero(diff.reshape(diff.shape[0], -1).any(axis=1))[0][0]))
            if judged is not None and bad.ndim >= 2 and bad.shape[:2] == judged.shape:
                bad = bad & judged.reshape(judged.shape + (1,) * (bad.ndim - 2))
            failed |= bool(bad.any())
        cmp.identical &= not cmp.missing
        cmp.first_diff_step = min(firsts, default=None)
        cmp.ok = not cmp.missing and not failed
        result[name] = cmp
    return result


def _binary(a: np.ndarray) -> bool:
    return bool(np.all((a == 0) | (a == 1)))



def recordable(graph: Graph) -> list[str]:
    """Names (dotted inside nested graphs) of the neurons and spiking nodes of a graph."""
    return [name for name, node in graph.walk() if node.type in RECORDED_TYPES]


def firing_rates(result: SimulationResult, graph: Graph) -> dict[str, float]:
    """Mean spike rate of every recorded spiking node (a Threshold's output counts as spikes)."""
    spiking = {name for name, node in graph.walk() if node.type in SPIKING_TYPES}
    rates = {}
    for name, states in result.states.items():
        values = states.get("spikes", states.get("y"))
        if name in spiking and values is not None:
            rates[name] = float(np.mean(values))
    return rates


def spike_inputs(graph: Graph, rate: float, *, steps: int, batch: int, seed: int) -> np.ndarray | dict[str, np.ndarray]:
    """Bernoulli(rate) spikes shaped (steps, batch, *input shape): an array for a graph with one
    Input node, a dict by Input name for several. Sizes are checked before anything is allocated."""
    for arg, value in (("steps", steps), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise SimulationError(problems=[Problem(arg, f"must be a positive integer, got {value!r}")])
    ins = {name: tuple(int(n) for n in np.atleast_1d(node.shape)) for name, node in graph.inputs().items()}
    if not ins:
        raise SimulationError("graph has no Input node: nothing to feed")
    count = 0
    for name, shape in ins.items():
        count += steps * batch * math.prod(shape)
        if count > MAX_GENERATED:
            raise ResourceLimitError(problems=[Problem(f"nodes.{name}.shape", f"{steps} steps x batch {batch} x shape {shape} makes {count:,} "
                                                       f"values, over the {MAX_GENERATED:,} generated inputs allow; pass inputs explicitly")])
    rng = np.random.default_rng(seed)
    made = {name: (rng.random((steps, batch, *shape), dtype=np.float32) < rate).astype(np.float32) for name, shape in ins.items()}
    return next(iter(made.values())) if len(made) == 1 else made


def firing_inputs(graph: Graph, policy: Policy, *, steps: int = 50, batch: int = 4, seed: int = 0, record: list[str] | None = None):
    """Spike inputs at the lowest rate of `RATES` that makes every spiking node fire.
    Returns (inputs, rate, reference result); the highest rate tried when none does."""
    record = recordable(graph) if record is None else record
    best = None
    for rate in RATES:
        x = spike_inputs(graph, rate, steps=steps, batch=batch, seed=seed)
        result = simulate(graph, x, policy=policy, record=record)
        rates = firing_rates(result, graph)
        if all(r > 0 for r in rates.values()):
            return x, rate, result
        best = (x, rate, result)
    return best
