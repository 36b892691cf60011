"""What a simulation returns: outputs and recorded states as numpy arrays shaped (time, batch, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SimulationResult:
    """`outputs` maps each Output node to its values; `states` maps each recorded node to its
    state variables: `v` (membrane), `I` (synaptic current), `spikes` (0/1), or `y` (the
    output of a stateless node)."""

    outputs: dict[str, np.ndarray]
    states: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def output(self) -> np.ndarray:
        """The only output; an error names the outputs when there are several."""
        if len(self.outputs) != 1:
            raise KeyError(f"graph has {len(self.outputs)} outputs: {', '.join(self.outputs)}")
        return next(iter(self.outputs.values()))
