"""`nirbridge evaluate`: exit codes, text and JSON, recordings, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import nir
import numpy as np
import pytest
from test_evaluation import BS, CLASSES, POLICY, N, T, _net  # noqa: E402

from nirbridge.io import save

pytestmark = pytest.mark.usefixtures("builtin_backends_only")
CLI = [sys.executable, "-m", "nirbridge.cli"]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(8)
    save(_net().model_copy(update={"metadata": POLICY.to_metadata()}), tmp_path / "net.nir")
    save(_net(threshold=1e6).model_copy(update={"metadata": POLICY.to_metadata()}), tmp_path / "silent.nir")
    np.save(tmp_path / "x.npy", (rng.random((T, N, 6)) < 0.35).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.integers(0, CLASSES, N))
    return tmp_path


def evaluate(files, *args, net="net.nir"):
    return subprocess.run([*CLI, "evaluate", str(files / net), "--data", str(files / "x.npy"), "--labels", str(files / "y.npy"),
                           "--batch-size", str(BS), *map(str, args)], capture_output=True, text=True)


def test_help_names_every_option():
    done = subprocess.run([*CLI, "evaluate", "--help"], capture_output=True, text=True)
    for option in ("--data", "--labels", "--backends", "--readout", "--engine", "--address", "--workers",
                   "--cpus-per-worker", "--gpus-per-worker", "--max-retries", "--record", "--json"):
        assert option in done.stdout


def test_agreeing_backends_exit_0_with_a_table(files):
    done = evaluate(files, "--backends", "numpy")
    assert done.returncode == 0, done.stderr
    assert f"evaluate on {N} samples in {N // BS} batches" in done.stdout and ": OK" in done.stdout
    assert "numpy      " in done.stdout and "100.0 %" in done.stdout


def test_json_and_recordings(files):
    done = evaluate(files, "--backends", "numpy", "--json", "--record", files / "rec", "--readout", "membrane_sum")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["readout"] == "membrane_sum" and result["models"]["numpy"]["agreement"] == 1.0
    assert result["models"]["numpy"]["layers"]["lif1"]["compared"] == T * N * 12
    data = nir.read_data(str(files / "rec" / "numpy.h5"))
    assert data.nodes["lif2"].observables["v"].data.shape == (N, T, CLASSES)
    assert "wrote" in done.stderr


def test_a_silent_network_exits_1(files):
    done = evaluate(files, "--backends", "numpy", net="silent.nir")
    assert done.returncode == 1 and "silent (never fire" in done.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backends", "nosuch"], "unknown backend 'nosuch'"),
        (["--record", "{dir}/net.nir"], "not a directory"),
    ],
)
def test_usage_errors_are_one_line_exit_2(files, args, message):
    done = evaluate(files, *[a.format(dir=files) for a in args])
    assert done.returncode == 2 and done.stderr.strip().startswith("nirbridge: error:"), done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_labels_go_with_npy_data(files):
    done = subprocess.run([*CLI, "evaluate", str(files / "net.nir"), "--data", str(files / "x.npy")], capture_output=True, text=True)
    assert done.returncode == 2 and "--data X.npy needs --labels Y.npy" in done.stderr
    (files / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00" + b"\x10\x00" + b"{'descr': '|O',}\n")
    done = subprocess.run([*CLI, "evaluate", str(files / "net.nir"), "--data", str(files / "x.npy"), "--labels", str(files / "bad.npy")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "bad.npy" in done.stderr
