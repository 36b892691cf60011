"""NIR files: `load` reads them safely, `save` writes them atomically.

`load` opens the file read-only and, before reading any array, walks every link and dataset:
soft and external links, external storage, virtual datasets and filters other than
gzip/shuffle/lzf/fletcher32 are refused (`UnsafeFileError`); the bytes each dataset declares
(shape x itemsize) are checked against per-array and total limits (`ResourceLimitError`), so a
small file declaring a huge array (a gzip bomb) is refused before anything is decompressed.
Then it decodes the version and every node through an explicit table of NIR node types and
builds a validated `Graph`. It never invents nodes; it fills in only what NIR itself defines
as defaults for older files (`v_reset` = 0, `w_in` = 1, Flatten's `start_dim`/`end_dim`).

`save` validates the graph, builds the file in memory (uncompressed unless asked), reads it
back through `load`'s own checks with the same limits (so it never writes what `load` refuses),
and writes it through `nirbridge.atomic` (a temporary file beside the target, fsynced and
renamed into place): a failed save leaves an existing file untouched and no temporary file.
What it writes, `nir.read` reads: a Conv `input_shape` the graph leaves out (nirbridge infers
it from the edges) is written as inferred, since nir cannot read a Conv without it; where
nir's type check would refuse the file, `save` warns (`NirReadWarning`).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import stat
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import h5py
import numpy as np

from .atomic import os_error, writable_target, write_bytes
from .errors import (
    FileAccessError,
    GraphValidationError,
    NirbridgeError,
    NirFormatError,
    Problem,
    ResourceLimitError,
    UnsafeFileError,
    UnsupportedVersionError,
)
from .ir import NODE_TYPES, Conv1d, Conv2d, Graph, Node
from .ir.base import pair
from .ir.conv import conv_out

DEFAULT_MAX_ARRAY_BYTES = 1 << 30  # 1 GiB per dataset
DEFAULT_MAX_TOTAL_BYTES = 4 << 30  # 4 GiB per file
DEFAULT_MAX_DEPTH = 16  # nested graphs (and nested metadata groups)
DEFAULT_MAX_NODES = 1_000_000  # nodes, nested graphs included
#: HDF5 objects a node may bring (its group, fields, metadata): bounds the walk before decoding
_OBJECTS_PER_NODE = 64

#: NIR releases whose files this module reads, as (major, minor); any patch level
SUPPORTED_VERSIONS = ((0, 0), (0, 1), (0, 2), (1, 0))
#: the version `save` writes: the NIR format of nir 1.0.8
WRITE_VERSION = "1.0.8"

SAFE_FILTERS = {
    h5py.h5z.FILTER_DEFLATE: "gzip",
    h5py.h5z.FILTER_SHUFFLE: "shuffle",
    h5py.h5z.FILTER_FLETCHER32: "fletcher32",
    h5py.h5z.FILTER_LZF: "lzf",
}

#: fields a file may omit, and the value NIR gives them (from the node's other fields)
_DEFAULTS = {
    "Conv1d": {"input_shape": lambda f: None},
    "Conv2d": {"input_shape": lambda f: None},
    "Flatten": {"input_type": lambda f: None, "start_dim": lambda f: 1, "end_dim": lambda f: -1},
    "IF": {"v_reset": lambda f: np.zeros_like(f["v_threshold"])},
    "LIF": {"v_reset": lambda f: np.zeros_like(f["v_threshold"])},
    "CubaLI": {"w_in": lambda f: np.ones_like(f["v_leak"])},
    "CubaLIF": {"v_reset": lambda f: np.zeros_like(f["v_threshold"]), "w_in": lambda f: np.ones_like(f["v_threshold"])},
}
_INT_FIELDS = {"start_dim", "end_dim"}  # plain Python ints in the model
_STRING_FIELDS = {"padding"}  # may hold 'same' / 'valid'

_STR = h5py.string_dtype()


def _file_keys(cls: type[Node]) -> list[str]:
    """The dataset names a node type stores (model fields under their NIR names)."""
    return [f.alias or name for name, f in cls.model_fields.items() if name not in ("type", "metadata")]


_KEYS = {kind: _file_keys(cls) for kind, cls in NODE_TYPES.items()}


# ----------------------------------------------------------------------------- load


def load(
    path: str | os.PathLike,
    *,
    max_array_bytes: int = DEFAULT_MAX_ARRAY_BYTES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> Graph:
    """Read a `.nir` file into a validated `Graph`, refusing unsafe or oversized files
    (`max_nodes` bounds the nodes, nested graphs included).

    Raises `NirFormatError` (not a NIR file, missing/unknown keys, wrong dtypes),
    `UnsafeFileError`, `ResourceLimitError`, `UnsupportedVersionError` or
    `GraphValidationError`; every message names the file and the place in it.
    """
    name = os.fspath(path)
    with open_checked(name, max_array_bytes=max_array_bytes, max_total_bytes=max_total_bytes,
                      max_levels=2 * max_depth + 8, max_objects=_OBJECTS_PER_NODE * max_nodes + 64) as tree:
        fields = _Reader(name, max_depth, max_nodes).root(tree)
    try:
        return Graph(**fields)
    except GraphValidationError as exc:
        raise GraphValidationError(problems=exc.problems, file=name) from None


@contextlib.contextmanager
def open_checked(
    path: str | os.PathLike,
    *,
    max_array_bytes: int = DEFAULT_MAX_ARRAY_BYTES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_levels: int = 2 * DEFAULT_MAX_DEPTH + 8,
    max_objects: int = _OBJECTS_PER_NODE * DEFAULT_MAX_NODES + 64,
) -> Iterator[_Obj]:
    """Open an HDF5 file read-only and yield its tree of checked objects with their data and
    their groups' scalar attributes (see `_Scan`: links, external storage, virtual datasets,
    filters, declared sizes, nesting and the number of objects, each checked before any of its
    data is read). Used by `load` and by `nirbridge.recording.load_recording`. Errors while
    the tree is decoded inside the block become `NirFormatError` naming the file."""
    name = os.fspath(path)
    mode = os.stat(name).st_mode  # FileNotFoundError for a missing file
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{name}: is a directory")
    if not stat.S_ISREG(mode):  # a FIFO or device would block or never end
        raise NirFormatError("not a regular file", file=name)
    try:
        f = h5py.File(name, "r")
    except OSError as exc:
        raise _open_error(exc, name) from None
    try:
        with f:
            yield _Scan(name, max_array_bytes, max_total_bytes, max_levels, max_objects).run(f)
    except NirbridgeError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
        raise NirFormatError(f"damaged ({_hdf5_reason(exc)})", file=name) from None


def _reason(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def _open_error(exc: OSError, name: str) -> NirbridgeError:
    """Why HDF5 could not open a file, in words: permission, a lock, or damage."""
    text = str(exc)
    if isinstance(exc, PermissionError):
        return os_error(exc, name)
    if "unable to lock file" in text:
        error = FileAccessError(f"locked: {name} (another program has it open for writing; HDF5 file locking)")
        error.file, error.errno = name, exc.errno
        return error
    if truncated := re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", text):
        return NirFormatError(f"not an HDF5 file or damaged (truncated: {truncated[1]} of {truncated[2]} bytes)", file=name)
    return NirFormatError(f"not an HDF5 file or damaged ({_hdf5_reason(exc)})", file=name)


def _hdf5_reason(exc: BaseException) -> str:
    """HDF5's innermost message without h5py's wrapper or internal addresses:
    "Unable to open object (addr overflow, addr = 1671, ...)" -> "addr overflow"."""
    text = _reason(exc).strip("'\"")
    inner = text[text.rfind("(") + 1 :].split(")")[0] if "(" in text else text
    return inner.split(",")[0].strip() or type(exc).__name__


def _where(h5path: str) -> str:
    """A file path as a dotted graph path: /node/nodes/lif1/tau -> nodes.lif1.tau."""
    parts = h5path.strip("/").split("/")
    if parts[0] == "node" and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts)


def _size(nbytes: int) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


class _Obj:
    """One checked HDF5 object: a group (`children`, `attrs`) or a dataset (`data`, `shape`,
    `dtype`)."""

    __slots__ = ("children", "data", "shape", "dtype", "attrs")

    def __init__(self, children=None, data=None, shape=None, dtype=None, attrs=None):
        self.children: dict[str, _Obj] | None = children
        self.data: np.ndarray | None = data  # read-only
        self.shape: tuple[int, ...] | None = shape  # None: null dataspace (no value)
        self.dtype = dtype
        self.attrs: dict[str, Any] = attrs or {}  # scalar numbers and strings; else why not (_BadAttribute)

    @property
    def is_string(self) -> bool:
        return self.children is None and h5py.check_string_dtype(self.dtype) is not None

    def read(self) -> np.ndarray:
        return self.data

    def attribute(self, name: str) -> str | int | float | None:
        """A scalar number or string attribute of a group, or None when absent; an attribute
        of any other kind (never read) raises `NirFormatError`."""
        value = self.attrs.get(name)
        if isinstance(value, _BadAttribute):
            raise NirFormatError(f"attribute {name!r}: must be a scalar number or string, got {value}")
        return value


class _BadAttribute(str):
    """What an attribute that was not read is (its dtype and shape)."""


MAX_ATTRIBUTES = 64  # per group


class _Scan:
    """Walks every link of the file with the low-level API and checks each object before its
    data is read (links before they are followed, a dataset's storage and declared size before
    its bytes); returns the tree of checked objects with their data. Each object is closed as
    soon as it is read, so memory and time stay linear in the number of objects."""

    def __init__(self, name: str, max_array: int, max_total: int, max_levels: int, max_objects: int):
        self.name, self.max_array, self.max_total, self.max_levels = name, max_array, max_total, max_levels
        self.max_objects = max_objects
        self.total = 0
        self.seen: set[int] = set()  # addresses of the objects reached so far

    def fail(self, cls, where: str, msg: str):
        raise cls(problems=[Problem(_where(where), msg)], file=self.name)

    def run(self, f: h5py.File) -> _Obj:
        top = h5py.h5o.open(f.id, b"/")
        root = _Obj(children={}, attrs=self.attributes(top, ""))
        stack = [(top, root, "", 0)]
        while stack:
            gid, obj, path, level = stack.pop()
            for key, child in self.links(gid, path):
                where = f"{path}/{key}"
                if isinstance(child, h5py.h5g.GroupID):
                    if level + 1 > self.max_levels:
                        msg = f"groups nested deeper than {self.max_levels} levels (see max_depth)"
                        self.fail(ResourceLimitError, where, msg)
                    obj.children[key] = _Obj(children={}, attrs=self.attributes(child, where))
                    stack.append((child, obj.children[key], where, level + 1))
                elif isinstance(child, h5py.h5d.DatasetID):
                    obj.children[key] = self.dataset(child, where)
                else:
                    self.fail(NirFormatError, where, f"unexpected HDF5 object {type(child).__name__}")
        return root

    def attributes(self, gid, where: str) -> dict[str, Any]:
        """A group's scalar number and string attributes, read after their type and shape are
        checked; other attributes are not read (`_BadAttribute` says what they are)."""
        count = h5py.h5a.get_num_attrs(gid)
        if count > MAX_ATTRIBUTES:
            self.fail(ResourceLimitError, where or "/", f"group has {count} attributes, more than {MAX_ATTRIBUTES}")
        found: dict[str, Any] = {}
        for i in range(count):
            attr = h5py.h5a.open(gid, index=i)
            name = attr.name.decode("utf-8", errors="replace")
            try:
                dtype = attr.dtype
            except (TypeError, ValueError) as exc:
                found[name] = _BadAttribute(f"an unsupported HDF5 type ({_reason(exc)})")
                continue
            space = attr.get_space()
            string = h5py.check_string_dtype(dtype) is not None
            if space.get_simple_extent_type() != h5py.h5s.SCALAR or not (string or (dtype.kind in "biuf" and not dtype.shape)):
                found[name] = _BadAttribute(f"{dtype} of shape {space.shape}")
                continue
            value = np.empty((), dtype=dtype)
            attr.read(value)
            found[name] = _text(value[()]) if string else value.item()
        return found

    def links(self, gid, path: str) -> list[tuple[str, Any]]:
        """(name, opened object) of every link of a group, in creation order when tracked."""
        infos: list[tuple[bytes, int, int]] = []
        tracked = gid.get_create_plist().get_link_creation_order() & h5py.h5p.CRT_ORDER_TRACKED
        index = h5py.h5.INDEX_CRT_ORDER if tracked else h5py.h5.INDEX_NAME
        gid.links.iterate(lambda n, info: infos.append((n, info.type, info.u)), idx_type=index, info=True)
        if len(self.seen) + len(infos) > self.max_objects:
            msg = f"holds more than {self.max_objects:,} HDF5 objects (max_nodes limits the nodes, and so the objects)"
            self.fail(ResourceLimitError, path or "/", msg)
        out = []
        for raw, kind, address in infos:
            try:
                key = raw.decode("utf-8")
            except UnicodeDecodeError:
                self.fail(NirFormatError, f"{path}/{raw!r}", "link name is not UTF-8")
            where = f"{path}/{key}"
            if kind == h5py.h5l.TYPE_SOFT:
                target = gid.links.get_val(raw).decode(errors="replace")
                self.fail(UnsafeFileError, where, f"soft link to {target!r} (only hard links are allowed)")
            if kind == h5py.h5l.TYPE_EXTERNAL:
                file, target = (v.decode(errors="replace") for v in gid.links.get_val(raw))
                self.fail(UnsafeFileError, where, f"external link to {file!r}:{target!r}")
            if kind != h5py.h5l.TYPE_HARD:
                self.fail(UnsafeFileError, where, f"user-defined link (class {kind})")
            if address in self.seen:
                self.fail(NirFormatError, where, "object reached a second time through a hard link")
            self.seen.add(address)
            out.append((key, h5py.h5o.open(gid, raw)))
        return out

    def dataset(self, ds, where: str) -> _Obj:
        dcpl = ds.get_create_plist()
        layout = dcpl.get_layout()
        if layout == h5py.h5d.VIRTUAL:
            self.fail(UnsafeFileError, where, "virtual dataset (maps data from other files)")
        if dcpl.get_external_count():
            external = dcpl.get_external(0)[0].decode(errors="replace")
            self.fail(UnsafeFileError, where, f"external storage in file {external!r}")
        for i in range(dcpl.get_nfilters()):
            code, _, _, label = dcpl.get_filter(i)
            if code not in SAFE_FILTERS:
                self.fail(UnsafeFileError, where, f"HDF5 filter {code} ({label.decode(errors='replace')}) is not allowed")
        try:
            dtype = ds.dtype
        except (TypeError, ValueError) as exc:
            self.fail(NirFormatError, where, f"unsupported HDF5 type ({_reason(exc)})")
        if h5py.check_string_dtype(dtype) is None and (dtype.kind not in "biuf" or dtype.shape or dtype.names):
            self.fail(NirFormatError, where, f"unsupported dtype {dtype} (numbers and strings only)")
        space = ds.get_space()
        shape = None if space.get_simple_extent_type() == h5py.h5s.NULL else tuple(space.shape)
        nbytes = math.prod(shape or ()) * dtype.itemsize
        if nbytes > self.max_array:
            self.fail(
                ResourceLimitError, where,
                f"declares {_size(nbytes)} (shape {shape}, {dtype}), over the {_size(self.max_array)} "
                "per-array limit (max_array_bytes)",
            )
        if layout == h5py.h5d.CHUNKED:
            chunk = math.prod(dcpl.get_chunk()) * dtype.itemsize
            if chunk > self.max_array:
                msg = f"chunks of {_size(chunk)}, over the {_size(self.max_array)} per-array limit"
                self.fail(ResourceLimitError, where, msg)
        self.total += nbytes
        if self.total > self.max_total:
            msg = f"file declares more than {_size(self.max_total)} of data (max_total_bytes)"
            self.fail(ResourceLimitError, where, msg)
        data = None
        if shape is not None:
            data = np.empty(shape, dtype=dtype)  # the declared size, checked above
            if data.size:
                ds.read(h5py.h5s.ALL, h5py.h5s.ALL, data)
            data.flags.writeable = False  # nothing else holds it: the graph keeps it without a copy
        return _Obj(data=data, shape=shape, dtype=dtype)


class _Reader:
    """Decodes the checked tree into plain data for `Graph`; paths are dotted graph paths."""

    def __init__(self, name: str, max_depth: int, max_nodes: int):
        self.name = name
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.nodes = 0

    def fail(self, where: str, msg: str, cls=NirFormatError):
        raise cls(problems=[Problem(where, msg)], file=self.name)

    def root(self, tree: _Obj) -> dict[str, Any]:
        items = tree.children
        for key in items:
            if key not in ("version", "node"):
                self.fail(key, "unknown key (a NIR file holds 'version' and 'node')")
        if "version" not in items:
            self.fail("version", "missing (not a NIR file?)")
        self.version(self.string(items["version"], "version"))
        if "node" not in items or items["node"].children is None:
            self.fail("node", "missing graph group (not a NIR file?)")
        kind = self.type_of(items["node"], "node")
        if kind != "NIRGraph":
            self.fail("node.type", f"the top-level node must be a NIRGraph, got {kind!r}")
        return self.graph(items["node"], "", 0)

    def version(self, text: str) -> None:
        match = re.fullmatch(r"(\d+)\.(\d+)(\.\d+)?([.+\-]?[0-9A-Za-z.+\-]*)", text.strip())
        supported = ", ".join(f"{a}.{b}.x" for a, b in SUPPORTED_VERSIONS)
        if not match or (int(match[1]), int(match[2])) not in SUPPORTED_VERSIONS:
            self.fail("version", f"NIR format {text!r} is not supported (supported: {supported})", UnsupportedVersionError)

    # -- graphs and nodes -------------------------------------------------------
    def graph(self, group: _Obj, prefix: str, level: int) -> dict[str, Any]:
        if level > self.max_depth:
            where = prefix.rstrip(".") or "node"
            self.fail(where, f"graphs nested deeper than {self.max_depth} levels (max_depth)", ResourceLimitError)
        self.keys(group, prefix, "NIRGraph", ("nodes", "edges"))
        items = group.children
        if items["nodes"].children is None:
            self.fail(f"{prefix}nodes", "must be a group of nodes, found a dataset")
        nodes = {}
        self.nodes += len(items["nodes"].children)
        if self.nodes > self.max_nodes:
            self.fail(f"{prefix}nodes", f"more than {self.max_nodes:,} nodes (max_nodes)", ResourceLimitError)
        for key, item in items["nodes"].children.items():
            where = f"{prefix}nodes.{key}"
            if item.children is None:
                self.fail(where, "must be a node group, found a dataset")
            kind = self.type_of(item, where)
            if kind == "NIRGraph":
                nodes[key] = {"type": kind, **self.graph(item, f"{where}.", level + 1)}
            else:
                nodes[key] = self.node(item, where, kind)
        return {"nodes": nodes, "edges": self.edges(items["edges"], f"{prefix}edges"), "metadata": self.meta(group, prefix)}

    def type_of(self, group: _Obj, where: str) -> str:
        item = group.children.get("type")
        if item is None:
            self.fail(f"{where}.type", "missing node type")
        kind = self.string(item, f"{where}.type")
        if kind not in NODE_TYPES:
            self.fail(f"{where}.type", f"unknown node type {kind!r} (known: {', '.join(sorted(NODE_TYPES))})")
        return kind

    def keys(self, group: _Obj, prefix: str, kind: str, required) -> None:
        allowed = set(_KEYS[kind]) | {"type", "metadata"}
        for key in group.children:
            if key not in allowed:
                self.fail(f"{prefix}{key}", f"unknown key for {kind} (expected {', '.join(_KEYS[kind])})")
        for key in required:
            if key not in group.children:
                self.fail(f"{prefix}{key}", f"missing ({kind} needs {', '.join(required)})")

    def node(self, group: _Obj, where: str, kind: str) -> dict[str, Any]:
        defaults = _DEFAULTS.get(kind, {})
        required = [k for k in _KEYS[kind] if k not in defaults]
        self.keys(group, f"{where}.", kind, required)
        fields: dict[str, Any] = {"type": kind}
        for key in _KEYS[kind]:
            item = group.children.get(key)
            if item is None:
                continue
            if item.children is not None:
                self.fail(f"{where}.{key}", "must be a dataset, found a group")
            fields[key] = self.value(item, f"{where}.{key}", key)
        for key, default in defaults.items():
            if key not in fields:
                fields[key] = default(fields)
        fields["metadata"] = self.meta(group, f"{where}.")
        return fields

    # -- values -----------------------------------------------------------------
    def value(self, item: _Obj, where: str, key: str) -> Any:
        if item.is_string:
            if key in _STRING_FIELDS and item.shape == ():
                return self.string(item, where)
            self.fail(where, "must be numeric, got a string")
        if item.shape is None:
            self.fail(where, "empty dataspace (no value)")
        if key in _INT_FIELDS:
            if item.dtype.kind not in "iu" or math.prod(item.shape) != 1 or len(item.shape) > 1:
                self.fail(where, f"must be one integer, got {item.dtype} of shape {item.shape}")
            return int(item.read().reshape(()))
        return item.read()

    def string(self, item: _Obj, where: str) -> str:
        if not item.is_string or item.shape != ():
            found = "a group" if item.children is not None else f"{item.dtype} of shape {item.shape}"
            self.fail(where, f"must be a string, got {found}")
        return _text(item.read()[()])

    def edges(self, item: _Obj, where: str) -> list[tuple[str, str]]:
        if item.children is not None or item.shape is None:
            self.fail(where, "must be an (n, 2) array of node names")
        if math.prod(item.shape) == 0:
            return []
        if not item.is_string:
            self.fail(where, f"must be an (n, 2) array of node names, got dtype {item.dtype}")
        if len(item.shape) != 2 or item.shape[1] != 2:
            self.fail(where, f"must be an (n, 2) array of node names (source, destination), got shape {item.shape}")
        return [(_text(a), _text(b)) for a, b in item.read().tolist()]

    def meta(self, group: _Obj, prefix: str) -> dict[str, Any]:
        item = group.children.get("metadata")
        if item is None:
            return {}
        if item.children is None:
            self.fail(f"{prefix}metadata", "must be a group")
        return self.meta_group(item, f"{prefix}metadata", 0)

    def meta_group(self, group: _Obj, where: str, level: int) -> dict[str, Any]:
        if level > self.max_depth:
            self.fail(where, f"metadata nested deeper than {self.max_depth} levels (max_depth)", ResourceLimitError)
        out: dict[str, Any] = {}
        for key, item in group.children.items():
            if item.children is not None:
                out[key] = self.meta_group(item, f"{where}.{key}", level + 1)
            elif item.shape is None:
                self.fail(f"{where}.{key}", "empty dataspace (no value)")
            elif item.is_string:
                value = item.read()
                out[key] = _text(value[()]) if item.shape == () else [_text(v) for v in value.ravel().tolist()]
            else:
                out[key] = item.read()
        return out


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


# ----------------------------------------------------------------------------- save


class NirReadWarning(UserWarning):
    """`save` wrote a file that `nirbridge.load` reads exactly but that `nir.read` reads only
    with `type_check=False`. nir 1.0.8's type check refuses, in graphs that are valid NIR:
    neuron, Scale, Threshold and Delay nodes with 0-d parameters (one value for all neurons);
    grouped convolutions (groups > 1); Conv2d with a non-square kernel where nir's output
    width (computed from the kernel's height) comes out wrong; and edges that name a node
    inside a nested graph (`sub.lif`)."""


def save(
    graph: Graph,
    path: str | os.PathLike,
    *,
    compression: str | int | None = None,
    max_array_bytes: int = DEFAULT_MAX_ARRAY_BYTES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> None:
    """Write `graph` to `path` atomically, in the format `nir.read` reads.

    `compression`: None (default, fastest), "gzip", a gzip level 0-9, or "lzf".
    The graph is validated first (`GraphValidationError`). The file is built in memory and
    read back by `load`'s own checks with the same limits (`max_*`, `load`'s defaults), so
    `save` never writes what `load` would refuse (`ResourceLimitError`: nesting, sizes, node
    count). Nothing is written unless all this passes. Then the bytes are written beside the
    target, fsynced and renamed over it (`nirbridge.atomic`): an existing file survives any
    failure, and a failed write (no space left, no permission) raises one `FileAccessError`
    naming `path`. Where `nir.read` needs `type_check=False` to read the file back, a
    `NirReadWarning` says which nodes and why.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"save() takes a nirbridge.Graph, got {type(graph).__name__}")
    name = os.fspath(path)
    options = _compression(compression)
    writable_target(name)  # refuse a directory, FIFO, device, dangling link before any work
    problems = list(graph.problems()) + list(_metadata_problems(graph))
    if problems:
        raise GraphValidationError(problems=problems, file=name)

    def fill(f: h5py.File) -> None:
        f.create_dataset("version", data=WRITE_VERSION, dtype=_STR)
        _write_graph(f.create_group("node", track_order=True), graph, options)
        f.flush()
        tree = _Scan(name, max_array_bytes, max_total_bytes, 2 * max_depth + 8, _OBJECTS_PER_NODE * max_nodes + 64).run(f)
        _Reader(name, max_depth, max_nodes).root(tree)  # as load(name, **limits) would

    image = hdf5_bytes(fill)
    if refusals := list(_nir_read_refusals(graph)):
        text = "; ".join(map(str, refusals))
        warnings.warn(f"{name}: nir.read reads this file only with type_check=False ({text}); nirbridge.load reads it exactly",
                      NirReadWarning, stacklevel=2)
    write_bytes(name, image)


