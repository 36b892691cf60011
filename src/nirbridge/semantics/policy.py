"""Policy: the discretization and semantics choices that turn NIR's continuous equations into
steps (docs/semantics.md has the equations; `discretization` the maths), how a policy travels
in a graph's metadata, and how two policies differ on a graph.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from ..errors import PolicyError, Problem
from ..ir import NODE_TYPES
from .dt_inference import DtInference, infer_dt
from .fields import (
    FIELDS,
    POLICY_FIELDS,
    CurrentOrder,
    FrozenModel,
    InitialV,
    InputRule,
    Integration,
    NodePolicy,
    Reset,
    ResetTiming,
    SpikeRule,
    ThresholdRule,
    VMin,
    spike_rule_problems,
)
from .presets import PRESETS

#: graph metadata key under which `to_metadata` stores a policy
METADATA_KEY = "nirbridge.policy"
METADATA_VERSION = 1
_METADATA_MAX_CHARS = 1 << 20


def dt_error(value: Any) -> str | None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return f"must be a number of seconds, got {value!r}"
    if not (math.isfinite(value) and value > 0):
        return f"must be finite and > 0, got {value!r}"
    return None



class Policy(FrozenModel):
    """How a graph is stepped (docs/semantics.md). `dt` in seconds.

    `type_overrides` maps NIR node types (`"IF"`, `"CubaLIF"`, ...) and `overrides` maps node
    names (dotted for nested graphs) to `NodePolicy` values. A node's effective policy is the
    graph-wide fields, then its type's override, then its own override (`for_node`).
    """

    dt: float = 1e-4
    integration: Integration = "euler"
    reset: Reset = "to_reset"
    reset_timing: ResetTiming = "immediate"
    threshold: ThresholdRule = "gt"
    current_order: CurrentOrder = "current_first"
    input: InputRule = "current"
    spikes: SpikeRule = "single"
    max_spikes: int | None = Field(default=None, ge=1, strict=True)
    v_min: VMin | None = None
    initial_v: InitialV = "zero"
    type_overrides: dict[str, NodePolicy] = Field(default_factory=dict)
    overrides: dict[str, NodePolicy] = Field(default_factory=dict)

    @field_validator("dt", mode="before")
    @classmethod
    def _dt(cls, value: Any) -> float:
        if error := dt_error(value):
            raise ValueError(error)
        return float(value)

    @field_validator("v_min")
    @classmethod
    def _finite_floor(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be finite, got {value!r}")
        return value

    @model_validator(mode="after")
    def _spike_rule(self) -> Policy:
        problems = spike_rule_problems(self.model_dump(include=set(FIELDS)))
        if problems:
            raise PolicyError(problems=problems)
        return self

    @field_validator("type_overrides")
    @classmethod
    def _types(cls, value: dict[str, NodePolicy]) -> dict[str, NodePolicy]:
        known = frozenset(NODE_TYPES)
        for kind in value:
            if kind not in known:
                raise PolicyError(problems=[Problem(kind, f"unknown node type (known: {', '.join(sorted(known))})")])
        return value

    @field_validator("overrides")
    @classmethod
    def _names(cls, value: dict[str, NodePolicy]) -> dict[str, NodePolicy]:
        for name in value:
            if not name or "/" in name or "" in name.split("."):
                raise PolicyError(problems=[Problem(repr(name), "node names are non-empty, dotted, without '/'")])
        return value

    # -- per node -----------------------------------------------------------------
    def for_node(self, name: str, kind: str | None = None) -> Policy:
        """The effective policy of node `name` of NIR type `kind` (e.g. `"CubaLIF"`):
        graph-wide fields, then `type_overrides[kind]`, then `overrides[name]`. The result
        has no overrides left. Pass `kind` wherever it is known: presets use type overrides."""
        update: dict[str, Any] = {"overrides": {}, "type_overrides": {}}
        for override in (self.type_overrides.get(kind) if kind else None, self.overrides.get(name)):
            if override is not None:
                update |= override.changes()
        return self.model_copy(update=update)

    def with_override(self, name: str, **fields: Any) -> Policy:
        """A copy where node `name` (dotted for nested nodes) also has `fields`; a field
        given as None drops that field from the node's override."""
        return self._with("overrides", name, fields)

    def with_type_override(self, kind: str, **fields: Any) -> Policy:
        """A copy where every node of NIR type `kind` also has `fields` (None drops one)."""
        return self._with("type_overrides", kind, fields)

    def _with(self, attr: str, key: str, fields: dict[str, Any]) -> Policy:
        current = getattr(self, attr)
        merged = (current[key].changes() if key in current else {}) | fields
        try:
            override = NodePolicy(**{k: v for k, v in merged.items() if v is not None})
        except PolicyError as exc:
            raise PolicyError(problems=[Problem(f"{attr}.{key}.{p.path}", p.message) for p in exc.problems]) from None
        data = self.model_dump(exclude={attr})
        data[attr] = {**current, key: override}
        return Policy(**data)

    def check(self, graph) -> None:
        """Raise PolicyError if a per-node override names a node `graph` does not have (it
        would silently do nothing), or if a spiking node's effective fields do not go together
        (`spikes='multi'` with `threshold='gt'`, ...). Type overrides are checked on
        construction; a preset's type overrides may name types a particular graph does not use."""
        names = dict(graph.walk())
        problems = [
            Problem(f"overrides.{n}", f"no such node (nodes: {', '.join(sorted(names))})")
            for n in self.overrides
            if n not in names
        ]
        for name, node in names.items():
            if node.type in ("IF", "LIF", "CubaLIF") and (self.overrides.get(name) or self.type_overrides.get(node.type)):
                effective = self.for_node(name, node.type).model_dump(include=set(FIELDS))
                problems += [Problem(f"nodes.{name}.{p.path}", p.message) for p in spike_rule_problems(effective)]
        if problems:
            raise PolicyError(problems=problems)

    # -- presets --------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **changes: Any) -> Policy:
        """The policy of framework `name` (see `presets()`), with `changes` applied.
        Each preset's source facts are in the docstring of `nirbridge.semantics.PRESETS[name]`."""
        builder = PRESETS.get(name)
        if builder is None:
            raise PolicyError(problems=[Problem("preset", f"unknown preset {name!r} (known: {', '.join(PRESETS)})")])
        return cls(**builder(**changes))

    @classmethod
    def presets(cls) -> dict[str, Policy]:
        """Every preset by name."""
        return {name: cls.preset(name) for name in PRESETS}

    # -- metadata -------------------------------------------------------------------
    def to_metadata(self) -> dict[str, str]:
        """`{METADATA_KEY: json}`: a flat entry for a graph's metadata that `nir.write`
        stores and `from_metadata` reads back exactly (dt keeps every bit)."""
        data = {"version": METADATA_VERSION, **self.model_dump(mode="json", exclude_none=True)}
        return {METADATA_KEY: json.dumps(data, sort_keys=True, allow_nan=False)}

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any] | None) -> Policy | None:
        """The policy stored by `to_metadata`, or None when `metadata` holds none. Accepts
        the value as str, bytes or numpy scalar/0-d array (as `nir.read` returns it)."""
        if not metadata or METADATA_KEY not in metadata:
            return None
        where = f"metadata[{METADATA_KEY!r}]"
        text = _as_text(metadata[METADATA_KEY])
        if text is None:
            raise PolicyError(problems=[Problem(where, f"must be a JSON string, got {type(metadata[METADATA_KEY]).__name__}")])
        if len(text) > _METADATA_MAX_CHARS:
            raise PolicyError(problems=[Problem(where, f"longer than {_METADATA_MAX_CHARS} characters")])
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise PolicyError(problems=[Problem(where, f"not valid JSON: {exc}")]) from None
        if not isinstance(data, dict):
            raise PolicyError(problems=[Problem(where, f"must be a JSON object, got {type(data).__name__}")])
        version = data.pop("version", None)
        if version != METADATA_VERSION:
            raise PolicyError(problems=[Problem(f"{where}.version", f"must be {METADATA_VERSION}, got {version!r}")])
        try:
            return cls(**data)
        except PolicyError as exc:
            raise PolicyError(problems=[Problem(f"{where}.{p.path}", p.message) for p in exc.problems]) from None

    # -- dt inference ---------------------------------------------------------------
    @staticmethod
    def infer(graph) -> DtInference:
        """Recover the dt an exporter assumed from `r = tau/dt` (LIF, LI) and
        `w_in = tau_syn/dt`, `r = tau_mem/dt` (CubaLIF, CubaLI): see `DtInference`."""
        return infer_dt(graph)


