"""Spyx models as users write them: the exported graph, the Spyx model converted to every other
backend and back, and the graph imported into Spyx all emit Spyx's own spikes, layer by layer."""

import pytest
from spyx_support import MODELS, make, run_native, sample

import nirbridge
from nirbridge.testing.roundtrip import everywhere_and_back

TARGETS = ["numpy", "snntorch", "norse", "sinabs", "spikingjelly", "rockpool"]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_everywhere_and_back_gives_spyx_own_spikes(name):
    model, x = make(name)
    out, spikes = run_native(model, x)
    for n, s in spikes.items():
        assert 0.05 < float((s > 0).mean()) < 0.7, (n, float((s > 0).mean()))
    graph = nirbridge.convert(model, to="nir", sample=sample(x))
    targets = [t for t in TARGETS if t in nirbridge.backends() and nirbridge.check(graph, to=t).ok]
    assert {"numpy", "sinabs"} <= set(targets), targets  # the policy neuron carries any policy
    counts = everywhere_and_back(model, x, source="spyx", sample=sample(x), spikes=spikes, output=out, targets=targets)
    assert len(counts) == 2 + 2 * len(targets)
    assert all(bad == 0 and total > 0 for total, bad in counts.values()), counts


@pytest.mark.parametrize("name", ["LIF MLP (scalar beta)", "RCuBaLIF"])
def test_graph_and_import_give_spyx_own_spikes(name):
    model, x = make(name)
    out, spikes = run_native(model, x)
    counts = everywhere_and_back(model, x, source="spyx", sample=sample(x), spikes=spikes, output=out)
    assert all(bad == 0 for _, bad in counts.values()), counts
