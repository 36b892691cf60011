"""Policy: the discretization and semantics choices that turn NIR's continuous equations into
steps (docs/semantics.md has the equations), its presets, and the maths between per-step
factors and time constants.

    euler:  a = 1 - dt/tau        tau = dt / (1 - a)       c = dt/tau
    exact:  a = exp(-dt/tau)      tau = -dt / log(a)       c = 1 - exp(-dt/tau)

`a` is a per-step decay factor (snnTorch's `beta` for tau_mem, `alpha` for tau_syn) and `c`
the share of a held current that one step adds (`current_gain`). snnTorch's convention
`r = tau/dt`, `w_in = tau_syn/dt` is the gain that makes one step's input add exactly itself:
`r = 1/c` (`unit_gain`).

Every function computes in float64 and returns the input's float dtype (float32 stays float32);
non-float inputs give float64. Bad values raise `PolicyError` naming the argument.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import PolicyError, Problem

Integration = Literal["euler", "exact"]
Reset = Literal["to_reset", "subtract", "none"]
ResetTiming = Literal["immediate", "next_step"]
ThresholdRule = Literal["gt", "ge"]
CurrentOrder = Literal["current_first", "voltage_first"]
InputRule = Literal["current", "impulse"]

#: the semantics fields a NodePolicy may override (everything but dt)
FIELDS = ("integration", "reset", "reset_timing", "threshold", "current_order", "input")
#: graph metadata key under which `to_metadata` stores a policy
METADATA_KEY = "nirbridge.policy"
METADATA_VERSION = 1
_METADATA_MAX_CHARS = 1 << 20


def _pydantic_problems(exc: pydantic.ValidationError) -> list[Problem]:
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


class _Model(BaseModel):
    """Frozen, strict-keys model whose constructor raises PolicyError, not ValidationError."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            raise PolicyError(problems=_pydantic_problems(exc)) from None


class NodePolicy(_Model):
    """Override for one node or node type: any field left None inherits the wider value."""

    integration: Integration | None = None
    reset: Reset | None = None
    reset_timing: ResetTiming | None = None
    threshold: ThresholdRule | None = None
    current_order: CurrentOrder | None = None
    input: InputRule | None = None

    def changes(self) -> dict[str, str]:
        """The fields this override sets."""
        return {k: v for k in FIELDS if (v := getattr(self, k)) is not None}


def _dt_error(value: Any) -> str | None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return f"must be a number of seconds, got {value!r}"
    if not (math.isfinite(value) and value > 0):
        return f"must be finite and > 0, got {value!r}"
    return None


def _node_types() -> frozenset[str]:
    from .graph import NODE_TYPES

    return frozenset(NODE_TYPES)


class Policy(_Model):
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
    type_overrides: dict[str, NodePolicy] = Field(default_factory=dict)
    overrides: dict[str, NodePolicy] = Field(default_factory=dict)

    @field_validator("dt", mode="before")
    @classmethod
    def _dt(cls, value: Any) -> float:
        if error := _dt_error(value):
            raise ValueError(error)
        return float(value)

    @field_validator("type_overrides")
    @classmethod
    def _types(cls, value: dict[str, NodePolicy]) -> dict[str, NodePolicy]:
        known = _node_types()
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
        would silently do nothing). Type overrides are checked on construction; a preset's
        type overrides may name types a particular graph does not use."""
        names = dict(graph.walk())
        problems = [
            Problem(f"overrides.{n}", f"no such node (nodes: {', '.join(sorted(names))})")
            for n in self.overrides
            if n not in names
        ]
        if problems:
            raise PolicyError(problems=problems)

    # -- presets --------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **changes: Any) -> Policy:
        """The policy of framework `name` (see `presets()`), with `changes` applied.
        Each preset's source facts are in the docstring of `nirbridge.policy.PRESETS[name]`."""
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


# ----------------------------------------------------------------------------- presets