def _as_text(value: Any) -> str | None:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return str(value) if isinstance(value, str) else None




def with_policy(graph, policy: Policy):
    """`graph` with `policy` written into its metadata (replacing any policy there). Only the
    metadata changes, so the graph (already valid) is not validated again: no pass over its
    arrays."""
    return graph.model_copy(update={"metadata": dict(graph.metadata) | policy.to_metadata()})


def policy_differences(wanted: Policy, native: Policy, graph=None) -> list[str]:
    """Differences in semantics (not dt) between two policies, one line per field: on the
    nodes of `graph` when given (only the fields each node uses), else per node type."""
    if graph is not None:
        subjects = [(name, node.type) for name, node in graph.walk() if node.type in POLICY_FIELDS]
    else:
        subjects = [("", kind) for kind in POLICY_FIELDS] + [(name, None) for name in wanted.overrides]
    found: dict[tuple[str, Any, Any], list[str]] = {}
    for name, kind in subjects:
        mine, theirs = wanted.for_node(name, kind), native.for_node(name, kind)
        for f in POLICY_FIELDS.get(kind, FIELDS):
            if getattr(mine, f) != getattr(theirs, f):
                found.setdefault((f, getattr(mine, f), getattr(theirs, f)), []).append(name or kind)
    return [
        f"{f}: graph uses {a!r}, backend runs {b!r} ({'nodes' if graph is not None else 'for'} {', '.join(dict.fromkeys(who))})"
        for (f, a, b), who in found.items()
    ]


