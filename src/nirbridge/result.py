"""What a simulation returns: outputs and recorded states as numpy arrays shaped (time, batch, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import SimulationError


@dataclass
class SimulationResult:
    """`outputs` maps each Output node to its values; `states` maps each recorded node to its
    state variables: `v` (membrane), `I` (synaptic current), `spikes` (0/1), or `y` (the
    output of a stateless node). `policy` is the policy that ran (when the simulator knows it)
    and `notes` say where it came from and what was assumed."""

    outputs: dict[str, np.ndarray]
    states: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    policy: Any = None
    notes: list[str] = field(default_factory=list)

    @property
    def output(self) -> np.ndarray:
        """The only output; an error names the outputs when there are several."""
        if len(self.outputs) != 1:
            raise SimulationError(f"graph has {len(self.outputs)} outputs ({', '.join(self.outputs)}): use result.outputs[name]")
        return next(iter(self.outputs.values()))