def _nir(**changes: Any) -> dict[str, Any]:
    """NIR 1.0 itself: what its equations say, integrated exactly.

    - reset to_reset, immediate: the NIR spec's LIF/CubaLIF/IF set `v = v_reset` when `z = 1`
      (nir/ir/neuron.py docstrings), in continuous time, so at once.
    - threshold gt: the spec spikes when `v > v_threshold`.
    - input current, current_first: `tau v' = (v_leak - v) + r I` is driven by a current; in
      continuous time the membrane sees the synaptic current as it changes.
    - integration exact: the exact solution of those linear ODEs for an input held over each
      step, as the NIR paper's exact LIF reference does (paper/01_lif/lif_exact_sim.py).
    - dt: NIR has none. 1e-4 is the step of the paper's LIF experiment; set your own.
    """
    return dict(dt=1e-4, integration="exact", reset="to_reset", reset_timing="immediate",
                threshold="gt", current_order="current_first", input="current") | changes


def _snntorch(**changes: Any) -> dict[str, Any]:
    """snnTorch 1.0.0 neurons with their defaults (`snn.Leaky` -> LIF, `snn.Synaptic` -> CubaLIF).

    - dt 1e-4: `export_nir.py` hard-codes `dt = 1e-4` and writes tau = dt/(1-beta),
      r = tau/dt (and tau_syn = dt/(1-alpha), w_in = tau_syn/dt).
    - integration euler: `beta = 1 - dt/tau` (the inverse of the export; `import_nir.py`).
    - input current: Leaky computes `beta*mem + x` (`_base_state_function`), which is
      `v += dt/tau*(r x - v)` with r = tau/dt; Synaptic `syn = alpha*syn + x` likewise with w_in.
    - current_order current_first: Synaptic's `mem = beta*mem + syn` uses the new syn.
    - reset subtract: `reset_mechanism="subtract"` is the default (`neurons.py`).
    - reset_timing next_step: `reset_delay=True` is the default: the reset of a spike is
      computed from the stored mem at the start of the next call and subtracted after the
      decay and input (`_base_sub`); the reported mem is the value before that reset.
    - threshold gt: `fire` is `(mem - threshold) > 0` (surrogate forward, `surrogate.py`).
    - With `reset="to_reset"` (`reset_mechanism="zero"`): Synaptic zeroes mem after the next
      step's decay and input (next_step), but Leaky zeroes mem *before* the decay
      (`_base_zero`), i.e. immediately; so this preset then adds a LIF type override
      `reset_timing="immediate"`. `reset_delay=False` is `reset_timing="immediate"`, exact for
      zero reset; for subtract exact while v stays at or below threshold after subtracting
      (snnTorch's double-reset guard then differs).
    - Not covered: snnTorch has no IF/LI/I neurons (`import_nir.py` maps IF to a Leaky with
      beta 0.9), and its importer itself uses zero reset with `reset_delay=False`.
    """
    values = dict(dt=1e-4, integration="euler", reset="subtract", reset_timing="next_step",
                  threshold="gt", current_order="current_first", input="current") | changes
    if values["reset"] == "to_reset" and values["reset_timing"] == "next_step" and "type_overrides" not in changes:
        values["type_overrides"] = {"LIF": NodePolicy(reset_timing="immediate")}
    return values


def _norse(**changes: Any) -> dict[str, Any]:
    """Norse 1.1.0 running a NIR graph (`norse.torch.from_nir`, utils/import_nir.py).

    - dt 1e-3: `from_nir(..., dt=0.001)` default.
    - integration euler: every cell steps `v += dt * tau_mem_inv * (...)`.
    - input current: LIF -> `LIFBoxCell`: `dv = dt*tau_mem_inv*(x + v_leak - v)`
      (functional/lif_box.py); CubaLIF -> `LIBoxCell` synapse on `w_in*x` then `LIFBoxCell`
      on `r*I` (leaky_integrator_box.py), both currents.
    - type override IF: input impulse: `IAFCell` does `v = v + x`, independent of dt (iaf.py).
    - current_order current_first: the LIFBoxCell of a CubaLIF gets the synapse's new value.
      (Norse's own `LIFCell` is current_first too: `lif_feed_forward_step` adds the input to
      `i` as a jump and feeds that `i` to `v` before decaying it; it is this preset with
      `type_overrides={"CubaLIF": NodePolicy(input="impulse")}` and w_in = r = 1.)
    - reset to_reset, immediate: `reset_value` (functional/reset.py), applied in the same step.
    - threshold gt: the forward pass of every threshold method is `heaviside`, `x > 0`
      (functional/heaviside.py, superspike.py).
    - Not policy (gaps of the importer): LIF ignores r != 1 and v_reset, IF ignores r and
      v_reset, CubaLIF's synapse leaks towards v_leak, LI nodes are dropped.
    """
    return dict(dt=1e-3, integration="euler", reset="to_reset", reset_timing="immediate",
                threshold="gt", current_order="current_first", input="current",
                type_overrides={"IF": NodePolicy(input="impulse")}) | changes


