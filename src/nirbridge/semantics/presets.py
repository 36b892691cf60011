"""Policy presets: each framework's own semantics, with the source facts in each builder's
docstring. `Policy.preset(name, **changes)` builds one."""

from __future__ import annotations

from typing import Any

from .fields import NodePolicy


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