def hdf5_bytes(fill: Callable[[h5py.File], None]) -> memoryview:
    """The bytes of an HDF5 file that `fill` writes, built in memory: write them to disk with
    `nirbridge.atomic.write_bytes`, never let HDF5 write a file itself.

    Why: when a write fails inside HDF5 (a full disk, a file size limit), h5py 3.16 / HDF5 2.0
    fail to close the datasets whose data they still hold (compressed datasets write their
    chunks when they close), then tear down the file anyway; the dataset left open points into
    the freed file, and the process dies with SIGSEGV when it is closed, at the latest when
    HDF5 shuts down at exit (H5D_close -> H5FO_top_decr -> H5SL_search). In memory, HDF5
    cannot fail that way, and the one write that can fail is a checked `os.write`."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        fill(f)
    return buffer.getbuffer()


def _nir_conv2d_width(node: Conv2d, shape: tuple[int, ...] | None) -> int | None:
    """The output width nir 1.0.8 gives a Conv2d: computed from the kernel's height."""
    if shape is None or (isinstance(node.padding, str) and node.padding == "same"):
        return None
    padding = 0 if isinstance(node.padding, str) else pair(node.padding, 2)[1]
    return conv_out(shape[2], node.weight.shape[2], pair(node.stride, 2)[1], padding, pair(node.dilation, 2)[1])


