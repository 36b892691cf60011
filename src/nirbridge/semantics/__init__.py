"""Semantics: the `Policy` (how NIR's continuous equations become steps), its presets, the
discretization maths between time constants and per-step factors, and dt inference."""

from .discretization import (
    StepConstants,
    StepRule,
    current_gain,
    decay,
    delay_steps,
    exact_unit_gain,
    leaky_from_nir,
    leaky_to_nir,
    neuron_step,
    step_constants,
    synaptic_from_nir,
    synaptic_to_nir,
    tau_from_decay,
    unit_gain,
)
from .dt_inference import DtInference, infer_dt
from .fields import FIELDS, POLICY_FIELDS, NodePolicy
from .policy import METADATA_KEY, Policy, ResolvedPolicy, policy_differences, resolve_policy, with_policy
from .presets import PRESETS

__all__ = [
    "FIELDS", "METADATA_KEY", "POLICY_FIELDS", "PRESETS", "DtInference", "NodePolicy", "Policy", "ResolvedPolicy", "StepConstants", "StepRule",
    "current_gain", "decay", "delay_steps", "exact_unit_gain", "infer_dt", "leaky_from_nir", "leaky_to_nir", "neuron_step", "policy_differences", "resolve_policy", "step_constants",
    "synaptic_from_nir", "synaptic_to_nir", "tau_from_decay", "unit_gain", "with_policy",
]
