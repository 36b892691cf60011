"""The `nirbridge` command line.

    nirbridge backends                                  installed backends, failed plugins
    nirbridge inspect net.nir [--json]                  nodes, shapes, inferred dt, policy
    nirbridge check net.nir --to norse [--json]         gap report, converts nothing
    nirbridge convert net.nir --to norse -o out.nir     the NIR graph norse runs exactly
    nirbridge simulate net.nir --input x.npy -o y.h5    run the NumPy reference
    nirbridge verify net.nir --backends numpy,norse     run several backends, compare
    nirbridge verify net.nir --against run.h5           compare with a recording (NIR data)
    nirbridge evaluate net.nir --data digits            every backend on a whole dataset
    nirbridge plot net.nir --input x.npy -o run.png     raster and membrane plots

Exit codes: 0 success; 1 the answer is "no" (`check`: some node is not exact, `verify`:
backends disagree); 2 the command could not run (bad arguments, missing or malformed file,
unknown backend, strict conversion refused). Errors are one line on stderr, never a
traceback. Results go to stdout, progress to stderr.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from .atomic import replacing, writable_target
from .errors import GapError, NirbridgeError
from .semantics import PRESETS
from .table import table

EXIT_OK, EXIT_NO, EXIT_ERROR = 0, 1, 2

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class InputFileError(NirbridgeError):
    """An input array file given on the command line is missing or unreadable."""


# ----------------------------------------------------------------------------- error handling


class CommandError(click.ClickException):
    """What every failure becomes: one line on stderr, exit code 2."""

    exit_code = EXIT_ERROR

    def show(self, file=None) -> None:  # noqa: D102 - click API
        click.echo(f"nirbridge: error: {self.format_message()}", err=True)


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return "; ".join(lines) if lines else "failed"


def _gap_message(exc: GapError) -> str:
    report = getattr(exc, "report", None)
    problems = []
    for gap in getattr(report, "gaps", None) or []:
        status = getattr(gap, "status", "")
        if status != "exact":
            node = getattr(gap, "node", "?")
            why = getattr(gap, "reason", "") or status
            problems.append(f"{node} {status}: {why}")
    if not problems:
        return _one_line(str(exc))
    target = getattr(report, "target", None)
    head = f"cannot convert exactly{f' to {target}' if target else ''}"
    return f"{head}: " + "; ".join(problems) + " (run `nirbridge check` for the full report)"


def _os_message(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else ""
    what = exc.strerror or str(exc)
    return f"{where}: {what}" if where else what


class _Group(click.Group):
    """Turns every expected failure of any subcommand into a `CommandError`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GapError as exc:
            raise CommandError(_gap_message(exc)) from None
        except NirbridgeError as exc:
            raise CommandError(_one_line(str(exc))) from None
        except OSError as exc:
            raise CommandError(_one_line(_os_message(exc))) from None


# ----------------------------------------------------------------------------- helpers


def _progress(message: str) -> None:
    click.echo(message, err=True)


def _jsonable(value: Any) -> Any:
    """Plain JSON data from reports, dataclasses, pydantic models and numpy values."""
    if hasattr(value, "model_dump"):
        return _jsonable(value.model_dump(mode="json"))
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _echo_json(data: Any) -> None:
    if isinstance(data, str):  # already serialised (a report's to_json())
        data = json.loads(data)
    click.echo(json.dumps(_jsonable(data), indent=2, sort_keys=False))


def _report_json(report: Any) -> Any:
    to_json = getattr(report, "to_json", None)
    return to_json() if callable(to_json) else _jsonable(report)


def _load_graph(path: str):
    from .io import load

    return load(path)


