"""SpikingJelly models as users write them, in single- and multi-step mode: exported,
converted to every other backend and back to SpikingJelly, with 0 differing spikes in every
spiking layer against SpikingJelly's own run."""

from __future__ import annotations

import numpy as np
import pytest
from sj_support import MODELS, make, run_native, sample

from nirbridge.testing.roundtrip import everywhere_and_back

TARGETS = ("numpy", "snntorch", "norse", "sinabs")


@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("name", MODELS)
def test_everywhere_and_back(name, step_mode):
    pytest.importorskip("nirbridge_sinabs")
    model, x = make(name, step_mode)
    out, spikes = run_native(model, x)
    for layer, s in spikes.items():  # every spiking layer fires (a silent layer matches anything)
        assert 0.05 < s.mean() < 0.8, (layer, s.mean())
    counts = everywhere_and_back(model, x, source="spikingjelly", sample=sample(model, x), spikes=spikes, output=out, targets=TARGETS)
    assert len(counts) == 2 + 2 * len(TARGETS) and all(bad == 0 for _, bad in counts.values())
    again, _ = run_native(model, x)
    np.testing.assert_array_equal(again, out)  # exporting and converting left the model as it was
