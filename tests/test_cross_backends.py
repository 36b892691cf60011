"""The zoo under every preset, in every direction: a model built by each backend, converted to
every backend, emits the reference's spikes (0 differing entries in every spiking node),
where the target can express the graph (here: everywhere, with the policy neuron where a
framework lacks the policy; torch backends and Spyx, on JAX, alike). Sources are converted models, so each direction also goes
through the source's export (`graph_of`)."""

from __future__ import annotations

from importlib.util import find_spec

import pytest

import nirbridge
from nirbridge import Policy
from nirbridge.backends.registry import get_backend
from nirbridge.compare import compare, recordable
from nirbridge.conversion import run
from nirbridge.testing import ZOO, build_case, case_inputs, case_policy

for plugin in ("nirbridge_snntorch", "nirbridge_norse", "nirbridge_sinabs", "nirbridge_spikingjelly", "nirbridge_rockpool"):
    pytest.importorskip(plugin)

BACKENDS = ("numpy", "snntorch", "norse", "sinabs", "spikingjelly", "rockpool")
PRESETS = ("nir", "snntorch", "norse", "sinabs", "spikingjelly", "nir-paper", "rockpool", "spyx")
#: Spyx (JAX) joins where installed, under every preset: torch and JAX backends convert into each other
SPYX_PRESETS = PRESETS if find_spec("nirbridge_spyx") else ()

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("preset", PRESETS)
def test_zoo_every_direction_agrees_with_the_reference(preset):
    backends = BACKENDS + (("spyx",) if preset in SPYX_PRESETS else ())
    compared = 0
    for case in ZOO:
        policy = case_policy(case, Policy.preset(preset))
        graph = build_case(case, policy)
        record = recordable(graph)
        x, reference = case_inputs(case, graph, policy, steps=30, batch=2, record=record)
        for source in backends:
            model = nirbridge.convert(graph, to=source, policy=policy)
            for target in backends:
                p = nirbridge.plan(model, to=target)
                assert p.report.ok and p.policy == policy, f"{case}: {source} -> {target}:\n{p.report}"
                result = run(get_backend(target), p.build(), x, record=tuple(record))
                for node, c in compare(reference, result, graph, record).items():
                    assert c.spike_diffs == 0 and c.ok, f"{preset} {case}: {source} -> {target}: {node}: {c}"
                    compared += c.spike_total or 0
    assert compared > 0
