"""The semantic fields of a Policy (docs/semantics.md) and `NodePolicy`, the per-node or
per-type override of them; which fields each NIR node type's equations use."""

from __future__ import annotations

import math
from typing import Any, Literal, Union

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import PolicyError, Problem

Integration = Literal["euler", "exact"]
Reset = Literal["to_reset", "subtract", "none"]
ResetTiming = Literal["immediate", "next_step"]
ThresholdRule = Literal["gt", "ge"]
CurrentOrder = Literal["current_first", "voltage_first"]
InputRule = Literal["current", "impulse"]
SpikeRule = Literal["single", "multi"]
InitialV = Literal["zero", "v_leak", "v_reset"]
VMin = Union[float, Literal["-v_threshold"]]

#: the semantics fields a NodePolicy may override (everything but dt)
FIELDS = ("integration", "reset", "reset_timing", "threshold", "current_order", "input", "spikes", "max_spikes", "v_min", "initial_v")


def pydantic_problems(exc: pydantic.ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        kind, msg, got = err["type"], err["msg"], err.get("input")
        inner = err.get("ctx", {}).get("error")
        if isinstance(inner, PolicyError):  # raised by a nested model or a validator below
            problems += [Problem(".".join(filter(None, (path, p.path))), p.message) for p in inner.problems]
        elif kind == "extra_forbidden":
            problems.append(Problem(path, "unknown field"))
        elif kind == "value_error":
            problems.append(Problem(path, msg.removeprefix("Value error, ")))
        else:
            msg = "must be" + msg.removeprefix("Input should be")
            problems.append(Problem(path, msg if isinstance(got, dict) else f"{msg}, got {got!r}"))
    return problems


class FrozenModel(BaseModel):
    """Frozen, strict-keys model whose constructor raises PolicyError, not ValidationError."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            raise PolicyError(problems=pydantic_problems(exc)) from None


class NodePolicy(FrozenModel):
    """Override for one node or node type: any field left None inherits the wider value."""

    integration: Integration | None = None
    reset: Reset | None = None
    reset_timing: ResetTiming | None = None
    threshold: ThresholdRule | None = None
    current_order: CurrentOrder | None = None
    input: InputRule | None = None
    spikes: SpikeRule | None = None
    max_spikes: int | None = Field(default=None, ge=1, strict=True)
    v_min: VMin | None = None
    initial_v: InitialV | None = None

    @field_validator("v_min")
    @classmethod
    def _finite_floor(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be finite, got {value!r}")
        return value

    def changes(self) -> dict[str, str]:
        """The fields this override sets."""
        return {k: v for k in FIELDS if (v := getattr(self, k)) is not None}



#: the fields of the spike test and what follows it (IF, LIF, CubaLIF)
_SPIKING = ("reset", "reset_timing", "threshold", "spikes", "max_spikes", "v_min")

#: the Policy fields each node type's equations use (docs/semantics.md)
POLICY_FIELDS: dict[str, tuple[str, ...]] = {
    "I": ("input",),
    "IF": ("input", *_SPIKING, "initial_v"),
    "LI": ("integration", "input", "initial_v"),
    "LIF": ("integration", "input", *_SPIKING, "initial_v"),
    "CubaLI": ("integration", "input", "current_order", "initial_v"),
    "CubaLIF": FIELDS,
    "Threshold": ("threshold",),
}


def spike_rule_problems(fields: dict[str, Any]) -> list[Problem]:
    """What is wrong with a combination of spike fields (one node's effective fields)."""
    problems = []
    if fields.get("spikes") == "multi" and fields.get("threshold") == "gt":
        problems.append(Problem("spikes", "'multi' counts trunc(v / v_threshold) spikes from v >= v_threshold: it needs threshold='ge'"))
    if fields.get("max_spikes") is not None and fields.get("spikes") != "multi":
        problems.append(Problem("max_spikes", "caps the count of spikes='multi'; with one spike per step it has no effect"))
    return problems
