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
    """Sinabs 3.1.3 layers with their defaults (`layers/functional/lif.py` `lif_forward_single`,
    `activation/spike_generation.py`, `activation/reset_mechanism.py`, `layers/lif.py`, `iaf.py`,
    `exp_leak.py`; pinned in plugins/nirbridge-sinabs/tests/test_sinabs_semantics.py).

    - dt 1: there is no dt; time constants are in steps (`alpha = exp(-1/tau_mem)`).
    - integration exact: that `exp(-1/tau)` (`alpha_mem_calculated`).
    - input impulse: `v = alpha*v + x` for `IAF`, `ExpLeak` (default `norm_input=False`) and what
      `sinabs.from_nir` builds. `LIF`'s default `norm_input=True` is `v = alpha*v + (1-alpha)*x`,
      the exact current input with r = 1: the Sinabs export writes that node with an override
      `input="current"`.
    - spikes multi: the default `MultiSpike` emits `trunc(v/threshold)` spikes per step where
      `v > 0` (`SingleSpike`: one spike, exported as an override; `MaxSpike(m)`: `max_spikes=m`).
    - threshold ge: the first spike needs `v/threshold >= 1`, i.e. `v >= threshold`
      (`SingleSpike`: `v - threshold >= 0`).
    - reset subtract, immediate: `MembraneSubtract` removes `n*threshold` in the same step.
    - current_order current_first: with `tau_syn`, `i = alpha_syn*(i + x)` is updated before v.
    - v_min None: `min_v_mem` is None by default; `sinabs.from_model` sets -1.0 on every layer and
      `sinabs.from_nir` -v_threshold (`v = relu(v - m) + m` after the reset).
    - initial_v zero: states start at 0 (`init_state_with_shape`).
    """
    return dict(dt=1.0, integration="exact", reset="subtract", reset_timing="immediate",
                threshold="ge", current_order="current_first", input="impulse", spikes="multi") | changes


def _spikingjelly(**changes: Any) -> dict[str, Any]:
    """SpikingJelly 2.0.0 `activation_based` neurons with their defaults (`_ops/lif/cpu.py`,
    `_ops/if_/cpu.py`, `neuron/base_node.py`, `nir_exchange/to_nir.py`; pinned in
    plugins/nirbridge-spikingjelly/tests/test_spikingjelly_semantics.py).

    - dt 1e-4: `export_to_nir`/`import_from_nir` default `dt=1e-4`; tau is in steps
      (`tau_nir = tau * dt`).
    - integration euler: `LIFNode` steps `h = v + (x - (v - v_reset))/tau`, decay 1 - 1/tau.
    - input current: that is NIR's Euler current input with `r = 1` (`decay_input=True`, the
      default) or `r = tau` (`decay_input=False`); `IFNode`'s `h = v + x` is `r = 1/dt`.
    - threshold ge: `s = h >= v_threshold`.
    - reset to_reset, immediate: `v_reset=0.0` (default) is a hard reset in the same step, the
      leak target v_leak = v_reset; `v_reset=None` is a soft reset (`subtract`, v_leak 0).
    - current_order current_first: `CUBALIFNode` adds this step's current to v.
    - initial_v v_reset: `BaseNode` starts v at v_reset (0 under a soft reset).
    """
    return dict(dt=1e-4, integration="euler", reset="to_reset", reset_timing="immediate",
                threshold="ge", current_order="current_first", input="current", initial_v="v_reset") | changes


