"""The plugin is found through its entry point and works through nirbridge.convert."""

from __future__ import annotations

import numpy as np
import pytest
import snntorch as snn
import torch
import torch.nn as nn
from snn_support import assert_fires, assert_matches

import nirbridge
from nirbridge.backends import registry as plugins
from nirbridge.errors import GapError
from nirbridge.reference import simulate


def test_entry_point_convert_both_ways(monkeypatch):
    monkeypatch.delenv(plugins.DISABLE_ENV, raising=False)
    plugins.reset()
    try:
        assert nirbridge.backends()["snntorch"].preset == "snntorch"
        backend = nirbridge.get_backend("snntorch")
        assert plugins.distributions()["snntorch"] == "nirbridge-snntorch"
        net = nn.Sequential(nn.Linear(3, 4), snn.Leaky(beta=0.8, init_hidden=True, threshold=0.5))
        with torch.no_grad():
            net[0].weight.uniform_(0.1, 0.6)
        assert backend.accepts(net) and not backend.accepts(nn.Linear(2, 2))
        x = np.random.default_rng(0).uniform(0, 1, (30, 2, 3)).astype(np.float32)
        graph = nirbridge.convert(net, to="nir", sample=x[0])
        ref = simulate(graph, x, record=["1"])
        assert_fires(ref.states["1"]["spikes"])
        model = nirbridge.convert(graph, to="snntorch")
        assert_matches(ref, backend.simulate(model, x, record=("1",)), graph, ["1"])
        report = nirbridge.check(nn.Sequential(nn.Linear(3, 4), snn.Alpha(alpha=0.9, beta=0.8, init_hidden=True)),
                                 to="numpy", sample=x[0])
        assert [g.node for g in report.unsupported] == ["1"]
        with pytest.raises(GapError, match="Alpha"):
            nirbridge.convert(nn.Sequential(nn.Linear(3, 4), snn.Alpha(alpha=0.9, beta=0.8, init_hidden=True)),
                              to="numpy", sample=x[0])
    finally:
        plugins.reset()
