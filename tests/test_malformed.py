"""A corpus of malformed and hostile files, generated here: each must raise its specific error
class with a message naming the file and the node/field, and none may read another local file.

Every file starts as a good one written by `save` and is then damaged with h5py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest
from numpy.lib import format as npy_format

import nirbridge.io as nio
from nirbridge import (
    FileAccessError,
    GraphValidationError,
    NirbridgeError,
    NirFormatError,
    ResourceLimitError,
    UnsafeFileError,
    UnsupportedVersionError,
)
from nirbridge.io import load, save
from nirbridge.ir import LIF, Flatten, Graph, Input, Linear, Output

STR = h5py.string_dtype()


def good_graph() -> Graph:
    """Input (1, 3) -> Flatten -> Linear 3x3 -> LIF(3) -> Output (3,)."""
    f = lambda v: np.full(3, v, np.float32)  # noqa: E731
    return Graph(
        nodes={
            "in": Input(shape=np.array([1, 3])),
            "flat": Flatten(start_dim=0, end_dim=-1, input_type=np.array([1, 3])),
            "fc": Linear(weight=np.eye(3, dtype=np.float32)),
            "lif": LIF(tau=f(0.01), r=f(1), v_leak=f(0), v_threshold=f(1), v_reset=f(0), metadata={"note": "ok"}),
            "out": Output(shape=np.array([3])),
        },
        edges=[("in", "flat"), ("flat", "fc"), ("fc", "lif"), ("lif", "out")],
    )


def replace(f, path: str, **kwargs) -> None:
    """Swap the dataset at `path` for a new one made with create_dataset(**kwargs)."""
    del f[path]
    f.create_dataset(path, **kwargs)


def set_edges(f, edges, path="node/edges") -> None:
    replace(f, path, data=np.array(edges, dtype=object), dtype=STR)


EDGES = [("in", "flat"), ("flat", "fc"), ("fc", "lif"), ("lif", "out")]

# (id, damage(f), error class, fragments the message must contain besides the file name)
CASES = [
    ("missing-graph-group", lambda f: f.__delitem__("node"), NirFormatError, ["node: missing graph group"]),
    ("missing-version", lambda f: f.__delitem__("version"), NirFormatError, ["version: missing"]),
    ("missing-nodes", lambda f: f.__delitem__("node/nodes"), NirFormatError, ["nodes: missing (NIRGraph needs nodes, edges)"]),
    ("missing-edges", lambda f: f.__delitem__("node/edges"), NirFormatError, ["edges: missing"]),
    ("missing-type", lambda f: f.__delitem__("node/nodes/lif/type"), NirFormatError, ["nodes.lif.type: missing node type"]),
    ("missing-field", lambda f: f.__delitem__("node/nodes/lif/tau"), NirFormatError,
     ["nodes.lif.tau: missing (LIF needs tau, r, v_leak, v_threshold)"]),
    ("unknown-type", lambda f: replace(f, "node/nodes/lif/type", data="Conv3d", dtype=STR), NirFormatError,
     ["nodes.lif.type: unknown node type 'Conv3d'"]),
    ("python-name-as-type", lambda f: replace(f, "node/nodes/lif/type", data="NIRNode", dtype=STR), NirFormatError,
     ["nodes.lif.type: unknown node type 'NIRNode'"]),
    ("non-string-type", lambda f: replace(f, "node/nodes/lif/type", data=5), NirFormatError,
     ["nodes.lif.type: must be a string, got int64 of shape ()"]),
    ("top-node-not-a-graph", lambda f: replace(f, "node/type", data="LIF", dtype=STR), NirFormatError,
     ["node.type: the top-level node must be a NIRGraph, got 'LIF'"]),
    ("node-is-a-dataset", lambda f: f.create_dataset("node/nodes/x", data=1), NirFormatError, ["nodes.x: must be a node group"]),
    ("extra-key-in-node", lambda f: f.create_dataset("node/nodes/lif/gain", data=[1.0]), NirFormatError,
     ["nodes.lif.gain: unknown key for LIF"]),
    ("extra-key-in-graph", lambda f: f.create_dataset("node/extra", data=1), NirFormatError, ["extra: unknown key for NIRGraph"]),
    ("extra-key-at-root", lambda f: f.create_dataset("extra", data=1), NirFormatError, ["extra: unknown key"]),
    ("string-parameter", lambda f: replace(f, "node/nodes/lif/tau", data="0.01", dtype=STR), NirFormatError,
     ["nodes.lif.tau: must be numeric, got a string"]),
    ("complex-parameter", lambda f: replace(f, "node/nodes/lif/tau", data=np.full(3, 0.01 + 1j)), NirFormatError,
     ["nodes.lif.tau: unsupported dtype complex128"]),
    ("object-parameter", lambda f: replace(f, "node/nodes/lif/tau", shape=(3,), dtype=h5py.vlen_dtype(np.float32)),
     NirFormatError, ["nodes.lif.tau: unsupported dtype object"]),
    ("compound-parameter", lambda f: replace(f, "node/nodes/lif/tau", data=np.zeros(3, dtype=[("a", "f4"), ("b", "i4")])),
     NirFormatError, ["nodes.lif.tau: unsupported dtype"]),
    ("no-value", lambda f: replace(f, "node/nodes/lif/tau", data=h5py.Empty("f4")), NirFormatError,
     ["nodes.lif.tau: empty dataspace"]),
    ("float-start-dim", lambda f: replace(f, "node/nodes/flat/start_dim", data=0.0), NirFormatError,
     ["nodes.flat.start_dim: must be one integer, got float64 of shape ()"]),
    ("metadata-not-a-group", lambda f: (f.__delitem__("node/nodes/lif/metadata"), f.create_dataset("node/nodes/lif/metadata", data=1)),
     NirFormatError, ["nodes.lif.metadata: must be a group"]),
    ("integer-parameter-beyond-2**53", lambda f: replace(f, "node/nodes/lif/tau", data=np.array([2**60, 2, 3])), GraphValidationError,
     ["nodes.lif.tau: integers beyond 2**53 cannot become floats exactly, got dtype int64"]),
    ("overflows-float32", lambda f: replace(f, "node/nodes/fc/weight", data=np.full((2, 3), 1e300)), GraphValidationError,
     ["nodes.fc.weight[0, 0]: 1e+300 overflows float32, the working dtype"]),
    ("nan", lambda f: f["node/nodes/fc/weight"].__setitem__((0, 0), np.nan), GraphValidationError,
     ["nodes.fc.weight[0, 0]: must be finite, got nan"]),
    ("inf", lambda f: f["node/nodes/lif/v_threshold"].__setitem__(1, np.inf), GraphValidationError,
     ["nodes.lif.v_threshold[1]: must be finite, got inf"]),
    ("tau-zero", lambda f: f["node/nodes/lif/tau"].__setitem__(2, 0.0), GraphValidationError, ["nodes.lif.tau[2]: must be > 0, got 0.0"]),
    ("tau-negative", lambda f: f["node/nodes/lif/tau"].__setitem__(2, -0.5), GraphValidationError,
     ["nodes.lif.tau[2]: must be > 0, got -0.5"]),
    ("shape-mismatch-in-node", lambda f: replace(f, "node/nodes/lif/v_leak", data=np.zeros(4, np.float32)), GraphValidationError,
     ["nodes.lif.v_leak: shape (4,) differs from tau shape (3,)"]),
    ("shape-mismatch-across-edge", lambda f: replace(f, "node/nodes/out/shape", data=np.array([4])), GraphValidationError,
     ["edges[3]: lif outputs shape (3,) but out takes (4,)"]),
    ("dangling-edge", lambda f: set_edges(f, EDGES + [("lif", "ghost")]), GraphValidationError,
     ["edges[4]: destination 'ghost' does not exist (nodes: fc, flat, in, lif, out)"]),
    ("duplicate-edge", lambda f: set_edges(f, EDGES + [("fc", "lif")]), GraphValidationError, ["edges[4]: duplicate edge fc -> lif"]),
    ("bad-name-in-edge", lambda f: set_edges(f, EDGES + [("lif", "a/b")]), GraphValidationError,
     ["edges[4]: destination 'a/b' does not exist"]),
    ("empty-name-in-edge", lambda f: set_edges(f, EDGES + [("", "out")]), GraphValidationError, ["edges[4]: source '' does not exist"]),
    ("edge-arity", lambda f: set_edges(f, [e + ("x",) for e in EDGES]), NirFormatError,
     ["edges: must be an (n, 2) array of node names (source, destination), got shape (4, 3)"]),
    ("numeric-edges", lambda f: replace(f, "node/edges", data=np.zeros((4, 2))), NirFormatError,
     ["edges: must be an (n, 2) array of node names, got dtype float64"]),
    ("non-string-version", lambda f: replace(f, "version", data=1.0), NirFormatError, ["version: must be a string"]),
    ("hard-link-cycle", lambda f: f["node/nodes/lif"].__setitem__("loop", f["node"]), NirFormatError,
     ["nodes.lif.loop: object reached a second time through a hard link"]),
]


@pytest.fixture
def good(tmp_path) -> Path:
    path = tmp_path / "good.nir"
    save(good_graph(), path)
    return path


def damaged(path: Path, damage) -> Path:
    with h5py.File(path, "r+") as f:
        damage(f)
    return path


def expect(path: Path, cls, fragments, **limits):
    with pytest.raises(cls) as info:
        load(path, **limits)
    assert type(info.value) is cls
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, message
    return info.value


def test_the_undamaged_file_loads(good):
    assert load(good) == good_graph()


@pytest.mark.parametrize("name, damage, cls, fragments", CASES, ids=[c[0] for c in CASES])
def test_damaged_files(good, name, damage, cls, fragments):
    expect(damaged(good, damage), cls, fragments)


@pytest.mark.parametrize("content", [b"", os.urandom(4096), b'{"nodes": {}, "edges": []}\n', b"\x89HDF\r\n\x1a\n" + bytes(100)],
                         ids=["empty", "garbage", "json", "bare-signature"])
def test_files_that_are_not_hdf5(tmp_path, content):
    path = tmp_path / "bad.nir"
    path.write_bytes(content)
    expect(path, NirFormatError, [])


def test_a_fifo_is_not_opened(tmp_path):
    path = tmp_path / "pipe.nir"
    os.mkfifo(path)
    expect(path, NirFormatError, ["not a regular file"])


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9])
def test_truncated_files(tmp_path, keep):
    path = tmp_path / "cut.nir"
    save(good_graph(), path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    error = expect(path, NirFormatError, [])
    assert str(error) == f"{path}: not an HDF5 file or damaged (truncated: {int(len(data) * keep)} of {len(data)} bytes)"


#: what HDF5's own error text looks like (h5py's wrapper, internal names and addresses)
HDF5_INTERNALS = ("Unable to synchronously", "sblock->", "addr =", "eoa =", "errno =", "0x", "Can't ")


def test_damaged_files_are_described_without_hdf5_internals(good):
    """8 bytes flipped at places in the superblock and the first object headers (the first
    1000 bytes, before the global heap: a damaged global heap can hang HDF5 itself)."""
    data, refused = good.read_bytes(), []
    for offset in range(0, 1000, 97):
        damaged_bytes = bytearray(data)
        damaged_bytes[offset : offset + 8] = bytes(b ^ 0xFF for b in data[offset : offset + 8])
        good.write_bytes(bytes(damaged_bytes))
        try:
            load(good)
        except NirbridgeError as exc:
            refused.append(str(exc))
    assert len(refused) >= 3
    for message in refused:
        assert message.startswith(f"{good}: "), message
        assert not any(text in message for text in HDF5_INTERNALS), message


SUBPROCESS_LOAD = """
import json, sys
from nirbridge.io import load
try:
    load(sys.argv[1])
    print(json.dumps(None))