def _spyx(**changes: Any) -> dict[str, Any]:
    """Spyx 1.0.0 neurons (`spyx/nn.py`: `LIF`, `IF`, `LI`, `CuBaLIF`, `RLIF`, `RIF`,
    `RCuBaLIF`; `spyx/axn.py`; `spyx/nir.py`), run by `spyx.nn.run` (a `jax.lax.scan`), pinned in
    plugins/nirbridge-spyx/tests/test_spyx_semantics.py against hand-written loops.

    Spyx fires from the potential *before* this step's update: `LIF` computes
    `s = H(V - threshold)` on the stored V, then `V = beta V + x - s threshold`. That is the
    reference neuron under this preset (z[k] from v[k], the subtraction of z[k] applied in step
    k+1 after decay and input: `next_step`) followed by a one-step `Delay`: Spyx emits z[k-1] at
    step k. The Spyx export writes that Delay (delay = dt) after every spiking neuron.

    - dt 1: `beta`, `alpha` are per-step factors; `spyx.nir.to_nir(dt=1)` writes tau = dt/(1-beta).
    - integration euler: beta = 1 - dt/tau (`spyx.nir.from_nir`). `beta`, `alpha` are clipped to
      [0, 1] in every call (`jnp.clip`), so the clipped value is what runs.
    - input impulse: `V = beta V + x` (r = 1, any dt); CuBaLIF: `I = alpha I + x` (w_in = 1),
      `V = beta V + I` (r = tau_mem/dt, so c_mem r = 1).
    - reset subtract: `- spikes * threshold`; reset_timing next_step for LIF/IF (the subtraction
      comes after `beta V + x`). CuBaLIF subtracts *before* the decay (`V = V - s threshold`,
      then `V = beta V + I`): the reference's immediate reset, one step early, so a CubaLIF type
      override `reset_timing="immediate"`; current_order current_first (V sees the new I).
    - threshold gt: the forward of every activation is `heaviside`, `x > 0` (`axn.py`); the
      surrogate only shapes gradients.
    - initial_v zero: `initial_state` is zeros; no v_leak, no v_reset.
    """
    return dict(dt=1.0, integration="euler", reset="subtract", reset_timing="next_step",
                threshold="gt", current_order="current_first", input="impulse",
                type_overrides={"CubaLIF": NodePolicy(reset_timing="immediate")}) | changes


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


def _rockpool(**changes: Any) -> dict[str, Any]:
    """Rockpool 3.1.0 torch modules with their defaults (`nn/modules/torch/lif_torch.py`
    `LIFTorch`, `lif_neuron_torch.py` `LIFNeuronTorch`, `exp_syn_torch.py` `ExpSynTorch`,
    `nn/modules/torch/nir.py`; pinned in plugins/nirbridge-rockpool/tests/test_rockpool_semantics.py).

    - dt 1e-3: `dt` is a module parameter (`rp.SimulationParameter`), 1 ms by default; time
      constants are in seconds.
    - integration exact: `alpha = exp(-dt/tau_mem)`, `beta = exp(-dt/tau_syn)` (`tau_to_decay`).
    - input impulse: `LIFNeuronTorch` steps `v = alpha*v + x + bias`; `LIFTorch`'s synapse
      `i = beta*(i + x + w_rec s)` feeds `v = alpha*v + i + bias` (a CubaLIF with
      `w_in = beta`, `r = 1/(1 - alpha)`); `ExpSynTorch` is `i = beta*(i + x)` (an LI with r = beta).
    - current_order current_first: `v` gets this step's decayed synaptic current.
    - threshold ge, spikes multi, max_spikes 65536: `StepPWL` emits
      `(v >= threshold) * floor(v/threshold)` spikes, capped at `max_spikes_per_dt = 2**16`.
    - reset subtract, immediate: `v = v - spikes*threshold` in the same step.
    - initial_v zero: states start at 0 (`init_func=torch.zeros`).
    - Its own NIR export (`to_nir`) writes `r = tau*exp(-dt/tau)/dt` and `v_leak = 0` (the bias
      is dropped); its import (`from_nir`) recovers `dt = min(tau/(1 + r))`, which is not the
      inverse of that r (see the plugin's semantics tests).
    """
    return dict(dt=1e-3, integration="exact", reset="subtract", reset_timing="immediate", threshold="ge",
                current_order="current_first", input="impulse", spikes="multi", max_spikes=65536) | changes


#: preset name -> builder(**changes) -> Policy fields; each builder's docstring cites its facts
PRESETS = {"nir": _nir, "snntorch": _snntorch, "norse": _norse, "sinabs": _sinabs, "spikingjelly": _spikingjelly, "nir-paper": _nir_paper,
           "rockpool": _rockpool, "spyx": _spyx}
