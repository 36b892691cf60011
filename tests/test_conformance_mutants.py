"""The conformance suite can fail: each mutant below is the numpy backend with one deliberate
bug in its simulation (its plan, import and export stay correct), and `BackendConformance`
alone must fail it under every preset where the bug changes what a graph computes.

Run as a script for the whole table, mutant x preset -> the tests that caught it:

    python tests/test_conformance_mutants.py
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar
from unittest import mock

import numpy as np
import pytest

from nirbridge import Graph, Policy
from nirbridge.backends.numpy import NumpyBackend
from nirbridge.ir import Delay
from nirbridge.reference import engine, neurons, simulate
from nirbridge.testing import BackendConformance, swap
from nirbridge.topology import Schedule, flatten, schedule

PRESETS = ("nir", "snntorch", "norse", "sinabs", "spikingjelly", "nir-paper", "rockpool", "spyx")
SPIKING = ("IF", "LIF", "CubaLIF")


# ----------------------------------------------------------------------------- the mutants


@dataclass(frozen=True)
class Mutation:
    """One bug: how it changes the graph or the policy the simulation sees, or a patch of the
    simulator around the run; `applies(policy)` is False where the bug changes nothing."""

    name: str
    bug: str
    graph: Callable[[Graph, Policy], Graph] | None = None
    policy: Callable[[Policy], Policy] | None = None
    patch: Callable[[], contextlib.AbstractContextManager] | None = None
    applies: Callable[[Policy], bool] = lambda policy: True


def _nodes(types: tuple[str, ...], **update: Callable[[np.ndarray], np.ndarray]) -> Callable[[Graph, Policy], Graph]:
    """A graph transform applying `update[field](value)` to every node of `types`, nested too."""

    def apply(graph: Graph, policy: Policy) -> Graph:
        nodes = {}
        for name, node in graph.nodes.items():
            if isinstance(node, Graph):
                node = apply(node, policy)
            elif node.type in types:
                node = node.model_copy(update={f: fn(np.asarray(getattr(node, f))) for f, fn in update.items() if hasattr(node, f)})
            nodes[name] = node
        return Graph(nodes=nodes, edges=graph.edges, metadata=graph.metadata)

    return apply


def _zeros(value: np.ndarray) -> np.ndarray:
    return np.zeros_like(value)


def _ones(value: np.ndarray) -> np.ndarray:
    return np.ones_like(value)


def _resets_to_value(policy: Policy) -> bool:
    return any(policy.for_node("", kind).reset == "to_reset" for kind in SPIKING)


def _cuba_swap_taus(graph: Graph, policy: Policy) -> Graph:
    nodes = {}
    for name, node in graph.nodes.items():
        if isinstance(node, Graph):
            node = _cuba_swap_taus(node, policy)
        elif node.type in ("CubaLI", "CubaLIF"):
            node = node.model_copy(update={"tau_syn": node.tau_mem, "tau_mem": node.tau_syn})
        nodes[name] = node
    return Graph(nodes=nodes, edges=graph.edges, metadata=graph.metadata)


def _closing_edges(flat: Graph) -> frozenset[tuple[str, str]]:
    return schedule(flat).delayed


def _recurrent_dropped(graph: Graph, policy: Policy) -> Graph:
    """Without a delay buffer, a cycle's closing edge reads its source before the source ran
    in this step: nothing (zero)."""
    flat = flatten(graph)
    closing = _closing_edges(flat)
    edges = [e for e in flat.edges if e not in closing]  # leaves the closing edge's source dangling: no validation
    return Graph.model_construct(nodes=flat.nodes, edges=edges, metadata=flat.metadata, type="NIRGraph")


def _recurrent_doubled(graph: Graph, policy: Policy) -> Graph:
    """A cycle's closing edge carries its source's value of two steps back (a Delay of one
    more step on it)."""
    flat = flatten(graph)
    closing = _closing_edges(flat)
    nodes, edges = dict(flat.nodes), []
    for s, d in flat.edges:
        if (s, d) in closing:
            late = f"{s}__late"
            nodes[late] = Delay(delay=np.asarray(policy.dt))
            edges += [(s, late), (late, d)]
        else:
            edges.append((s, d))
    return Graph(nodes=nodes, edges=edges, metadata=flat.metadata)


def _rotated_schedule(flat: Graph) -> Schedule:
    """The cycle rule with every cycle entered one node later: the one-step delay sits on
    another edge of the cycle."""
    right = schedule(flat)
    blocks = tuple(block[1:] + block[:1] if right.is_cyclic(block) and len(block) > 1 else block for block in right.blocks)
    order = tuple(n for block in blocks for n in block)
    pos = {n: i for i, n in enumerate(order)}
    delayed = frozenset((s, d) for s, d in flat.edges if pos[s] >= pos[d])
    sources = {n: tuple((s, (s, d) in delayed) for s, d in flat.edges if d == n) for n in order}
    return Schedule(order, sources, delayed, blocks)


def _start_at_v_leak() -> contextlib.AbstractContextManager:
    """Neurons start at v = v_leak instead of 0 (as stock Norse cells do)."""
    init, reset = neurons.Neuron.__init__, neurons.Neuron.reset

    def patched_init(self, name, node, *args, **kwargs):
        init(self, name, node, *args, **kwargs)
        self.v_start = getattr(node, "v_leak", None)

    def patched_reset(self, batch):
        reset(self, batch)
        if self.v_start is not None:
            self.v[...] = np.asarray(self.v_start, self.dtype)

    stack = contextlib.ExitStack()
    stack.enter_context(mock.patch.object(neurons.Neuron, "__init__", patched_init))
    stack.enter_context(mock.patch.object(neurons.Neuron, "reset", patched_reset))
    return stack


def _flip_kernel(weight: np.ndarray) -> np.ndarray:
    return weight[(...,) + (slice(None, None, -1),) * (weight.ndim - 2)].copy()


def _one_step_short(policy_dt: float):
    return lambda delay: np.maximum(delay - policy_dt, 0).astype(delay.dtype)


MUTATIONS = [
    Mutation("v_reset_ignored", "resets to 0 whatever v_reset says", graph=_nodes(SPIKING, v_reset=_zeros), applies=_resets_to_value),
    Mutation("v_leak_ignored", "leaks towards 0 whatever v_leak says", graph=_nodes(("LI", "LIF", "CubaLI", "CubaLIF"), v_leak=_zeros)),
    Mutation("r_ignored", "runs every neuron with r = 1", graph=_nodes(("I", "IF", "LI", "LIF", "CubaLI", "CubaLIF"), r=_ones)),
    Mutation("w_in_ignored", "runs the synapse with w_in = 1", graph=_nodes(("CubaLI", "CubaLIF"), w_in=_ones)),
    Mutation("tau_syn_tau_mem_swapped", "exchanges the two time constants of CubaLI/CubaLIF", graph=_cuba_swap_taus),
    Mutation("threshold_rule_swapped", "fires on >= where the policy says > (and the reverse)", policy=lambda p: swap(p, "threshold", ("gt", "ge"))),
    Mutation("reset_timing_swapped", "resets one step late where the policy says immediately (and the reverse)", policy=lambda p: swap(p, "reset_timing", ("immediate", "next_step"))),
    Mutation("reset_rule_swapped", "subtracts the threshold where the policy resets to v_reset (and the reverse)", policy=lambda p: swap(p, "reset", ("to_reset", "subtract"))),
    Mutation("integration_swapped", "integrates exactly where the policy says forward Euler (and the reverse)", policy=lambda p: swap(p, "integration", ("euler", "exact"))),
    Mutation("input_convention_swapped", "adds inputs as jumps where the policy says currents (and the reverse)", policy=lambda p: swap(p, "input", ("current", "impulse"))),
    Mutation("current_order_swapped", "drives v with last step's current where the policy says this step's (and the reverse)", policy=lambda p: swap(p, "current_order", ("current_first", "voltage_first"))),
    Mutation("state_starts_at_v_leak", "starts neurons at v = v_leak instead of 0", patch=_start_at_v_leak),
    Mutation("recurrent_delay_dropped", "a cycle's closing edge reads its source before it ran this step (zero)", graph=_recurrent_dropped),
    Mutation("recurrent_delay_doubled", "a cycle's closing edge carries the value of two steps back", graph=_recurrent_doubled),
    Mutation("recurrent_delay_moved", "breaks each cycle at another edge", patch=lambda: mock.patch.object(engine, "schedule", _rotated_schedule)),
    Mutation("bias_dropped", "ignores the bias of Affine and Conv layers", graph=_nodes(("Affine", "Conv1d", "Conv2d"), bias=_zeros)),
    Mutation("conv_kernel_flipped", "convolves (flipped kernel) where NIR cross-correlates", graph=_nodes(("Conv1d", "Conv2d"), weight=_flip_kernel)),
    Mutation("delay_one_step_short", "delays every Delay node one step less", graph=lambda g, p: _nodes(("Delay",), delay=_one_step_short(p.dt))(g, p)),
]
BY_NAME = {m.name: m for m in MUTATIONS}


class MutantBackend(NumpyBackend):
    """The numpy backend with `mutation` applied to every simulation it runs."""

    name = "mutant"
    mutation: ClassVar[Mutation]

    def simulate(self, native, x, *, record=()):
        m = self.mutation
        graph = native.graph if m.graph is None else m.graph(native.graph, native.policy)
        policy = native.policy if m.policy is None else m.policy(native.policy)
        with m.patch() if m.patch else contextlib.nullcontext():
            return simulate(graph, x, policy=policy, record=list(record))


def suite_for(mutation: Mutation, preset: str) -> type[BackendConformance]:
    backend = type(f"Mutant_{mutation.name}", (MutantBackend,), {"mutation": mutation, "preset": preset})()
    return type(f"Suite_{mutation.name}_{preset}", (BackendConformance,), {"backend": backend})


# ----------------------------------------------------------------------------- running the suite


def run_suite(suite: type[BackendConformance], *, first_failure: bool = False) -> dict[str, str]:
    """Every test of `suite`, run in-process with the parameters pytest would give it:
    {test id: first line of its failure} for the tests that failed."""
    instance = suite()
    failures: dict[str, str] = {}
    for test, method in inspect.getmembers(suite, inspect.isfunction):
        if not test.startswith("test_"):
            continue
        params = list(inspect.signature(method).parameters)[1:]
        if params == ["case"]:
            calls = [(f"{test}[{case}]", (case,)) for case in suite.runnable_cases()]
        elif params == ["node_type"]:
            status = "unsupported" if "unsupported" in test else "approximate"
            calls = [(f"{test}[{t}]", (t,)) for t in suite.types_with(status)]
        else:
            calls = [(test, ())]
        for test_id, args in calls:
            try:
                getattr(instance, test)(*args)
            except pytest.skip.Exception:
                continue
            except AssertionError as exc:
                failures[test_id] = (str(exc).splitlines() or [""])[0]
                if first_failure:
                    return failures
    return failures


def test_the_unmutated_backend_passes_the_suite_under_every_preset():
    """The harness itself: the numpy backend under each preset, run this way, fails nothing."""
    for preset in PRESETS:
        suite = type(f"Suite_clean_{preset}", (BackendConformance,), {"backend": type("Clean", (NumpyBackend,), {"preset": preset})()})
        assert run_suite(suite) == {}, preset


@pytest.mark.parametrize("mutation", [m.name for m in MUTATIONS])
def test_the_suite_fails_every_mutant_under_every_preset_it_affects(mutation):
    m = BY_NAME[mutation]
    for preset in PRESETS:
        if not m.applies(Policy.preset(preset)):
            continue
        failures = run_suite(suite_for(m, preset), first_failure=True)
        assert failures, f"the conformance suite passes the mutant {mutation!r} ({m.bug}) under preset {preset!r}"


def test_a_mutation_that_changes_nothing_is_called_so():
    """`applies` is honest: v_reset is unused where every spiking neuron subtracts."""
    m = BY_NAME["v_reset_ignored"]
    assert not m.applies(Policy.preset("snntorch")) and m.applies(Policy.preset("norse"))
    assert run_suite(suite_for(m, "snntorch")) == {}


def table() -> str:
    """Markdown table: mutant x preset -> the tests that caught it (all of them)."""
    lines = ["| mutant | " + " | ".join(PRESETS) + " |", "|---|" + "---|" * len(PRESETS)]
    for m in MUTATIONS:
        cells = []
        for preset in PRESETS:
            if not m.applies(Policy.preset(preset)):
                cells.append("n/a")
                continue
            failures = run_suite(suite_for(m, preset))
            caught = sorted(t.removeprefix("test_agrees_with_reference") or t for t in failures)
            cells.append(f"**{len(caught)}**: " + ", ".join(c.strip("[]") for c in caught) if caught else "NOT CAUGHT")
        lines.append(f"| `{m.name}` ({m.bug}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    started = time.perf_counter()
    print(table())
    print(f"\n({time.perf_counter() - started:.1f} s)", file=sys.stderr)