def _sinabs(**changes: Any) -> dict[str, Any]:
    """Sinabs 3.1.3 (SynSense; an optional dependency: `sinabs/nir.py`, `layers/lif.py`,
    `activation/spike_generation.py`, `layers/functional/lif.py`).

    - dt 1: time constants are in steps (`alpha_mem = exp(-1/tau_mem)`).
    - integration exact: that `exp(-1/tau)`.
    - input impulse: `from_nir` builds LIF/LI layers with `norm_input=False`, so
      `v = alpha*v + x`; IAF adds `x`.
    - reset subtract: `MembraneSubtract` is the default reset; immediate.
    - threshold ge: `SingleSpike` fires on `v - threshold >= 0`; the default `MultiSpike`
      emits `trunc(v/threshold)` spikes (several per step: not representable in NIR).
    - current_order current_first: with tau_syn, `i_syn` is updated before `v`.
    - Not policy: `from_nir` gives IF layers a floor `min_v_mem = -v_threshold`.
    """
    return dict(dt=1.0, integration="exact", reset="subtract", reset_timing="immediate",
                threshold="ge", current_order="current_first", input="impulse") | changes


def _nir_paper(**changes: Any) -> dict[str, Any]:
    """The NumPy CubaLIF reference published with the NIR paper
    (neuromorphs/NIR, paper/03_rnn/extras/debug_CubaLIF/nir_reference_impl.py).

    - integration euler, input current: `I += dt/tau_syn * (-I + w_in x)`.
    - current_order voltage_first: `v += dt/tau_mem * (v_leak - v + r I_last)` uses the
      current of the previous step.
    - threshold gt: `z = v > v_threshold`; reset subtract, immediate: `v -= z * v_threshold`.
    - dt 1e-4: the step of the paper's LIF experiment and of its Braille graphs (r = tau_mem/dt).
    """
    return dict(dt=1e-4, integration="euler", reset="subtract", reset_timing="immediate",
                threshold="gt", current_order="voltage_first", input="current") | changes


#: preset name -> builder(**changes) -> Policy fields; each builder's docstring cites its facts
PRESETS = {"nir": _nir, "snntorch": _snntorch, "norse": _norse, "sinabs": _sinabs, "nir-paper": _nir_paper}


# ----------------------------------------------------------------------------- maths


