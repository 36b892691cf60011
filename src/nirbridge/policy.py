"""Policy: the discretization and semantics choices that turn NIR's continuous equations into
steps (see docs/semantics.md for the equations), and the maths between per-step factors and
time constants.

    euler:  a = 1 - dt/tau        tau = dt / (1 - a)
    exact:  a = exp(-dt/tau)      tau = -dt / log(a)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Integration = Literal["euler", "exact"]
Reset = Literal["to_reset", "subtract", "none"]
ResetTiming = Literal["immediate", "next_step"]
ThresholdRule = Literal["gt", "ge"]
CurrentOrder = Literal["current_first", "voltage_first"]
InputRule = Literal["current", "impulse"]


class NodePolicy(BaseModel):
    """Per-node override: any field left None inherits the graph-wide value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    integration: Integration | None = None
    reset: Reset | None = None
    reset_timing: ResetTiming | None = None
    threshold: ThresholdRule | None = None
    current_order: CurrentOrder | None = None
    input: InputRule | None = None


class Policy(BaseModel):
    """How a graph is stepped. `dt` in seconds; `overrides` maps node names (dotted for nested
    graphs) to `NodePolicy` values that replace the graph-wide fields for that node."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dt: float = Field(default=1e-4, gt=0, allow_inf_nan=False)
    integration: Integration = "euler"
    reset: Reset = "to_reset"
    reset_timing: ResetTiming = "immediate"
    threshold: ThresholdRule = "gt"
    current_order: CurrentOrder = "current_first"
    input: InputRule = "current"
    overrides: dict[str, NodePolicy] = Field(default_factory=dict)

    def for_node(self, name: str) -> Policy:
        """The effective policy of one node (overrides applied, no overrides left)."""
        override = self.overrides.get(name)
        update = {"overrides": {}}
        if override is not None:
            update |= {k: v for k, v in override.model_dump().items() if v is not None}
        return self.model_copy(update=update)
