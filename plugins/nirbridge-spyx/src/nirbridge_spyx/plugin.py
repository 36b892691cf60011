"""Entry point of the `nirbridge` plugin group: registers the `spyx` backend as a light
record (importing this module imports neither JAX nor Spyx)."""

from nirbridge.backends.base import BackendRecord
from nirbridge.backends.hookspecs import hookimpl

DESCRIPTION = "Spyx 1.0 on JAX (LIF, IF, LI, CuBaLIF, RLIF, RIF, RCuBaLIF, SumPool, Flatten; Flax NNX Linear/Conv in spyx.nn.Sequential)"


@hookimpl
def register_backends():
    return [
        BackendRecord(
            "spyx",
            "nirbridge_spyx.backend:SpyxBackend",
            preset="spyx",
            description=DESCRIPTION,
            model_types=("flax.nnx.module.Module", "nirbridge_spyx.model.SpyxGraph"),
        )
    ]