def _nir_read_refusals(graph: Graph, prefix: str = "") -> Iterator[Problem]:
    """What nir 1.0.8's type check (`nir.read`'s default) refuses in a valid graph."""
    shapes = graph.shapes()
    for name, node in graph.nodes.items():
        where = f"{prefix}nodes.{name}"
        if isinstance(node, Graph):
            yield from _nir_read_refusals(node, f"{where}.")
        elif node.same_shape_fields and node.input_shape() is None and shapes[name][0] != ():  # nir: input type = their shape
            yield Problem(where, "0-d parameters (one value for all neurons)")
        elif isinstance(node, (Conv1d, Conv2d)) and int(node.groups) > 1:
            yield Problem(where, f"grouped convolution (groups={int(node.groups)})")
        elif isinstance(node, Conv2d) and (width := _nir_conv2d_width(node, shapes[name][0])) not in (None, shapes[name][1][2]):
            yield Problem(where, f"non-square kernel {node.weight.shape[2:]}: nir computes the output width from the kernel's height "
                          f"({width}, not {shapes[name][1][2]})")
    for i, edge in enumerate(graph.edges):
        inside = [end for end in edge if end not in graph.nodes]
        if inside:
            yield Problem(f"{prefix}edges[{i}]", f"{inside[0]!r} names a node inside a nested graph")


