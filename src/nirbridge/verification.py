"""verify(): run several backends on one input and compare each, node by node, with the
NumPy reference (the comparison rules are in `compare`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .backends.registry import backends as installed
from .compare import NodeComparison, compare, firing_inputs, firing_rates, recordable
from .conversion import plan, resolve_source, run
from .errors import NirbridgeError, SimulationError
from .reference import simulate
from .report import GapReport
from .semantics import Policy
from .table import table


@dataclass
class BackendVerification:
    """One backend's run: per-node comparisons, its gap report, or the error that stopped it."""

    backend: str
    nodes: dict[str, NodeComparison] = field(default_factory=dict)
    report: GapReport | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(c.ok for c in self.nodes.values())


@dataclass
class VerifyReport:
    """Results per backend; `rates` per spiking node of the reference; `silent` lists spiking
    nodes that never fired (which makes `ok` false)."""

    results: dict[str, BackendVerification]
    rates: dict[str, float]
    silent: list[str]
    input_shape: tuple[int, ...]
    input_rate: float | None
    policy: Policy
    seed: int
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.silent and all(r.ok for r in self.results.values())

    def __str__(self) -> str:
        head = f"verify on input {self.input_shape}" + (f" (Bernoulli p={self.input_rate:g}, seed {self.seed})" if self.input_rate is not None else "")
        lines = [head + f": {'OK' if self.ok else 'FAILED'}"]
        if self.rates:
            lines.append("firing rates: " + ", ".join(f"{n} {r:.3f}" for n, r in self.rates.items()))
        if self.silent:
            lines.append(f"silent (never fire, so agreement proves nothing): {', '.join(self.silent)}")
        rows = [("backend", "node", "result", "max |dv|", "spikes differ", "first diff step", "near threshold")]
        for name, res in self.results.items():
            if res.error:
                rows.append((name, "-", f"error: {res.error}", "", "", "", ""))
                continue
            for node, c in res.nodes.items():
                verdict = "identical" if c.identical else ("ok" if c.ok else "DIFFERENT")
                if c.missing:
                    verdict += f" (missing {', '.join(c.missing)})"
                rows.append(
                    (
                        name,
                        node,
                        verdict,
                        "" if c.max_dv is None else f"{c.max_dv:.3g}",
                        f"{c.spike_fraction:.2%}" if c.spike_total else "",
                        "" if c.first_diff_step is None else str(c.first_diff_step),
                        str(c.near_threshold) if c.near_threshold else "",
                    )
                )
        lines.append(table(rows))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "input_shape": list(self.input_shape),
            "input_rate": self.input_rate,
            "seed": self.seed,
            "policy": self.policy.model_dump(mode="json"),
            "rates": self.rates,
            "silent": self.silent,
            "notes": self.notes,
            "backends": {
                name: {
                    "ok": r.ok,
                    "error": r.error,
                    "gaps": r.report.to_dict() if r.report is not None else None,
                    "nodes": {n: asdict(c) | {"spike_fraction": c.spike_fraction} for n, c in r.nodes.items()},
                }
                for name, r in self.results.items()
            },
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)




def verify(
    src: Any,
    backends: list[str] | None = None,
    inputs: Any = None,
    policy: Policy | None = None,
    record: list[str] | None = None,
    seed: int = 0,
    *,
    source: str | None = None,
    sample: Any = None,
    steps: int = 50,
    batch: int = 4,
    strict: bool = False,
) -> VerifyReport:
    """Build `src` on each backend (default: all installed; a name, or a list of names), run
    all on the same input and compare each recorded node and output with the NumPy reference.
    `strict=True` raises `SimulationError` when a spiking layer never fires."""
    names = _backend_names(backends)
    resolved = resolve_source(src, source=source, policy=policy, sample=sample)
    graph, pol = resolved.graph, resolved.policy
    record = recordable(graph) if record is None else list(record)
    if inputs is None:
        x, rate, reference = firing_inputs(graph, pol, steps=steps, batch=batch, seed=seed, record=record)
    else:
        x, rate = ({k: np.asarray(v) for k, v in inputs.items()} if isinstance(inputs, dict) else np.asarray(inputs)), None
        reference = simulate(graph, x, policy=pol, record=record)
    rates = firing_rates(reference, graph)
    silent = [n for n, r in rates.items() if r == 0]
    if strict and silent:
        raise SimulationError(f"spiking nodes never fire on this input, so agreement would prove nothing: {', '.join(silent)}")
    names = list(installed()) if names is None else names
    results: dict[str, BackendVerification] = {}
    for name in names:
        res = BackendVerification(name)
        results[name] = res
        try:
            p = plan(graph, name, policy=pol)
            res.report = p.report
            if p.report.unsupported:
                res.error = "cannot convert: " + "; ".join(f"{g.node}: {g.reason}" for g in p.report.unsupported)
                continue
            out = run(p.backend, p.build(strict=False, warn=False), x, record=tuple(record))
        except Exception as exc:  # one backend's failure is a result, not the end of the run
            res.error = f"{type(exc).__name__}: {exc}"
            continue
        res.nodes = compare(reference, out, graph, record)
    first = next(iter(x.values())) if isinstance(x, dict) else x
    shape = tuple(int(n) for n in np.shape(first))
    return VerifyReport(results, rates, silent, shape, rate, pol, seed)


def _backend_names(backends: Any) -> list[str] | None:
    if backends is None:
        return None
    names = [backends] if isinstance(backends, str) else backends
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"backends: expected a backend name or a list of names, got {backends!r}")
    if not names:
        raise NirbridgeError("backends: the list is empty; name at least one backend, or pass None for every installed one")
    return list(names)
