"""Datasets of the transfer study. Every sample is ``(x[T, *input_shape] float32, label)``.

Built in (offline; the default; made by the library, ``nirbridge.datasets``), from scikit-learn's
1,797 8x8 handwritten digit scans g (0..16), split once into a stratified, seeded 80/20 train/test
split:

- ``digits``: static frames x_t = g / 16 for t < T, shape (T, 1, 8, 8): the MNIST analogue.
- ``digits-dvs``: events of a simulated DVS camera under three saccades (``nirbridge.dvs``),
  binned by tonic's ``ToFrame`` into T frames of ON/OFF counts, shape (T, 2, 20, 20): the N-MNIST analogue.

Real, in the libraries' layout under ``data_dir``, downloaded there when missing and possible:

- ``mnist``: ``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` (torchvision's
  layout), x_t = image / 255 for t < T, shape (T, 1, 28, 28).
- ``nmnist``: ``NMNIST/{Train,Test}/<digit>/*.bin`` (tonic's layout), frames of
  ``time_window`` = 60 ms, shape (T_i, 2, 34, 34).
- ``pokerdvs``: ``POKERDVS/pips_{train,test}/{cl,di,he,sp}/*.npy`` (tonic's layout, or the
  archives ``POKERDVS/pips_{train,test}.tar.gz``), frames of 1 ms, shape (T_i, 2, 35, 35).

Event frames are cached on disk (``tonic.DiskCachedDataset``) under ``data_dir/cache``; their
number T_i varies per recording, and ``make_loader`` pads each batch with zeros to its longest
sample (``tonic.collation.PadTensors``). Loaders yield time-major batches (T, B, *input_shape).
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nirbridge.datasets import FrameDataset, digits, digits_dvs, digits_split  # noqa: F401 (re-exported)
from nirbridge.dvs import DVSParams

DATASETS = ("digits", "digits-dvs", "mnist", "nmnist", "pokerdvs")
DEFAULT_T = {"digits": 20, "digits-dvs": 30, "mnist": 25}
TIME_WINDOW_US = {"nmnist": 60_000, "pokerdvs": 1_000}
DEFAULT_BATCH_SIZE = {"pokerdvs": 8}  # 64 for the others
DEFAULT_DATA_DIR = Path(".data")


class DatasetMissingError(RuntimeError):
    """A real dataset is neither on disk nor downloadable."""


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    T: int | None = None,
    time_window: float | None = None,
    limit: int | None = None,
    seed: int = 0,
    download: bool = True,
    dvs: DVSParams = DVSParams(),
) -> tuple[FrameDataset, FrameDataset]:
    """(train, test) of dataset ``name`` (one of ``DATASETS``).

    ``T``: time steps of the frame datasets (default ``DEFAULT_T``); ``time_window``: frame length
    in microseconds of the event datasets (default ``TIME_WINDOW_US``); ``limit``: at most this
    many samples per split, spread evenly over it; ``seed``: the built-in split and DVS noise;
    ``dvs``: the simulated sensor of ``digits-dvs``.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if name in TIME_WINDOW_US:
        if T is not None:
            raise ValueError(f"{name}: T is set by time_window (microseconds per frame), not T")
    elif time_window is not None:
        raise ValueError(f"{name}: time_window applies to nmnist and pokerdvs only")
    T = T or DEFAULT_T.get(name)
    root = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    if name == "digits":
        sets = digits(T, seed)
    elif name == "digits-dvs":
        sets = digits_dvs(T, seed, dvs, limit)
    elif name == "mnist":
        sets = tuple(_mnist(root, train, T, download) for train in (True, False))
    else:
        window = time_window or TIME_WINDOW_US[name]
        sets = tuple(_tonic_frames(name, root, train, window, download) for train in (True, False))
    return tuple(s.spread(limit) for s in sets)


def make_loader(dataset, batch_size: int = 64, *, shuffle: bool = False, seed: int = 0):
    """A torch DataLoader of time-major batches (x[T, B, ...] float32, labels[B] int64)."""
    import torch
    from tonic.collation import PadTensors

    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
        collate_fn=PadTensors(batch_first=False),
    )


# --- MNIST ------------------------------------------------------------------------------------

