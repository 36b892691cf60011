"""`BackendConformance`: the test suite every backend subclasses.

    from nirbridge.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        backend = MyBackend()              # or a registered name: "mybackend"
        opt_out = {"round_trip[delay]": "delays are exported in steps"}

For every small graph of the zoo whose node types the backend claims (each NIR primitive,
networks, recurrent and nested graphs), it checks spike-exact agreement with the NumPy
reference under the backend's own preset with every spiking layer firing, and the round trip
`export(build(g)) == g` when the backend exports. Node types it does not claim must raise
`GapError` (strict and non-strict conversion alike), approximate ones must be reported as such.
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
from ..compare import compare, firing_inputs, firing_rates, recordable
from ..conversion import convert, plan, run
from ..errors import GapError
from ..ir import NODE_TYPES, Graph
from ..reference import simulate
from ..report import GapWarning
from ..rewrite import R_TYPES, alternatives, maxpool2d
from ..semantics import Policy, with_policy

F = np.float32


# ----------------------------------------------------------------------------- the zoo


@dataclass(frozen=True)
class Case:
    """A zoo graph: the node types it uses (besides Input/Output) and how to build it for a
    policy (parameters scale with dt so every preset makes it fire). `real_inputs`: feed
    uniform values in [0, 1) instead of spikes."""

    name: str
    types: frozenset[str]
    build: Callable[[Policy, np.random.Generator], Graph]
    real_inputs: bool = False


def _u(rng: np.random.Generator, lo: float, hi: float, shape) -> np.ndarray:
    return rng.uniform(lo, hi, shape).astype(F)


def _shape(*dims: int) -> np.ndarray:
    return np.asarray(dims, dtype=np.int64)


def neuron_params(kind: str, shape, dt: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Parameters giving a per-step input gain of 0.5-0.9 (r = gain * tau/dt, w_in = tau_syn/dt)."""
    beta = _u(rng, 0.8, 0.95, shape)
    tau = (dt / (1 - beta)).astype(F)
    gain = _u(rng, 0.5, 0.9, shape)
    zeros = np.zeros(shape, F)
    threshold = _u(rng, 0.8, 1.2, shape)
    if kind == "I":
        return {"r": (gain / dt).astype(F)}
    if kind == "IF":
        return {"r": (gain / dt).astype(F), "v_threshold": threshold, "v_reset": zeros}
    if kind in ("LI", "LIF"):
        params = {"tau": tau, "r": (gain * tau / dt).astype(F), "v_leak": zeros}
        return params | ({"v_threshold": threshold, "v_reset": zeros} if kind == "LIF" else {})
    alpha = _u(rng, 0.5, 0.8, shape)
    tau_syn = (dt / (1 - alpha)).astype(F)
    params = {"tau_syn": tau_syn, "tau_mem": tau, "r": (gain * tau / dt).astype(F), "v_leak": zeros, "w_in": (tau_syn / dt).astype(F)}
    return params | ({"v_threshold": threshold, "v_reset": zeros} if kind == "CubaLIF" else {})


def _node(kind: str, shape, dt: float, rng) -> dict[str, Any]:
    return {"type": kind, **neuron_params(kind, shape, dt, rng)}


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
    return lambda p, rng: _chain((4,), [(kind.lower(), _node(kind, (4,), p.dt, rng))], (4,))


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
    dt = p.dt
    return _chain(
        (5,),
        [("fc1", _dense("Linear", 6, 5, rng)), ("lif1", _node("LIF", (6,), dt, rng)), ("fc2", _dense("Affine", 3, 6, rng)), ("lif2", _node("LIF", (3,), dt, rng))],
        (3,),
    )


def _recurrent(kind: str, dense: str) -> Callable[[Policy, np.random.Generator], Graph]:
    def build(p: Policy, rng) -> Graph:
        layers = [("fc", _dense(dense, 5, 4, rng)), ("lif", _node(kind, (5,), p.dt, rng))]
        extra = [("w_rec", _dense(dense, 5, 5, rng, -0.5, 0.5))]
        return _chain((4,), layers, (5,), extra, [("lif", "w_rec"), ("w_rec", "lif")])

    return build


def _nested(recurrent: bool) -> Callable[[Policy, np.random.Generator], Graph]:
    def build(p: Policy, rng) -> Graph:
        inner_nodes = {
            "input": {"type": "Input", "shape": _shape(5)},
            "lif": _node("LIF", (5,), p.dt, rng),
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
            ("if1", _node("IF", (3, 6, 6), p.dt, rng)),
            ("pool", {"type": "SumPool2d", "kernel_size": _shape(2, 2), "stride": _shape(2, 2), "padding": _shape(0, 0)}),
            ("flat", {"type": "Flatten", "start_dim": 0, "end_dim": -1, "input_type": _shape(3, 3, 3)}),
            ("fc", _dense("Linear", 4, 27, rng, -0.2, 0.6)),
            ("lif", _node("LIF", (4,), p.dt, rng)),
        ],
        (4,),
    )


