"""Recordings in NIR's data format: written so nir.read_data reads them, read as safely as graphs,
events on the time grid, and `verify --against`: with recordings made here and with the NIR
paper's LIF traces (../shared/fixtures/nir-paper/01_lif, skipped when absent)."""

from __future__ import annotations

import subprocess
import sys

import h5py
import nir
import numpy as np
import pytest

from nirbridge.errors import NirFormatError, ResourceLimitError, UnsafeFileError
from nirbridge.io import load, save
from nirbridge.ir import Graph
from nirbridge.recording import events_to_grid, from_nir_data, load_recording, save_recording, to_nir_data, verify_against
from nirbridge.reference import simulate
from nirbridge.semantics import Policy

F = np.float32
DT = 1e-4
POLICY = Policy.preset("nir", dt=DT)
pytestmark = pytest.mark.usefixtures("builtin_backends_only")


def _lif(n):
    return {"type": "LIF", "tau": np.full(n, 1e-3, F), "r": np.full(n, 10, F), "v_leak": np.zeros(n, F),
            "v_threshold": np.ones(n, F), "v_reset": np.zeros(n, F)}


def _net() -> Graph:
    """in (3) -> fc -> sub (nested: in -> lif (2, 2) -> out) -> out: a nested neuron with a 2-d shape."""
    rng = np.random.default_rng(2)
    sub = {"type": "NIRGraph", "nodes": {"i": {"type": "Input", "shape": np.array([4])},
                                         "lif": _lif(4), "o": {"type": "Output", "shape": np.array([4])}},
           "edges": [("i", "lif"), ("lif", "o")]}
    nodes = {"in": {"type": "Input", "shape": np.array([3])},
             "fc": {"type": "Linear", "weight": rng.uniform(0.5, 1.5, (4, 3)).astype(F)},
             "sub": sub, "out": {"type": "Output", "shape": np.array([4])}}
    return Graph(nodes=nodes, edges=[("in", "fc"), ("fc", "sub"), ("sub", "out")], metadata=POLICY.to_metadata())


@pytest.fixture
def run(tmp_path):
    graph = _net()
    x = (np.random.default_rng(4).random((60, 3, 3)) < 0.3).astype(F)
    result = simulate(graph, x, policy=POLICY, record=["sub.lif", "fc"])
    path = tmp_path / "run.h5"
    save_recording(to_nir_data(result, dt=DT, graph=graph, inputs=x), path)
    return graph, x, result, path


def test_nir_reads_what_we_write_and_we_read_what_nir_writes(run, tmp_path):
    graph, x, result, path = run
    data = nir.read_data(str(path))
    lif = data.nodes["sub"].nodes["lif"].observables  # nested graph data for a nested node
    assert lif["spikes"].data.dtype == bool and lif["spikes"].data.shape == (3, 60, 4) and lif["v"].dt == DT
    np.testing.assert_array_equal(lif["v"].data, np.moveaxis(result.states["sub.lif"]["v"], 1, 0))
    assert result.states["sub.lif"]["spikes"].mean() > 0.05  # it fires
    np.testing.assert_array_equal(data.nodes["in"].observables["y"].data, np.moveaxis(x, 1, 0))
    flat = nir.NIRGraphData({k: v for k, v in data.nodes.items() if k != "sub"})  # nir.write_data cannot nest
    nir.write_data(str(tmp_path / "nir.h5"), flat)
    back = load_recording(tmp_path / "nir.h5")
    np.testing.assert_array_equal(back.nodes["fc"].observables["y"].data, data.nodes["fc"].observables["y"].data)
    got, inputs, dt, problems = from_nir_data(load_recording(path), graph)
    assert dt == DT and not problems
    np.testing.assert_array_equal(inputs["in"], x)
    np.testing.assert_array_equal(got.states["sub.lif"]["spikes"], result.states["sub.lif"]["spikes"])
    np.testing.assert_array_equal(got.outputs["out"], result.outputs["out"])


