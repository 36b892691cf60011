"""What snnTorch 1.0.0 neurons compute, as Policy fields (read from `snntorch/_neurons/*.py`;
every row is pinned by tests against the installed library).

With `r_k = H(mem_{k-1} - threshold)` (the reset computed from the stored membrane at the
start of a call) and `z_k = H(mem_k - threshold)`:

    Leaky      subtract: mem_k = beta mem_{k-1} + x_k - r_k thr              -> subtract, next_step
               zero:     mem_k = beta (1 - r_k) mem_{k-1} + x_k              -> to_reset, immediate
    Synaptic   syn_k = alpha syn_{k-1} + x_k;  mem_k = beta mem_{k-1} + syn_k, then
               subtract: mem_k -= r_k thr                                    -> subtract, next_step
               zero:     mem_k -= r_k mem_k                                  -> to_reset, next_step
    RLeaky/RSynaptic: as Leaky/Synaptic with x_k + recurrent(spk_{k-1}); zero: mem_k = (1 - r_k) mem_k
                                                                             -> to_reset, next_step
    Lapicque   mem_k = (1 - ts/(R C)) mem_{k-1} + ts/C x_k, resets as RLeaky (no reset_delay)

`reset_delay=False` then resets once more in the same step with `do_reset = z_k - r_k`:
with zero reset this zeroes mem at once and `r_k` stays 0 (threshold >= 0): exactly
`to_reset, immediate`. With subtract, `do_reset` is -1 when the stored membrane was above
threshold but the new one is not, which adds the threshold back: `subtract, immediate` only
while v stays at or below threshold after a subtraction (approximate). RSynaptic ignores
`reset_delay=False` (its forward resets a local variable) and fails with `init_hidden=True`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Semantics:
    reset: str  # Policy.reset
    reset_timing: str  # Policy.reset_timing
    exact: bool = True
    reason: str = ""


RESET_NAMES = {"subtract": "subtract", "zero": "to_reset", "none": "none"}

DOUBLE_RESET = (
    "reset_delay=False with subtract reset: snnTorch subtracts the threshold again on the next "
    "step when v stays above threshold after subtracting (and adds it back if v then falls "
    "below), which no Policy expresses; exported as immediate subtraction, exact while inputs "
    "never lift v above twice the threshold"
)


def neuron_semantics(kind: str, reset_mechanism: str, reset_delay: bool) -> Semantics:
    """The Policy reset fields of snnTorch neuron class `kind` (Leaky, Synaptic, RLeaky,
    RSynaptic, Lapicque) with the given `reset_mechanism` and `reset_delay`."""
    reset = RESET_NAMES[reset_mechanism]
    if reset == "none":
        return Semantics("none", "next_step")
    if kind in ("RSynaptic", "Lapicque"):
        reset_delay = True  # Lapicque has none; RSynaptic's reset_delay=False has no effect
    if reset == "to_reset":
        if kind == "Leaky" or not reset_delay:
            return Semantics("to_reset", "immediate")
        return Semantics("to_reset", "next_step")
    if reset_delay:
        return Semantics("subtract", "next_step")
    return Semantics("subtract", "immediate", exact=False, reason=DOUBLE_RESET)