except Exception as exc:
    print(json.dumps([type(exc).__name__, str(exc)]))
"""


def test_an_unreadable_file_says_so(good):
    """Without read permission (root runs the child without its capabilities)."""
    good.chmod(0)
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root, and setpriv (util-linux) is not there to drop the capabilities")
        prefix = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]
    proc = subprocess.run([*prefix, sys.executable, "-c", SUBPROCESS_LOAD, str(good)], capture_output=True, text=True, timeout=120)
    assert json.loads(proc.stdout) == ["FileAccessError", f"permission denied: {good}"], proc.stderr


def test_a_file_locked_by_a_writer_says_so(good):
    """HDF5 locks a file another program has open for writing."""
    if os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE":
        pytest.skip("HDF5 file locking is switched off")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import h5py, sys, time; f = h5py.File(sys.argv[1], 'a'); print('open', flush=True); time.sleep(60)", str(good)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(FileAccessError) as info:
            load(good)
    finally:
        holder.kill()
        holder.communicate()
    assert str(info.value) == f"locked: {good} (another program has it open for writing; HDF5 file locking)"
    assert load(good) == good_graph()  # once it is closed


@pytest.mark.parametrize("version", ["2.0.0", "1.1.0", "0.3.0", "banana", ""])
def test_unknown_versions(good, version):
    damaged(good, lambda f: replace(f, "version", data=version, dtype=STR))
    expect(good, UnsupportedVersionError, [f"version: NIR format {version!r} is not supported (supported: 0.0.x, 0.1.x, 0.2.x, 1.0.x)"])


@pytest.mark.parametrize("version", ["0.0.6", "0.1.1", "0.2.0", "1.0.0", "1.0.8", "1.0.9.dev3"])
def test_known_versions(good, version):
    damaged(good, lambda f: replace(f, "version", data=version, dtype=STR))
    assert load(good) == good_graph()


# ----------------------------------------------------------------------------- hostile files


@pytest.fixture
def reads(monkeypatch):
    """Counts datasets whose data load() reads."""
    count = []
    real = nio._Obj.read

    def counted(self):
        count.append(1)
        return real(self)

    monkeypatch.setattr(nio._Obj, "read", counted)
    return count


@contextmanager
def watched(path: Path):
    """Puts a FIFO at `path` and reports whether anything opened it for reading meanwhile
    (a writer can open a FIFO without blocking only while a reader has it open)."""
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    opened, stop = threading.Event(), threading.Event()

    def poll():
        while not stop.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.0005)
                continue
            opened.set()
            os.close(fd)  # the reader sees end of file

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        stop.set()
        thread.join()


@pytest.fixture
def secret(tmp_path) -> Path:
    """Another local file (an HDF5 file holding /data) that hostile files point at."""
    path = tmp_path / "secret.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(3, dtype=np.float32)
    return path


def external_storage(f, secret):
    replace(f, "node/nodes/lif/tau", shape=(3,), dtype="f4", external=[(str(secret), 0, 12)])


def external_link(f, secret):
    del f["node/nodes/lif/tau"]
    f["node/nodes/lif/tau"] = h5py.ExternalLink(str(secret), "/data")


def virtual_dataset(f, secret):
    layout = h5py.VirtualLayout(shape=(3,), dtype="f4")
    layout[:] = h5py.VirtualSource(str(secret), "data", shape=(3,))
    del f["node/nodes/lif/tau"]
    f.create_virtual_dataset("node/nodes/lif/tau", layout)


@pytest.mark.parametrize(
    "damage, fragment",
    [
        (external_storage, "nodes.lif.tau: external storage in file '{secret}'"),
        (external_link, "nodes.lif.tau: external link to '{secret}':'/data'"),
        (virtual_dataset, "nodes.lif.tau: virtual dataset (maps data from other files)"),
    ],
    ids=["external-storage", "external-link", "virtual-dataset"],
)
def test_files_reaching_into_other_files_are_refused_unread(good, secret, reads, damage, fragment):
    damaged(good, lambda f: damage(f, secret))
    with watched(secret) as opened:
        expect(good, UnsafeFileError, [fragment.format(secret=secret)])
    assert not opened.is_set(), "load() opened the other file"
    assert reads == []


def test_the_watch_sees_nir_read_open_the_other_file(good, secret):
    """The FIFO watch does detect a reader: nir.read follows external storage."""
    damaged(good, lambda f: external_storage(f, secret))
    with watched(secret) as opened:
        with pytest.raises(Exception):
            nir.read(good)
        assert opened.wait(5)


def test_soft_links_are_refused(good, reads):
    def soft(f):
        del f["node/nodes/lif/tau"]
        f["node/nodes/lif/tau"] = h5py.SoftLink("/node/nodes/lif/r")

    expect(damaged(good, soft), UnsafeFileError, ["nodes.lif.tau: soft link to '/node/nodes/lif/r'"])
    assert reads == []


@pytest.mark.parametrize(
    "options, label",
    [({"scaleoffset": 2}, "scaleoffset"), ({"chunks": (3,), "compression": "szip", "compression_opts": ("nn", 2)}, "szip")],
    ids=["scaleoffset", "szip"],
)
def test_unknown_filters_are_refused(good, reads, options, label):
    if label == "szip" and "szip" not in h5py.filters.encode:
        pytest.skip("this HDF5 build cannot write szip")
    damaged(good, lambda f: replace(f, "node/nodes/lif/tau", data=np.full(3, 0.01), **options))
    expect(good, UnsafeFileError, ["nodes.lif.tau: HDF5 filter", f"({label}) is not allowed"])
    assert reads == []


def test_a_huge_array_declared_in_a_tiny_file(good, reads):
    damaged(good, lambda f: replace(f, "node/nodes/fc/weight", shape=(1 << 20, 1 << 20), dtype="f4", chunks=(64, 64)))
    assert good.stat().st_size < 100_000
    expect(good, ResourceLimitError, [
        "nodes.fc.weight: declares 4.0 TiB (shape (1048576, 1048576), float32), over the 1.0 GiB per-array limit"
    ])
    assert reads == []


def test_a_gzip_bomb_is_refused_before_decompressing(good, reads):
    zeros = np.zeros((4096, 4096), np.float32)  # 64 MiB of zeros, a few hundred KiB compressed
    damaged(good, lambda f: replace(f, "node/nodes/fc/weight", data=zeros, chunks=(1024, 1024), compression="gzip", compression_opts=9))
    assert good.stat().st_size < 1_000_000
    expect(good, ResourceLimitError, ["nodes.fc.weight: declares 64.0 MiB", "over the 16.0 MiB per-array limit (max_array_bytes)"],
           max_array_bytes=16 << 20)
    assert reads == []


def test_total_size_limit(good, reads):
    expect(good, ResourceLimitError, ["file declares more than 40 B of data (max_total_bytes)"], max_total_bytes=40)
    assert reads == []


def test_limits_can_be_raised_and_lowered(good):
    """The largest dataset is the edge table: 4 x 2 string references of 8 bytes."""
    assert load(good, max_array_bytes=64, max_total_bytes=10_000) == good_graph()
    expect(good, ResourceLimitError, ["edges: declares 64 B (shape (4, 2), object), over the 63 B per-array limit"], max_array_bytes=63)


def nested(depth: int) -> Graph:
    """Input -> sub -> Output, `depth` levels deep; the innermost graph is Input -> LIF -> Output."""
    f = lambda v: np.full(2, v, np.float32)  # noqa: E731
    lif = LIF(tau=f(0.01), r=f(1), v_leak=f(0), v_threshold=f(1), v_reset=f(0))
    g = {"type": "NIRGraph", "nodes": {"in": Input(shape=np.array([2])), "lif": lif, "out": Output(shape=np.array([2]))},
         "edges": [("in", "lif"), ("lif", "out")]}
    for _ in range(depth):
        g = {"type": "NIRGraph", "nodes": {"in": Input(shape=np.array([2])), "sub": g, "out": Output(shape=np.array([2]))},
             "edges": [("in", "sub"), ("sub", "out")]}
    return Graph.from_dict(g)


def test_nesting_past_the_depth_limit(tmp_path):
    path = tmp_path / "deep.nir"
    save(nested(3), path)
    assert load(path, max_depth=3) == nested(3)
    expect(path, ResourceLimitError, ["nodes.sub.nodes.sub.nodes.sub: graphs nested deeper than 2 levels (max_depth)"], max_depth=2)


def test_very_deep_nesting_is_refused_before_reading(tmp_path, reads):
    path = tmp_path / "deeper.nir"
    save(nested(25), path, max_depth=25)
    reads.clear()  # save reads its own file back as load would
    expect(path, ResourceLimitError, ["groups nested deeper than 40 levels (see max_depth)"])
    assert reads == []
    assert load(path, max_depth=25) == nested(25)


# ----------------------------------------------------------------------------- hostile input arrays (.npy) on the command line


def npy_with_header(path: Path, header: dict, data: bytes) -> Path:
    with open(path, "wb") as fh:
        npy_format.write_array_header_1_0(fh, header)
        fh.write(data)
    return path


def truncated_npy(path: Path) -> Path:
    np.save(path, np.ones((10, 3), np.float32))
    path.write_bytes(path.read_bytes()[:-40])
    return path


def version_3_npy(path: Path) -> Path:
    np.save(path, np.ones(3, np.float32))
    data = bytearray(path.read_bytes())
    data[6] = 3
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: npy_with_header(p, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 2, 3)}, bytes(64)),
         "declares 48000000000000 bytes (shape (1000000000000, 2, 3), float64), over the 17179869184-byte limit"),
        (lambda p: npy_with_header(p, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 2, 3)}, bytes(64)),
         "header declares 48000000 bytes of data (shape (1000000, 2, 3), float64), the file holds 64"),
        (truncated_npy, "header declares 120 bytes of data (shape (10, 3), float32), the file holds 80"),
        (lambda p: npy_with_header(p, {"descr": [("a", "<f4")], "fortran_order": False, "shape": (4,)}, bytes(16)),
         "expected a numeric array, got dtype [('a', '<f4')]"),
        (lambda p: npy_with_header(p, {"descr": "|O", "fortran_order": False, "shape": (10**9,)}, b"x"),
         "holds Python objects (dtype object), which are never loaded; save a numeric array"),
        (version_3_npy, ".npy format version 3.0 is not supported (1.0, 2.0)"),
    ],
    ids=["huge-header", "header-over-file", "truncated", "structured", "object-header", "version-3"],
)
def test_hostile_input_arrays_are_refused_before_allocating(good, make, message):
    """One line, exit code 2, nothing written, and no huge allocation: the (1e12, 2, 3) header
    over 64 bytes used to end in a MemoryError traceback."""
    bad = make(good.parent / "x.npy")
    proc = subprocess.run([sys.executable, "-m", "nirbridge.cli", "simulate", good.name, "--input", bad.name, "-o", "out.npz"],
                          capture_output=True, text=True, cwd=good.parent, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"nirbridge: error: x.npy: {message}\n"
    assert not (good.parent / "out.npz").exists()
