"""The naive path for Sinabs, SpikingJelly, Rockpool and Spyx: each framework's own NIR functions next to
nirbridge, on the models of the plugins' tests (plugins/nirbridge-*/tests/*_support.py, every
spiking layer firing on a Bernoulli(0.3) spike input, batch 2, 40 steps).

    python -m benchmarks.naive_nir_functions [--write]   # --write: benchmarks/results/naive_nir_functions.md

Per model: the framework's export (`sinabs.nir.to_nir`, SpikingJelly's `export_to_nir` at dt
1e-4, Rockpool's `to_nir` on the sample) and the node types it writes; a file round trip with
`nir.write`/`nir.read`; the framework's import (`sinabs.nir.from_nir`, `import_from_nir`,
Rockpool's `from_nir`, through nirtorch) run on the same input, and the
spike entries (time, batch, neuron) that differ from the original, per spiking layer (matched
in call order). nirbridge: `convert(model, to="nir")`, `nirbridge.save`, `nir.read` (that it
reads), `nirbridge.load`, `convert(graph, to=<framework>)`, run: differing entries per layer.
Spyx: `spyx.nir.to_nir(model, input_shape, output_shape, dt=1)` and `spyx.nir.from_nir(graph,
x, dt=1)`; spikes are what each Spyx layer emits under `spyx.nn.run` (nirbridge: the outputs of
the one-step Delay after each neuron node, which are those emissions).
"""

from __future__ import annotations

import copy
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import ROOT, environment, write

for plugin in ("nirbridge-sinabs", "nirbridge-spikingjelly", "nirbridge-rockpool", "nirbridge-spyx"):
    sys.path.insert(0, str(ROOT / "plugins" / plugin / "tests"))

warnings.filterwarnings("ignore")


def err(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:100]}".replace("|", "/")


def node_types(graph) -> str:
    return " ".join(type(n).__name__ for k, n in graph.nodes.items() if k not in ("input", "output"))


def nir_file(graph) -> str:
    import nir

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "g.nir"
        try:
            nir.write(str(path), graph)
        except Exception as exc:  # noqa: BLE001 - the table reports what nir says
            return f"nir.write: {err(exc)}"
        try:
            nir.read(str(path))
        except Exception as exc:  # noqa: BLE001
            return f"nir.read: {err(exc)}"
    return "ok"


def differing(want: list[np.ndarray], got: list[np.ndarray]) -> str:
    """`a/b` per layer, in order; `k of n layers` when layers went missing."""
    if len(got) != len(want):
        return f"{len(got)} of {len(want)} spiking layers"
    parts = []
    for a, b in zip(want, got):
        b = np.asarray(b)
        parts.append(f"{int(np.count_nonzero(a != b.reshape(a.shape)))}/{a.size}" if b.size == a.size else "shape")
    return ", ".join(parts)


def recorded(model: torch.nn.Module, is_spiking, call) -> tuple[object, list[torch.Tensor]]:
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda mod, args, out: seen.append((out[0] if isinstance(out, tuple) else out).detach().clone()))
             for m in model.modules() if is_spiking(m)]
    try:
        with torch.no_grad():
            return call(), seen
    finally:
        for h in hooks:
            h.remove()


def through_nirbridge(model, x, sample, framework: str, names: list[str], want: list[np.ndarray]) -> str:
    import nir

    import nirbridge

    with tempfile.TemporaryDirectory() as d:
        try:
            graph = nirbridge.convert(model, to="nir", sample=sample)
            nirbridge.save(graph, Path(d) / "g.nir")
            nir.read(str(Path(d) / "g.nir"))
            back = nirbridge.convert(nirbridge.load(Path(d) / "g.nir"), to=framework)
        except Exception as exc:  # noqa: BLE001
            return err(exc)
    got = back.run(x, record=names)
    return differing(want, [got.states[n]["spikes"] for n in names])


# ----------------------------------------------------------------------------- Sinabs


