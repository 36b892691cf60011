"""Rockpool models as users write them: exported, converted to every other backend and back to
Rockpool, with 0 differing spike counts in every spiking layer against Rockpool's own run."""

from __future__ import annotations

import numpy as np
import pytest
from rockpool_support import MODELS, make, run_native, sample

from nirbridge.testing.roundtrip import everywhere_and_back

TARGETS = ("numpy", "snntorch", "norse", "sinabs", "spikingjelly")


@pytest.mark.parametrize("name", MODELS)
def test_everywhere_and_back(name):
    for plugin in ("nirbridge_spikingjelly", "nirbridge_sinabs", "nirbridge_snntorch", "nirbridge_norse"):
        pytest.importorskip(plugin)
    model, x = make(name)
    out, spikes = run_native(model, x)
    for layer, s in spikes.items():  # every spiking layer fires (a silent layer matches anything)
        assert 0.05 < np.mean(s > 0) < 0.8, (layer, np.mean(s > 0))
    counts = everywhere_and_back(model, x, source="rockpool", sample=sample(x), spikes=spikes, output=out, targets=TARGETS)
    assert len(counts) == 2 + 2 * len(TARGETS) and all(bad == 0 for _, bad in counts.values())
    again, _ = run_native(model, x)
    np.testing.assert_array_equal(again, out)  # exporting and converting left the model as it was
