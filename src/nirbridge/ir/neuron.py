"""The neuron primitives of NIR, in continuous time (NIR 1.0):

    I        dv/dt = r x                                                  output v
    IF       dv/dt = r x;                        z = v > v_threshold, then v = v_reset
    LI       tau dv/dt = (v_leak - v) + r x                               output v
    LIF      tau dv/dt = (v_leak - v) + r x;     z = v > v_threshold, then v = v_reset
    CubaLI   tau_syn dI/dt = -I + w_in x;  tau_mem dv/dt = (v_leak - v) + r I        output v
    CubaLIF  CubaLI, then z = v > v_threshold and v = v_reset

NIR has no time step. How these become steps (dt, integration, input convention, current
order, threshold rule, reset kind and timing) is the `Policy`; the per-step equations are
written once, in `nirbridge.semantics.discretization.StepConstants`, and in docs/semantics.md.
All parameters of one node share one shape (or are 0-d and broadcast).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from .base import Array, Node


class I(Node):  # noqa: E742
    """Integrator: dv/dt = r x."""

    type: Literal["I"] = "I"
    r: Array
    float_fields: ClassVar = ("r",)
    same_shape_fields: ClassVar = ("r",)


class IF(Node):
    """Integrate-and-fire: dv/dt = r x; spike when v > v_threshold, then v = v_reset."""

    type: Literal["IF"] = "IF"
    r: Array
    v_threshold: Array
    v_reset: Array
    float_fields: ClassVar = ("r", "v_threshold", "v_reset")
    same_shape_fields: ClassVar = float_fields


class LI(Node):
    """Leaky integrator: tau dv/dt = (v_leak - v) + r x."""

    type: Literal["LI"] = "LI"
    tau: Array
    r: Array
    v_leak: Array
    float_fields: ClassVar = ("tau", "r", "v_leak")
    positive_fields: ClassVar = ("tau",)
    same_shape_fields: ClassVar = float_fields


class LIF(Node):
    """Leaky integrate-and-fire: tau dv/dt = (v_leak - v) + r x; spike when v > v_threshold,
    then v = v_reset."""

    type: Literal["LIF"] = "LIF"
    tau: Array
    r: Array
    v_leak: Array
    v_threshold: Array
    v_reset: Array
    float_fields: ClassVar = ("tau", "r", "v_leak", "v_threshold", "v_reset")
    positive_fields: ClassVar = ("tau",)
    same_shape_fields: ClassVar = float_fields


class CubaLI(Node):
    """Current-based LI: tau_syn dI/dt = -I + w_in x; tau_mem dv/dt = (v_leak - v) + r I."""

    type: Literal["CubaLI"] = "CubaLI"
    tau_syn: Array
    tau_mem: Array
    r: Array
    v_leak: Array
    w_in: Array
    float_fields: ClassVar = ("tau_syn", "tau_mem", "r", "v_leak", "w_in")
    positive_fields: ClassVar = ("tau_syn", "tau_mem")
    same_shape_fields: ClassVar = float_fields


class CubaLIF(Node):
    """Current-based LIF: CubaLI plus a spike when v > v_threshold, then v = v_reset."""

    type: Literal["CubaLIF"] = "CubaLIF"
    tau_syn: Array
    tau_mem: Array
    r: Array
    v_leak: Array
    v_threshold: Array
    v_reset: Array
    w_in: Array
    float_fields: ClassVar = ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in")
    positive_fields: ClassVar = ("tau_syn", "tau_mem")
    same_shape_fields: ClassVar = float_fields