def _float_array(name: str, value: Any) -> tuple[np.ndarray, np.dtype]:
    """(value as float64 array, dtype to return): float dtypes are kept, others give float64."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        return arr.astype(np.float64), arr.dtype
    if arr.dtype.kind in "iu":
        return arr.astype(np.float64), np.dtype(np.float64)
    raise PolicyError(problems=[Problem(name, f"must be a real number or array, got dtype {arr.dtype}")])


def _require(name: str, arr: np.ndarray, ok: np.ndarray, rule: str) -> None:
    if not ok.all():
        idx = [int(i) for i in np.argwhere(~ok)[0]] if arr.ndim else []
        where = name + ("[" + ", ".join(map(str, idx)) + "]" if idx else "")
        raise PolicyError(problems=[Problem(where, f"{rule}, got {arr[tuple(idx)]}")])


def _tau(name: str, value: Any) -> tuple[np.ndarray, np.dtype]:
    arr, dtype = _float_array(name, value)
    _require(name, arr, np.isfinite(arr) & (arr > 0), "must be finite and > 0")
    return arr, dtype


def _step(dt: Any, integration: str) -> float:
    if integration not in ("euler", "exact"):
        raise PolicyError(problems=[Problem("integration", f"must be 'euler' or 'exact', got {integration!r}")])
    if error := _dt_error(dt):
        raise PolicyError(problems=[Problem("dt", error)])
    return float(dt)


def _out(arr: np.ndarray, dtype: np.dtype):
    out = arr.astype(dtype)
    return out[()] if out.ndim == 0 else out


def _decay(tau: np.ndarray, dt: float, integration: str) -> np.ndarray:
    return 1 - dt / tau if integration == "euler" else np.exp(-dt / tau)


def _gain(tau: np.ndarray, dt: float, integration: str) -> np.ndarray:
    return dt / tau if integration == "euler" else -np.expm1(-dt / tau)


def _tau_from_decay(name: str, a: Any, dt: float, integration: str) -> tuple[np.ndarray, np.dtype]:
    arr, dtype = _float_array(name, a)
    if integration == "euler":
        _require(name, arr, np.isfinite(arr) & (arr < 1), "must be finite and < 1 (1 is no leak: tau would be infinite)")
        return dt / (1 - arr), dtype
    _require(name, arr, (arr > 0) & (arr < 1), "must be in (0, 1) (1 is no leak: tau would be infinite)")
    return -dt / np.log(arr), dtype


def decay(tau, dt: float, integration: Integration = "euler"):
    """Per-step decay factor of a time constant: 1 - dt/tau (euler) or exp(-dt/tau) (exact)."""
    dt = _step(dt, integration)
    t, dtype = _tau("tau", tau)
    return _out(_decay(t, dt, integration), dtype)


def tau_from_decay(a, dt: float, integration: Integration = "euler"):
    """Inverse of `decay`: dt/(1 - a) (euler, a < 1) or -dt/log(a) (exact, 0 < a < 1).
    a = 1 (no leak) has no finite tau and is refused."""
    dt = _step(dt, integration)
    return _out(*_tau_from_decay("a", a, dt, integration))


def current_gain(tau, dt: float, integration: Integration = "euler"):
    """c: the share of a held current one step adds: dt/tau (euler), 1 - exp(-dt/tau) (exact)."""
    dt = _step(dt, integration)
    t, dtype = _tau("tau", tau)
    return _out(_gain(t, dt, integration), dtype)


def unit_gain(tau, dt: float, integration: Integration = "euler"):
    """1/c: the r (or w_in) with which one step's input x adds exactly x (snnTorch's
    convention): tau/dt (euler), 1/(1 - exp(-dt/tau)) (exact)."""
    dt = _step(dt, integration)
    t, dtype = _tau("tau", tau)
    return _out(1 / _gain(t, dt, integration) if integration == "exact" else t / dt, dtype)


class StepConstants(BaseModel):
    """Per-step constants of one neuron node under its effective policy, float64, as
    docs/semantics.md writes them (a = decay, c = current_gain):

        I, IF:          v = v + gain x                         gain = dt r (current), r (impulse)
        LI, LIF:        v = a v + (gain x + leak)              gain = c r or r; leak = c v_leak
        CubaLI/CubaLIF: I = a_syn I + gain x                   gain = c_syn w_in or w_in
                        v = a v + (c_r I + v_leak_term)        c_r = c_mem r; v_leak_term = c_mem v_leak

    Fields a node type does not use are None. Every simulator of these equations (the NumPy
    reference, the torch cells) takes its constants from here, rounded once to its dtype."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    a: Any = None
    gain: Any
    leak: Any = None
    a_syn: Any = None
    c_r: Any = None
    v_leak_term: Any = None


def step_constants(node, policy: Policy) -> StepConstants:
    """The `StepConstants` of a neuron node (I, IF, LI, LIF, CubaLI, CubaLIF) under `policy`,
    the node's effective policy (`policy.for_node(name, node.type)`)."""
    p = {f: np.asarray(getattr(node, f), dtype=np.float64) for f in node.float_fields}
    dt, integration, impulse = policy.dt, policy.integration, policy.input == "impulse"
    if node.type in ("I", "IF"):
        return StepConstants(gain=p["r"] if impulse else dt * p["r"])
    if node.type in ("LI", "LIF"):
        c = current_gain(p["tau"], dt, integration)
        return StepConstants(a=decay(p["tau"], dt, integration), gain=p["r"] if impulse else c * p["r"], leak=c * p["v_leak"])
    c_mem = current_gain(p["tau_mem"], dt, integration)
    c_syn = current_gain(p["tau_syn"], dt, integration)
    return StepConstants(
        a=decay(p["tau_mem"], dt, integration),
        gain=p["w_in"] if impulse else c_syn * p["w_in"],
        a_syn=decay(p["tau_syn"], dt, integration),
        c_r=c_mem * p["r"],
        v_leak_term=c_mem * p["v_leak"],
    )