def test_a_failed_write_leaves_the_old_recording(run, monkeypatch):
    _, _, _, path = run
    before = path.read_bytes()
    bad = nir.NIRGraphData({"a/b": nir.NIRNodeData({"v": nir.TimeGriddedData(np.zeros((1, 2, 3)), DT)})})
    with pytest.raises(Exception, match="without '/'"):
        save_recording(bad, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.h5"]


def test_event_times_at_whole_steps_stay_in_their_step():
    steps = np.arange(2000)
    times = (steps * DT)[None, :]
    events = nir.EventData(np.zeros_like(times, dtype=np.int64), times, 1, 2000 * DT)
    grid = events_to_grid(events, DT)
    np.testing.assert_array_equal(np.flatnonzero(grid[0, :, 0]), steps)
    lost = np.count_nonzero(~events.to_time_gridded(DT).data[0, :, 0])
    assert lost > 0  # nir 1.0.8's floor(t / dt) moves some of these events a step early
    valued = nir.ValuedEventData(np.array([[1, -1]]), np.array([[2.5 * DT, np.inf]]), 3, 5 * DT, np.array([[0.7, 9.0]]))
    g = events_to_grid(valued, DT)
    assert g.shape == (1, 5, 3) and g[0, 2, 1] == 0.7 and g.sum() == pytest.approx(0.7)
    with pytest.raises(NirFormatError, match="outside 3 neurons"):
        events_to_grid(nir.EventData(np.array([[3]]), np.array([[0.0]]), 3, 5 * DT), DT)


def test_spike_events_compare_like_gridded_spikes(run, tmp_path):
    graph, x, result, _ = run
    spikes = result.states["sub.lif"]["spikes"]  # (time, batch, 4)
    gridded = nir.TimeGriddedData(np.moveaxis(spikes, 1, 0) != 0, DT)
    data = nir.NIRGraphData({"in": nir.NIRNodeData({"y": nir.TimeGriddedData(np.moveaxis(x, 1, 0), DT)}),
                             "sub": nir.NIRGraphData({"lif": nir.NIRNodeData({"spikes": gridded.to_event(200)})})})
    report = verify_against(graph, data)
    assert report.ok and report.results["recording"].nodes["sub.lif"].spike_total == spikes.size


def test_verify_against_a_run_made_here_and_a_changed_one(run, tmp_path):
    graph, x, result, path = run
    report = verify_against(graph, path)
    assert report.ok and report.results["run.h5"].nodes["sub.lif"].identical
    spikes = result.states["sub.lif"]["spikes"].copy()
    step, sample, neuron = 17, 1, 2
    spikes[step, sample, neuron] = 1 - spikes[step, sample, neuron]
    changed = type(result)(outputs=result.outputs, states={"sub.lif": {"spikes": spikes}})
    save_recording(to_nir_data(changed, dt=DT, graph=graph, inputs=x), tmp_path / "changed.h5")
    report = verify_against(graph, tmp_path / "changed.h5")
    cmp = report.results["changed.h5"].nodes["sub.lif"]
    assert not report.ok and cmp.spike_diffs == 1 and cmp.first_diff_step == step


def test_a_recording_at_another_dt_is_compared_at_its_dt_and_says_so(run, tmp_path):
    graph, x, _, _ = run
    coarse = simulate(graph, x, policy=Policy.preset("nir", dt=2 * DT), record=["sub.lif"])
    save_recording(to_nir_data(coarse, dt=2 * DT, graph=graph, inputs=x), tmp_path / "coarse.h5")
    report = verify_against(graph, tmp_path / "coarse.h5")
    assert report.ok and report.policy.dt == 2 * DT
    forced = verify_against(graph, tmp_path / "coarse.h5", dt=DT)
    assert not forced.ok and "recorded at dt = 0.0002, compared with the reference at dt = 0.0001" in forced.notes[0]


def test_recordings_without_input_or_with_foreign_nodes(run, tmp_path):
    graph, x, result, _ = run
    data = to_nir_data(result, dt=DT, graph=graph)  # no inputs
    with pytest.raises(NirFormatError, match="holds no input"):
        verify_against(graph, data)
    report = verify_against(graph, data, inputs=x)
    assert report.ok
    data.nodes["ghost"] = nir.NIRNodeData({"v": nir.TimeGriddedData(np.zeros((3, 60, 1)), DT)})
    data.nodes["fc"].observables["w"] = nir.TimeGriddedData(np.zeros((3, 60, 4)), DT)
    report = verify_against(graph, data, inputs=x)
    assert report.ok and any("nodes.ghost" in n for n in report.notes) and any("nodes.fc.w" in n for n in report.notes)
    data.nodes["fc"].observables["y"] = nir.TimeGriddedData(np.zeros((3, 60, 5)), DT)
    with pytest.raises(NirFormatError, match="5 neurons recorded, the node has 4"):
        verify_against(graph, data, inputs=x)


# ----------------------------------------------------------------------------- hostile files


def _valid(f: h5py.File) -> h5py.Group:
    f.attrs["__type__"] = "NIRGraphData"
    node = f.create_group("nodes").create_group("a")
    node.attrs["__type__"] = "NIRNodeData"
    obs = node.create_group("observables").create_group("v")
    obs.attrs["__type__"] = "TimeGriddedData"
    obs.attrs["dt"] = 1e-4
    return obs


def _file(path, build):
    with h5py.File(path, "w") as f:
        build(f)
    return path


@pytest.mark.parametrize(
    "name, build, error, message",
    [
        ("soft-link", lambda f: _valid(f).__setitem__("data", h5py.SoftLink("/elsewhere")), UnsafeFileError, "soft link"),
        ("external-link", lambda f: _valid(f).__setitem__("data", h5py.ExternalLink("/etc/hostname", "/x")), UnsafeFileError, "external link"),
        ("external-storage", lambda f: _valid(f).create_dataset("data", (1, 2, 3), "f4", external=[("/etc/hostname", 0, 24)]),
         UnsafeFileError, "external storage"),
        ("bomb", lambda f: _valid(f).create_dataset("data", (1 << 20, 1 << 10, 1 << 10), "f4", chunks=(1, 64, 64), compression="gzip"),
         ResourceLimitError, "per-array limit"),
        ("no-type", lambda f: f.create_group("nodes"), NirFormatError, "not a NIR data file"),
        ("graph-file", lambda f: f.create_dataset("version", data="1.0.8"), NirFormatError, "expected NIRGraphData"),
        ("bad-type", lambda f: _valid(f).attrs.__setitem__("__type__", "Pickle"), NirFormatError, "nodes.a.observables.v: expected TimeGriddedData"),
        ("no-dt", lambda f: (_valid(f).create_dataset("data", data=np.zeros((1, 2, 3))), f["nodes/a/observables/v"].attrs.__delitem__("dt")),
         NirFormatError, "v.dt: attribute must be a positive number, got None"),
        ("array-attr", lambda f: (_valid(f).create_dataset("data", data=np.zeros((1, 2, 3))), f["nodes/a/observables/v"].attrs.__setitem__("dt", np.zeros(1 << 12))),
         NirFormatError, "must be a scalar"),
        ("two-dims", lambda f: _valid(f).create_dataset("data", data=np.zeros((2, 3))), NirFormatError, "must have 3 dimensions"),
        ("strings", lambda f: _valid(f).create_dataset("data", data=np.array([[["a"]]], dtype=object), dtype=h5py.string_dtype()),
         NirFormatError, "must be a numeric array"),
        ("nan", lambda f: _valid(f).create_dataset("data", data=np.full((1, 2, 3), np.nan)), NirFormatError, r"data\[0, 0, 0\]: must be finite"),
        ("extra-key", lambda f: (_valid(f).create_dataset("data", data=np.zeros((1, 2, 3))), f.create_dataset("junk", data=1)),
         NirFormatError, "junk: unknown key"),
    ],
)
def test_unsafe_or_malformed_recordings_are_refused_with_the_place_named(tmp_path, name, build, error, message):
    path = _file(tmp_path / f"{name}.h5", build)
    with pytest.raises(error, match=message) as info:
        load_recording(path)
    assert str(path) in str(info.value)


def test_recordings_nested_past_the_depth_limit_are_refused(tmp_path):
    def build(f):
        g = f
        for _ in range(6):
            g.attrs["__type__"] = "NIRGraphData"
            g = g.create_group("nodes").create_group("n")
        g.attrs["__type__"] = "NIRGraphData"
        g.create_group("nodes")

    path = _file(tmp_path / "deep.h5", build)
    assert load_recording(path, max_depth=6) is not None
    with pytest.raises((NirFormatError, ResourceLimitError), match="deeper than"):
        load_recording(path, max_depth=3)


# ----------------------------------------------------------------------------- the NIR paper's traces


def _paper_recording(fixtures_dir, platform: str, path) -> None:
    """lif_<platform>.csv (rows: steps; columns: input, voltage, spike; dt = 1e-4) as NIR data
    for lif_norse.nir (Input 'input', LIF '1')."""
    table = np.loadtxt(fixtures_dir / "01_lif" / f"lif_{platform}.csv", delimiter=",")
    data = nir.NIRGraphData({
        "input": nir.NIRNodeData({"y": nir.TimeGriddedData(table[None, :, 0:1].astype(F), DT)}),
        "1": nir.NIRNodeData({"v": nir.TimeGriddedData(table[None, :, 1:2], DT),
                              "spikes": nir.TimeGriddedData(table[None, :, 2:3] != 0, DT)}),
    })
    save_recording(data, path)


@pytest.fixture
def paper_lif(fixtures_dir):
    return load(fixtures_dir / "01_lif" / "lif_norse.nir")


def test_norse_trace_of_the_paper_verifies_under_the_norse_preset(fixtures_dir, paper_lif, tmp_path):
    _paper_recording(fixtures_dir, "norse", tmp_path / "norse.h5")
    report = verify_against(paper_lif, tmp_path / "norse.h5", policy=Policy.preset("norse"))
    cmp = report.results["norse.h5"].nodes["1"]
    assert report.ok and cmp.spike_diffs == 0 and cmp.spike_total == 1000
    assert cmp.max_dv < 1e-7  # measured 4.8e-8: the CSV's own float32 rounding
    assert report.rates["1"] == pytest.approx(4 / 1000)


def test_other_platforms_traces_show_where_they_differ(fixtures_dir, paper_lif, tmp_path):
    """Lava steps one step later (spikes at 461, 511, 711, 761 instead of 460, 510, 710, 760):
    8 differing spike entries; the exact solution spikes at the same steps but resets inside
    the step, so its potentials differ from the first spike on."""
    _paper_recording(fixtures_dir, "lava_cpu_float", tmp_path / "lava.h5")
    lava = verify_against(paper_lif, tmp_path / "lava.h5", policy=Policy.preset("norse")).results["lava.h5"].nodes["1"]
    assert not lava.ok and lava.spike_diffs == 8
    _paper_recording(fixtures_dir, "exact", tmp_path / "exact.h5")
    report = verify_against(paper_lif, tmp_path / "exact.h5", policy=Policy.preset("nir"))
    exact = report.results["exact.h5"].nodes["1"]
    assert exact.spike_diffs == 0 and not exact.ok and exact.first_diff_step == 460


def test_cli_verify_against_the_papers_trace_and_a_simulated_run(fixtures_dir, tmp_path):
    _paper_recording(fixtures_dir, "norse", tmp_path / "norse.h5")
    nirfile = fixtures_dir / "01_lif" / "lif_norse.nir"
    cli = [sys.executable, "-m", "nirbridge.cli"]
    done = subprocess.run([*cli, "verify", str(nirfile), "--against", str(tmp_path / "norse.h5"), "--policy", "norse", "--dt", "1e-4"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "norse.h5  1     ok" in done.stdout
    _paper_recording(fixtures_dir, "lava_cpu_float", tmp_path / "lava.h5")
    done = subprocess.run([*cli, "verify", str(nirfile), "--against", str(tmp_path / "lava.h5"), "--policy", "norse", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 1 and '"spike_diffs": 8' in done.stdout


def test_cli_simulate_writes_nir_data_and_verify_against_reads_it(run, tmp_path):
    graph, x, _, _ = run
    save(graph, tmp_path / "net.nir")
    np.save(tmp_path / "x.npy", x)
    cli = [sys.executable, "-m", "nirbridge.cli"]
    done = subprocess.run([*cli, "simulate", str(tmp_path / "net.nir"), "--input", str(tmp_path / "x.npy"), "--record", "sub.lif",
                           "-o", str(tmp_path / "sim.h5")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert nir.read_data(str(tmp_path / "sim.h5")).nodes["sub"].nodes["lif"].observables["spikes"].data.any()
    done = subprocess.run([*cli, "verify", str(tmp_path / "net.nir"), "--against", str(tmp_path / "sim.h5")], capture_output=True, text=True)
    assert done.returncode == 0 and "sim.h5" in done.stdout, done.stderr
    done = subprocess.run([*cli, "verify", str(tmp_path / "net.nir"), "--against", str(tmp_path / "sim.h5"), "--backends", "numpy"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip() == "nirbridge: error: give --backends or --against, not both"
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    done = subprocess.run([*cli, "verify", str(tmp_path / "net.nir"), "--against", str(tmp_path / "bad.h5")], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not an HDF5 file" in done.stderr