def _compression(compression: str | int | None) -> dict[str, Any]:
    if compression is None:
        return {}
    if compression == "lzf":
        return {"compression": "lzf"}
    if compression == "gzip":
        return {"compression": "gzip"}
    if isinstance(compression, int) and not isinstance(compression, bool) and 0 <= compression <= 9:
        return {"compression": "gzip", "compression_opts": compression}
    raise NirbridgeError(f"compression must be None, 'gzip', a gzip level 0-9 or 'lzf', got {compression!r}")


def _write_graph(group: h5py.Group, graph: Graph, options: dict[str, Any]) -> None:
    group.create_dataset("type", data="NIRGraph", dtype=_STR)
    nodes = group.create_group("nodes", track_order=True)
    shapes = graph.shapes()
    for name, node in graph.nodes.items():
        sub = nodes.create_group(name, track_order=True)
        if isinstance(node, Graph):
            _write_graph(sub, node, options)
        else:
            _write_node(sub, _with_input_shape(node, shapes[name][0]), options)
    edges = np.array([list(e) for e in graph.edges], dtype=object).reshape(-1, 2)
    group.create_dataset("edges", data=edges, dtype=_STR)
    _write_metadata(group, graph.metadata, options)


def _with_input_shape(node: Node, shape: tuple[int, ...] | None) -> Node:
    """A Conv's `input_shape`, filled in from shape inference where the graph leaves it out:
    nir.read cannot build a Conv node without it."""
    if shape is None or not isinstance(node, (Conv1d, Conv2d)) or node.input_shape_value is not None:
        return node
    spatial = np.array(shape[1:], dtype=np.int64)
    return node.model_copy(update={"input_shape_value": spatial.reshape(()) if isinstance(node, Conv1d) else spatial})