MNIST_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """An unsigned-byte IDX file (MNIST's format), plain or gzip-compressed, as a uint8 array."""
    path = Path(path)
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, found {body.size} bytes of data")
    return body.reshape(shape)


def _find(raw: Path, stem: str) -> Path | None:
    return next((p for p in (raw / stem, raw / f"{stem}.gz") if p.is_file()), None)


def _mnist(root: Path, train: bool, T: int, download: bool) -> FrameDataset:
    raw = root / "MNIST" / "raw"
    paths = [_find(raw, stem) for stem in MNIST_FILES[train]]
    if None in paths:
        cause = None
        if download:
            try:
                from torchvision.datasets import MNIST

                MNIST(str(root), train=train, download=True)
            except Exception as err:  # offline, mirror down, ...
                cause = err
        paths = [_find(raw, stem) for stem in MNIST_FILES[train]]
        if None in paths:
            files = ", ".join(f"{s}[.gz]" for s in MNIST_FILES[train])
            raise DatasetMissingError(
                f"MNIST not found: put {files} into {raw}/ (the files from "
                f"torchvision's MNIST mirrors){_why(cause)}"
            ) from cause
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError(f"{paths[0]}: {images.shape} images for {labels.shape} labels")
    return FrameDataset(images[:, None], labels, input_shape=(1, *images.shape[1:]), n_classes=10,
                        repeat=T, scale=1 / 255)


# --- tonic event datasets ---------------------------------------------------------------------

_LAYOUT = {
    "nmnist": dict(cls="NMNIST", title="N-MNIST", folders=("Train", "Test"), suffix=".bin",
                   archives=("train.zip", "test.zip"),
                   files="{folder}/<digit>/*.bin",
                   source="https://www.garrickorchard.com/datasets/n-mnist"),
    "pokerdvs": dict(cls="POKERDVS", title="Poker-DVS", folders=("pips_train", "pips_test"), suffix=".npy",
                     archives=("pips_train.tar.gz", "pips_test.tar.gz"),
                     files="{folder}/{{cl,di,he,sp}}/*.npy",
                     source="the tonic source repository, tonic/datasets/"),
}


def _tonic_frames(name: str, root: Path, train: bool, window: float, download: bool) -> FrameDataset:
    import tonic

    layout = _LAYOUT[name]
    base = getattr(tonic.datasets, layout["cls"])
    folder = layout["folders"][0 if train else 1]
    archive = layout["archives"][0 if train else 1]
    home = root / base.__name__
    if not _has_files(home / folder, layout["suffix"]) and (home / archive).is_file():
        from tonic.download_utils import extract_archive

        extract_archive(str(home / archive), str(home))
    if not _has_files(home / folder, layout["suffix"]):
        cause = None
        if download:
            try:
                base(str(root), train=train)  # tonic's own download (or bundled copy)
            except Exception as err:
                cause = err
        if not _has_files(home / folder, layout["suffix"]):
            where = layout["files"].format(folder=folder)
            raise DatasetMissingError(
                f"{layout['title']} not found: put its files at {home}/{where}, or the archive "
                f"{archive} into {home}/ (from {layout['source']}){_why(cause)}"
            ) from cause
    # tonic's check wants every file of the full download; an extracted copy is enough here.
    local = type(base.__name__, (base,), {"_check_exists": lambda self: True})
    sensor = base.sensor_size
    frames = tonic.transforms.ToFrame(sensor_size=sensor, time_window=window)
    events = local(str(root), train=train, transform=frames)
    cache = root / "cache" / f"{name}-{folder}-w{window:g}"
    cached = tonic.DiskCachedDataset(events, cache_path=str(cache))
    return FrameDataset(_Data(cached), events.targets, input_shape=(2, sensor[1], sensor[0]),
                        n_classes=len(base.classes))


class _Data(Sequence):
    """The data half of a (data, target) dataset."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        return self.dataset[i][0]


def _has_files(folder: Path, suffix: str) -> bool:
    return folder.is_dir() and next(folder.rglob(f"*{suffix}"), None) is not None


def _why(err: BaseException | None) -> str:
    return f"; downloading failed: {type(err).__name__}: {err}" if err is not None else ""
