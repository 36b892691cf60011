"""The `nirbridge` command line: every command, its exit codes, and one-line errors.

Most tests run the commands in-process with click's CliRunner; the bad-input tests run the
installed program in a subprocess, as a user would, to show the real exit code and stderr."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nirbridge.backends import registry as plugins
from nirbridge.backends.base import Backend, Handler, Support, exact
from nirbridge.backends.numpy import NumpyModel
from nirbridge.cli import cli
from nirbridge.io import load, save
from nirbridge.ir import Graph
from nirbridge.reference import simulate
from nirbridge.semantics import Policy, with_policy

F = np.float32
T, B = 40, 2
#: the dt the test network's parameters imply (r = tau/dt)
DT = 1e-4


# ----------------------------------------------------------------------------- fixtures


def _net(cuba: bool = False) -> Graph:
    """in (3) -> fc (Linear 4x3) -> lif (LIF, tau 1 ms, r = tau/dt = 10) -> out; optionally a
    CubaLIF layer after the LIF."""
    rng = np.random.default_rng(7)
    nodes = {
        "in": {"type": "Input", "shape": np.array([3])},
        "fc": {"type": "Linear", "weight": rng.uniform(0.6, 1.4, (4, 3)).astype(F)},
        "lif": {
            "type": "LIF", "tau": np.full(4, 1e-3, F), "r": np.full(4, 10, F), "v_leak": np.zeros(4, F),
            "v_threshold": np.ones(4, F), "v_reset": np.zeros(4, F),
        },
    }
    edges = [("in", "fc"), ("fc", "lif")]
    last, n = "lif", 4
    if cuba:
        nodes["cuba"] = {
            "type": "CubaLIF", "tau_syn": np.full(4, 5e-4, F), "tau_mem": np.full(4, 1e-3, F), "r": np.full(4, 10, F),
            "v_leak": np.zeros(4, F), "v_threshold": np.ones(4, F), "v_reset": np.zeros(4, F), "w_in": np.full(4, 5, F),
        }
        edges.append(("lif", "cuba"))
        last = "cuba"
    nodes["out"] = {"type": "Output", "shape": np.array([n])}
    edges.append((last, "out"))
    return Graph(nodes=nodes, edges=edges)


def _spikes(p: float = 0.3) -> np.ndarray:
    return (np.random.default_rng(1).random((T, B, 3)) < p).astype(F)


pytestmark = pytest.mark.usefixtures("builtin_backends_only")


@pytest.fixture
def files(tmp_path) -> types.SimpleNamespace:
    net, x = tmp_path / "net.nir", tmp_path / "x.npy"
    save(_net(), net)
    np.save(x, _spikes())
    return types.SimpleNamespace(dir=tmp_path, net=net, x=x)


class LimitedBackend(Backend):
    """A backend with fixed snnTorch semantics, Linear/Scale/LIF only and LIF with r = 1."""

    name = "limited"
    preset = "snntorch"
    description = "test backend"
    handlers = {
        "Linear": exact(maps_to="dense"),
        "Scale": exact(maps_to="gain"),
        "LIF": exact(maps_to="lif"),
        "CubaLIF": Handler(Support("unsupported", reason="no synaptic current", suggestion="use LIF")),
    }
    unit_r = frozenset({"LIF"})

    def build(self, plan):
        return NumpyModel(plan.graph, Policy.preset(self.preset, dt=plan.policy.dt))

    def simulate(self, native, x, *, record=()):
        return simulate(native.graph, x, policy=native.policy, record=list(record))


@pytest.fixture
def limited():
    """Register `limited` next to the built-in backend."""
    with plugins.temporary(LimitedBackend()):
        yield "limited"


def run(*args: str):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def one_error_line(stderr: str, *, progress: bool = False) -> str:
    """The error line; with `progress`, progress lines written before the failure may precede it."""
    lines = stderr.strip().splitlines()
    if not progress:
        assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert [ln for ln in lines if ln.startswith("nirbridge: error: ")] == lines[-1:], stderr
    assert "Traceback" not in stderr
    return lines[-1]


# ----------------------------------------------------------------------------- help


@pytest.mark.parametrize(
    "command, mentions",
    [
        ([], ["backends", "inspect", "check", "convert", "simulate", "verify", "plot", "Exit codes"]),
        (["backends"], ["--json"]),
        (["inspect"], ["FILE.nir", "--json"]),
        (["check"], ["--to", "--probe", "--json", "Exit code 0"]),
        (["convert"], ["--to", "-o, --output", "--no-strict", "--policy"]),
        (["simulate"], ["--input", "--record", "--policy", "--dt", "--float64", "outputs/<output node>"]),
        (["verify"], ["--backends", "--input", "--json"]),
        (["plot"], ["--input", "--record", "--compare", "--batch"]),
    ],
)
def test_help_everywhere(command, mentions):
    for flag in ("--help", "-h"):
        result = run(*command, flag)
        assert result.exit_code == 0
        assert result.stdout.startswith(f"Usage: {' '.join(['cli', *command])}")
        for text in mentions:
            assert text in result.stdout


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and "nirbridge, version 0.1.0" in result.stdout


# ----------------------------------------------------------------------------- backends


def test_backends_lists_name_distribution_preset_description():
    result = run("backends")
    assert result.exit_code == 0
    header, rule, *rows = result.stdout.splitlines()
    assert header.split() == ["name", "distribution", "preset", "description"]
    assert rows[0].split()[:3] == ["numpy", "nirbridge", "nir"]
    assert "failed" not in result.stdout
    data = json.loads(run("backends", "--json").stdout)
    assert data["failed_plugins"] == []
    assert data["backends"][0] | {"description": ""} == {"name": "numpy", "distribution": "nirbridge", "preset": "nir", "description": ""}


def test_backends_prints_and_writes_the_support_matrix(tmp_path):
    matrix = run("backends", "--matrix").stdout
    assert matrix.splitlines()[0] == "| NIR node | `numpy` |"
    assert "| CubaLIF | exact |" in matrix
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- support-matrix:start -->\nSTALE\n<!-- support-matrix:end -->\nrest\n")
    assert "updated" in run("backends", "--write-readme", readme).stdout
    text = readme.read_text()
    assert "STALE" not in text and "| CubaLIF | exact |" in text and text.endswith("rest\n")
    assert "already up to date" in run("backends", "--write-readme", readme).stdout


def test_backends_reports_plugins_that_failed_to_load(monkeypatch):
    class BrokenEntryPoint:
        name, value = "broken", "broken_plugin"
        dist = types.SimpleNamespace(name="nirbridge-broken")

        def load(self):
            raise ImportError("No module named 'frobnicate'")

    monkeypatch.delenv(plugins.DISABLE_ENV)
    monkeypatch.setattr(plugins, "_entry_points", lambda: [BrokenEntryPoint()])
    plugins.reset()
    with pytest.warns(plugins.PluginWarning, match="nirbridge-broken"):
        result = run("backends")
    assert result.exit_code == 0
    assert "numpy" in result.stdout  # the others keep working
    assert result.stdout.splitlines()[-2:] == [
        "plugins that failed to load:",
        "  nirbridge-broken (entry point 'broken'): ImportError: No module named 'frobnicate'",
    ]
    data = json.loads(run("backends", "--json").stdout)
    assert data["failed_plugins"] == [
        {"distribution": "nirbridge-broken", "entry_point": "broken", "error": "ImportError: No module named 'frobnicate'"}
    ]
    assert run("backends", "--strict").exit_code == 1  # asked for strictness


def test_a_plugin_that_prints_or_exits_at_import_is_a_failure_and_json_stays_clean(monkeypatch):
    class NoisyEntryPoint:
        name, value = "noisy", "noisy_plugin"
        dist = types.SimpleNamespace(name="nirbridge-noisy")

        def load(self):
            print("hello from a plugin")
            raise SystemExit(3)

    monkeypatch.delenv(plugins.DISABLE_ENV)
    monkeypatch.setattr(plugins, "_entry_points", lambda: [NoisyEntryPoint()])
    plugins.reset()
    with pytest.warns(plugins.PluginWarning, match="nirbridge-noisy.*SystemExit"):
        result = run("backends", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)  # nothing the plugin printed is on stdout
    assert [b["name"] for b in data["backends"]] == ["numpy"]
    assert data["failed_plugins"][0]["error"] == "SystemExit: 3"


# ----------------------------------------------------------------------------- inspect


def test_inspect_shows_summary_inferred_dt_and_policy(files):
    result = run("inspect", files.net)
    assert result.exit_code == 0
    out = result.stdout
    assert out.startswith(_net().summary())
    assert "dt inferred from parameters: 0.0001 s (confidence low)" in out
    assert "  lif: tau/r = 0.0001" in out
    assert "policy in metadata: none" in out

    stamped = files.dir / "stamped.nir"
    save(with_policy(_net(), Policy.preset("snntorch", dt=1e-3)), stamped)
    out = run("inspect", stamped).stdout
    assert "policy in metadata: dt=0.001 integration=euler reset=subtract reset_timing=next_step" in out


def test_inspect_json(files):
    stamped = files.dir / "stamped.nir"
    policy = Policy.preset("norse", dt=2e-4)
    save(with_policy(_net(), policy), stamped)
    result = run("inspect", stamped, "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["file"] == str(stamped)
    assert [(n["name"], n["type"], n["input_shape"], n["output_shape"], n["parameters"]) for n in data["nodes"]] == [
        ("in", "Input", [3], [3], 0), ("fc", "Linear", [3], [4], 12), ("lif", "LIF", [4], [4], 20), ("out", "Output", [4], [4], 0),
    ]
    assert data["edges"] == [["in", "fc"], ["fc", "lif"], ["lif", "out"]]
    assert data["parameters"] == 32
    assert data["dt_inference"]["dt"] == pytest.approx(1e-4)
    assert data["dt_inference"]["evidence"] == {"lif": "tau/r = 0.0001"}
    assert Policy(**data["policy"]) == policy


# ----------------------------------------------------------------------------- check


def test_check_exit_code_says_whether_the_conversion_is_exact(files, limited):
    result = run("check", files.net, "--to", "numpy")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == f"{files.net} -> numpy: 5 exact, 0 approximate, 0 unsupported"

    result = run("check", files.net, "--to", "limited")  # nir semantics on a snnTorch-only backend
    assert result.exit_code == 1
    policy_row = next(line for line in result.stdout.splitlines() if line.startswith("(policy)"))
    assert policy_row.split()[:3] == ["(policy)", "Policy", "approximate"]
    assert "reset: graph uses 'to_reset', backend runs 'subtract'" in policy_row

    result = run("check", files.net, "--to", "limited", "--policy", "snntorch", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["target"] == "limited"
    lif = next(g for g in data["gaps"] if g["node"] == "lif")
    assert lif["status"] == "exact" and lif["maps_to"].startswith("Scale(r)")


def test_check_probe_measures_the_difference(files, limited):
    result = run("check", files.net, "--to", "limited", "--probe", files.x, "--json")
    assert result.exit_code == 1
    gap = next(g for g in json.loads(result.stdout)["gaps"] if g["node"] == "(policy)")
    assert gap["status"] == "approximate"
    assert 0 < gap["measured"] <= 1  # subtract vs reset-to-zero changes spikes on this input


def test_check_reports_unsupported_nodes(tmp_path, limited):
    save(_net(cuba=True), tmp_path / "cuba.nir")
    result = run("check", tmp_path / "cuba.nir", "--to", "limited", "--policy", "snntorch")
    assert result.exit_code == 1
    row = next(line for line in result.stdout.splitlines() if line.startswith("cuba"))
    assert "unsupported" in row and "no synaptic current; suggestion: use LIF" in row


# ----------------------------------------------------------------------------- convert


def test_convert_writes_the_graph_the_backend_runs(files, limited):
    out = files.dir / "limited.nir"
    result = run("convert", files.net, "--to", "limited", "--policy", "snntorch", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert f"wrote {out} (5 nodes) for backend limited" in result.stderr
    assert "rewritten for limited: lif" in result.stderr
    written = load(out)
    assert list(written.nodes) == ["in", "fc", "lif_r", "lif", "out"]
    assert np.all(written.nodes["lif"].r == 1)
    np.testing.assert_array_equal(written.nodes["lif_r"].scale, _net().nodes["lif"].r)
    policy = Policy.from_metadata(written.metadata)
    assert policy == Policy.preset("snntorch")
    # what the file computes is what the original computes under that policy
    x = _spikes()
    a = simulate(_net(), x, policy=policy, record=["lif"]).states["lif"]["spikes"]
    b = simulate(written, x, policy=policy, record=["lif"]).states["lif"]["spikes"]
    assert a.mean() > 0.05
    np.testing.assert_array_equal(a, b)


def test_convert_refuses_approximations_unless_no_strict(files, limited):
    out = files.dir / "out.nir"
    result = run("convert", files.net, "--to", "limited", "-o", out)
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert line.startswith("nirbridge: error: cannot convert exactly to limited: (policy) approximate: ")
    assert line.endswith("(run `nirbridge check` for the full report)")
    assert not out.exists()

    result = run("convert", files.net, "--to", "limited", "--no-strict", "-o", out)
    assert result.exit_code == 0
    assert "warning: approximate conversion" in result.stderr
    assert "lif_r" in load(out).nodes


def test_convert_never_writes_unsupported_nodes(tmp_path, limited):
    save(_net(cuba=True), tmp_path / "cuba.nir")
    out = tmp_path / "out.nir"
    result = run("convert", tmp_path / "cuba.nir", "--to", "limited", "--policy", "snntorch", "--no-strict", "-o", out)
    assert result.exit_code == 2
    assert "cuba unsupported: no synaptic current" in one_error_line(result.stderr)
    assert not out.exists()


def test_convert_to_nir_stores_the_policy(files):
    out = files.dir / "stamped.nir"
    result = run("convert", files.net, "--to", "nir", "--policy", "norse", "--dt", "1e-3", "-o", out)
    assert result.exit_code == 0
    written = load(out)
    assert Policy.from_metadata(written.metadata) == Policy.preset("norse", dt=1e-3)
    assert written.nodes.keys() == _net().nodes.keys()


def test_convert_into_a_missing_directory(files):
    result = run("convert", files.net, "--to", "numpy", "-o", files.dir / "nope" / "out.nir")
    assert result.exit_code == 2
    assert "does not exist" in one_error_line(result.stderr)


# ----------------------------------------------------------------------------- -o never destroys what it was not asked to write


def _snapshot(directory: Path) -> dict[str, tuple]:
    """Every entry: its kind, inode, and the bytes of regular files."""
    out = {}
    for p in sorted(directory.iterdir()):
        st = os.lstat(p)
        out[p.name] = (stat.S_IFMT(st.st_mode), st.st_ino, p.read_bytes() if stat.S_ISREG(st.st_mode) else None)
    return out


OUTPUT_COMMANDS = {
    "convert": lambda out: ["convert", "net.nir", "--to", "nir", "-o", out],
    "simulate": lambda out: ["simulate", "net.nir", "--input", "x.npy", "-o", out],
    "plot": lambda out: ["plot", "net.nir", "--input", "x.npy", "-o", out],
}


def _make_outputs(d: Path) -> None:
    os.link(d / "net.nir", d / "hard.nir")
    (d / "link.nir").symlink_to("net.nir")
    (d / "xlink.npy").symlink_to(d / "x.npy")
    (d / "outdir").mkdir()
    os.mkfifo(d / "pipe.out")
    (d / "dangling.out").symlink_to("nowhere")


@pytest.mark.parametrize(
    "out, message",
    [
        ("net.nir", "net.nir: is an input of this command; write the output to another file"),
        ("./net.nir", "./net.nir: is an input of this command (net.nir); write the output to another file"),
        ("hard.nir", "hard.nir: is an input of this command (net.nir); write the output to another file"),
        ("link.nir", "link.nir: is an input of this command (net.nir); write the output to another file"),
        ("outdir", "outdir: is a directory; give a file name"),
        ("pipe.out", "pipe.out: is a FIFO, not a regular file; nirbridge replaces only regular files"),
        ("new.out/", "new.out/: names a directory (ends in '/'); give a file name"),
        ("dangling.out", "dangling.out: is a symbolic link to 'nowhere', which does not exist; not writing through it"),
    ],
)
@pytest.mark.parametrize("command", OUTPUT_COMMANDS)
def test_output_refused_before_anything_runs(files, monkeypatch, command, out, message):
    """Exit code 2, one line, and the directory exactly as it was (inputs, FIFO, links)."""
    if command == "plot":
        pytest.importorskip("matplotlib")
    _make_outputs(files.dir)
    before = _snapshot(files.dir)
    monkeypatch.chdir(files.dir)
    result = CliRunner().invoke(cli, OUTPUT_COMMANDS[command](out))
    assert result.exit_code == 2, result.output
    assert one_error_line(result.stderr) == f"nirbridge: error: {message}"
    assert _snapshot(files.dir) == before


@pytest.mark.parametrize("command, out", [("simulate", "x.npy"), ("simulate", "xlink.npy"), ("plot", "x.npy")])
def test_the_input_array_is_an_input_too(files, command, out):
    if command == "plot":
        pytest.importorskip("matplotlib")
    _make_outputs(files.dir)
    before = _snapshot(files.dir)
    proc = _nirbridge(*OUTPUT_COMMANDS[command](out), cwd=files.dir)
    assert proc.returncode == 2
    assert one_error_line(proc.stderr).startswith(f"nirbridge: error: {out}: is an input of this command")
    assert _snapshot(files.dir) == before


def test_a_symlinked_output_is_written_through(files):
    (files.dir / "latest.nir").symlink_to("run1.nir")
    (files.dir / "run1.nir").write_bytes(b"old")
    result = run("convert", files.net, "--to", "nir", "-o", files.dir / "latest.nir")
    assert result.exit_code == 0, result.stderr
    assert os.readlink(files.dir / "latest.nir") == "run1.nir"
    assert load(files.dir / "run1.nir").nodes.keys() == _net().nodes.keys()


def test_a_254_byte_output_name(files):
    out = files.dir / ("ü" * 125 + ".nir")
    result = run("convert", files.net, "--to", "nir", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert load(out).nodes.keys() == _net().nodes.keys()


@pytest.mark.parametrize("command, out", [("convert", "out.nir"), ("simulate", "out.npz"), ("simulate", "out.h5")])
def test_a_failing_write_is_one_line_and_keeps_the_old_output(files, command, out):
    """The kernel refuses the write (RLIMIT_FSIZE in the child: EFBIG, as a full disk gives
    ENOSPC): exit code 2, one line naming the output, the old file intact, no temporary file.
    (A recording, out.h5, written by HDF5 itself died here by SIGSEGV with gzip.)"""
    import resource

    (files.dir / out).write_bytes(b"old output")
    proc = subprocess.run(
        [sys.executable, "-m", "nirbridge.cli", *OUTPUT_COMMANDS[command](out)], capture_output=True, text=True, cwd=files.dir,
        timeout=120, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000)),
    )
    assert proc.returncode == 2, proc.stderr
    assert one_error_line(proc.stderr, progress=True) == f"nirbridge: error: file too large: {out}"
    assert (files.dir / out).read_bytes() == b"old output"
    assert sorted(p.name for p in files.dir.iterdir()) == sorted(["net.nir", "x.npy", out])


def test_convert_says_in_one_line_when_nir_read_needs_its_type_check_off(files):
    scalar = Graph.from_dict({
        "nodes": {"in": {"type": "Input", "shape": np.array([3])},
                  "lif": {"type": "LIF", **{k: np.array(v) for k, v in {"tau": 1e-3, "r": 10.0, "v_leak": 0.0, "v_threshold": 1.0,
                                                                         "v_reset": 0.0}.items()}},
                  "out": {"type": "Output", "shape": np.array([3])}},
        "edges": [("in", "lif"), ("lif", "out")],
    })
    save(scalar, files.net)
    out = files.dir / "out.nir"
    result = run("convert", files.net, "--to", "nir", "-o", out)
    assert result.exit_code == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warning == [f"warning: {out}: nir.read reads this file only with type_check=False (nodes.lif: 0-d parameters "
                       "(one value for all neurons)); nirbridge.load reads it exactly"]


# ----------------------------------------------------------------------------- simulate


def test_simulate_writes_outputs_and_states(files):
    out = files.dir / "out.npz"
    result = run("simulate", files.net, "--input", files.x, "--record", "lif", "-o", out)
    assert result.exit_code == 0, result.stderr
    expected_policy = Policy.preset("nir", dt=DT)  # the dt the parameters imply
    reference = simulate(_net(), _spikes(), policy=expected_policy, record=["lif"])
    with np.load(out, allow_pickle=False) as data:
        assert sorted(data.files) == ["outputs/out", "policy", "states/lif/spikes", "states/lif/v"]
        np.testing.assert_array_equal(data["outputs/out"], reference.output)
        np.testing.assert_array_equal(data["states/lif/v"], reference.states["lif"]["v"])
        assert data["states/lif/spikes"].dtype == np.float32
        assert Policy(**json.loads(str(data["policy"]))) == expected_policy
    n_spikes = int(reference.output.sum())
    assert n_spikes > 10
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[2:]}
    assert rows["outputs/out"] == ["(40,", "2,", "4)", "float32", str(n_spikes)]
    assert rows["states/lif/v"][-1] == "-"
    assert "  (preset 'nir' at the dt inferred from the parameters" in result.stderr
    assert f"wrote {out}" in result.stderr


def test_simulate_policy_dt_float64_and_unbatched_input(files):
    x = files.dir / "x2.npy"
    np.save(x, _spikes()[:, 0])  # (time, features): runs as batch 1
    out = files.dir / "out.npz"
    result = run("simulate", files.net, "--input", x, "--record", "lif,fc", "--policy", "snntorch", "--dt", "2e-4", "--float64", "-o", out)
    assert result.exit_code == 0, result.stderr
    policy = Policy.preset("snntorch", dt=2e-4)
    reference = simulate(_net(), _spikes()[:, :1], policy=policy, record=["lif", "fc"], dtype=np.float64)
    with np.load(out, allow_pickle=False) as data:
        assert data["outputs/out"].shape == (T, 1, 4) and data["outputs/out"].dtype == np.float64
        np.testing.assert_array_equal(data["states/lif/v"], reference.states["lif"]["v"])
        np.testing.assert_array_equal(data["states/fc/y"], reference.states["fc"]["y"])
        assert Policy(**json.loads(str(data["policy"]))) == policy
    assert "  (chosen with --policy snntorch, dt from --dt)" in result.stderr


def test_simulate_unknown_record_node_writes_nothing(files):
    out = files.dir / "out.npz"
    result = run("simulate", files.net, "--input", files.x, "--record", "lif2", "-o", out)
    assert result.exit_code == 2
    assert "record.lif2: no such node (nodes: fc, in, lif, out)" in one_error_line(result.stderr, progress=True)
    assert not out.exists() and sorted(p.name for p in files.dir.iterdir()) == ["net.nir", "x.npy"]


def test_simulate_rejects_non_finite_input(files):
    x = _spikes()
    x[3, 1, 2] = np.nan
    np.save(files.dir / "nan.npy", x)
    result = run("simulate", files.net, "--input", files.dir / "nan.npy", "-o", files.dir / "o.npz")
    assert result.exit_code == 2
    assert one_error_line(result.stderr).endswith("nan.npy: input[3, 1, 2]: must be finite, got nan")


# ----------------------------------------------------------------------------- verify


def test_verify_exit_codes(files, limited):
    result = run("verify", files.net, "--backends", "numpy")
    assert result.exit_code == 0, result.stdout
    assert ": OK" in result.stdout.splitlines()[0]
    assert "verifying on numpy" in result.stderr

    result = run("verify", files.net, "--backends", "numpy,limited", "--input", files.x, "--json")
    assert result.exit_code == 1  # limited runs snnTorch semantics on a graph made for nir's
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["input_shape"] == [T, B, 3]
    assert data["backends"]["numpy"]["ok"] is True
    assert data["backends"]["limited"]["nodes"]["lif"]["spike_diffs"] > 0

    result = run("verify", files.net, "--backends", "numpy,limited", "--input", files.x, "--policy", "snntorch", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["backends"]["limited"]["ok"] is True


# ----------------------------------------------------------------------------- plot


def test_plot_writes_a_png(files):
    pytest.importorskip("matplotlib")
    out = files.dir / "run.png"
    result = run("plot", files.net, "--input", files.x, "--compare", "numpy", "-o", out)
    assert result.exit_code == 0, result.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert f"wrote {out}" in result.stderr


def test_plot_checks_the_format_before_simulating(files):
    pytest.importorskip("matplotlib")
    result = run("plot", files.net, "--input", files.x, "-o", files.dir / "run.xyz")
    assert result.exit_code == 2
    assert "cannot write a .xyz figure" in one_error_line(result.stderr)


def test_plot_batch_out_of_range(files):
    pytest.importorskip("matplotlib")
    result = run("plot", files.net, "--input", files.x, "--batch", "5", "-o", files.dir / "run.png")
    assert result.exit_code == 2
    assert "--batch 5: the input has batch size 2" in one_error_line(result.stderr)


# ----------------------------------------------------------------------------- real processes


def _nirbridge(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nirbridge.cli", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=120, env=os.environ.copy(),
    )


def test_console_script_runs(files):
    script = Path(sys.executable).with_name("nirbridge")
    proc = subprocess.run([script, "simulate", "net.nir", "--input", "x.npy", "-o", "out.npz"],
                          capture_output=True, text=True, cwd=files.dir, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[2].startswith("outputs/out")
    assert (files.dir / "out.npz").is_file()
    proc = subprocess.run([script, "backends", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [b["name"] for b in json.loads(proc.stdout)["backends"]] == ["numpy"]


MISSING = {
    "inspect": ["inspect", "missing.nir"],
    "check": ["check", "missing.nir", "--to", "numpy"],
    "convert": ["convert", "missing.nir", "--to", "numpy", "-o", "out.nir"],
    "simulate": ["simulate", "missing.nir", "--input", "x.npy", "-o", "out.npz"],
    "verify": ["verify", "missing.nir", "--backends", "numpy"],
    "plot": ["plot", "missing.nir", "--input", "x.npy", "-o", "out.png"],
}


@pytest.mark.parametrize("command", MISSING)
def test_missing_file_exit_2_one_line(files, command):
    proc = _nirbridge(*MISSING[command], cwd=files.dir)
    assert proc.returncode == 2
    assert one_error_line(proc.stderr) == "nirbridge: error: missing.nir: No such file or directory"
    assert proc.stdout == ""
    assert sorted(p.name for p in files.dir.iterdir()) == ["net.nir", "x.npy"]


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"this is not HDF5", "garbage.nir: not an HDF5 file or damaged"),
        ("truncated", "garbage.nir: "),
    ],
)
def test_malformed_file_exit_2_one_line(files, content, expected):
    bad = files.dir / "garbage.nir"
    bad.write_bytes(content if isinstance(content, bytes) else files.net.read_bytes()[:700])
    proc = _nirbridge("inspect", bad.name, cwd=files.dir)
    assert proc.returncode == 2
    assert one_error_line(proc.stderr).startswith(f"nirbridge: error: {expected}")


UNKNOWN = {
    "check": ["check", "net.nir", "--to", "nosuch"],
    "convert": ["convert", "net.nir", "--to", "nosuch", "-o", "out.nir"],
    "verify": ["verify", "net.nir", "--backends", "numpy,nosuch"],
    "plot": ["plot", "net.nir", "--input", "x.npy", "--compare", "nosuch", "-o", "out.png"],
}


@pytest.mark.parametrize("command", UNKNOWN)
def test_unknown_backend_exit_2_one_line(files, command):
    if command == "plot":
        pytest.importorskip("matplotlib")
    proc = _nirbridge(*UNKNOWN[command], cwd=files.dir)
    assert proc.returncode == 2
    assert one_error_line(proc.stderr) == "nirbridge: error: unknown backend 'nosuch'; installed: numpy"
    assert proc.stdout == ""
    assert sorted(p.name for p in files.dir.iterdir()) == ["net.nir", "x.npy"]


@pytest.mark.parametrize(
    "name, make, expected",
    [
        ("nope.npy", None, "nope.npy: no such file"),
        ("garbage.npy", lambda p: p.write_bytes(b"\x00" * 64), "garbage.npy: not a .npy file (saved with numpy.save)"),
        ("objects.npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True),
         "objects.npy: holds Python objects (dtype object), which are never loaded; save a numeric array"),
    ],
)
def test_bad_input_array_exit_2_one_line(files, name, make, expected):
    if make is not None:
        make(files.dir / name)
    proc = _nirbridge("simulate", "net.nir", "--input", name, "-o", "out.npz", cwd=files.dir)
    assert proc.returncode == 2
    assert one_error_line(proc.stderr) == f"nirbridge: error: {expected}"
    assert not (files.dir / "out.npz").exists()
