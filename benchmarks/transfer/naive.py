"""The naive path: the libraries' own NIR functions, as the study used them.

``snntorch.export_nir.export_to_nir(model, sample)`` -> ``norse.torch.from_nir(graph, dt=...)``,
tried the ways a user would try it, in order:

1. the trained model as it is, with a test batch (time, batch, ...) as the sample;
2. the model rebuilt as ``nn.Sequential(Linear, Synaptic(init_hidden=True), Linear,
   Synaptic(init_hidden=True))`` with its parameters as they are (scalar alpha, beta and first
   threshold, one threshold per output neuron) and a sample (n_in,);
3. the same Sequential with per-neuron tensors for alpha, beta and threshold in both layers and
   a sample with a batch dimension, (1, n_in);
4. "after the usual workarounds": that Sequential with a sample without batch dimension,
   (n_in,), the only form found to export.

Every attempt that exports is imported at dt = 1e-4 (what snnTorch's exporter assumes) and at
``from_nir``'s default dt, and run one step at a time on (time, batch, n_in) input. An attempt
that raises is kept, with the error text, for the table.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np
import torch

#: the dt snnTorch's exporter writes its time constants for
SNNTORCH_EXPORT_DT = 1e-4


@dataclass
class Attempt:
    """One way of calling the naive functions: ``model`` is the Norse module (None when a step
    raised; ``error`` then says which and why)."""

    route: str
    dt: float | None
    model: torch.nn.Module | None = None
    error: str | None = None
    details: dict = field(default_factory=dict)


def norse_default_dt() -> float:
    """The ``dt`` default of the installed ``norse.torch.from_nir``."""
    import norse.torch

    return float(inspect.signature(norse.torch.from_nir).parameters["dt"].default)


def as_sequential(net, *, per_neuron: bool) -> torch.nn.Sequential:
    """``net`` (a SeedNet) as ``nn.Sequential`` of Linear / ``Synaptic(init_hidden=True)``
    layers with the same weights and neuron parameters. ``per_neuron``: alpha, beta and
    threshold become one value per neuron (the same values); otherwise they stay as they are."""
    import snntorch as snn

    layers = []
    for fc, lif in ((net.fc1, net.lif1), (net.fc2, net.lif2)):
        linear = torch.nn.Linear(fc.in_features, fc.out_features)
        linear.load_state_dict(fc.state_dict())
        n = fc.out_features
        params = {}
        for key in ("alpha", "beta", "threshold"):
            value = getattr(lif, key).detach().clone()
            params[key] = value.expand(n).clone() if per_neuron and value.numel() == 1 else value
            if not per_neuron and value.numel() == 1:
                params[key] = float(value)
        layers += [linear, snn.Synaptic(**params, init_hidden=True)]
    return torch.nn.Sequential(*layers).eval()


def _error(stage: str, exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{stage}: {type(exc).__name__}: {text}" if text else f"{stage}: {type(exc).__name__}"


def attempts(net, sample: torch.Tensor, *, dts: tuple[float | None, ...] = (SNNTORCH_EXPORT_DT, None)) -> list[Attempt]:
    """Try the naive path the four ways of the module doc. ``sample``: a test batch
    (time, batch, ...) for the model as it is; ``dts``: import time steps (None = the default)."""
    from snntorch.export_nir import export_to_nir

    n_in = net.fc1.in_features
    tries = [
        ("trained model as is, sample = a test batch (T, B, ...)", lambda: net, sample),
        ("nn.Sequential, parameters as trained (scalar alpha/beta), sample (n_in,)",
         lambda: as_sequential(net, per_neuron=False), torch.zeros(n_in)),
        ("nn.Sequential, per-neuron alpha/beta/threshold tensors, sample (1, n_in)",
         lambda: as_sequential(net, per_neuron=True), torch.zeros(1, n_in)),
        ("after the usual workarounds: nn.Sequential, per-neuron alpha/beta/threshold tensors, sample (n_in,)",
         lambda: as_sequential(net, per_neuron=True), torch.zeros(n_in)),
    ]
    out = []
    for route, build, x in tries:
        try:
            graph = export_to_nir(build(), x)
        except Exception as exc:  # the point of this module: show how the naive path fails
            out.append(Attempt(route, None, error=_error("snntorch.export_to_nir", exc)))
            continue
        for dt in dts:
            out.append(_import(route, graph, dt))
    return out


def _import(route: str, graph, dt: float | None) -> Attempt:
    import norse.torch

    used = norse_default_dt() if dt is None else dt
    try:
        model = norse.torch.from_nir(graph) if dt is None else norse.torch.from_nir(graph, dt=dt)
    except Exception as exc:
        return Attempt(route, used, error=_error("norse.torch.from_nir", exc))
    return Attempt(route, used, model=model.eval(), details={"dt_default": dt is None})


def run(model: torch.nn.Module, x, *, record: dict[str, str] | None = None):
    """Run a module made by ``norse.torch.from_nir`` over x (time, batch, ...), flattening each
    step to (batch, n_in), threading its state. Returns the output spikes (time, batch, n_out)
    as a tensor, or with ``record`` ({name in the result: graph node}) a ``SimulationResult``
    with each recorded node's ``spikes`` and ``v`` (Norse's state: after any reset)."""
    from nirbridge.result import SimulationResult

    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    seen: dict[str, dict[str, list]] = {name: {"spikes": [], "v": []} for name in record or {}}
    handles = []
    for name, node in (record or {}).items():
        def hook(module, args, output, name=name):
            spikes, (_, lif_state) = output
            seen[name]["spikes"].append(spikes.detach().clone())
            seen[name]["v"].append(lif_state.v.detach().clone())

        handles.append(model.get_submodule(node).register_forward_hook(hook))
    try:
        state, outs = None, []
        with torch.no_grad():
            for t in range(x.shape[0]):
                y, state = model(x[t].reshape(x.shape[1], -1), state)
                outs.append(y)
    finally:
        for h in handles:
            h.remove()
    spikes = torch.stack(outs)
    if record is None:
        return spikes
    stack = lambda values: torch.stack(values).numpy()  # noqa: E731
    return SimulationResult(
        outputs={"output": spikes.numpy()},
        states={name: {var: stack(v) for var, v in s.items()} for name, s in seen.items()},
    )


def model_fn(model: torch.nn.Module):
    """``model_fn(x) -> output spikes`` for ``evaluate``."""
    return lambda x: run(model, x)