def _load_array(path: str) -> np.ndarray:
    """A finite numeric array from a .npy file. Never unpickles: object arrays are refused."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError("no such file" if not p.exists() else "not a file", file=path)
    from .datasets import read_npy

    data = read_npy(p)  # the header's declared size checked against the file before reading
    if data.dtype.kind not in "biuf":
        raise InputFileError(f"expected a numeric array, got dtype {data.dtype}", file=path)
    if data.dtype.kind == "f":
        bad = ~np.isfinite(data)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputFileError(f"input{list(idx)}: must be finite, got {data[idx]}", file=path)
    else:
        data = data.astype(np.float32)
    return data


def _input_for(graph, x: np.ndarray, path: str) -> np.ndarray:
    """Accept (time, batch, *features) and, for convenience, (time, *features) as batch 1."""
    shape = graph.input_shape()
    if shape is not None and x.ndim == len(shape) + 1 and tuple(x.shape[1:]) == tuple(shape):
        return x[:, None]
    if x.ndim < 2:
        raise InputFileError(
            f"input shaped {x.shape}: expected (time, batch, *features)"
            + (f" with features {tuple(shape)}" if shape is not None else ""),
            file=path,
        )
    return x


def _policy(graph, preset: str | None, dt: float | None):
    """The policy to run `graph` under and where it came from: `--policy PRESET` if given,
    else what `nirbridge.convert` would choose (the file's metadata, else the dt inferred
    from the parameters with the `nir` preset, else the `nir` preset); `--dt` replaces dt."""
    from .conversion import resolve_source
    from .semantics import Policy

    if preset:
        policy, origin = Policy.preset(preset), f"chosen with --policy {preset}"
    else:
        resolved = resolve_source(graph)
        policy, origin = resolved.policy, resolved.policy_origin
    if dt is not None:
        policy = Policy(**{**policy.model_dump(), "dt": dt})
        origin += ", dt from --dt"
    return policy, origin


def _progress_policy(policy, origin: str) -> None:
    _progress(f"policy: {_describe_policy(policy)}")
    _progress(f"  ({origin})")


def _explicit_policy(graph, preset: str | None, dt: float | None):
    """The policy the command line asks for, or None to leave the choice to the library."""
    return _policy(graph, preset, dt)[0] if preset or dt is not None else None


def _describe_policy(policy) -> str:
    if policy is None:
        return "none"
    data = policy.model_dump(mode="json")
    overrides = sorted(data.pop("overrides", None) or {})
    overrides += [f"type {t}" for t in sorted(data.pop("type_overrides", None) or {})]
    text = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in data.items())
    if overrides:
        text += f" (+ overrides for {', '.join(overrides)})"
    return text


def _split_names(values: Sequence[str]) -> list[str]:
    """`--record a --record b,c` -> [a, b, c]."""
    out: list[str] = []
    for v in values:
        out += [n.strip() for n in v.split(",") if n.strip()]
    return list(dict.fromkeys(out))


def _atomic_write(path: str, write: Callable[[Any], None], inputs: Sequence[str | None]) -> None:
    """Write through a temporary file beside `path`, renamed into place (`nirbridge.atomic`)."""
    with replacing(path, inputs=inputs) as tmp, open(tmp, "wb") as fh:
        write(fh)


def _check_output(path: str, *inputs: str | None) -> None:
    """Refuse `-o` before any work when it would replace one of the command's inputs, a
    directory, a FIFO or device, or write through a dangling link (`nirbridge.atomic`)."""
    writable_target(path, inputs)


def _simulate(graph, x, policy, record, dtype=np.float32):
    from .reference import simulate

    start = time.perf_counter()
    _progress(f"simulating {x.shape[0]} steps, batch {x.shape[1] if x.ndim > 1 else 1} ...")
    result = simulate(graph, x, policy=policy, record=tuple(record), dtype=dtype)
    _progress(f"done in {time.perf_counter() - start:.2f} s")
    return result


def _default_record(graph) -> list[str]:
    """Every neuron node, nested ones by dotted name."""
    from .ir import NEURON_TYPES

    return [name for name, node in graph.walk() if node.type in NEURON_TYPES]


POLICY_OPTION = click.option(
    "--policy", "preset", metavar="PRESET",
    help=f"Policy preset to run under ({', '.join(PRESETS)}); default: the "
    "policy in the file's metadata, else the library's choice.",
)
DT_OPTION = click.option(
    "--dt", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
    help="Time step, replacing the policy's.",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


# ----------------------------------------------------------------------------- commands


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(package_name="nirbridge", prog_name="nirbridge")
def cli() -> None:
    """Move spiking neural networks between frameworks through NIR without changing what
    they compute.

    Exit codes: 0 success; 1 the answer is no (check: some node is not exact; verify:
    backends disagree); 2 error (bad arguments, missing or malformed file, unknown backend,
    strict conversion refused), with one line on stderr."""


@cli.command()
@JSON_OPTION
@click.option("--matrix", is_flag=True, help="Print the support matrix (NIR node x backend) as Markdown (loads every backend).")
@click.option("--write-readme", "readme", type=click.Path(dir_okay=False, exists=True), help="Replace the support-matrix block of this README.")
@click.option("--strict", is_flag=True, help="Exit 1 when a plugin failed to load.")
def backends(as_json: bool, matrix: bool, readme: str | None, strict: bool) -> None:
    """List installed backends and the plugins that failed to load (imports no framework)."""
    from . import support_matrix
    from .backends import registry

    found = registry.backends()
    if readme or matrix:
        loaded = {name: registry.get_backend(name) for name in found}
        if readme:
            changed = support_matrix.write_readme(readme, loaded)
            click.echo(f"{readme}: {'updated' if changed else 'already up to date'}")
        else:
            click.echo(support_matrix.support_matrix_markdown(loaded))
        return
    failures = registry.failures()
    rows = [{"name": name, "distribution": r.distribution, "preset": r.preset, "description": r.description} for name, r in found.items()]
    if as_json:
        _echo_json({
            "backends": rows,
            "failed_plugins": [
                {"distribution": f.distribution, "entry_point": f.entry_point, "error": f.error} for f in failures
            ],
        })
    else:
        lines = [("name", "distribution", "preset", "description")]
        lines += [(r["name"], r["distribution"], r["preset"], r["description"]) for r in rows]
        click.echo(table(lines))
        if failures:
            click.echo("\nplugins that failed to load:")
            for f in failures:
                click.echo(f"  {f.distribution} (entry point {f.entry_point!r}): {_one_line(f.error)}")
    if strict and failures:
        sys.exit(1)


@cli.command()
@click.argument("file", metavar="FILE.nir")
@JSON_OPTION
def inspect(file: str, as_json: bool) -> None:
    """Show a .nir file: nodes and shapes, the time step its parameters imply, and the policy
    stored in its metadata."""
    from .semantics import Policy

    graph = _load_graph(file)
    inference = Policy.infer(graph)
    policy = Policy.from_metadata(graph.metadata)
    if as_json:
        nodes = []

        def add(g, prefix):
            shapes = g.shapes()
            for name, node in g.nodes.items():
                i, o = shapes.get(name, (None, None))
                nodes.append({
                    "name": prefix + name, "type": node.type,
                    "input_shape": list(i) if i is not None else None,
                    "output_shape": list(o) if o is not None else None,
                    "parameters": node.parameter_count(),
                })
                if node.type == "NIRGraph":
                    add(node, f"{prefix}{name}.")

        add(graph, "")
        _echo_json({
            "file": file,
            "nodes": nodes,
            "edges": [list(e) for e in graph.edges],
            "parameters": graph.parameter_count(),
            "dt_inference": inference,
            "policy": policy,
            "metadata": graph.metadata,
        })
        return
    click.echo(graph.summary())
    click.echo("")
    if inference.dt is not None:
        click.echo(f"dt inferred from parameters: {inference.dt:g} s (confidence {inference.confidence})")
    else:
        click.echo(f"dt inferred from parameters: none (confidence {inference.confidence})")
    if inference.message:
        click.echo(f"  {inference.message}")
    for node, text in inference.evidence.items():
        click.echo(f"  {node}: {text}")
    if policy is not None:
        click.echo(f"policy in metadata: {_describe_policy(policy)}")
    else:
        click.echo("policy in metadata: none (nirbridge will use the inferred dt with the 'nir' preset, or pass --policy)")


@cli.command()
@click.argument("src", metavar="SRC.nir")
@click.option("--to", "target", required=True, metavar="BACKEND", help="Target backend.")
@POLICY_OPTION
@DT_OPTION
@click.option("--probe", "probe_path", metavar="X.npy", help="Input on which to measure how many spikes approximate nodes change.")
@JSON_OPTION
def check(src: str, target: str, preset: str | None, dt: float | None, probe_path: str | None, as_json: bool) -> None:
    """Report, node by node, whether BACKEND can run SRC exactly (converts nothing).

    Exit code 0 when every node and the policy are exact, 1 when anything is approximate or
    unsupported."""
    from .conversion import check as check_

    graph = _load_graph(src)
    probe = _input_for(graph, _load_array(probe_path), probe_path) if probe_path else None
    report = check_(graph, to=target, policy=_explicit_policy(graph, preset, dt), probe=probe)
    report.source = src
    if as_json:
        _echo_json(_report_json(report))
    else:
        click.echo(str(report))
    sys.exit(EXIT_OK if _is_exact(report) else EXIT_NO)


def _is_exact(report: Any) -> bool:
    return bool(report.ok)


@cli.command()
@click.argument("src", metavar="SRC.nir")
@click.option("--to", "target", required=True, metavar="BACKEND", help="Backend the graph is prepared for.")
@click.option("-o", "--output", "out", required=True, metavar="OUT.nir", help="Where to write the graph.")
@POLICY_OPTION
@DT_OPTION
@click.option("--no-strict", "lenient", is_flag=True, help="Write the graph even when some nodes are only approximate; the gaps are reported on stderr.")
def convert(src: str, target: str, out: str, preset: str | None, dt: float | None, lenient: bool) -> None:
    """Write the NIR graph that BACKEND runs exactly: BACKEND's rewrites applied (e.g. AvgPool2d
    as SumPool2d + Scale, r folded into a Scale node, nested graphs inlined) and the policy
    stored in the metadata. This is the file to hand to a toolchain that reads NIR.

    Refused (exit code 2, nothing written) when a node is unsupported, or when a node or the
    policy is only approximate, unless --no-strict."""
    from .conversion import plan
    from .io import NirReadWarning, save

    _check_output(out, src)
    graph = _load_graph(src)
    explicit = _policy(graph, preset, dt) if preset or dt is not None else None
    p = plan(graph, target, policy=explicit[0] if explicit else None)
    report = p.report
    report.source = src
    origin = explicit[1] if explicit else p.source.policy_origin
    if report.unsupported or (not lenient and not report.ok):
        raise GapError(report)
    if not report.ok:
        _progress(f"warning: approximate conversion ({report.summary()}):")
        for gap in report.approximate:
            _progress(f"  {gap.node} ({gap.node_type}): {gap.reason}")
    rewritten = [g.node for g in report.gaps if "rewrite" in g.maps_to or "inlined" in g.maps_to]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NirReadWarning)
        save(p.graph, out)
    for w in caught:
        _progress(f"warning: {_one_line(str(w.message))}")
    _progress_policy(p.policy, origin)
    if rewritten:
        _progress(f"rewritten for {target}: {', '.join(rewritten)}")
    what = "with its policy in the metadata" if p.backend is None else f"for backend {target}"
    _progress(f"wrote {out} ({sum(1 for _ in p.graph.walk())} nodes) {what}")


@cli.command()
@click.argument("file", metavar="FILE.nir")
@click.option("--input", "input_path", required=True, metavar="X.npy", help="Input array shaped (time, batch, *features); (time, *features) runs as batch 1.")
@click.option("--record", multiple=True, metavar="NODE", help="Record the state of NODE (repeat, or separate names with commas).")
@POLICY_OPTION
@DT_OPTION
@click.option("--float64", is_flag=True, help="Simulate in float64 (default float32).")
@click.option("-o", "--output", "out", required=True, metavar="OUT.h5|OUT.npz",
              help="Where to write the input, outputs and recorded states: NIR's data format for .h5/.hdf5, else .npz.")
def simulate(file: str, input_path: str, record: tuple[str, ...], preset: str | None, dt: float | None,
             float64: bool, out: str) -> None:
    """Run FILE on the NumPy reference simulator and save the results.

    OUT.h5 (or .hdf5) is a recording in NIR's data format (nir.read_data reads it; compare
    another run with it by `nirbridge verify FILE --against OUT.h5`): per node the observables
    `y` (input, outputs), `v`, `I`, `spikes`, each (samples, steps, neurons) at the policy's dt.
    Any other OUT holds (.npz) `outputs/<output node>` and `states/<node>/<v|I|spikes|y>` arrays shaped
    (time, batch, ...) and `policy`, the policy used as JSON. Read it with
    numpy.load(OUT, allow_pickle=False)."""
    _check_output(out, file, input_path)
    graph = _load_graph(file)
    x = _input_for(graph, _load_array(input_path), input_path)
    policy, origin = _policy(graph, preset, dt)
    _progress_policy(policy, origin)
    result = _simulate(graph, x, policy, _split_names(record), np.float64 if float64 else np.float32)
    arrays = {f"outputs/{k}": np.asarray(v) for k, v in result.outputs.items()}
    for node, state in result.states.items():
        arrays.update({f"states/{node}/{var}": np.asarray(v) for var, v in state.items()})
    arrays["policy"] = np.array(json.dumps(policy.model_dump(mode="json")))
    if Path(out).suffix.lower() in (".h5", ".hdf5"):  # NIR's data format
        from .recording import save_recording, to_nir_data

        save_recording(to_nir_data(result, dt=policy.dt, graph=graph, inputs=x), out)
    else:
        _atomic_write(out, lambda fh: np.savez(fh, **arrays), (file, input_path))
    rows = [("array", "shape", "dtype", "spikes")]
    for key, arr in arrays.items():
        if key == "policy":
            continue
        binary = arr.size > 0 and np.isin(arr, (0, 1)).all() and (key.startswith("outputs/") or key.endswith("/spikes"))
        rows.append((key, str(tuple(arr.shape)), str(arr.dtype), str(int(arr.sum())) if binary else "-"))
    click.echo(table(rows))
    _progress(f"wrote {out}")


@cli.command()
@click.argument("file", metavar="FILE.nir")
@click.option("--backends", "names", metavar="A,B,...", help="Backends to run (comma-separated); each is compared with the NumPy reference, which always runs.")
@click.option("--against", "recording", metavar="RECORDING.h5", help="Compare the NumPy reference with activity recorded anywhere (NIR's data format) instead of running backends.")
@click.option("--input", "input_path", metavar="X.npy", help="Input array; default: a generated input that makes every layer fire (with --against: the recording's input).")
@POLICY_OPTION
@DT_OPTION
@JSON_OPTION
def verify(file: str, names: str | None, recording: str | None, input_path: str | None, preset: str | None,
           dt: float | None, as_json: bool) -> None:
    """Run FILE on several backends with the same input and compare spikes and potentials
    node by node against the NumPy reference; or, with --against, compare the reference with
    a recording (another simulator's, a chip's), stepping at the recording's dt.

    Exit code 0 when all agree, 1 when any differs."""
    from .backends.registry import get_backend
    from .verification import verify as verify_

    if recording is not None:  # --against: a recording instead of backends
        from .recording import verify_against

        if names:
            raise NirbridgeError("give --backends or --against, not both")
        graph = _load_graph(file)
        x = _input_for(graph, _load_array(input_path), input_path) if input_path else None
        policy = _policy(graph, preset, None)[0] if preset else None
        report = verify_against(graph, recording, policy=policy, dt=dt, inputs=x)
        _progress(f"policy: {_describe_policy(report.policy)}")
        if as_json:
            _echo_json(_report_json(report))
        else:
            click.echo(str(report))
        sys.exit(EXIT_OK if report.ok else EXIT_NO)
    if not names:
        raise NirbridgeError("--backends: name at least one backend (or give --against RECORDING)")
    selected = _split_names([names])
    if not selected:
        raise NirbridgeError("--backends: name at least one backend")
    for name in selected:  # an unknown name is a usage error, not a disagreement
        get_backend(name)
    graph = _load_graph(file)
    x = _input_for(graph, _load_array(input_path), input_path) if input_path else None
    policy = _explicit_policy(graph, preset, dt)
    _progress(f"verifying on {', '.join(selected)} ...")
    start = time.perf_counter()
    report = verify_(graph, backends=selected, inputs=x, policy=policy)
    _progress(f"done in {time.perf_counter() - start:.2f} s")
    if as_json:
        _echo_json(_report_json(report))
    else:
        click.echo(str(report))
    sys.exit(EXIT_OK if report.ok else EXIT_NO)


@cli.command()
@click.argument("file", metavar="FILE.nir")
@click.option("--data", "data", required=True, metavar="NAME|X.npy",
              help="A built-in dataset (digits, digits-dvs: its test split), or inputs shaped (time, samples, *features) with --labels.")
@click.option("--labels", "labels", metavar="Y.npy", help="Labels (samples,) of --data X.npy.")
@click.option("--backends", "names", metavar="A,B,...", help="Backends to convert to and evaluate (comma-separated); default: every installed backend.")
@click.option("--readout", default="spike_count", show_default=True, type=click.Choice(["spike_count", "membrane_sum", "membrane_max"]),
              help="Prediction: the output neuron with the most spikes, or the largest summed / peak potential of the layer driving the output.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1), help="Samples per batch.")
@POLICY_OPTION
@DT_OPTION
@click.option("--engine", type=click.Choice(["inprocess", "ray"]), default="inprocess", show_default=True,
              help="Run in this process, or shard batches over Ray workers (pip install 'nirbridge[ray]').")
@click.option("--address", metavar="ADDRESS", help="Ray cluster to join: 'auto' or ray://HOST:PORT; default: start a local Ray.")
@click.option("--workers", type=click.IntRange(min=1), help="Ray workers (default: as many as the cluster's CPUs allow).")
@click.option("--cpus-per-worker", default=1.0, show_default=True, type=click.FloatRange(min=0), help="CPUs each Ray worker reserves.")
@click.option("--gpus-per-worker", default=0.0, show_default=True, type=click.FloatRange(min=0), help="GPUs each Ray worker reserves.")
@click.option("--max-retries", default=2, show_default=True, type=click.IntRange(min=0), help="Times a batch whose Ray worker died is retried elsewhere.")
@click.option("--record", "record_dir", metavar="DIR", help="Write every model's activity on the whole dataset to DIR/<model>.h5 (NIR's data format).")
@JSON_OPTION
def evaluate(file: str, data: str, labels: str | None, names: str | None, readout: str, batch_size: int, preset: str | None,
             dt: float | None, engine: str, address: str | None, workers: int | None, cpus_per_worker: float,
             gpus_per_worker: float, max_retries: int, record_dir: str | None, as_json: bool) -> None:
    """Convert FILE to every backend and evaluate each on a whole dataset against the NumPy
    reference: accuracy, prediction agreement, differing output spikes, per spiking layer the
    differing spikes and where they first differ, and time per sample. Progress on stderr.

    Exit code 0 when every model agrees with the reference by verify's rules and every batch
    ran, 1 otherwise."""
    from .backends.registry import get_backend
    from .evaluation import evaluate as evaluate_

    selected = _split_names([names]) if names is not None else None
    for name in selected or []:  # an unknown name is a usage error, not a disagreement
        get_backend(name)
    if data.endswith(".npy") != (labels is not None):
        raise NirbridgeError("--data X.npy needs --labels Y.npy, and --labels goes with a .npy --data")
    if record_dir is not None:
        inputs = {Path(p).resolve() for p in (file, data, labels) if p and Path(p).exists()}
        targets = {Path(record_dir, f"{m}.h5").resolve() for m in ["reference", *(selected or [])]}
        if inputs & targets:
            raise NirbridgeError(f"--record {record_dir}: would write over an input ({', '.join(map(str, inputs & targets))})")
        if Path(record_dir).exists() and not Path(record_dir).is_dir():
            raise NirbridgeError(f"--record {record_dir}: not a directory")
    graph = _load_graph(file)
    source = (data, labels) if labels is not None else data
    result = evaluate_(graph, source, backends=selected, readout=readout, batch_size=batch_size,
                       policy=_explicit_policy(graph, preset, dt), record=record_dir is not None,
                       engine=None if engine == "inprocess" else engine, address=address, workers=workers,
                       cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, max_retries=max_retries)
    _progress(f"done in {result.seconds:.2f} s")
    if record_dir is not None:
        for path in result.save_recordings(record_dir):
            _progress(f"wrote {path}")
    if as_json:
        _echo_json(result.to_dict())
    else:
        click.echo(str(result))
    sys.exit(EXIT_OK if result.ok else EXIT_NO)


@cli.command()
@click.argument("file", metavar="FILE.nir")
@click.option("--input", "input_path", required=True, metavar="X.npy", help="Input array shaped (time, batch, *features).")
@click.option("--record", multiple=True, metavar="NODE", help="Nodes to plot (repeat, or comma-separated); default: every neuron node.")
@POLICY_OPTION
@DT_OPTION
@click.option("--compare", "compare_to", metavar="BACKEND", help="Also convert to BACKEND, run it, and overlay its result on the reference's.")
@click.option("--batch", default=0, show_default=True, type=click.IntRange(min=0), help="Which batch entry to draw.")
@click.option("--max-neurons", default=8, show_default=True, type=click.IntRange(min=1), help="Membrane traces per node (the most active neurons).")
@click.option("-o", "--output", "out", required=True, metavar="OUT.png", help="Where to write the figure.")
def plot(file: str, input_path: str, record: tuple[str, ...], preset: str | None, dt: float | None,
         compare_to: str | None, batch: int, max_neurons: int, out: str) -> None:
    """Plot the input raster and, per node, membrane potential and output spikes over time
    (NumPy reference), optionally overlaid with another backend's run."""
    from . import plot as plotting
    from .backends.registry import get_backend

    _check_output(out, file, input_path)
    graph = _load_graph(file)
    x = _input_for(graph, _load_array(input_path), input_path)
    if batch >= x.shape[1]:
        raise NirbridgeError(f"--batch {batch}: the input has batch size {x.shape[1]}")
    backend = get_backend(compare_to) if compare_to else None
    plotting.figure_format(out)  # fail before simulating: matplotlib missing, unknown format
    nodes = _split_names(record) or _default_record(graph)
    policy, origin = _policy(graph, preset, dt)
    _progress_policy(policy, origin)
    result = _simulate(graph, x, policy, nodes)
    other = None
    labels = ("numpy", compare_to or "")
    if backend is not None:
        from .conversion import plan, run

        _progress(f"converting to {compare_to} and running it ...")
        p = plan(graph, backend, policy=policy)
        if not p.report.ok:  # approximations are reported here, in one line
            _progress(f"warning: {p.report.summary()}: " + "; ".join(f"{g.node}: {g.reason}" for g in p.report.approximate))
        other = run(backend, p.build(strict=False, warn=False), x, record=tuple(nodes))
    fig = plotting.plot_result(
        result, nodes=nodes, compare=other, input=x, graph=graph, batch=batch,
        labels=labels, max_neurons=max_neurons, title=Path(file).name,
    )
    plotting.save_figure(fig, out)
    _progress(f"wrote {out}")


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="nirbridge")


if __name__ == "__main__":  # pragma: no cover
    main()
