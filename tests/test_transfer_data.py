"""Datasets of the transfer study: built-in digits, the DVS generator, and the real-format readers."""

import gzip
import struct
import tarfile

import numpy as np
import pytest

pytest.importorskip("tonic")
torch = pytest.importorskip("torch")

from benchmarks.transfer.datasets import (  # noqa: E402
    DatasetMissingError,
    FrameDataset,
    digits_split,
    load_dataset,
    make_loader,
    read_idx,
)

from nirbridge.dvs import DVSParams, simulate_dvs, to_frames  # noqa: E402

torch.set_num_threads(1)


def square(size=8, lo=2, hi=6, level=1.0):
    img = np.zeros((size, size))
    img[lo:hi, lo:hi] = level
    return img


# --- built-in digits ----------------------------------------------------------------------------


def test_digits_split_is_stratified_disjoint_and_complete():
    images, labels, train, test = digits_split(0)
    assert images.shape == (1797, 8, 8) and images.min() == 0 and images.max() == 1
    assert len(train) == 1437 and len(test) == 360
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.union1d(train, test), np.arange(1797))
    per_class = np.bincount(labels[test], minlength=10)
    assert per_class.min() >= 35 and per_class.max() <= 37  # 20 % of ~180 per class
    assert not np.array_equal(digits_split(1)[3], test)  # the seed picks the split


def test_digits_are_static_frames_repeated_over_time():
    train, test = load_dataset("digits", T=5, limit=12)
    assert (len(train), len(test)) == (12, 12)
    assert train.input_shape == (1, 8, 8) and train.n_classes == 10
    x, y = test[3]
    assert x.shape == (5, 1, 8, 8) and x.dtype == np.float32 and isinstance(y, int)
    images, labels, _, test_index = digits_split(0)
    j = test.index[3]
    assert j in test_index and y == labels[j]
    assert np.array_equal(x, np.repeat(images[j][None, None], 5, axis=0))


def test_digits_dvs_frames_have_both_polarities():
    train, test = load_dataset("digits-dvs", T=10, limit=6)
    assert len(train) == len(test) == 6 and train.input_shape == (2, 20, 20)
    for x, y in (train[0], test[5]):
        assert x.shape == (10, 2, 20, 20) and x.dtype == np.float32 and 0 <= y < 10
        assert np.array_equal(x, np.round(x)) and x.min() >= 0  # event counts
        assert x[:, 0].sum() > 50 and x[:, 1].sum() > 50  # OFF and ON events
        assert (x.sum(axis=(1, 2, 3)) > 0).all()  # the digit moves during every frame


def test_loader_is_time_major():
    train, _ = load_dataset("digits", T=4, limit=10)
    x, y = next(iter(make_loader(train, 4)))
    assert x.shape == (4, 4, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x[:, 2], torch.from_numpy(train[2][0])) and y[2].item() == train[2][1]


def test_unknown_names_and_misplaced_options_are_refused():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="time_window"):
        load_dataset("nmnist", T=10)
    with pytest.raises(ValueError, match="time_window"):
        load_dataset("digits", time_window=1000)


# --- the DVS generator ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit_images():
    images, _, train, _ = digits_split(0)
    return images[train[:4]]


def test_generator_is_deterministic_and_seeded(digit_images):
    a = simulate_dvs(digit_images, seed=3)
    b = simulate_dvs(digit_images, seed=3)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    c = simulate_dvs(digit_images, seed=4)
    assert not np.array_equal(a[0], c[0])
    # an image's stream does not depend on the other images of the call
    alone = simulate_dvs(digit_images[2:3], seed=3, ids=[2])
    assert np.array_equal(alone[0], a[2])


def test_events_are_tonic_structured_sorted_and_inside_the_sensor(digit_images):
    p = DVSParams()
    cols, rows, _ = p.sensor_size((8, 8))
    for ev in simulate_dvs(digit_images):
        assert ev.dtype.names == ("x", "y", "t", "p")
        assert (np.diff(ev["t"]) >= 0).all()
        assert ev["t"].min() >= p.dt_us and ev["t"].max() < p.duration_us
        assert ev["x"].min() >= 0 and ev["x"].max() < cols and ev["y"].min() >= 0 and ev["y"].max() < rows
        assert set(np.unique(ev["p"])) == {0, 1}
        on, off = (ev["p"] == 1).sum(), (ev["p"] == 0).sum()
        assert 0.5 < on / off < 2  # the digit returns to where it started


def test_moving_edges_make_on_events_ahead_and_off_events_behind():
    p = DVSParams(noise_hz=0.0)
    ev = simulate_dvs(square()[None], p)[0]
    first = ev[ev["t"] < p.saccade_us]  # first saccade moves right and down
    on, off = first[first["p"] == 1], first[first["p"] == 0]
    assert on["x"].mean() > off["x"].mean() and on["y"].mean() > off["y"].mean()


