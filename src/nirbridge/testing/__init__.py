"""`BackendConformance`: the test suite every backend subclasses.

    from nirbridge.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        backend = MyBackend()              # or a registered name: "mybackend"
        opt_out = {"round_trip[delay]": "delays are exported in steps"}

For every small graph of the zoo whose node types the backend claims (each NIR primitive,
networks, recurrent and nested graphs, a cycle through two neurons), it checks spike-exact
agreement with the NumPy reference under the backend's own preset, and the round trip
`export(build(g)) == g` when the backend exports. Neurons have non-zero `v_leak` and
`v_reset` on both sides of [0, threshold); every spiking node must fire at least MIN_SPIKES
times and stay silent at least MIN_SILENT neuron-steps (the input rate is chosen for the most
balanced activity). The tie cases (`*_ties`) run the preset at dt = 1 with binary-fraction
parameters: every correct backend computes their potentials exactly, potentials land exactly
on thresholds, and spikes are compared without the rounding-tie allowance, so the threshold
rule, reset values and leaks must all be right. Node types the backend does not claim must
raise `GapError` (strict and non-strict conversion alike), approximate ones must be reported
as such. tests/test_conformance_mutants.py checks that the suite fails deliberately broken
backends.

Opt-out keys: a test (`round_trip`), a zoo case (`delay`) or one test of one case
(`round_trip[delay]`); each shows in pytest's report as a skip with its reason.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest

from ..backends.base import Backend, Support, name_problem
from ..backends.registry import get_backend
from ..compare import RATES, compare, recordable, spike_inputs
from ..conversion import convert, plan, run
from ..errors import GapError
from ..ir import IF, LIF, NODE_TYPES, SPIKING_TYPES, CubaLIF, Graph
from ..reference import simulate
from ..report import GapWarning
from ..result import SimulationResult
from ..rewrite import R_TYPES, alternatives, maxpool2d
from ..semantics import Policy, current_gain, step_constants, tau_from_decay, with_policy

F = np.float32


# ----------------------------------------------------------------------------- the zoo

#: what every spiking node of a zoo case must do on the suite's input: fire at least
#: MIN_SPIKES times and stay silent at least MIN_SILENT neuron-steps (a dead or saturated
#: node matches a wrong backend as well as a right one)
MIN_SPIKES = 10
MIN_SILENT = 10
#: exact (tie) cases run at most this many steps: with per-step decay 1/2 a potential gains
#: one binary digit per step, so after 16 steps it still fits a float32 mantissa exactly
TIE_STEPS = 16


@dataclass(frozen=True)
class Case:
    """A zoo graph: the node types it uses (besides Input/Output) and how to build it for a
    policy (parameters follow the policy's dt, integration and input convention, so every
    preset makes it fire).

    `inputs`: "spikes" (Bernoulli, at the rate `case_inputs` chooses), "uniform" (values in
    [0, 1)) or "levels" (multiples of 1/4 in [0, 1]).
    `ties`: an exact case, run at dt = 1 (`case_policy`) with binary-fraction parameters, so
    any correct backend computes every potential exactly, potentials land exactly on
    thresholds, and spikes are compared without the rounding-tie allowance: the threshold
    rule (gt/ge), reset values and leaks must all be right."""

    name: str
    types: frozenset[str]
    build: Callable[[Policy, np.random.Generator], Graph]
    inputs: str = "spikes"
    ties: bool = False


def _u(rng: np.random.Generator, lo: float, hi: float, shape) -> np.ndarray:
    return rng.uniform(lo, hi, shape).astype(F)


def _shape(*dims: int) -> np.ndarray:
    return np.asarray(dims, dtype=np.int64)


def _every(shape, k: int) -> np.ndarray:
    """Position of each neuron modulo k (flat index), shaped like the node."""
    return np.arange(int(np.prod(shape))).reshape(shape) % k


def neuron_params(kind: str, shape, policy: Policy, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Parameters that keep a `kind` node active under `policy` (its effective policy for
    that type): per-step decay 0.8-0.95 of v (0.5-0.8 of the current I); a per-step input
    gain of 0.5-0.9 whatever the integration and input convention (r = gain/c with
    c = current_gain(tau), or dt for I/IF, under `current` input; r = gain under `impulse`),
    0.6-1.4 for the synapse (w_in likewise); thresholds 0.8-1.2; non-zero levels on both
    sides of [0, threshold): v_reset in +-(0.1-0.5) x threshold, v_leak in +-(0.05-0.4) x
    threshold except every fourth neuron, whose v_leak lies above its threshold (it fires
    without input)."""
    p = policy.for_node("", kind)
    dt, integration, impulse = p.dt, p.integration, p.input == "impulse"
    beta = rng.uniform(0.8, 0.95, shape)
    tau = np.asarray(tau_from_decay(beta, dt, integration), F)
    gain = rng.uniform(0.5, 0.9, shape)
    threshold = _u(rng, 0.8, 1.2, shape)
    sign = np.where(_every(shape, 2) == 0, -1.0, 1.0)
    v_reset = (sign * rng.uniform(0.1, 0.5, shape) * threshold).astype(F)
    scale = threshold if kind in ("IF", "LIF", "CubaLIF") else 1.0
    v_leak = np.where(_every(shape, 4) == 3, rng.uniform(1.1, 1.4, shape), sign * rng.uniform(0.05, 0.4, shape))
    v_leak = (v_leak * scale).astype(F)
    spiking = {"v_threshold": threshold, "v_reset": v_reset}
    if kind in ("I", "IF"):
        r = {"r": (gain if impulse else gain / dt).astype(F)}
        return r | (spiking if kind == "IF" else {})
    if kind in ("LI", "LIF"):
        r = gain if impulse else gain / current_gain(tau, dt, integration)
        params = {"tau": tau, "r": r.astype(F), "v_leak": v_leak}
        return params | (spiking if kind == "LIF" else {})
    alpha = rng.uniform(0.5, 0.8, shape)
    tau_syn = np.asarray(tau_from_decay(alpha, dt, integration), F)
    w_in = rng.uniform(0.6, 1.4, shape) / (1 if impulse else current_gain(tau_syn, dt, integration))
    r = gain / current_gain(tau, dt, integration)  # the current always drives v as a current
    params = {"tau_syn": tau_syn, "tau_mem": tau, "r": r.astype(F), "v_leak": v_leak, "w_in": w_in.astype(F)}
    return params | (spiking if kind == "CubaLIF" else {})


