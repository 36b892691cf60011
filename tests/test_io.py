"""`load` and `save`: round trips with nir.read/nir.write, older files, atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest
import strategies
from hypothesis import HealthCheck, given, settings

from nirbridge import FileAccessError, GraphValidationError, NirbridgeError, ResourceLimitError
from nirbridge.io import WRITE_VERSION, NirReadWarning, load, save
from nirbridge.ir import LIF, Conv1d, Conv2d, Flatten, Graph, Input, Linear, Output

PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def small_graph(metadata=None, tau=0.01) -> Graph:
    n = 3
    f = lambda v: np.full(n, v, np.float32)  # noqa: E731
    return Graph(
        nodes={
            "in": Input(shape=np.array([n])),
            "fc": Linear(weight=np.eye(n, dtype=np.float32)),
            "lif": LIF(tau=f(tau), r=f(1), v_leak=f(0), v_threshold=f(1), v_reset=f(0)),
            "out": Output(shape=np.array([n])),
        },
        edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")],
        metadata=metadata or {},
    )


def leftovers(directory: Path, keep: set[str]) -> set[str]:
    return {p.name for p in directory.iterdir()} - keep


# ----------------------------------------------------------------------------- round trips


def like(loaded: Graph, original: Graph) -> Graph:
    """`loaded` with the Conv input shapes `save` filled in removed again where `original`
    left them out (checked on their own in test_save_fills_in_missing_conv_input_shapes)."""
    nodes = {}
    for name, node in loaded.nodes.items():
        before = original.nodes.get(name)
        if isinstance(node, (Conv1d, Conv2d)) and before is not None and before.input_shape_value is None:
            node = node.model_copy(update={"input_shape_value": None})
        nodes[name] = like(node, before) if isinstance(node, Graph) and isinstance(before, Graph) else node
    return loaded.model_copy(update={"nodes": nodes})


@PROPERTY
@given(g=strategies.graphs())
def test_save_then_load_and_nir_read_give_the_same_graph(g, tmp_path_factory):
    """Bit-exact arrays and dtypes, same nodes (in the same order), edges (in order), metadata;
    nir.read sees the same graph in what save wrote; and save warns exactly when nir.read with
    its type check on (its default) refuses the file."""
    path = tmp_path_factory.mktemp("rt") / "g.nir"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save(g, path)
    warned = [str(w.message) for w in caught if issubclass(w.category, NirReadWarning)]
    back = load(path)
    assert like(back, g) == g
    assert list(back.nodes) == list(g.nodes)
    assert like(Graph.from_nir(nir.read(path, type_check=False)), g) == g
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nir.read(path)
        refused = None
    except Exception as exc:  # noqa: BLE001 - whatever nir raises
        refused = exc
    assert bool(warned) == (refused is not None), (warned, refused)


def test_save_fills_in_missing_conv_input_shapes(tmp_path):
    """nir.read cannot build a Conv without `input_shape`; save writes the inferred one:
    (2, 9, 9) into Conv2d -> [9, 9]; (3, 8) into Conv1d -> 8 (a scalar, as nir stores it)."""
    def conv(cls, weight):
        return cls(weight=weight, bias=np.zeros(weight.shape[0], np.float32), stride=np.array(1), padding=np.array(0),
                   dilation=np.array(1), groups=np.array(1))

    g = Graph(
        nodes={
            "img": Input(shape=np.array([2, 9, 9])), "c2": conv(Conv2d, np.ones((1, 2, 3, 3), np.float32)),
            "f2": Flatten(start_dim=0), "seq": Input(shape=np.array([3, 8])), "c1": conv(Conv1d, np.ones((1, 3, 2), np.float32)),
            "f1": Flatten(start_dim=0), "fc": Linear(weight=np.ones((2, 49), np.float32)), "fc1": Linear(weight=np.ones((2, 7), np.float32)),
            "out": Output(shape=np.array([2])),
        },
        edges=[("img", "c2"), ("c2", "f2"), ("f2", "fc"), ("fc", "out"), ("seq", "c1"), ("c1", "f1"), ("f1", "fc1"), ("fc1", "out")],
    )
    path = tmp_path / "g.nir"
    save(g, path)
    back = load(path)
    assert back.nodes["c2"].input_shape_value.tolist() == [9, 9]
    assert back.nodes["c1"].input_shape_value.shape == () and int(back.nodes["c1"].input_shape_value) == 8
    assert g.nodes["c2"].input_shape_value is None  # the graph itself is left alone
    assert Graph.from_nir(nir.read(path, type_check=False)) == back


@PROPERTY
@given(g=strategies.graphs(nir_writable=True))
def test_load_reads_what_nir_write_writes(g, tmp_path_factory):
    path = tmp_path_factory.mktemp("nw") / "g.nir"
    nir.write(path, g.to_nir())
    assert load(path) == g


@settings(PROPERTY, max_examples=15)
@given(g=strategies.feedforward_graphs())
def test_nir_read_type_checks_what_save_writes(g, tmp_path_factory):
    """With its own type checking on, nir.read accepts feedforward graphs nirbridge saved."""
    path = tmp_path_factory.mktemp("tc") / "g.nir"
    save(g, path)
    assert Graph.from_nir(nir.read(path)) == g


@pytest.mark.parametrize(
    "compression, filter_id", [("gzip", h5py.h5z.FILTER_DEFLATE), (9, h5py.h5z.FILTER_DEFLATE), ("lzf", h5py.h5z.FILTER_LZF)]
)
def test_compressed_files_round_trip(tmp_path, compression, filter_id):
    g = small_graph()
    path = tmp_path / "g.nir"
    save(g, path, compression=compression)
    with h5py.File(path, "r") as f:
        dcpl = f["node/nodes/fc/weight"].id.get_create_plist()
        assert [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())] == [filter_id]
    assert load(path) == g
    assert Graph.from_nir(nir.read(path)) == g


def test_uncompressed_by_default_and_laid_out_as_nir_writes(tmp_path):
    path = tmp_path / "g.nir"
    save(small_graph(), path)
    with h5py.File(path, "r") as f:
        assert set(f) == {"version", "node"}
        assert f["version"][()].decode() == WRITE_VERSION
        assert f["node/type"][()] == b"NIRGraph"
        assert f["node/edges"].shape == (3, 2)
        assert f["node/nodes/fc/weight"].id.get_create_plist().get_nfilters() == 0
        assert set(f["node/nodes/lif"]) == {"type", "tau", "r", "v_leak", "v_threshold", "v_reset"}


@pytest.mark.parametrize("bad", ["zip", 10, -1, True, 1.5])
def test_unknown_compression_is_refused(tmp_path, bad):
    with pytest.raises(NirbridgeError, match="compression must be"):
        save(small_graph(), tmp_path / "g.nir", compression=bad)
    assert leftovers(tmp_path, set()) == set()


def test_metadata_round_trips(tmp_path):
    meta = {
        "text": "héllo", "flag": False, "count": -(2**62), "x": 1e-300, "names": ["a", "ß"],
        "arr": np.arange(6, dtype=np.uint16).reshape(2, 3), "nirbridge": {"policy": {"dt": 1e-4, "reset": "subtract"}},
    }
    path = tmp_path / "g.nir"
    save(small_graph(meta), path)
    back = load(path).metadata
    assert back["nirbridge"] == {"policy": {"dt": 1e-4, "reset": "subtract"}}
    assert (back["text"], back["flag"], back["count"], back["x"], back["names"]) == ("héllo", False, -(2**62), 1e-300, ["a", "ß"])
    assert back["arr"].dtype == np.uint16 and back["arr"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert Graph.from_nir(nir.read(path)) == load(path)


@pytest.mark.parametrize(
    "meta, where, message",
    [
        ({"a/b": 1}, "metadata.a/b", "metadata keys must be non-empty strings"),
        ({"v": None}, "metadata.v", "cannot store a value of type NoneType"),
        ({"v": [1, 2]}, "metadata.v", "lists must hold strings only"),
        ({"v": {"w": object()}}, "metadata.v.w", "cannot store a value of type object"),
        ({"v": np.array([1j])}, "metadata.v", "cannot store an array of dtype complex128"),
        ({"v": 2**70}, "metadata.v", f"integer {2**70} does not fit in 64 bits"),
        ({"v": "nul\x00"}, "metadata.v", "strings cannot hold NUL"),
        ({"v": "\ud800"}, "metadata.v", "not valid unicode"),
    ],
)
def test_metadata_that_cannot_be_stored_is_refused_before_writing(tmp_path, meta, where, message):
    path = tmp_path / "g.nir"
    with pytest.raises(GraphValidationError) as info:
        save(small_graph(meta), path)
    assert str(path) in str(info.value) and f"{where}: {message}" in str(info.value)
    assert leftovers(tmp_path, set()) == set()


# ----------------------------------------------------------------------------- older and foreign files


def write_by_hand(path, nodes: dict, edges, version="0.2.0"):
    """A NIR file as older producers wrote it: plain h5py, scalars, no v_reset / w_in."""
    with h5py.File(path, "w") as f:
        f.create_dataset("version", data=version, dtype=h5py.string_dtype())
        g = f.create_group("node")
        g.create_dataset("type", data="NIRGraph", dtype=h5py.string_dtype())
        g.create_dataset("edges", data=np.array(edges, dtype=object), dtype=h5py.string_dtype())
        ng = g.create_group("nodes")
        for name, fields in nodes.items():
            sub = ng.create_group(name)
            for key, value in fields.items():
                if isinstance(value, str):
                    sub.create_dataset(key, data=value, dtype=h5py.string_dtype())
                else:
                    sub.create_dataset(key, data=value)


def test_older_files_get_the_defaults_nir_gives_them(tmp_path):
    """v_reset missing -> zeros, w_in missing -> ones (dtype of the thresholds), Flatten dims
    missing -> 1 and -1: exactly what nir.read makes of the same file."""
    path = tmp_path / "old.nir"
    thr = np.array([1.0, 2.0], np.float32)
    write_by_hand(
        path,
        {
            "in": {"type": "Input", "shape": np.array([2])},
            "cuba": {"type": "CubaLIF", "tau_syn": np.array([0.005, 0.005], np.float32), "tau_mem": np.array([0.01, 0.01], np.float32),
                     "r": np.ones(2, np.float32), "v_leak": np.zeros(2, np.float32), "v_threshold": thr},
            "if": {"type": "IF", "r": np.ones(2, np.float64), "v_threshold": np.ones(2, np.float64)},
            "out": {"type": "Output", "shape": np.array([2])},
        },
        [("in", "cuba"), ("cuba", "if"), ("if", "out")],
    )
    g = load(path)
    cuba, neuron = g.nodes["cuba"], g.nodes["if"]
    assert cuba.v_reset.tolist() == [0, 0] and cuba.v_reset.dtype == np.float32
    assert cuba.w_in.tolist() == [1, 1] and cuba.w_in.dtype == np.float32
    assert neuron.v_reset.tolist() == [0, 0] and neuron.v_reset.dtype == np.float64
    assert g == Graph.from_nir(nir.read(path, type_check=False))

    flat = tmp_path / "flat.nir"
    write_by_hand(
        flat,
        {"in": {"type": "Input", "shape": np.array([2, 3, 4])}, "f": {"type": "Flatten"}, "out": {"type": "Output", "shape": np.array([2, 12])}},
        [("in", "f"), ("f", "out")],
    )
    g = load(flat)
    assert (g.nodes["f"].start_dim, g.nodes["f"].end_dim, g.nodes["f"].input_type) == (1, -1, None)
    assert g.shapes()["f"] == ((2, 3, 4), (2, 12))
    assert g == Graph.from_nir(nir.read(flat, type_check=False))


def test_scalar_parameters_in_older_files(tmp_path):
    path = tmp_path / "scalar.nir"
    write_by_hand(
        path,
        {
            "in": {"type": "Input", "shape": np.array([4])},
            "lif": {"type": "LIF", "tau": 0.02, "r": 1.0, "v_leak": 0.0, "v_threshold": 1.0},
            "out": {"type": "Output", "shape": np.array([4])},
        },
        [("in", "lif"), ("lif", "out")],
        version="0.1.1",
    )
    g = load(path)
    assert g.nodes["lif"].tau.shape == () and g.nodes["lif"].tau.dtype == np.float64
    assert g.shapes()["lif"] == ((4,), (4,))
    assert g == Graph.from_nir(nir.read(path, type_check=False))


def test_conv_padding_given_as_a_word(tmp_path):
    path = tmp_path / "same.nir"
    write_by_hand(
        path,
        {
            "in": {"type": "Input", "shape": np.array([1, 5])},
            "c": {"type": "Conv1d", "weight": np.ones((2, 1, 3), np.float32), "bias": np.zeros(2, np.float32), "stride": 1,
                  "padding": "same", "dilation": 1, "groups": 1, "input_shape": 5},
            "f": {"type": "Flatten", "start_dim": 0, "end_dim": -1},
            "out": {"type": "Output", "shape": np.array([10])},
        },
        [("in", "c"), ("c", "f"), ("f", "out")],
        version="1.0.0",
    )
    g = load(path)
    assert g.nodes["c"].padding == "same" and g.shapes()["c"] == ((1, 5), (2, 5))
    assert g == Graph.from_nir(nir.read(path, type_check=False))


def test_paths_and_missing_files(tmp_path):
    path = tmp_path / "g.nir"
    save(small_graph(), str(path))
    assert load(str(path)) == load(path)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.nir")
    with pytest.raises(IsADirectoryError):
        load(tmp_path)
    with pytest.raises(TypeError, match="save\\(\\) takes a nirbridge.Graph"):
        save(small_graph().to_nir(), path)


# ----------------------------------------------------------------------------- atomic save


@pytest.fixture
def existing(tmp_path):
    """A target file that already holds a good graph; returns (path, its bytes)."""
    path = tmp_path / "net.nir"
    save(small_graph(), path)
    return path, path.read_bytes()


def test_failed_validation_writes_nothing(existing):
    path, before = existing
    bad = Graph.model_construct(**dict(small_graph()))  # skips validation
    object.__setattr__(bad, "edges", bad.edges + [("lif", "ghost")])
    with pytest.raises(GraphValidationError, match="destination 'ghost' does not exist"):
        save(bad, path)
    assert path.read_bytes() == before
    assert leftovers(path.parent, {path.name}) == set()


def test_unserialisable_metadata_leaves_the_old_file(existing):
    path, before = existing
    with pytest.raises(GraphValidationError, match=r"metadata\.when: cannot store a value of type object"):
        save(small_graph({"when": object()}), path)
    assert path.read_bytes() == before
    assert leftovers(path.parent, {path.name}) == set()


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failure_in_the_middle_of_writing_leaves_the_old_file(existing, monkeypatch, exc):
    """The writer dies after the first node group is on disk (a full disk, a Ctrl-C)."""
    import nirbridge.io as nio

    path, before = existing
    real = nio._write_node
    calls = []

    def dying(group, node, options):
        calls.append(node.type)
        if len(calls) == 2:
            raise exc
        real(group, node, options)

    monkeypatch.setattr(nio, "_write_node", dying)
    with pytest.raises(type(exc)):
        save(small_graph(tau=0.5), path)
    assert len(calls) == 2
    assert path.read_bytes() == before
    assert leftovers(path.parent, {path.name}) == set()


def test_failed_rename_leaves_the_old_file(existing, monkeypatch):
    """The error names the user's path, not the temporary file's."""
    path, before = existing

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", src)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(FileAccessError) as info:
        save(small_graph(tau=0.5), path)
    assert str(info.value) == f"permission denied: {path}"
    assert path.read_bytes() == before
    assert leftovers(path.parent, {path.name}) == set()


def test_the_file_is_synced_before_the_replace_and_its_directory_after(existing, monkeypatch):
    """fsync(temporary file), rename over the target, fsync(directory): without the last
    step a crash can lose the rename even though the data were synced."""
    path, before = existing
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else fd))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save(small_graph(tau=0.5), path)
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "replace", "fsync"]
    if isinstance(events[0][1], str):
        assert events[0][1] == events[1][1]  # the temporary file itself was synced
        assert events[2][1] == str(path.parent.resolve())  # then the directory holding the new name
    assert path.read_bytes() != before and load(path) == small_graph(tau=0.5)


def test_file_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.nir"
        save(small_graph(), fresh)
        assert fresh.stat().st_mode & 0o777 == 0o644
        kept = tmp_path / "kept.nir"
        save(small_graph(), kept)
        kept.chmod(0o600)
        save(small_graph(tau=0.5), kept)
        assert kept.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_core_modules_import_without_torch():
    code = "import sys, nirbridge, nirbridge.io, nirbridge.ir; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_saved_file_gets_the_umask_permissions_and_keeps_an_existing_files(tmp_path):
    """Atomic replacement must not leave the temporary file's private mode on the result."""
    import stat

    graph = small_graph()
    path = tmp_path / "net.nir"
    old = os.umask(0o022)
    try:
        save(graph, path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    path.chmod(0o600)
    save(graph, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["net.nir"]


# ----------------------------------------------------------------------------- what save writes, load and nir.read read


def nested(depth: int, metadata_depth: int = 0) -> Graph:
    """Input -> sub -> Output, `depth` levels deep; the innermost graph is Input -> LIF -> Output,
    its LIF carrying metadata dicts nested `metadata_depth` deep."""
    f = lambda v: np.full(2, v, np.float32)  # noqa: E731
    meta: dict = {"leaf": 1}
    for _ in range(metadata_depth):
        meta = {"d": meta}
    lif = LIF(tau=f(0.01), r=f(1), v_leak=f(0), v_threshold=f(1), v_reset=f(0), metadata=meta)
    g = {"type": "NIRGraph", "nodes": {"in": Input(shape=np.array([2])), "lif": lif, "out": Output(shape=np.array([2]))},
         "edges": [("in", "lif"), ("lif", "out")]}
    for _ in range(depth):
        g = {"type": "NIRGraph", "nodes": {"in": Input(shape=np.array([2])), "sub": g, "out": Output(shape=np.array([2]))},
             "edges": [("in", "sub"), ("sub", "out")]}
    return Graph.from_dict(g)


def test_save_refuses_nesting_that_load_refuses(tmp_path):
    """load's default max_depth is 16: a graph nested 17 deep used to be saved and then not load."""
    path = tmp_path / "deep.nir"
    save(nested(16), path)
    assert load(path) == nested(16)
    deeper = tmp_path / "deeper.nir"
    with pytest.raises(ResourceLimitError) as info:
        save(nested(17), deeper)
    where = ".".join(["nodes.sub"] * 17)
    assert str(info.value) == f"{deeper}: {where}: graphs nested deeper than 16 levels (max_depth)"
    assert not deeper.exists()
    save(nested(17), deeper, max_depth=17)  # the same limit on both sides
    assert load(deeper, max_depth=17) == nested(17)


def test_save_refuses_metadata_nested_deeper_than_load_reads(tmp_path):
    path = tmp_path / "meta.nir"
    save(nested(0, metadata_depth=16), path)
    assert load(path) == nested(0, metadata_depth=16)
    with pytest.raises(ResourceLimitError) as info:
        save(nested(0, metadata_depth=17), path)
    assert f"nodes.lif.metadata{'.d' * 17}: metadata nested deeper than 16 levels (max_depth)" in str(info.value)
    assert load(path) == nested(0, metadata_depth=16)  # the old file


def test_save_refuses_what_loads_scan_would_refuse(tmp_path):
    """Graphs 16 deep whose innermost node has metadata 16 deep: each within max_depth, but
    more HDF5 group levels than load's scan allows; arrays over the byte limits; more nodes
    than max_nodes."""
    path = tmp_path / "g.nir"
    with pytest.raises(ResourceLimitError, match="groups nested deeper than 40 levels \\(see max_depth\\)"):
        save(nested(16, metadata_depth=16), path)
    with pytest.raises(ResourceLimitError, match=r"edges: declares 48 B \(shape \(3, 2\), object\), over the 47 B per-array limit"):
        save(small_graph(), path, max_array_bytes=47)
    with pytest.raises(ResourceLimitError, match="file declares more than 50 B of data"):
        save(small_graph(), path, max_total_bytes=50)
    with pytest.raises(ResourceLimitError, match=r"nodes: more than 3 nodes \(max_nodes\)"):
        save(small_graph(), path, max_nodes=3)
    save(small_graph(), path, max_nodes=4)
    assert load(path, max_nodes=4) == small_graph()
    path.unlink()
    assert leftovers(tmp_path, set()) == set()


def _conv2d(weight, groups=1, **kw):
    return Conv2d(weight=weight, bias=np.zeros(weight.shape[0], np.float32), stride=np.array(kw.get("stride", 1)),
                  padding=np.array(kw.get("padding", 0)), dilation=np.array(1), groups=np.array(groups))


def _through(node, shape_in, shape_out) -> Graph:
    return Graph(nodes={"in": Input(shape=np.array(shape_in)), "x": node, "out": Output(shape=np.array(shape_out))},
                 edges=[("in", "x"), ("x", "out")])


def _dotted() -> Graph:
    inner = {"type": "NIRGraph", "nodes": {"in": Input(shape=np.array([2])), "lif": nested(0).nodes["lif"], "out": Output(shape=np.array([2]))},
             "edges": [("in", "lif"), ("lif", "out")]}
    return Graph.from_dict({"nodes": {"in": Input(shape=np.array([2])), "sub": inner, "out": Output(shape=np.array([2]))},
                            "edges": [("in", "sub"), ("sub.lif", "out")]})


@pytest.mark.parametrize(
    "graph, reason",
    [
        (_through(LIF(tau=np.array(0.01), r=np.array(1.0), v_leak=np.array(0.0), v_threshold=np.array(1.0), v_reset=np.array(0.0)), [3], [3]),
         "nodes.x: 0-d parameters (one value for all neurons)"),
        (_through(_conv2d(np.ones((4, 1, 3, 3), np.float32), groups=2, padding=1), [2, 5, 5], [4, 5, 5]),
         "nodes.x: grouped convolution (groups=2)"),
        (_through(_conv2d(np.ones((2, 1, 1, 3), np.float32)), [1, 4, 6], [2, 4, 4]),
         "nodes.x: non-square kernel (1, 3): nir computes the output width from the kernel's height (6, not 4)"),
        (_dotted(), "edges[1]: 'sub.lif' names a node inside a nested graph"),
    ],
    ids=["0-d", "grouped", "non-square", "dotted-edge"],
)
def test_save_warns_where_nir_read_needs_its_type_check_off(tmp_path, graph, reason):
    """The file is written as it is (load reads it bit for bit, nir.read with type_check=False
    too), and the warning names the node and nir's reason."""
    path = tmp_path / "g.nir"
    with pytest.warns(NirReadWarning) as caught:
        save(graph, path)
    [warning] = caught
    assert str(warning.message) == (f"{path}: nir.read reads this file only with type_check=False ({reason}); "
                                    "nirbridge.load reads it exactly")
    assert like(load(path), graph) == graph
    assert like(Graph.from_nir(nir.read(path, type_check=False)), graph) == graph
    with pytest.raises(ValueError):
        nir.read(path)


def test_no_warning_where_nirs_conv2d_width_comes_out_right(tmp_path):
    """A square kernel; a (1, 2) kernel at stride 2 over width 6 (nir's formula gives 3 too);
    'same' padding."""
    same = _conv2d(np.ones((2, 1, 1, 3), np.float32)).model_copy(update={"padding": "same"})
    for graph in (_through(_conv2d(np.ones((2, 1, 3, 3), np.float32)), [1, 4, 6], [2, 2, 4]),
                  _through(_conv2d(np.ones((2, 1, 1, 2), np.float32), stride=2), [1, 4, 6], [2, 2, 3]),
                  _through(same, [1, 4, 6], [2, 4, 6])):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            save(graph, tmp_path / "g.nir")
        assert Graph.from_nir(nir.read(tmp_path / "g.nir")) == load(tmp_path / "g.nir")


def test_load_refuses_more_nodes_than_max_nodes(tmp_path):
    from nirbridge.errors import ResourceLimitError

    nodes = {"input": {"type": "Input", "shape": np.array([1])}, "output": {"type": "Output", "shape": np.array([1])}}
    nodes |= {f"s{i}": {"type": "Scale", "scale": np.ones(1, np.float32)} for i in range(20)}
    chain_edges = ["input", *(f"s{i}" for i in range(20)), "output"]
    graph = Graph.from_dict({"nodes": nodes, "edges": list(zip(chain_edges, chain_edges[1:]))})
    path = tmp_path / "chain.nir"
    save(graph, path)
    assert load(path, max_nodes=22) == graph
    with pytest.raises(ResourceLimitError, match=r"chain.nir: nodes: more than 21 nodes \(max_nodes\)"):
        load(path, max_nodes=21)


def test_a_conv1d_length_given_as_one_element_is_written_as_nir_reads_it(tmp_path):
    from nirbridge.ir import Conv1d, Input, Output

    conv = Conv1d(weight=np.ones((2, 1, 3), np.float32), bias=np.zeros(2, np.float32), stride=np.array([1]), padding=np.array([0]),
                  dilation=np.array([1]), groups=np.array(1), input_shape=np.array([8]))
    assert conv.input_shape_value.shape == ()  # NIR's form: the length as a scalar
    graph = Graph(nodes={"in": Input(shape=np.array([1, 8])), "c": conv, "out": Output(shape=np.array([2, 6]))}, edges=[("in", "c"), ("c", "out")])
    save(graph, tmp_path / "c.nir")
    assert load(tmp_path / "c.nir") == graph
    assert int(np.asarray(nir.read(tmp_path / "c.nir").nodes["c"].input_shape)) == 8
