"""Data to evaluate on: the built-in datasets, safe `.npy` files, and the one place where every
accepted form of data becomes a sequence of batches.

A batch is `(x, y)`: `x` shaped (time, batch, *input shape), float32; `y` the labels, (batch,)
integers. `batches(data)` accepts

- an iterable of such batches (lists, generators, a torch `DataLoader` of time-major batches);
- a dataset of samples `(x[time, *input shape], label)` with `len` and indexing, e.g. a tonic
  dataset with a transform such as `tonic.transforms.ToFrame` (batched in order; each batch is
  padded with zeros after its end to its longest sample, as `tonic.collation.PadTensors` does);
- a pair of `.npy` paths `(x.npy, y.npy)`: x shaped (time, samples, *input shape), y (samples,);
  read with `read_npy` (never unpickled, the header's declared size checked against the file
  size before anything is allocated) and memory-mapped, so only the batch in use is read;
- a built-in name: `digits` or `digits-dvs` (their test split; `nirbridge[data]`).

Built-in datasets, from scikit-learn's 1,797 8x8 handwritten digit scans g (0..16), split once
into a stratified, seeded 80/20 train/test split (1,437 / 360 samples):

- `digits`: static frames x_t = g / 16 for t < T (default 20), shape (T, 1, 8, 8): the MNIST analogue;
- `digits-dvs`: events of a simulated DVS camera under three saccades (`nirbridge.dvs`), binned
  by tonic's `ToFrame` into T (default 30) frames of ON/OFF counts, shape (T, 2, 20, 20): the
  N-MNIST analogue.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dvs import DVSParams, simulate_dvs, to_frames
from .errors import DataError

BUILT_IN = ("digits", "digits-dvs")
DEFAULT_T = {"digits": 20, "digits-dvs": 30}
DEFAULT_BATCH_SIZE = 64
#: largest .npy array `read_npy` accepts by default
DEFAULT_MAX_NPY_BYTES = 16 << 30


class FrameDataset:
    """Map-style dataset: item i is (x[T, *input_shape] float32, int label).

    `items[j]` is a sample's frames (T, *input_shape), or with `repeat=T` one static frame
    repeated T times; values are multiplied by `scale`. `index` selects and orders the samples.
    """

    def __init__(self, items, labels, *, input_shape, n_classes, index=None, repeat=None, scale=1.0):
        self.items, self._labels = items, np.asarray(labels, dtype=np.int64)
        self.index = np.arange(len(self._labels)) if index is None else np.asarray(index, dtype=np.int64)
        self.input_shape, self.n_classes = tuple(input_shape), int(n_classes)
        self.repeat, self.scale = repeat, scale

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        j = self.index[i]
        x = np.asarray(self.items[j], dtype=np.float32) * np.float32(self.scale)
        if self.repeat is not None:
            x = np.repeat(x[None], self.repeat, axis=0)
        return x, int(self._labels[j])

    @property
    def labels(self) -> np.ndarray:
        return self._labels[self.index]

    def subset(self, positions) -> FrameDataset:
        """The samples at `positions` of this dataset."""
        return FrameDataset(
            self.items, self._labels, input_shape=self.input_shape, n_classes=self.n_classes,
            index=self.index[np.asarray(positions, dtype=np.int64)], repeat=self.repeat, scale=self.scale,
        )

    def spread(self, limit: int | None) -> FrameDataset:
        """At most `limit` samples, spread evenly over the dataset (all when None)."""
        if limit is None or limit >= len(self):
            return self
        return self.subset(np.linspace(0, len(self) - 1, limit).round().astype(int))


# ----------------------------------------------------------------------------- built in


def builtin(name: str, *, split: str = "test", T: int | None = None, seed: int = 0, limit: int | None = None) -> FrameDataset:
    """The `split` ("train" or "test") of built-in dataset `name` (see the module docstring)."""
    if name not in BUILT_IN:
        raise DataError(f"unknown built-in dataset {name!r}; choose one of {', '.join(BUILT_IN)}")
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    T = T or DEFAULT_T[name]
    if name == "digits":
        return digits(T, seed)[0 if split == "train" else 1].spread(limit)
    return _dvs_split(split, T, seed, DVSParams(), limit)  # only this split is simulated


@functools.lru_cache(maxsize=4)
def digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits as (images (n, 8, 8) in [0, 1], labels, train index, test index)."""
    from sklearn.datasets import load_digits  # nirbridge[data]
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)
    labels = data.target.astype(np.int64)
    train, test = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=seed)
    return images, labels, np.sort(train), np.sort(test)


def digits(T: int = DEFAULT_T["digits"], seed: int = 0) -> tuple[FrameDataset, FrameDataset]:
    """(train, test) of `digits`: each image / 16 repeated T times, shape (T, 1, 8, 8)."""
    images, labels, *splits = digits_split(seed)
    return tuple(
        FrameDataset(images[:, None], labels, input_shape=(1, 8, 8), n_classes=10, index=ix, repeat=T)
        for ix in splits
    )