def _to_nir(name: str, a: Any, dt: float, integration: str):
    tau, dtype = _tau_from_decay(name, a, dt, integration)
    tau_out = _out(tau, dtype)
    # r from the rounded tau, as an exporter writing tau then r = tau/dt does
    t = np.asarray(tau_out, np.float64)
    return tau_out, _out(t / dt if integration == "euler" else 1 / _gain(t, dt, integration), dtype)


def _from_nir(names: tuple[str, str], tau: Any, gain: Any, dt: float, integration: str):
    t, t_dtype = _tau(names[0], tau)
    g, g_dtype = _float_array(names[1], gain)
    _require(names[1], g, np.isfinite(g), "must be finite")
    return _out(_decay(t, dt, integration), t_dtype), _out(_gain(t, dt, integration) * g, np.result_type(t_dtype, g_dtype))


def leaky_to_nir(beta, dt: float, integration: Integration = "euler"):
    """(tau, r) of a neuron stepping `v = beta v + x` (snnTorch `Leaky`):
    tau = tau_from_decay(beta), r = unit_gain(tau) (tau/dt for euler)."""
    dt = _step(dt, integration)
    return _to_nir("beta", beta, dt, integration)


def leaky_from_nir(tau, r, dt: float, integration: Integration = "euler"):
    """(beta, gain) of a LIF/LI node stepped with input `current`: `v = beta v + gain x`
    (v_leak = 0), beta = decay(tau), gain = c r: 1 under snnTorch's r = tau/dt."""
    dt = _step(dt, integration)
    return _from_nir(("tau", "r"), tau, r, dt, integration)


def synaptic_to_nir(alpha, beta, dt: float, integration: Integration = "euler"):
    """(tau_syn, tau_mem, r, w_in) of `I = alpha I + x; v = beta v + I` (snnTorch `Synaptic`):
    w_in = unit_gain(tau_syn), r = unit_gain(tau_mem)."""
    dt = _step(dt, integration)
    tau_syn, w_in = _to_nir("alpha", alpha, dt, integration)
    tau_mem, r = _to_nir("beta", beta, dt, integration)
    return tau_syn, tau_mem, r, w_in


def synaptic_from_nir(tau_syn, tau_mem, r, w_in, dt: float, integration: Integration = "euler"):
    """(alpha, beta, gain_syn, gain_mem) of a CubaLIF/CubaLI node stepped with input
    `current`, current_first: `I = alpha I + gain_syn x`, `v = beta v + gain_mem I`."""
    dt = _step(dt, integration)
    alpha, gain_syn = _from_nir(("tau_syn", "w_in"), tau_syn, w_in, dt, integration)
    beta, gain_mem = _from_nir(("tau_mem", "r"), tau_mem, r, dt, integration)
    return alpha, beta, gain_syn, gain_mem


# ----------------------------------------------------------------------------- dt inference

#: estimates agreeing within this relative tolerance name the same dt (float32 parameters
#: derived by a few float32 operations stay within ~1e-6 of each other)
INFER_RTOL = 1e-5

Confidence = Literal["none", "low", "medium", "high"]

_TIME_CONSTANTS = {
    "LIF": (("tau", "r"),),
    "LI": (("tau", "r"),),
    "CubaLIF": (("tau_syn", "w_in"), ("tau_mem", "r")),
    "CubaLI": (("tau_syn", "w_in"), ("tau_mem", "r")),
}