def _maxpool_on_spikes(p: Policy, rng) -> Graph:
    mp = maxpool2d("pool", kernel_size=2, stride=2, input_shape=(2, 4, 4), binary_input=True)
    layers = [("lif", _node("LIF", (2, 4, 4), p.dt, rng))] + list(mp.nodes.items())
    return _chain((2, 4, 4), layers, (2, 2, 2))


def _odd_names(p: Policy, rng) -> Graph:
    return _chain((3,), [("0", _dense("Linear", 4, 3, rng)), ("fc-1_A", _dense("Linear", 4, 4, rng)), ("Lif_1", _node("LIF", (4,), p.dt, rng))], (4,))


def _zoo() -> dict[str, Case]:
    cases = [Case(t.lower(), frozenset({t}), _stateless(t), real_inputs=t == "Threshold") for t in ("Affine", "Linear", "Scale", "Threshold", "Delay", "Flatten", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d")]
    cases += [Case(t.lower(), frozenset({t}), _single_neuron(t)) for t in ("I", "IF", "LI", "LIF", "CubaLI", "CubaLIF")]
    cases += [
        Case("network", frozenset({"Linear", "Affine", "LIF"}), _network),
        Case("recurrent_lif", frozenset({"Linear", "LIF"}), _recurrent("LIF", "Linear")),
        Case("recurrent_cubalif", frozenset({"Affine", "CubaLIF"}), _recurrent("CubaLIF", "Affine")),
        Case("nirgraph", frozenset({"NIRGraph", "Linear", "LIF"}), _nested(False)),
        Case("nested_recurrent", frozenset({"NIRGraph", "Linear", "LIF"}), _nested(True)),
        Case("conv_net", frozenset({"Conv2d", "IF", "SumPool2d", "Flatten", "Linear", "LIF"}), _conv_net),
        Case("maxpool_on_spikes", frozenset({"LIF", "SumPool2d", "Threshold"}), _maxpool_on_spikes),
        Case("odd_names", frozenset({"Linear", "LIF"}), _odd_names),
    ]
    return {c.name: c for c in cases}


ZOO: dict[str, Case] = _zoo()
#: the zoo case holding one node of each NIR type (besides Input/Output)
SINGLE: dict[str, str] = {t: t.lower() for t in NODE_TYPES if t not in ("Input", "Output")}


def build_case(name: str, policy: Policy, seed: int | None = None) -> Graph:
    """Build zoo case `name` for `policy` (deterministic unless `seed` is given)."""
    seed = zlib.crc32(name.encode()) if seed is None else seed
    return ZOO[name].build(policy, np.random.default_rng(seed))


def case_inputs(name: str, graph: Graph, policy: Policy, *, steps: int, batch: int, record: list[str]):
    """Inputs for a zoo case, with the reference result: spikes at a rate that makes every
    spiking node fire, or uniform values for cases that take real inputs."""
    seed = zlib.crc32(name.encode())
    if ZOO[name].real_inputs:
        shape = tuple(int(n) for n in next(iter(graph.inputs().values())).shape)
        x = np.random.default_rng(seed).uniform(0, 1, (steps, batch, *shape)).astype(F)
        return x, simulate(graph, x, policy=policy, record=record)
    x, _, reference = firing_inputs(graph, policy, steps=steps, batch=batch, seed=seed, record=record)
    return x, reference


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
            from .plugins import get_backend

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
        backend, policy = self._backend(), self._policy()
        graph = build_case(case, policy)
        p = plan(graph, backend, policy=policy)
        assert p.report.ok, f"{backend.name} claims every node of {case!r} but the plan says:\n{p.report}"
        native = p.build()
        record = recordable(graph)
        x, reference = case_inputs(case, graph, policy, steps=self.steps, batch=self.batch, record=record)
        rates = firing_rates(reference, graph)
        assert all(0 < r < 1 for r in rates.values()), f"zoo case {case!r} must fire in every spiking node, below saturation: {rates}"
        result = run(backend, native, x, record=tuple(record))
        nodes = compare(reference, result, graph, record)
        bad = {n: c for n, c in nodes.items() if not c.ok}
        assert not bad, f"{backend.name} differs from the reference on {case!r}: " + "; ".join(
            f"{n}: first differing step {c.first_diff_step}, max |dv| {c.max_dv}, {c.spike_diffs}/{c.spike_total} spikes differ, missing {c.missing}"
            for n, c in bad.items()
        )

    def test_round_trip(self, case: str) -> None:
        backend, policy = self._backend(), self._policy()
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