def sinabs_rows() -> list[str]:
    import sinabs
    import sinabs.layers as sl
    import sinabs_support as s
    from sinabs.nir import from_nir, to_nir

    spiking = lambda m: isinstance(m, s.SPIKING) and m.spike_fn is not None  # noqa: E731
    rows = ["| model | `to_nir` | nodes written | `nir.write`/`read` | `from_nir` | differing spikes per layer, Sinabs round trip | nirbridge (export, save, load, import): differing spikes |",
            "|---|---|---|---|---|---|---|"]
    for name in s.MODELS:
        model, x = s.make(name)
        _, native = s.run_native(model, x)
        names, want = list(native), list(native.values())
        net = model.spiking_model if isinstance(model, sinabs.network.Network) else model
        cells = [name, "-", "-", "-", "-", "-"]
        try:
            graph = to_nir(net, s.sample(net, x))
            cells[1:4] = ["ok", node_types(graph), nir_file(graph)]
            back = from_nir(copy.deepcopy(graph), batch_size=s.B)  # from_nir edits the graph; it builds Squeeze layers
            for m in back.modules():
                if isinstance(m, sl.StatefulLayer):
                    m.reset_states()
            flat = torch.from_numpy(x).transpose(0, 1).reshape(-1, *x.shape[2:])
            _, got = recorded(back, spiking, lambda: back(flat))
            cells[4] = "ok"
            cells[5] = differing(want, [g.reshape(s.B, x.shape[0], *g.shape[1:]).transpose(0, 1).numpy() for g in got])
        except Exception as exc:  # noqa: BLE001
            cells[1 if cells[1] == "-" else 4] = err(exc)
        rows.append("| " + " | ".join(cells) + f" | {through_nirbridge(model, x, s.sample(model, x), 'sinabs', names, want)} |")
    return rows


# ----------------------------------------------------------------------------- SpikingJelly


def sj_rows() -> list[str]:
    import sj_support as s
    from spikingjelly.activation_based import functional, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir, import_from_nir

    spiking = lambda m: isinstance(m, neuron.BaseNode) or type(m).__name__ == "_NIRStatefulModule"  # noqa: E731
    rows = ["| model | mode | `export_to_nir` | nodes written | `nir.write`/`read` | `import_from_nir` | differing spikes per layer, SpikingJelly round trip | nirbridge (export, save, load, import): differing spikes |",
            "|---|---|---|---|---|---|---|---|"]
    for mode in ("s", "m"):
        for name in s.MODELS:
            model, x = s.make(name, mode)
            _, native = s.run_native(model, x)
            names, want = list(native), list(native.values())
            cells = [name, mode, "-", "-", "-", "-", "-"]
            try:
                graph = export_to_nir(model, s.sample(model, x), dt=1e-4)
                cells[2:5] = ["ok", node_types(graph), nir_file(graph)]
                back = import_from_nir(graph, dt=1e-4, step_mode=mode)
                functional.reset_net(back)
                xt = torch.from_numpy(x)

                def run(back=back, xt=xt):
                    if mode == "m":
                        return back(xt)
                    state, outs = None, []
                    for step in xt:
                        out = back(step) if state is None else back(step, state)
                        out, state = out if isinstance(out, tuple) else (out, None)
                        outs.append(out)
                    return outs

                _, got = recorded(back, spiking, run)
                if mode == "s":  # one record per layer and step: group by layer
                    n = len(got) // x.shape[0]
                    got = [torch.stack(got[i::n]) for i in range(n)]
                cells[5], cells[6] = "ok", differing(want, [g.numpy() for g in got])
            except Exception as exc:  # noqa: BLE001
                cells[2 if cells[2] == "-" else 5] = err(exc)
            rows.append("| " + " | ".join(cells) + f" | {through_nirbridge(model, x, s.sample(model, x), 'spikingjelly', names, want)} |")
    return rows


# ----------------------------------------------------------------------------- Spyx