def test_refractory_period_is_respected():
    img = square()[None]
    for ref in (1_000, 5_000, 20_000):
        ev = simulate_dvs(img, DVSParams(refractory_us=ref, noise_hz=50.0))[0]
        pixel = ev["y"] * 100 + ev["x"]
        order = np.lexsort((ev["t"], pixel))
        same = np.diff(pixel[order]) == 0
        gaps = np.diff(ev["t"][order])[same]
        assert gaps.min() >= ref
    n = [len(simulate_dvs(img, DVSParams(refractory_us=r, noise_hz=0.0))[0]) for r in (1_000, 20_000)]
    assert n[1] < n[0]


def test_event_count_grows_with_contrast_and_falls_with_threshold():
    p = DVSParams(noise_hz=0.0)
    counts = [len(simulate_dvs(square(level=c)[None], p)[0]) for c in (0.1, 0.3, 1.0)]
    assert 0 < counts[0] < counts[1] < counts[2]
    by_threshold = [len(simulate_dvs(square()[None], DVSParams(noise_hz=0.0, threshold=c))[0])
                    for c in (0.1, 0.2, 0.4)]
    assert by_threshold[0] > by_threshold[1] > by_threshold[2] > 0


def test_no_motion_and_no_noise_means_no_events():
    img = square()[None]
    assert len(simulate_dvs(img, DVSParams(amplitude=0, noise_hz=0.0))[0]) == 0
    assert len(simulate_dvs(np.zeros((1, 8, 8)), DVSParams(noise_hz=0.0))[0]) == 0


def test_noise_is_bernoulli_per_pixel_and_step_with_random_polarity():
    # blank scene, refractory period of one step: every pixel may fire at every step
    p = DVSParams(amplitude=0, noise_hz=20.0, refractory_us=1_000)
    events = simulate_dvs(np.zeros((8, 8, 8)), p)
    trials = 8 * 16 * 16 * (p.duration_us // p.dt_us - 1)
    prob = p.noise_hz * p.dt_us * 1e-6
    n = sum(len(e) for e in events)
    sigma = np.sqrt(trials * prob * (1 - prob))
    assert abs(n - trials * prob) < 4 * sigma
    on = sum((e["p"] == 1).sum() for e in events)
    assert abs(on - n / 2) < 4 * np.sqrt(n / 4)


def test_frames_count_events_per_time_window(digit_images):
    p = DVSParams()
    sensor = p.sensor_size((8, 8))
    ev = simulate_dvs(digit_images[:1], p)[0]
    frames = to_frames(ev, sensor, 12, p.duration_us)
    assert frames.shape == (12, 2, 20, 20)
    window = p.duration_us // 12
    per_frame = np.bincount(ev["t"] // window, minlength=12)
    assert np.array_equal(frames.sum(axis=(1, 2, 3)), per_frame)
    on = ev[ev["p"] == 1]
    assert frames[:, 1].sum() == len(on)
    assert frames[on["t"][0] // window, 1, on["y"][0], on["x"][0]] >= 1
    assert np.array_equal(to_frames(ev[:0], sensor, 12, p.duration_us), np.zeros_like(frames))


# --- real formats, written here in miniature -------------------------------------------------------


def write_idx(path, array, compress):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


def test_mnist_reads_idx_files_in_torchvision_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_x, test_x = rng.integers(0, 256, (3, 28, 28)), rng.integers(0, 256, (2, 28, 28))
    write_idx(raw / "train-images-idx3-ubyte.gz", train_x, True)
    write_idx(raw / "train-labels-idx1-ubyte.gz", np.array([5, 0, 4]), True)
    write_idx(raw / "t10k-images-idx3-ubyte", test_x, False)
    write_idx(raw / "t10k-labels-idx1-ubyte", np.array([7, 2]), False)

    train, test = load_dataset("mnist", data_dir=tmp_path, T=3, download=False)
    assert (len(train), len(test)) == (3, 2) and train.input_shape == (1, 28, 28)
    x, y = train[2]
    assert x.shape == (3, 1, 28, 28) and x.dtype == np.float32 and y == 4
    assert np.allclose(x[1, 0], train_x[2] / 255)
    assert np.array_equal(test.labels, [7, 2])


def test_read_idx_rejects_other_files(tmp_path):
    (tmp_path / "text").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX"):
        read_idx(tmp_path / "text")
    write_idx(tmp_path / "short", np.zeros((2, 4, 4)), False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-5])
    with pytest.raises(ValueError, match="header says"):
        read_idx(tmp_path / "short")


def nmnist_bytes(events):
    """N-MNIST's 40-bit events: x, y, p << 7 | t[22:16], t[15:8], t[7:0]."""
    out = bytearray()
    for x, y, t, p in events:
        out += bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 255, t & 255])
    return bytes(out)


