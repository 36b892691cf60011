"""The NumPy reference simulator: computes exactly what docs/semantics.md and a `Policy` say.

    result = simulate(graph, x, policy=Policy.preset("norse", dt=1e-4), record=["lif1"])

Modules: `layers` (stateless nodes as maps over stacked samples), `neurons` (neuron state and
one time step), `delay` (Delay lines), `engine` (inputs, schedule, evaluation, recording).
"""

from .engine import simulate

__all__ = ["simulate"]