def digits_dvs(T: int = DEFAULT_T["digits-dvs"], seed: int = 0, params: DVSParams = DVSParams(),
               limit: int | None = None) -> tuple[FrameDataset, FrameDataset]:
    """(train, test) of `digits-dvs`: T frames of simulated DVS events, shape (T, 2, 20, 20).
    With `limit`, only that many samples per split (spread evenly) are simulated."""
    return tuple(_dvs_split(split, T, seed, params, limit) for split in ("train", "test"))


def _dvs_split(split: str, T: int, seed: int, params: DVSParams, limit: int | None) -> FrameDataset:
    images, labels, train, test = digits_split(seed)
    ix = train if split == "train" else test
    if limit is not None and limit < len(ix):
        ix = ix[np.linspace(0, len(ix) - 1, limit).round().astype(int)]
    sensor = params.sensor_size(images.shape[1:])
    frames = _dvs_frames(tuple(int(i) for i in ix), T, seed, params)
    return FrameDataset(frames, labels[ix], input_shape=(2, sensor[1], sensor[0]), n_classes=10)


@functools.lru_cache(maxsize=4)
def _dvs_frames(ix: tuple[int, ...], T: int, seed: int, params: DVSParams) -> np.ndarray:
    images = digits_split(seed)[0]
    events = simulate_dvs(images[list(ix)], params, seed=seed, ids=np.asarray(ix))
    sensor = params.sensor_size(images.shape[1:])
    return np.stack([to_frames(e, sensor, T, params.duration_us) for e in events])


# ----------------------------------------------------------------------------- .npy files


def read_npy(path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_NPY_BYTES, mmap: bool = False) -> np.ndarray:
    """A numeric array from a `.npy` file, safely: the header is parsed first (never a pickle,
    never an object, structured or sub-array dtype), and the size it declares (shape x itemsize)
    must equal the bytes the file holds after it and stay within `max_bytes`, before anything
    is allocated. `mmap=True` maps the file read-only instead of reading it. `DataError` names
    the file and what is wrong."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise DataError("is a directory", file=name)
    size = os.stat(name).st_size  # FileNotFoundError for a missing file
    with open(name, "rb") as fh:
        magic = fh.read(6)
        if magic[:4] == b"PK\x03\x04":
            raise DataError("is an .npz archive; expected a single array saved with numpy.save (.npy)", file=name)
        if magic != b"\x93NUMPY":
            raise DataError("not a .npy file (saved with numpy.save)", file=name)
        fh.seek(0)
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise DataError(f".npy format version {version[0]}.{version[1]} is not supported (1.0, 2.0)", file=name)
        except DataError:
            raise
        except (ValueError, SyntaxError, EOFError, OSError) as exc:
            raise DataError(f"damaged .npy header ({exc})", file=name) from None
        offset = fh.tell()
        if dtype.hasobject:
            raise DataError("holds Python objects (dtype object), which are never loaded; save a numeric array", file=name)
        if dtype.kind not in "biuf" or dtype.names or dtype.shape:
            raise DataError(f"expected a numeric array, got dtype {dtype}", file=name)
        declared = math.prod(shape) * dtype.itemsize
        if declared > max_bytes:
            raise DataError(f"declares {declared} bytes (shape {shape}, {dtype}), over the {max_bytes}-byte limit", file=name)
        if declared != size - offset:
            raise DataError(f"header declares {declared} bytes of data (shape {shape}, {dtype}), the file holds {size - offset}", file=name)
        if mmap and declared:
            return np.memmap(name, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
        data = np.fromfile(fh, dtype=dtype, count=math.prod(shape))
    return data.reshape(shape[::-1]).transpose() if fortran else data.reshape(shape)


# ----------------------------------------------------------------------------- batches


@dataclass
class Batches:
    """Batches `(x, y)` in a fixed order; `total` is their number when known beforehand and
    `describe` says where they come from."""

    source: Iterable
    total: int | None
    describe: str

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for item in self.source:
            yield _as_pair(item)


def batches(data: Any, *, batch_size: int = DEFAULT_BATCH_SIZE, T: int | None = None, seed: int = 0,
            limit: int | None = None) -> Batches:
    """Any accepted form of data (see the module docstring) as `Batches`. `batch_size` applies to
    datasets of samples, `.npy` pairs and built-in names; `T`, `seed` and `limit` (at most that
    many samples, spread evenly) to built-in names."""
    if isinstance(data, Batches):
        return data
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(data, str) and not data.endswith(".npy"):
        dataset = builtin(data, T=T, seed=seed, limit=limit)
        return _sample_batches(dataset, batch_size, f"built-in dataset {data!r} (test split, {len(dataset)} samples)")
    if isinstance(data, (str, os.PathLike)):
        raise DataError(f"{os.fspath(data)}: give the inputs and the labels as a pair of .npy files (x.npy, y.npy)")
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(p, (str, os.PathLike)) for p in data):
        return _npy_batches(*data, batch_size)
    if hasattr(data, "__len__") and hasattr(data, "__getitem__") and len(data) and _is_sample(data[0]):
        return _sample_batches(data, batch_size, f"dataset of {len(data)} samples")
    if not isinstance(data, Iterable):
        raise DataError(f"cannot evaluate on a {type(data).__name__}: give batches (x, y), a dataset of samples, "
                        f"a pair of .npy files or one of {', '.join(BUILT_IN)}")
    total = len(data) if hasattr(data, "__len__") else None
    return Batches(data, total, "batches as given")


def _is_sample(item: Any) -> bool:
    """Whether a dataset item is one sample (x, scalar label) rather than a batch (x, labels)."""
    return isinstance(item, (tuple, list)) and len(item) == 2 and np.ndim(_numpy(item[1])) == 0


def _sample_batches(dataset, batch_size: int, describe: str) -> Batches:
    n = len(dataset)

    def generate():
        for start in range(0, n, batch_size):
            items = [dataset[i] for i in range(start, min(start + batch_size, n))]
            xs = [_numpy(x) for x, _ in items]
            bad = next((i for i, x in enumerate(xs) if x.dtype.kind not in "biuf" or x.ndim < 1), None)
            if bad is not None:
                x = xs[bad]
                raise DataError(f"sample {start + bad}: expected an array shaped (time, ...), got {x.dtype} of shape "
                                f"{x.shape} (give an event dataset a transform such as tonic.transforms.ToFrame)")
            yield pad_time(xs), np.array([int(_numpy(y)) for _, y in items], dtype=np.int64)

    return Batches(generate(), -(-n // batch_size), f"{describe}, batches of {batch_size}")


def pad_time(samples: list[np.ndarray]) -> np.ndarray:
    """Samples shaped (T_i, *shape) as one time-major batch (max T_i, n, *shape), float32,
    padded with zeros after each sample's end."""
    steps = max(x.shape[0] for x in samples)
    shapes = {x.shape[1:] for x in samples}
    if len(shapes) != 1:
        raise DataError(f"samples of one batch have different shapes after time: {sorted(shapes)}")
    out = np.zeros((steps, len(samples), *samples[0].shape[1:]), dtype=np.float32)
    for i, x in enumerate(samples):
        out[: x.shape[0], i] = x
    return out