def test_nmnist_reads_binary_events_into_60ms_frames(tmp_path):
    for folder, digit in (("Train", 3), ("Train", 8), ("Test", 7)):
        d = tmp_path / "NMNIST" / folder / str(digit)
        d.mkdir(parents=True)
        events = [(1, 2, 1_000, 1), (5, 6, 2_000, 0), (33, 30, 61_500, 1), (9, 9, 125_000, 0)]
        (d / "00001.bin").write_bytes(nmnist_bytes(events))
    train, test = load_dataset("nmnist", data_dir=tmp_path, download=False)
    assert (len(train), len(test)) == (2, 1) and train.input_shape == (2, 34, 34)
    assert list(train.labels) == [3, 8] and list(test.labels) == [7]
    x, y = train[0]
    # windows of 60 ms from the first event: [1, 61) ms and [61, 121) ms; the last event is cut off
    assert x.shape == (2, 2, 34, 34) and x.dtype == np.float32 and y == 3
    assert x.sum() == 3
    assert x[0, 1, 2, 1] == 1 and x[0, 0, 6, 5] == 1 and x[1, 1, 30, 33] == 1
    assert list((tmp_path / "cache").rglob("*.hdf5"))  # frames cached on disk
    assert np.array_equal(load_dataset("nmnist", data_dir=tmp_path, download=False)[0][0][0], x)


def test_pokerdvs_reads_npy_folders_and_archives(tmp_path):
    home = tmp_path / "POKERDVS"
    rows = np.array([[0, 1, 2, 1], [500, 3, 4, 0], [1_500, 34, 0, 1], [2_200, 5, 5, 1]])  # t, x, y, p
    for cls in ("cl", "he"):
        (home / "pips_train" / cls).mkdir(parents=True)
        np.save(home / "pips_train" / cls / "0.npy", rows)
    staging = tmp_path / "staging" / "pips_test" / "sp"
    staging.mkdir(parents=True)
    np.save(staging / "0.npy", rows)
    with tarfile.open(home / "pips_test.tar.gz", "w:gz") as tar:
        tar.add(staging.parent, arcname="pips_test")

    train, test = load_dataset("pokerdvs", data_dir=tmp_path, download=False)
    assert list(train.labels) == [0, 1] and list(test.labels) == [3]  # classes cl, he, di, sp
    x, _ = test[0]
    # 1 ms windows from the first event: [0, 1) and [1, 2) ms; the event at 2.2 ms is cut off
    assert x.shape == (2, 2, 35, 35) and x.sum() == 3
    assert x[0, 1, 2, 1] == 1 and x[0, 0, 4, 3] == 1 and x[1, 1, 0, 34] == 1


def test_event_batches_are_padded_to_the_longest_recording(tmp_path):
    home = tmp_path / "POKERDVS" / "pips_train" / "di"
    home.mkdir(parents=True)
    np.save(home / "0.npy", np.array([[0, 1, 1, 1], [3_500, 1, 1, 1]]))
    np.save(home / "1.npy", np.array([[0, 2, 2, 0], [1_200, 2, 2, 0]]))
    (tmp_path / "POKERDVS" / "pips_test" / "di").mkdir(parents=True)
    np.save(tmp_path / "POKERDVS" / "pips_test" / "di" / "0.npy", np.array([[0, 1, 1, 1], [900, 1, 1, 1]]))
    train, _ = load_dataset("pokerdvs", data_dir=tmp_path, download=False)
    assert [train[i][0].shape[0] for i in range(2)] == [3, 1]
    x, y = next(iter(make_loader(train, 2)))
    assert x.shape == (3, 2, 2, 35, 35) and list(y) == [2, 2]
    assert x[1:, 1].sum() == 0 and x[0, 1].sum() == 1


@pytest.mark.parametrize(
    "name, expected",
    [
        ("mnist", ["MNIST/raw", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]),
        ("nmnist", ["NMNIST/Train/<digit>/*.bin", "train.zip"]),
        ("pokerdvs", ["POKERDVS/pips_train/{cl,di,he,sp}/*.npy", "pips_train.tar.gz"]),
    ],
)
def test_missing_data_fails_with_one_message_naming_place_and_files(tmp_path, name, expected):
    with pytest.raises(DatasetMissingError) as info:
        load_dataset(name, data_dir=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path) in message
    for part in expected:
        assert part in message
    assert isinstance(info.value, RuntimeError)


def test_frame_dataset_subsets_keep_labels_aligned():
    items = np.arange(5, dtype=np.float32)[:, None] * np.ones((5, 3), np.float32)
    ds = FrameDataset(items, [4, 3, 2, 1, 0], input_shape=(3,), n_classes=5, repeat=2, scale=2.0)
    sub = ds.subset([4, 1])
    assert len(sub) == 2 and list(sub.labels) == [0, 3]
    x, y = sub[1]
    assert y == 3 and np.array_equal(x, np.full((2, 3), 2.0, np.float32))


def test_failed_download_is_reported_in_the_same_message(tmp_path, monkeypatch):
    import tonic
    import torchvision

    def offline(self, *args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tonic.datasets.NMNIST, "download", offline)
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    for name in ("nmnist", "mnist"):
        with pytest.raises(DatasetMissingError, match="downloading failed: OSError: network is unreachable"):
            load_dataset(name, data_dir=tmp_path, download=True)