def _write_node(group: h5py.Group, node: Node, options: dict[str, Any]) -> None:
    group.create_dataset("type", data=node.type, dtype=_STR)
    for name, field in type(node).model_fields.items():
        if name in ("type", "metadata"):
            continue
        _write_value(group, field.alias or name, getattr(node, name), options)
    _write_metadata(group, node.metadata, options)


def _write_value(group: h5py.Group, key: str, value: Any, options: dict[str, Any]) -> None:
    if value is None:
        return
    if isinstance(value, str):
        group.create_dataset(key, data=value, dtype=_STR)
    elif isinstance(value, list):  # metadata: list of str (checked before writing)
        group.create_dataset(key, data=np.array(value, dtype=object), dtype=_STR)
    elif isinstance(value, np.ndarray) and value.ndim > 0:
        group.create_dataset(key, data=value, **options)
    else:  # Python / numpy scalars and 0-d arrays: scalar datasets cannot be compressed
        group.create_dataset(key, data=value)


def _write_metadata(group: h5py.Group, metadata: dict[str, Any], options: dict[str, Any]) -> None:
    if not metadata:
        return
    sub = group.create_group("metadata", track_order=True)
    for key, value in metadata.items():
        if isinstance(value, dict):
            _write_metadata_dict(sub.create_group(key, track_order=True), value, options)
        else:
            _write_value(sub, key, value, options)