def _npy_batches(x_path, y_path, batch_size: int) -> Batches:
    x = read_npy(x_path, mmap=True)
    y = read_npy(y_path)
    if x.ndim < 2:
        raise DataError(f"expected inputs shaped (time, samples, *input shape), got shape {x.shape}", file=os.fspath(x_path))
    if y.ndim != 1 or y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.array_equal(y, np.round(y))):
        raise DataError(f"expected integer labels shaped (samples,), got {y.dtype} of shape {y.shape}", file=os.fspath(y_path))
    if len(y) != x.shape[1]:
        raise DataError(f"{len(y)} labels for {x.shape[1]} samples in {os.fspath(x_path)} (axis 1)", file=os.fspath(y_path))
    n = len(y)
    source = ((x[:, s : s + batch_size], y[s : s + batch_size].astype(np.int64)) for s in range(0, n, batch_size))
    return Batches(source, -(-n // batch_size), f"{os.fspath(x_path)} ({n} samples), batches of {batch_size}")


def _numpy(a: Any) -> np.ndarray:
    """Arrays, torch tensors (without importing torch) and numbers as numpy arrays."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _as_pair(item: Any) -> tuple[Any, Any]:
    """A batch as numpy arrays where possible; what cannot be converted is passed on as it is,
    for the evaluation of that batch to report."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        return item, None
    try:
        return _numpy(item[0]), _numpy(item[1])
    except Exception:  # reported by the batch's evaluation, with its index
        return item


def check_batch(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """A batch as (x float32 (time, batch, ...), y int64 (batch,)), or `DataError` saying why not."""
    if y is None and not isinstance(x, np.ndarray):
        raise DataError(f"a batch must be a pair (x, y), got {type(x).__name__}")
    x, y = _numpy(x), _numpy(y)
    if x.dtype.kind not in "biuf":
        raise DataError(f"x: expected a numeric array, got dtype {x.dtype}")
    if x.ndim < 2:
        raise DataError(f"x: expected (time, batch, *input shape), got shape {x.shape}")
    if y.ndim != 1 or y.dtype.kind not in "iuf" or (y.dtype.kind == "f" and not np.array_equal(y, np.round(y))):
        raise DataError(f"y: expected integer labels shaped (batch,), got {y.dtype} of shape {y.shape}")
    if len(y) != x.shape[1]:
        raise DataError(f"{len(y)} labels for a batch of {x.shape[1]} samples (x shaped (time, batch, ...))")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise DataError(f"x{list(index)}: must be finite, got {x[index]}")
    return x, y.astype(np.int64)