def spyx_rows() -> list[str]:
    import os

    # as in the plugin's tests: Spyx's compiled run rounds every operation (no fused multiply-add)
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_max_isa=SSE4_2").strip()
    import spyx.nn as snn
    import spyx_support as s
    from spyx.nir import from_nir, to_nir

    import nirbridge

    rows = ["| model | `to_nir` | nodes written | `nir.write`/`read` | `from_nir` | differing spikes per layer, Spyx round trip | "
            "`to_nir`'s graph read as NIR (reference, `spyx` preset): differing spikes | nirbridge (export, save, load, import): differing spikes |",
            "|---|---|---|---|---|---|---|---|"]
    for name in s.MODELS:
        model, x = s.make(name)
        _, neuron_spikes = s.run_native(model, x)  # the neuron nodes' spikes (one step before Spyx emits them)
        spiking = s.spiking_layers(model)
        want = [s.run_prefix(model, x, i) for i in spiking.values()]  # what each layer emits
        cells = [name, "-", "-", "-", "-", "-", "-"]
        features = x.shape[2:]
        try:
            out = s.run_prefix(model, x, len(s.layers(model)) - 1)
            graph = to_nir(model, {"input": np.asarray(features)}, {"output": np.asarray(out.shape[2:])}, dt=1)
            cells[1:4] = ["ok", node_types(graph), nir_file(graph)]
            try:
                g = nirbridge.Graph.from_nir(copy.deepcopy(graph))
                nodes = [n for n, node in g.walk() if node.type in ("IF", "LIF", "CubaLIF")]
                ref = nirbridge.simulate(g, x, policy="spyx", record=nodes)
                cells[6] = differing(list(neuron_spikes.values()), [ref.states[n]["spikes"] for n in nodes])
            except Exception as exc:  # noqa: BLE001
                cells[6] = err(exc)
            back, _ = from_nir(graph, s.nhwc(model, x), dt=1)
            cells[4] = "ok"
            layers = [i for i, m in enumerate(back.layers) if isinstance(m, s.SPIKING)]
            cells[5] = differing(want, [s.run_prefix(back, x, i) for i in layers])
        except Exception as exc:  # noqa: BLE001
            cells[1 if cells[1] == "-" else 4] = err(exc)
        try:
            with tempfile.TemporaryDirectory() as d:
                import nir

                graph = nirbridge.convert(model, to="nir", sample=s.sample(x))
                nirbridge.save(graph, Path(d) / "g.nir")
                nir.read(str(Path(d) / "g.nir"))
                back = nirbridge.convert(nirbridge.load(Path(d) / "g.nir"), to="spyx")
            names = [f"{n}_delay" for n in spiking]
            got = back.run(x, record=names)
            mine = differing(want, [got.states[n]["y"] for n in names])
        except Exception as exc:  # noqa: BLE001
            mine = err(exc)
        rows.append("| " + " | ".join(cells) + f" | {mine} |")
    del snn


# ----------------------------------------------------------------------------- Rockpool


def rockpool_rows() -> list[str]:
    import rockpool_support as s
    from rockpool.nn.modules import LIFNeuronTorch, LIFTorch
    from rockpool.nn.modules.torch.nir import from_nir, to_nir

    spiking = lambda m: isinstance(m, (LIFTorch, LIFNeuronTorch))  # noqa: E731
    rows = ["| model | `to_nir` | nodes written | `nir.write`/`read` | `from_nir` | differing spikes per layer, Rockpool round trip | nirbridge (export, save, load, import): differing spikes |",
            "|---|---|---|---|---|---|---|"]
    for name in s.MODELS:
        model, x = s.make(name)
        _, native = s.run_native(model, x)
        names, want = list(native), list(native.values())
        cells = [name, "-", "-", "-", "-", "-"]
        try:
            graph = to_nir(model, s.sample(x))
            cells[1:4] = ["ok", node_types(graph), nir_file(graph)]
            back = from_nir(copy.deepcopy(graph))
            for m in torch.nn.Module.modules(back):
                if hasattr(m, "reset_state") and type(m).__module__.startswith("rockpool."):
                    m.reset_state()
            seen: list[torch.Tensor] = []
            hooks = [m.register_forward_hook(lambda mod, args, out: seen.append((out[0] if isinstance(out, tuple) else out).detach().clone()))
                     for m in torch.nn.Module.modules(back) if spiking(m)]
            try:
                with torch.no_grad():
                    back(s.sample(x))
            finally:
                for h in hooks:
                    h.remove()
            cells[4] = "ok"
            cells[5] = differing(want, [g.transpose(0, 1).numpy() for g in seen])
        except Exception as exc:  # noqa: BLE001
            cells[1 if cells[1] == "-" else 4] = err(exc)
        rows.append("| " + " | ".join(cells) + f" | {through_nirbridge(model, x, s.sample(x), 'rockpool', names, want)} |")
    return rows