def _write_metadata_dict(group: h5py.Group, values: dict[str, Any], options: dict[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, dict):
            _write_metadata_dict(group.create_group(key, track_order=True), value, options)
        else:
            _write_value(group, key, value, options)


def _metadata_problems(graph: Graph, prefix: str = "") -> Iterator[Problem]:
    """Metadata values `save` cannot store so that they read back the same."""
    yield from _metadata_values(graph.metadata, f"{prefix}metadata")
    for name, node in graph.nodes.items():
        if isinstance(node, Graph):
            yield from _metadata_problems(node, f"{prefix}nodes.{name}.")
        else:
            yield from _metadata_values(node.metadata, f"{prefix}nodes.{name}.metadata")


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "strings cannot hold NUL"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid unicode (lone surrogate)"
    return None


def _metadata_values(values: dict[str, Any], where: str) -> Iterator[Problem]:
    for key, value in values.items():
        at = f"{where}.{key}"
        if not isinstance(key, str) or not key or "/" in key or key == "." or _text_problem(key):
            yield Problem(at, "metadata keys must be non-empty strings, not '.', without '/' or NUL")
        elif isinstance(value, dict):
            yield from _metadata_values(value, at)
        elif isinstance(value, str):
            if problem := _text_problem(value):
                yield Problem(at, problem)
        elif isinstance(value, (bool, float)):
            continue
        elif isinstance(value, int):
            if not -(2**63) <= value < 2**63:
                yield Problem(at, f"integer {value} does not fit in 64 bits")
        elif isinstance(value, np.ndarray):
            if value.dtype.kind not in "biuf":
                yield Problem(at, f"cannot store an array of dtype {value.dtype} (numbers only)")
        elif isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                yield Problem(at, "lists must hold strings only; store numbers as a numpy array")
            elif problem := next(filter(None, map(_text_problem, value)), None):
                yield Problem(at, problem)
        else:
            kinds = "str, bool, int, float, numpy array, list of str or dict"
            yield Problem(at, f"cannot store a value of type {type(value).__name__} ({kinds})")