class DtInference(BaseModel):
    """What `Policy.infer` found.

    `dt`: the step the exporter assumed, rounded to the fewest significant digits that stay
    within `INFER_RTOL` of every estimate, or None. `confidence`: `none` (no evidence),
    `low` (one estimate, or nodes disagree), `medium` (several agreeing estimates from one
    node), `high` (agreeing estimates from two or more nodes and none against).
    `evidence`: per neuron node, what its parameters say.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    dt: float | None
    confidence: Confidence
    evidence: dict[str, str]
    message: str


def infer_dt(graph) -> DtInference:
    """See `Policy.infer`."""
    from .graph import Graph

    if not isinstance(graph, Graph):
        graph = Graph.from_nir(graph)
    evidence: dict[str, str] = {}
    estimates: list[tuple[str, float, float]] = []  # node, smallest and largest tau/gain
    for name, node in graph.walk():
        pairs = _TIME_CONSTANTS.get(node.type)
        if pairs is None:
            if node.type in ("IF", "I"):
                evidence[name] = f"{node.type} has no time constant: no evidence"
            continue
        parts = []
        for tau_field, gain_field in pairs:
            label = f"{tau_field}/{gain_field}"
            tau = np.asarray(getattr(node, tau_field), np.float64)
            gain = np.asarray(getattr(node, gain_field), np.float64)
            if gain.size == 0 or np.all(gain == 1):
                parts.append(f"{gain_field} = 1: no evidence")
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = tau / gain
            if not np.all(np.isfinite(ratio) & (ratio > 0)):
                parts.append(f"{label} not finite and > 0: no evidence")
                continue
            lo, hi = float(ratio.min()), float(ratio.max())
            if hi - lo > INFER_RTOL * hi:
                parts.append(f"{label} varies from {lo:.6g} to {hi:.6g} across neurons: no single dt")
                continue
            estimates.append((name, lo, hi))
            parts.append(f"{label} = {_round_sig([(lo, hi)]):.6g}")
        evidence[name] = "; ".join(parts)
    if not estimates:
        return DtInference(
            dt=None, confidence="none", evidence=evidence,
            message="no evidence of dt: no LIF/LI/CubaLIF/CubaLI node has r or w_in != 1; "
            "the graph does not record the step it was made for",
        )
    clusters: list[list[tuple[str, float, float]]] = []
    for est in sorted(estimates, key=lambda e: e[1]):
        if clusters and est[2] - clusters[-1][0][1] <= INFER_RTOL * est[2]:
            clusters[-1].append(est)
        else:
            clusters.append([est])

    def weight(cluster):
        return (len({e[0] for e in cluster}), len(cluster))

    clusters.sort(key=weight, reverse=True)
    best = clusters[0]
    nodes = sorted({e[0] for e in best})
    if len(clusters) > 1 and weight(clusters[1]) == weight(best):
        values = ", ".join(f"{_round_sig([e[1:] for e in c]):.6g}" for c in clusters)
        return DtInference(dt=None, confidence="none", evidence=evidence,
                           message=f"no dt: the estimates disagree, none has more support ({values})")
    dt = _round_sig([e[1:] for e in best])
    others = [e for c in clusters[1:] for e in c]
    for node_name in sorted({e[0] for e in others}):
        evidence[node_name] += f" (disagrees with dt = {dt:.6g})"
    conventions = "r = tau/dt, w_in = tau_syn/dt"
    if others:
        against = sorted({e[0] for e in others})
        message = (f"dt = {dt:.6g} from {len(best)} estimate(s) in {', '.join(nodes)} ({conventions}); "
                   f"disagreeing: {', '.join(against)}")
        confidence: Confidence = "low"
    else:
        confidence = "high" if len(nodes) >= 2 else "medium" if len(best) >= 2 else "low"
        message = f"dt = {dt:.6g} from {len(best)} agreeing estimate(s) in {len(nodes)} node(s) ({conventions})"
    return DtInference(dt=dt, confidence=confidence, evidence=evidence, message=message)


def _round_sig(ranges: list[tuple[float, float]]) -> float:
    """The value with the fewest significant digits within INFER_RTOL of every (min, max)."""
    lo = min(r[0] for r in ranges)
    hi = max(r[1] for r in ranges)
    center = (lo + hi) / 2
    for digits in range(1, 18):
        value = float(f"{center:.{digits - 1}e}")
        if abs(value - lo) <= INFER_RTOL * lo and abs(value - hi) <= INFER_RTOL * hi:
            return value
    return center