def paper_rows() -> list[str]:
    """The NIR paper's CNN (`cnn_sinabs.nir`, exported from Sinabs) through each framework's
    importer and through nirbridge, on 30 steps of 2x34x34 event frames (p = 0.1, batch 2):
    output spike entries differing from the reference under the `sinabs` preset."""
    import nir
    from sinabs.nir import from_nir
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    import nirbridge

    path = ROOT.parent / "shared" / "fixtures" / "nir-paper" / "02_cnn" / "cnn_sinabs.nir"
    if not path.is_file():
        return [f"({path} not found)"]
    graph = nirbridge.load(path)
    frames = (np.random.default_rng(0).random((30, 2, 2, 34, 34)) < 0.1).astype(np.float32)
    want = nirbridge.simulate(graph, frames, policy="sinabs").output
    rows = ["| importer | result | output spike entries differing from the reference (`sinabs` preset) |", "|---|---|---|"]

    def row(label, run):
        try:
            got = np.asarray(run()).reshape(want.shape)
            rows.append(f"| {label} | ok | {int(np.count_nonzero(got != want))}/{want.size} (output spikes {int(got.sum())}, reference {int(want.sum())}) |")
        except Exception as exc:  # noqa: BLE001
            rows.append(f"| {label} | {err(exc)} | - |")

    def sinabs_run():
        model = from_nir(nir.read(str(path)), batch_size=2)
        with torch.no_grad():
            out = model(torch.from_numpy(frames).transpose(0, 1).reshape(60, 2, 34, 34))
        out = out[0] if isinstance(out, tuple) else out
        return out.reshape(2, 30, 10).transpose(0, 1).numpy()

    def sj_run(mode):
        model = import_from_nir(nir.read(str(path)), dt=1.0, step_mode=mode)
        functional.reset_net(model)
        xt = torch.from_numpy(frames)
        with torch.no_grad():
            if mode == "m":
                out = model(xt)
                return (out[0] if isinstance(out, tuple) else out).numpy()
            state, outs = None, []
            for step in xt:
                out = model(step) if state is None else model(step, state)
                out, state = out if isinstance(out, tuple) else (out, None)
                outs.append(out)
            return torch.stack(outs).numpy()

    row("`sinabs.nir.from_nir`", sinabs_run)
    row("SpikingJelly `import_from_nir(dt=1, step_mode='m')`", lambda: sj_run("m"))
    row("SpikingJelly `import_from_nir(dt=1, step_mode='s')`", lambda: sj_run("s"))
    for target in ("sinabs", "spikingjelly", "snntorch", "norse"):
        row(f"nirbridge `convert(graph, to={target!r}, policy='sinabs')`", lambda t=target: nirbridge.convert(graph, to=t, policy="sinabs").run(frames).output)
    return rows


def main(argv: list[str]) -> None:
    import nir
    import rockpool
    import sinabs
    import spikingjelly
    import spyx

    lines = ["# The frameworks' own NIR functions next to nirbridge", "",
             *environment([f"nir {nir.version}", f"torch {torch.__version__}", f"sinabs {sinabs.__version__}",
                           f"spikingjelly {getattr(spikingjelly, '__version__', '2.0.0')}", f"rockpool {rockpool.__version__}", f"spyx {spyx.__version__}"]),
             "", "## Sinabs: `sinabs.nir.to_nir` / `from_nir`", "", *sinabs_rows(),
             "", "## SpikingJelly: `nir_exchange.export_to_nir` / `import_from_nir` (dt 1e-4)", "", *sj_rows(),
             "", "## Rockpool: `rockpool.nn.modules.torch.nir.to_nir` / `from_nir`", "", *rockpool_rows(),
             "", "## Spyx: `spyx.nir.to_nir` / `from_nir` (dt 1)", "", *spyx_rows(),
             "", "## The NIR paper's CNN (`cnn_sinabs.nir`) through the importers", "", *paper_rows()]
    write("naive_nir_functions.md", "\n".join(lines), "--write" in argv)


if __name__ == "__main__":
    main(sys.argv[1:])