#: the float32 tau whose exact-integration decay exp(-1/tau) rounds to exactly 1/2 at dt = 1
_TAU_HALF = {"euler": np.float32(2.0), "exact": np.float32(1 / np.log(2))}


def tie_params(kind: str, n: int, policy: Policy, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Binary-fraction parameters at dt = 1 for a spiking `kind` (IF, LIF, CubaLIF): per-step
    decay 1/2 of v and I under either integration, per-step input gains 1/4, 1/2 or 3/4
    (1/2 to 1 for the current) under either input convention, thresholds 1/2 to 5/4,
    v_leak and v_reset in {-1/4, 0, 1/4, 1/2}. Every potential is then a short binary
    fraction that every correct backend computes exactly, whatever its operation order."""
    p = policy.for_node("", kind)
    if p.dt != 1:
        raise ValueError(f"tie cases run at dt = 1 (see case_policy), got dt = {p.dt}")
    impulse = p.input == "impulse"
    pick = lambda values: rng.choice(np.asarray(values, F), n)  # noqa: E731
    gain, threshold = pick([0.25, 0.5, 0.75]), pick([0.5, 0.75, 1.0, 1.25])
    levels = {"v_leak": pick([0.0, 0.25, -0.25, 0.5]), "v_reset": pick([0.0, -0.25, 0.25, 0.5])}
    tau = np.full(n, _TAU_HALF[p.integration], F)
    if kind == "IF":
        node = {"r": gain, "v_threshold": threshold, "v_reset": levels["v_reset"]}  # dt r = r
    elif kind == "LIF":
        node = {"tau": tau, "r": gain if impulse else 2 * gain, "v_threshold": threshold, **levels}  # c = 1/2
    else:
        syn = pick([0.5, 0.75, 1.0])
        node = {"tau_syn": tau, "tau_mem": tau, "r": 2 * gain, "w_in": syn if impulse else 2 * syn, "v_threshold": threshold, **levels}
    k = step_constants({"IF": IF, "LIF": LIF, "CubaLIF": CubaLIF}[kind](**node), p)
    rounded = [np.float32(v) * 64 for v in (k.a, k.gain, k.leak, k.a_syn, k.c_r, k.v_leak_term) if v is not None]
    if not all(np.array_equal(v, np.round(v)) for v in rounded):  # the float32 constants must be multiples of 1/64
        raise ValueError(f"{kind} tie constants under {p!r} are not binary fractions: {k}")
    return node


def _node(kind: str, shape, policy: Policy, rng) -> dict[str, Any]:
    return {"type": kind, **neuron_params(kind, shape, policy, rng)}


def _chain(shape_in, layers: list[tuple[str, dict]], shape_out, extra: list[tuple[str, dict]] = (), loops: list[tuple[str, str]] = ()) -> Graph:
    """Input -> layers... -> Output, plus `extra` nodes joined by the edges in `loops`."""
    nodes = {"input": {"type": "Input", "shape": _shape(*shape_in)}}
    nodes |= dict(layers)
    nodes["output"] = {"type": "Output", "shape": _shape(*shape_out)}
    names = list(nodes)
    nodes |= dict(extra)
    return Graph.from_dict({"nodes": nodes, "edges": list(zip(names, names[1:])) + list(loops)})


def _dense(kind: str, n_out: int, n_in: int, rng, lo=-0.3, hi=1.0) -> dict[str, Any]:
    node = {"type": kind, "weight": _u(rng, lo, hi, (n_out, n_in))}
    return node | ({"bias": _u(rng, -0.1, 0.2, (n_out,))} if kind == "Affine" else {})


def _single_neuron(kind: str) -> Callable[[Policy, np.random.Generator], Graph]:
    return lambda p, rng: _chain((4,), [(kind.lower(), _node(kind, (4,), p, rng))], (4,))


def _stateless(kind: str) -> Callable[[Policy, np.random.Generator], Graph]:
    def build(p: Policy, rng) -> Graph:
        pool = {"kernel_size": _shape(2, 2), "stride": _shape(2, 2), "padding": _shape(0, 0)}
        spec = {
            "Affine": ((3,), _dense("Affine", 4, 3, rng, -1, 1), (4,)),
            "Linear": ((3,), _dense("Linear", 4, 3, rng, -1, 1), (4,)),
            "Scale": ((4,), {"type": "Scale", "scale": _u(rng, -2, 2, (4,))}, (4,)),
            "Threshold": ((4,), {"type": "Threshold", "threshold": _u(rng, 0.2, 0.8, (4,))}, (4,)),
            "Delay": ((4,), {"type": "Delay", "delay": (np.arange(4) * p.dt).astype(F)}, (4,)),
            "Flatten": ((2, 2, 3), {"type": "Flatten", "start_dim": 0, "end_dim": -1, "input_type": _shape(2, 2, 3)}, (12,)),
            "Conv1d": ((2, 8), {"type": "Conv1d", "weight": _u(rng, -1, 1, (3, 2, 3)), "bias": _u(rng, -0.1, 0.1, (3,)), "stride": _shape(1), "padding": _shape(1), "dilation": _shape(1), "groups": np.int64(1), "input_shape": _shape(8)}, (3, 8)),
            "Conv2d": ((2, 5, 5), {"type": "Conv2d", "weight": _u(rng, -1, 1, (3, 2, 3, 3)), "bias": _u(rng, -0.1, 0.1, (3,)), "stride": _shape(1, 1), "padding": _shape(1, 1), "dilation": _shape(1, 1), "groups": np.int64(1), "input_shape": _shape(5, 5)}, (3, 5, 5)),
            "SumPool2d": ((2, 4, 4), {"type": "SumPool2d", **pool}, (2, 2, 2)),
            "AvgPool2d": ((2, 4, 4), {"type": "AvgPool2d", **pool}, (2, 2, 2)),
        }[kind]
        return _chain(spec[0], [(kind.lower(), spec[1])], spec[2])

    return build


def _network(p: Policy, rng) -> Graph:
    return _chain(
        (5,),
        [("fc1", _dense("Linear", 6, 5, rng)), ("lif1", _node("LIF", (6,), p, rng)), ("fc2", _dense("Affine", 3, 6, rng)), ("lif2", _node("LIF", (3,), p, rng))],
        (3,),
    )


def _recurrent(kind: str, dense: str) -> Callable[[Policy, np.random.Generator], Graph]:
    def build(p: Policy, rng) -> Graph:
        layers = [("fc", _dense(dense, 5, 4, rng)), ("lif", _node(kind, (5,), p, rng))]
        w_rec = _dense(dense, 5, 5, rng, -0.5, 0.5)
        if p.for_node("", kind).spikes == "multi":  # spike counts fed back through the synapse grow without bound
            w_rec["weight"] = (w_rec["weight"] * F(0.25)).astype(F)
        return _chain((4,), layers, (5,), [("w_rec", w_rec)], [("lif", "w_rec"), ("w_rec", "lif")])

    return build


def _nested(recurrent: bool) -> Callable[[Policy, np.random.Generator], Graph]:
    def build(p: Policy, rng) -> Graph:
        inner_nodes = {
            "input": {"type": "Input", "shape": _shape(5)},
            "lif": _node("LIF", (5,), p, rng),
            "output": {"type": "Output", "shape": _shape(5)},
        }
        inner_edges = [("input", "lif"), ("lif", "output")]
        if recurrent:
            inner_nodes["w_rec"] = _dense("Linear", 5, 5, rng, -0.5, 0.5)
            inner_edges += [("lif", "w_rec"), ("w_rec", "lif")]
        nodes = {
            "input": {"type": "Input", "shape": _shape(4)},
            "fc": _dense("Linear", 5, 4, rng),
            "sub": {"type": "NIRGraph", "nodes": inner_nodes, "edges": inner_edges},
            "output": {"type": "Output", "shape": _shape(5)},
        }
        return Graph.from_dict({"nodes": nodes, "edges": [("input", "fc"), ("fc", "sub"), ("sub", "output")]})

    return build


def _conv_net(p: Policy, rng) -> Graph:
    return _chain(
        (2, 6, 6),
        [
            ("conv", {"type": "Conv2d", "weight": _u(rng, -0.2, 0.8, (3, 2, 3, 3)), "bias": np.zeros(3, F), "stride": _shape(1, 1), "padding": _shape(1, 1), "dilation": _shape(1, 1), "groups": np.int64(1), "input_shape": _shape(6, 6)}),
            ("if1", _node("IF", (3, 6, 6), p, rng)),
            ("pool", {"type": "SumPool2d", "kernel_size": _shape(2, 2), "stride": _shape(2, 2), "padding": _shape(0, 0)}),
            ("flat", {"type": "Flatten", "start_dim": 0, "end_dim": -1, "input_type": _shape(3, 3, 3)}),
            ("fc", _dense("Linear", 4, 27, rng, -0.2, 0.6)),
            ("lif", _node("LIF", (4,), p, rng)),
        ],
        (4,),
    )


def _maxpool_on_spikes(p: Policy, rng) -> Graph:
    mp = maxpool2d("pool", kernel_size=2, stride=2, input_shape=(2, 4, 4), binary_input=True)
    layers = [("lif", _node("LIF", (2, 4, 4), p, rng))] + list(mp.nodes.items())
    return _chain((2, 4, 4), layers, (2, 2, 2))


def _odd_names(p: Policy, rng) -> Graph:
    return _chain((3,), [("0", _dense("Linear", 4, 3, rng)), ("fc-1_A", _dense("Linear", 4, 4, rng)), ("Lif_1", _node("LIF", (4,), p, rng))], (4,))


def _recurrent_pair(p: Policy, rng) -> Graph:
    """A cycle through two neurons (lif_a -> fc_ab -> lif_b -> w_back -> lif_a): where the
    one-step delay sits (on w_back -> lif_a, docs/semantics.md) changes every output step."""
    layers = [("fc", _dense("Linear", 5, 4, rng)), ("lif_a", _node("LIF", (5,), p, rng)), ("fc_ab", _dense("Linear", 5, 5, rng)), ("lif_b", _node("LIF", (5,), p, rng))]
    extra = [("w_back", _dense("Linear", 5, 5, rng, -0.5, 0.5))]
    return _chain((4,), layers, (5,), extra, [("lif_b", "w_back"), ("w_back", "lif_a")])


def _ties(kind: str) -> Callable[[Policy, np.random.Generator], Graph]:
    """Input (3 spike channels) -> Linear (weights multiples of 1/4) -> 16 `kind` neurons with
    `tie_params`: the exact case of a spiking neuron type."""

    def build(p: Policy, rng) -> Graph:
        fc = {"type": "Linear", "weight": rng.choice(np.asarray([0.0, 0.25, 0.5, 0.75, 1.0], F), (16, 3))}
        return _chain((3,), [("fc", fc), (kind.lower(), {"type": kind, **tie_params(kind, 16, p, rng)})], (16,))

    return build


def _threshold_ties(p: Policy, rng) -> Graph:
    """A Threshold node at multiples of 1/4, fed multiples of 1/4 (`levels` inputs)."""
    node = {"type": "Threshold", "threshold": rng.choice(np.asarray([0.25, 0.5, 0.75], F), 16)}
    return _chain((16,), [("threshold", node)], (16,))


def _zoo() -> dict[str, Case]:
    cases = [Case(t.lower(), frozenset({t}), _stateless(t), inputs="uniform" if t == "Threshold" else "spikes") for t in ("Affine", "Linear", "Scale", "Threshold", "Delay", "Flatten", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d")]
    cases += [Case(t.lower(), frozenset({t}), _single_neuron(t)) for t in ("I", "IF", "LI", "LIF", "CubaLI", "CubaLIF")]
    cases += [
        Case("network", frozenset({"Linear", "Affine", "LIF"}), _network),
        Case("recurrent_lif", frozenset({"Linear", "LIF"}), _recurrent("LIF", "Linear")),
        Case("recurrent_cubalif", frozenset({"Affine", "CubaLIF"}), _recurrent("CubaLIF", "Affine")),
        Case("recurrent_pair", frozenset({"Linear", "LIF"}), _recurrent_pair),
        Case("nirgraph", frozenset({"NIRGraph", "Linear", "LIF"}), _nested(False)),
        Case("nested_recurrent", frozenset({"NIRGraph", "Linear", "LIF"}), _nested(True)),
        Case("conv_net", frozenset({"Conv2d", "IF", "SumPool2d", "Flatten", "Linear", "LIF"}), _conv_net),
        Case("maxpool_on_spikes", frozenset({"LIF", "SumPool2d", "Threshold"}), _maxpool_on_spikes),
        Case("odd_names", frozenset({"Linear", "LIF"}), _odd_names),
    ]
    cases += [Case(f"{t.lower()}_ties", frozenset({"Linear", t}), _ties(t), ties=True) for t in ("IF", "LIF", "CubaLIF")]
    cases += [Case("threshold_ties", frozenset({"Threshold"}), _threshold_ties, inputs="levels", ties=True)]
    return {c.name: c for c in cases}


ZOO: dict[str, Case] = _zoo()
#: the zoo case holding one node of each NIR type (besides Input/Output)
SINGLE: dict[str, str] = {t: t.lower() for t in NODE_TYPES if t not in ("Input", "Output")}


def case_policy(name: str, policy: Policy) -> Policy:
    """The policy zoo case `name` runs under for a backend whose preset is `policy`: that
    policy, at dt = 1 for the exact (tie) cases."""
    return policy.model_copy(update={"dt": 1.0}) if ZOO[name].ties else policy


def build_case(name: str, policy: Policy, seed: int | None = None) -> Graph:
    """Build zoo case `name` for `policy` (deterministic unless `seed` is given); tie cases
    need `case_policy(name, policy)`."""
    seed = zlib.crc32(name.encode()) if seed is None else seed
    return ZOO[name].build(policy, np.random.default_rng(seed))


def spike_trains(result: SimulationResult, graph: Graph) -> dict[str, np.ndarray]:
    """The recorded output of every spiking node (IF, LIF, CubaLIF spikes; Threshold y)."""
    spiking = {name for name, node in graph.walk() if node.type in SPIKING_TYPES}
    trains = {n: s.get("spikes", s.get("y")) for n, s in result.states.items() if n in spiking}
    return {n: z for n, z in trains.items() if z is not None}


def activity(result: SimulationResult, graph: Graph) -> dict[str, tuple[int, int]]:
    """(spikes, silent neuron-steps) of every recorded spiking node."""
    return {n: (int(np.count_nonzero(z)), int(z.size - np.count_nonzero(z))) for n, z in spike_trains(result, graph).items()}


def _shortfall(seen: dict[str, tuple[int, int]]) -> int:
    """How far the least active node is from MIN_SPIKES / MIN_SILENT (<= 0: none is)."""
    return max((max(MIN_SPIKES - s, MIN_SILENT - q) for s, q in seen.values()), default=0)


def _balance(seen: dict[str, tuple[int, int]]) -> int:
    """The fewest spikes or silent neuron-steps of any node: what makes a rate informative."""
    return min((min(s, q) for s, q in seen.values()), default=0)


def tie_flips(graph: Graph, x: np.ndarray, policy: Policy, reference: SimulationResult, record: list[str]) -> int:
    """How many spikes of `reference` change when the threshold rule is swapped (gt <-> ge):
    the steps at which a potential lies exactly on its threshold (a spike count is compared
    as fired or not: the swap makes spikes single, see `swap`)."""
    other = spike_trains(simulate(graph, x, policy=swap(policy, "threshold", ("gt", "ge")), record=record), graph)
    return sum(int(np.count_nonzero((z != 0) != (other[n] != 0))) for n, z in spike_trains(reference, graph).items())


def case_inputs(name: str, graph: Graph, policy: Policy, *, steps: int, batch: int, record: list[str]):
    """Inputs for a zoo case, with the reference result. Spikes: Bernoulli, at the rate of
    `compare.RATES` that gives every spiking node MIN_SPIKES and MIN_SILENT and, among those,
    the most potentials exactly at a threshold (tie cases), then the most balanced activity
    (the largest count of spikes or silent steps, whichever is fewer, in the least active
    node). Otherwise uniform values in [0, 1) or multiples of 1/4 in [0, 1], as the case
    says. Tie cases run at most TIE_STEPS steps."""
    case = ZOO[name]
    steps = min(steps, TIE_STEPS) if case.ties else steps
    seed = zlib.crc32(name.encode())
    if case.inputs != "spikes":
        shape = tuple(int(n) for n in next(iter(graph.inputs().values())).shape)
        rng = np.random.default_rng(seed)
        size = (steps, batch, *shape)
        x = (rng.uniform(0, 1, size) if case.inputs == "uniform" else rng.integers(0, 5, size) / 4).astype(F)
        return x, simulate(graph, x, policy=policy, record=record)
    best = None
    for rate in RATES:
        x = spike_inputs(graph, rate, steps=steps, batch=batch, seed=seed)
        reference = simulate(graph, x, policy=policy, record=record)
        seen = activity(reference, graph)
        score = (_shortfall(seen) <= 0, tie_flips(graph, x, policy, reference, record) if case.ties else 0, _balance(seen), -rate)
        if best is None or score > best[0]:
            best = (score, x, reference)
    return best[1], best[2]


def describe_activity(seen: dict[str, tuple[int, int]]) -> str:
    """`lif 41 spikes / 199 silent, ...` for a failure message."""
    return ", ".join(f"{n} {s} spikes / {q} silent" for n, (s, q) in seen.items()) or "no spiking nodes"


def swap(policy: Policy, field: str, values: tuple[str, str]) -> Policy:
    """`policy` with `field` exchanged between the two `values` wherever it is set (the
    graph-wide value and every type and node override). Swapping `threshold` also makes
    spikes single (`spikes="multi"` counts from `ge` only)."""
    other = dict(zip(values, reversed(values)))
    data = policy.model_dump()
    levels = [data, *data["type_overrides"].values(), *data["overrides"].values()]
    for level in levels:
        if level.get(field) is not None:
            level[field] = other.get(level[field], level[field])
        if field == "threshold" and level.get("spikes") is not None:
            level["spikes"], level["max_spikes"] = "single", None
    return Policy(**data)


def graph_differences(got: Graph, want: Graph) -> list[str]:
    """What differs between two graphs: node sets, each node, edge sets (order ignored)."""
    diffs = []
    if set(got.nodes) != set(want.nodes):
        diffs.append(f"nodes {sorted(got.nodes)} != {sorted(want.nodes)}")
    for name in set(got.nodes) & set(want.nodes):
        a, b = got.nodes[name], want.nodes[name]
        if isinstance(a, Graph) and isinstance(b, Graph):
            diffs += [f"{name}.{d}" for d in graph_differences(a, b)]
        elif a != b:
            diffs.append(f"node {name}: {a!r} != {b!r}")
    if set(got.edges) != set(want.edges):
        diffs.append(f"edges {sorted(got.edges)} != {sorted(want.edges)}")
    return diffs


# ----------------------------------------------------------------------------- the suite


class BackendConformance:
    """Subclass as `TestSomething(BackendConformance)` and set `backend` (a Backend or a
    registered name). `opt_out` maps a test, a case or `test[case]` to the reason."""

    backend: ClassVar[Backend | str | None] = None
    opt_out: ClassVar[dict[str, str]] = {}
    steps: ClassVar[int] = 30
    batch: ClassVar[int] = 2

    # -- helpers ------------------------------------------------------------------
    @classmethod
    def _backend(cls) -> Backend:
        if isinstance(cls.backend, Backend):
            return cls.backend
        if isinstance(cls.backend, str):
            return get_backend(cls.backend)
        raise TypeError(f"{cls.__name__}.backend must be a nirbridge.Backend or a backend name")

    @classmethod
    def _policy(cls) -> Policy:
        return Policy.preset(cls._backend().preset)

    @classmethod
    def _opt_out_reason(cls, test: str, case: str | None = None) -> str | None:
        short = test.removeprefix("test_")
        for key in ([f"{short}[{case}]", case] if case else []) + [short]:
            if key in cls.opt_out:
                return f"opted out: {cls.opt_out[key]}"
        return None

    def _skip_if_opted_out(self, test: str, case: str | None = None) -> None:
        reason = self._opt_out_reason(test, case)
        if reason:
            pytest.skip(reason)

    @classmethod
    def runnable_cases(cls) -> list[str]:
        """Zoo cases whose every node type the backend carries exactly (rewrites included)."""
        backend = cls._backend()
        via = alternatives(backend)
        ok = {t for t, s in backend.support.items() if s.status == "exact"} | set(via)
        return [name for name, case in ZOO.items() if case.types <= ok]

    @classmethod
    def types_with(cls, status: str) -> list[str]:
        """Node types (besides Input/Output) the backend carries with `status`, rewrites counted."""
        backend = cls._backend()
        via = alternatives(backend)
        out = []
        for t in SINGLE:
            declared = backend.support.get(t, Support("unsupported")).status
            effective = "exact" if t in via and declared != "exact" else declared
            if effective == status:
                out.append(t)
        return out

    def pytest_generate_tests(self, metafunc) -> None:
        test = metafunc.function.__name__
        if "case" in metafunc.fixturenames:
            values = self.runnable_cases()
        elif "node_type" in metafunc.fixturenames:
            status = "unsupported" if "unsupported" in test else "approximate"
            values = self.types_with(status)
            if not values:
                reason = f"{self._backend().name} has no {status} node types"
                metafunc.parametrize("node_type", [pytest.param(None, id="none", marks=pytest.mark.skip(reason=reason))])
                return
        else:
            return
        arg = "case" if "case" in metafunc.fixturenames else "node_type"
        params = []
        for value in values:
            reason = self._opt_out_reason(test, SINGLE.get(value, value))
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            params.append(pytest.param(value, id=value, marks=marks))
        metafunc.parametrize(arg, params)

    # -- tests --------------------------------------------------------------------
    def test_name_rules(self) -> None:
        self._skip_if_opted_out("test_name_rules")
        backend = self._backend()
        problem = name_problem(backend.name)
        assert problem is None, problem
        unknown = sorted(set(backend.support) - set(NODE_TYPES))
        assert not unknown, f"support declares node types NIR does not have: {unknown}"
        for node_type, support in backend.support.items():
            assert isinstance(support, Support), f"support[{node_type!r}] is {type(support).__name__}, not Support"
            if support.status != "exact":
                assert support.reason, f"support[{node_type!r}] is {support.status} without a reason"
        unit_r = sorted(set(backend.unit_r) - R_TYPES)
        assert not unit_r, f"unit_r may only name {sorted(R_TYPES)}, got {unit_r}"
        native = Policy.preset(backend.preset)
        assert backend.supports_policy(native).status == "exact", f"{backend.name} does not run its own preset {backend.preset!r} exactly"

    def test_accepts_only_its_models(self) -> None:
        self._skip_if_opted_out("test_accepts_only_its_models")
        backend = self._backend()
        for foreign in (object(), None, "net.nir", np.zeros(3)):
            assert backend.accepts(foreign) is False, f"accepts({foreign!r}) should be False"

    def test_agrees_with_reference(self, case: str) -> None:
        backend = self._backend()
        policy = case_policy(case, self._policy())
        graph = build_case(case, policy)
        p = plan(graph, backend, policy=policy)
        assert p.report.ok, f"{backend.name} claims every node of {case!r} but the plan says:\n{p.report}"
        native = p.build()
        record = recordable(graph)
        x, reference = case_inputs(case, graph, policy, steps=self.steps, batch=self.batch, record=record)
        seen = activity(reference, graph)
        assert _shortfall(seen) <= 0, (
            f"zoo case {case!r} must make every spiking node fire at least {MIN_SPIKES} times and stay silent "
            f"at least {MIN_SILENT} neuron-steps under {policy!r}: {describe_activity(seen)}"
        )
        exact = ZOO[case].ties
        if exact:
            assert tie_flips(graph, x, policy, reference, record), f"tie case {case!r} has no potential exactly at a threshold under {policy!r}"
        result = run(backend, native, x, record=tuple(record))
        nodes = compare(reference, result, graph, record)
        bad = {n: c for n, c in nodes.items() if not c.ok or (exact and c.near_threshold)}
        assert not bad, (
            f"{backend.name} differs from the reference on {case!r}"
            + (" (exact case: no rounding-tie allowance)" if exact else "")
            + ": "
            + "; ".join(
                f"{n}: first differing step {c.first_diff_step}, max |dv| {c.max_dv}, {c.spike_diffs}/{c.spike_total} spikes differ"
                + (f" ({c.near_threshold} at a threshold tie)" if c.near_threshold else "")
                + (f", missing {c.missing}" if c.missing else "")
                for n, c in bad.items()
            )
            + f"; reference activity: {describe_activity(seen)}"
        )

    def test_round_trip(self, case: str) -> None:
        backend, policy = self._backend(), case_policy(case, self._policy())
        if not backend.can_export:
            pytest.skip(f"{backend.name} does not export models")
        graph = build_case(case, policy)
        native = plan(graph, backend, policy=policy).build()
        assert backend.accepts(native), f"{backend.name} does not accept the model it built"
        back, gaps = backend.export(native, policy=policy)
        assert isinstance(back, Graph), f"export returned {type(back).__name__}"
        assert not gaps, f"the export of a model built from an exact plan is approximate: {gaps}"
        diffs = graph_differences(back, with_policy(graph, policy))
        assert not diffs, "export(build(g)) != g: " + "; ".join(diffs)
        assert Policy.from_metadata(back.metadata) == policy, "the exported graph does not carry the policy in its metadata"

    def test_unsupported_raises_gap_error(self, node_type: str) -> None:
        backend, policy = self._backend(), self._policy()
        graph = build_case(SINGLE[node_type], policy)
        with pytest.raises(GapError) as caught:
            convert(graph, to=backend, policy=policy)
        unsupported = [g.node for g in caught.value.report.unsupported]
        assert SINGLE[node_type] in unsupported, f"report does not list {node_type}:\n{caught.value.report}"
        with pytest.raises(GapError):  # refused even when approximations are allowed: nothing is dropped
            plan(graph, backend, policy=policy).build(strict=False)

    def test_approximate_is_reported(self, node_type: str) -> None:
        backend, policy = self._backend(), self._policy()
        graph = build_case(SINGLE[node_type], policy)
        with pytest.raises(GapError) as caught:
            convert(graph, to=backend, policy=policy)
        assert SINGLE[node_type] in [g.node for g in caught.value.report.approximate], str(caught.value.report)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            p = plan(graph, backend, policy=policy)
            model = p.build(strict=False)
        assert model is not None and not p.report.ok
        assert any(issubclass(w.category, GapWarning) for w in seen), "non-strict conversion with approximations must warn"