@dataclass(frozen=True)
class ResolvedPolicy:
    """The policy a graph runs under, where it came from (`origin`), and what was assumed
    (`notes`: empty when nothing was)."""

    policy: Policy
    origin: str
    notes: tuple[str, ...] = ()


def resolve_policy(graph, given: Policy | str | None = None, *, preset: str | None = None, owner: str = "") -> ResolvedPolicy:
    """The one way every entry point (simulate, convert, check, verify, the CLI) picks the
    semantics of `graph`, in order of precedence:

    1. `given`: a Policy, or the name of a preset;
    2. the policy stored in the graph's metadata;
    3. `preset`, the preset of the backend the graph was exported from (`owner` names it);
    4. the `nir` preset at the dt `Policy.infer` reads from the parameters;
    5. the `nir` preset (dt 1e-4), with a note that nothing in the graph says how it was stepped.

    The chosen policy's per-node overrides are checked against the graph."""
    if isinstance(given, str):
        chosen = ResolvedPolicy(Policy.preset(given), f"preset {given!r}, given explicitly")
    elif given is not None:
        if not isinstance(given, Policy):
            raise PolicyError(problems=[Problem("policy", f"must be a nirbridge.Policy or a preset name, got {type(given).__name__}")])
        chosen = ResolvedPolicy(given, "given explicitly")
    elif (stored := Policy.from_metadata(graph.metadata)) is not None:
        chosen = ResolvedPolicy(stored, "read from the graph's metadata")
    elif preset is not None:
        chosen = ResolvedPolicy(Policy.preset(preset), f"preset {preset!r} of source backend {owner}".rstrip())
    else:
        inferred = Policy.infer(graph)
        if inferred.dt is not None:
            chosen = ResolvedPolicy(
                Policy.preset("nir", dt=inferred.dt),
                f"preset 'nir' at the dt inferred from the parameters ({inferred.message})",
                (f"semantics other than dt are not recorded in the graph; assumed the 'nir' preset (confidence in dt: {inferred.confidence})",),
            )
        else:
            default = Policy.preset("nir")
            chosen = ResolvedPolicy(
                default,
                "preset 'nir': nothing in the graph says how it was stepped",
                (f"no policy in the graph and no dt inferable ({inferred.message}); assumed the 'nir' preset at dt={default.dt:g}",),
            )
    chosen.policy.check(graph)
    return chosen
