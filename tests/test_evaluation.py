"""evaluate() in-process: every form of data, the read-outs, comparisons with the source and the
reference (counts and first differences across batches), failing batches, recordings, and the
safe reading of .npy files."""

from __future__ import annotations

import nir
import numpy as np
import pytest

import nirbridge
from nirbridge.backends import registry
from nirbridge.backends.base import Backend, Handler, Support, exact
from nirbridge.backends.numpy import NumpyModel
from nirbridge.datasets import batches, pad_time, read_npy
from nirbridge.errors import DataError, EvaluationError
from nirbridge.evaluation import evaluate
from nirbridge.ir import Graph
from nirbridge.reference import simulate
from nirbridge.semantics import Policy

F = np.float32
T, N, BS, CLASSES = 25, 40, 8, 4  # steps, samples, batch size, output neurons
pytestmark = pytest.mark.usefixtures("builtin_backends_only")


def _net(threshold: float = 1.0) -> Graph:
    """in (6) -> fc1 -> lif1 (12, r = tau/dt) -> fc2 -> lif2 (4) -> out, snnTorch-style parameters."""
    rng = np.random.default_rng(3)

    def lif(n, th):
        return {"type": "LIF", "tau": np.full(n, 1e-3, F), "r": np.full(n, 10, F), "v_leak": np.zeros(n, F),
                "v_threshold": np.full(n, th, F), "v_reset": np.zeros(n, F)}

    nodes = {
        "in": {"type": "Input", "shape": np.array([6])},
        "fc1": {"type": "Linear", "weight": rng.uniform(0.0, 0.9, (12, 6)).astype(F)},
        "lif1": lif(12, threshold),
        "fc2": {"type": "Linear", "weight": rng.uniform(0.0, 0.15, (CLASSES, 12)).astype(F)},
        "lif2": lif(CLASSES, threshold),
        "out": {"type": "Output", "shape": np.array([CLASSES])},
    }
    edges = [("in", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "out")]
    return Graph(nodes=nodes, edges=edges)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    x = (rng.random((T, N, 6)) < 0.35).astype(F)
    y = rng.integers(0, CLASSES, N)
    return x, y


def as_batches(x, y, size=BS):
    return [(x[:, s : s + size], y[s : s + size]) for s in range(0, x.shape[1], size)]


POLICY = Policy.preset("snntorch")


def test_counts_match_a_direct_simulation_and_every_layer_fires(data):
    x, y = data
    graph = _net()
    ev = evaluate(graph, as_batches(x, y), backends=["numpy"], policy=POLICY)
    direct = simulate(graph, x, policy=POLICY, record=["lif1", "lif2"])
    predicted = direct.output.sum(axis=0).argmax(axis=1)  # spike count read-out, ties to the lowest class
    assert ev.ok and ev.samples == N and ev.batches == N // BS and not ev.failed
    for name in ("reference", "numpy"):
        m = ev[name]
        assert m.samples == N and m.correct == int((predicted == y).sum())
        assert m.accuracy == pytest.approx((predicted == y).mean())
        np.testing.assert_array_equal(m.predictions, predicted)
        for layer in ("lif1", "lif2"):
            s = m.layers[layer]
            assert s.spikes == int(direct.states[layer]["spikes"].sum()) and s.entries == direct.states[layer]["spikes"].size
            assert 0.02 < s.rate < 0.9, (layer, s.rate)  # every layer fires: agreement means something
    m = ev["numpy"]
    assert m.agreement == 1.0 and m.output_differing == 0 and m.output_compared == T * N * CLASSES
    assert all(s.differing == 0 and s.compared and s.ok and s.first_difference is None for s in m.layers.values())
    assert m.seconds_per_sample > 0 and ev.silent == []


def test_every_form_of_data_gives_the_same_counts(data, tmp_path):
    x, y = data
    graph = _net()
    expected = evaluate(graph, as_batches(x, y), backends=["numpy"], policy=POLICY)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    samples = [(x[:, i], int(y[i])) for i in range(N)]  # a dataset of samples (time, features)
    forms = {
        "generator": (b for b in as_batches(x, y)),
        "npy pair": (tmp_path / "x.npy", str(tmp_path / "y.npy")),
        "samples": samples,
        "tensors-like": [(list(map(list, bx.tolist())), list(by)) for bx, by in as_batches(x, y)],
    }
    for form, source in forms.items():
        ev = evaluate(graph, source, backends=["numpy"], policy=POLICY, batch_size=BS)
        assert ev.samples == N, form
        for name in ("reference", "numpy"):
            assert ev[name].correct == expected[name].correct, form
            np.testing.assert_array_equal(ev[name].predictions, expected[name].predictions)
            assert {k: s.spikes for k, s in ev[name].layers.items()} == {k: s.spikes for k, s in expected[name].layers.items()}


def test_samples_of_different_lengths_are_padded_after_their_end():
    a, b = np.ones((3, 2), F), 2 * np.ones((5, 2), F)
    batch = pad_time([a, b])
    assert batch.shape == (5, 2, 2)
    np.testing.assert_array_equal(batch[:3, 0], a)
    np.testing.assert_array_equal(batch[3:, 0], 0)
    np.testing.assert_array_equal(batch[:, 1], b)


def test_a_tonic_dataset_with_a_transform_is_batched_in_order(data):
    tonic = pytest.importorskip("tonic")
    sensor = (6, 1, 1)  # 6 pixels, one polarity: frames (T, 1, 1, 6)
    dtype = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
    rng = np.random.default_rng(9)

    class Events:
        """A tonic-style dataset: events per sample, frames through the transform."""

        transform = tonic.transforms.ToFrame(sensor_size=sensor, time_window=1000)

        def __init__(self):
            self.items = []
            for i in range(10):
                n = 30 + 5 * i
                e = np.zeros(n, dtype)
                e["x"], e["t"] = rng.integers(0, 6, n), np.sort(rng.integers(0, 1000 * (10 + i), n))
                self.items.append((e, i % CLASSES))

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            e, label = self.items[i]
            return self.transform(e), label

    graph = _net().model_copy()
    nodes = {"in": {"type": "Input", "shape": np.array([1, 1, 6])}, "flat": {"type": "Flatten", "start_dim": 0, "end_dim": -1}}
    g = Graph(nodes={**nodes, **{k: v for k, v in graph.nodes.items() if k != "in"}},
              edges=[("in", "flat"), ("flat", "fc1")] + [e for e in graph.edges if e[0] != "in"])
    ds = Events()
    ev = evaluate(g, ds, backends=[], policy=POLICY, batch_size=4)
    assert ev.samples == 10 and ev.batches == 3
    frames = [ds[i][0].astype(F) for i in range(10)]
    assert len({f.shape[0] for f in frames}) > 1  # lengths differ: batches are padded
    first = simulate(g, pad_time(frames[:4]), policy=POLICY).output.sum(0).argmax(1)
    np.testing.assert_array_equal(ev["reference"].predictions[:4], first)


@pytest.mark.parametrize("readout", ["membrane_sum", "membrane_max"])
def test_membrane_readouts_use_the_layer_that_drives_the_output(data, readout):
    x, y = data
    graph = _net()
    ev = evaluate(graph, as_batches(x, y), backends=["numpy"], policy=POLICY, readout=readout)
    v = simulate(graph, x, policy=POLICY, record=["lif2"]).states["lif2"]["v"]
    expected = (v.sum(axis=0) if readout == "membrane_sum" else v.max(axis=0)).argmax(axis=1)
    np.testing.assert_array_equal(ev["reference"].predictions, expected)
    np.testing.assert_array_equal(ev["numpy"].predictions, expected)
    assert ev.readout == readout


def test_a_callable_readout_and_unknown_names_are_checked(data):
    x, y = data
    last_step = lambda r: r.output[-1].reshape(r.output.shape[1], -1)  # noqa: E731
    ev = evaluate(_net(), as_batches(x, y), backends=[], policy=POLICY, readout=last_step)
    expected = simulate(_net(), x, policy=POLICY).output[-1].argmax(axis=1)
    np.testing.assert_array_equal(ev["reference"].predictions, expected)
    with pytest.raises(EvaluationError, match="readout must be one of"):
        evaluate(_net(), as_batches(x, y), readout="votes")
    with pytest.raises(EvaluationError, match="engine must be"):
        evaluate(_net(), as_batches(x, y), engine="spark")
    with pytest.raises(EvaluationError, match="must be unique"):
        evaluate(_net(), as_batches(x, y), backends=["numpy"], models={"numpy": lambda x: x})


def _flipping(graph, *, batch: int, sample: int, step: int, neuron: int, node: str = "lif2"):
    """A model computing the reference but for one spike flipped in one batch (and, for the
    output layer, the output with it)."""
    calls = {"n": 0}

    def model(x):
        res = simulate(graph, x, policy=POLICY, record=["lif1", "lif2"])
        if calls["n"] == batch:
            spikes = res.states[node]["spikes"]
            spikes[step, sample, neuron] = 1 - spikes[step, sample, neuron]
            if node == "lif2":
                res.outputs["out"][step, sample, neuron] = spikes[step, sample, neuron]
        calls["n"] += 1
        return res

    return model


def test_one_flipped_spike_is_counted_once_and_located_across_batches(data):
    x, y = data
    graph = _net()
    ev = evaluate(graph, as_batches(x, y), backends=[], policy=POLICY,
                  models={"flipped": _flipping(graph, batch=2, sample=5, step=7, neuron=1)})
    m = ev["flipped"]
    assert m.output_differing == 1 and m.output_compared == T * N * CLASSES
    s = m.layers["lif2"]
    assert (s.differing, s.compared) == (1, T * N * CLASSES) and not s.ok
    d = s.first_difference
    assert (d["sample"], d["step"], d["neuron"], d["node"]) == (2 * BS + 5, 7, [1], "lif2")
    assert d["threshold"] == 1.0 and "v_reference" in d
    assert m.layers["lif1"].differing == 0 and m.layers["lif1"].first_difference is None
    assert not ev.ok and ev["reference"].ok
    assert "flipped: lif2 first differs at sample 21, step 7, neuron (1,)" in str(ev)


def test_the_original_is_the_source_of_agreement_and_is_checked_against_the_reference(data):
    x, y = data
    graph = _net()

    def original(batch):  # the source model as its user runs it: output spikes only
        return simulate(graph, batch, policy=POLICY).output

    ev = evaluate(graph, as_batches(x, y), backends=["numpy"], policy=POLICY, original=original,
                  models={"flipped": _flipping(graph, batch=0, sample=0, step=3, neuron=2)})
    assert ev.source == "original"
    assert ev["original"].output_differing == 0 and set(ev["original"].layers) == {"out"}
    assert ev["original"].layers["out"].compared == T * N * CLASSES and ev["original"].ok
    assert ev["numpy"].agreement == 1.0
    assert ev["flipped"].output_differing == 1


def test_an_approximate_backend_is_evaluated_and_its_differences_measured(data):
    x, y = data

    class Drifting(Backend):
        """Runs every graph with snnTorch's semantics whatever the policy."""

        name = "drifting"
        preset = "snntorch"
        handlers = {"Linear": exact(maps_to="dense"), "LIF": exact(maps_to="lif")}

        def build(self, plan):
            return NumpyModel(plan.graph, Policy.preset("snntorch", dt=plan.policy.dt))

        def simulate(self, native, x, *, record=()):
            return simulate(native.graph, x, policy=native.policy, record=list(record))

    graph = _net()
    with registry.temporary(Drifting()):
        ev = evaluate(graph, as_batches(x, y), backends=["drifting", "numpy"], policy=Policy.preset("nir"))
    m = ev["drifting"]
    assert m.error is None and m.report.approximate  # reported, and still evaluated
    ref = simulate(graph, x, policy=Policy.preset("nir"), record=["lif2"]).states["lif2"]["spikes"]
    other = simulate(graph, x, policy=Policy.preset("snntorch"), record=["lif2"]).states["lif2"]["spikes"]
    assert m.layers["lif2"].differing == int((ref != other).sum()) > 0
    assert not m.ok and ev["numpy"].ok and not ev.ok


def test_unsupported_conversions_are_reported_and_the_rest_evaluated(data):
    x, y = data

    class NoLIF(Backend):
        name = "nolif"
        handlers = {"Linear": exact(maps_to="dense"), "LIF": Handler(Support("unsupported", reason="no neurons"))}

        def build(self, plan):
            raise AssertionError("never built")

        def simulate(self, native, x, *, record=()):
            raise AssertionError("never run")

    with registry.temporary(NoLIF()):
        ev = evaluate(_net(), as_batches(x, y), backends=["nolif", "numpy"], policy=POLICY)
    assert ev["nolif"].error.startswith("cannot convert: lif1") and ev["nolif"].samples == 0
    assert ev["numpy"].samples == N and not ev.ok


def test_a_bad_batch_is_reported_with_its_index_and_left_out_of_every_total(data):
    x, y = data
    items = as_batches(x, y)
    items[2] = (x[:, 16:24, :5], y[16:24])  # wrong feature size
    items[3] = (x[:, 24:32], y[24:30])  # labels for 6 of 8 samples
    ev = evaluate(_net(), items, backends=["numpy"], policy=POLICY)
    assert [f.index for f in ev.failed] == [2, 3]
    assert "reference:" in ev.failed[0].error and "6 labels for a batch of 8" in ev.failed[1].error
    assert ev.samples == N - 2 * BS
    assert all(m.samples == N - 2 * BS for m in ev.models.values())
    np.testing.assert_array_equal(ev.labels, np.concatenate([y[:16], y[32:]]))
    assert not ev.ok and "batch 2 failed" in str(ev)


def test_a_silent_network_fails_the_evaluation(data):
    x, y = data
    ev = evaluate(_net(threshold=1e6), as_batches(x, y), backends=["numpy"], policy=POLICY)
    assert set(ev.silent) >= {"lif1", "lif2"} and not ev.ok


def test_recordings_hold_the_whole_dataset_in_nir_data_format(data, tmp_path):
    x, y = data
    graph = _net()
    ev = evaluate(graph, as_batches(x, y), backends=["numpy"], policy=POLICY, record=True)
    paths = ev.save_recordings(tmp_path / "rec")
    assert sorted(p.rsplit("/", 1)[1] for p in paths) == ["numpy.h5", "reference.h5"]
    direct = simulate(graph, x, policy=POLICY, record=["lif1", "lif2"])
    back = nir.read_data(str(tmp_path / "rec" / "numpy.h5"))  # NIR's own reader
    spikes = back.nodes["lif1"].observables["spikes"]
    assert spikes.data.shape == (N, T, 12) and spikes.data.dtype == bool and spikes.dt == POLICY.dt
    np.testing.assert_array_equal(spikes.data, np.moveaxis(direct.states["lif1"]["spikes"], 1, 0) != 0)
    np.testing.assert_array_equal(back.nodes["in"].observables["y"].data, np.moveaxis(x, 1, 0))
    report = nirbridge.recording.verify_against(graph, tmp_path / "rec" / "numpy.h5", policy=POLICY)
    assert report.ok


def test_the_result_prints_and_serialises(data):
    x, y = data
    ev = evaluate(_net(), as_batches(x, y), backends=["numpy"], policy=POLICY)
    text = str(ev)
    assert "evaluate on 40 samples in 5 batches" in text and "numpy" in text and "OK" in text
    js = ev.to_dict()
    assert js["models"]["numpy"]["layers"]["lif2"]["differing"] == 0 and js["ok"] is True


def test_built_in_digits_are_the_test_split():
    pytest.importorskip("sklearn")
    from nirbridge.datasets import builtin, digits_split

    b = batches("digits", batch_size=100)
    assert b.total == 4 and "digits" in b.describe
    x, y = next(iter(b))
    assert x.shape == (20, 100, 1, 8, 8) and y.shape == (100,)
    images, labels, _, test = digits_split(0)
    np.testing.assert_array_equal(y, labels[test[:100]])
    np.testing.assert_array_equal(x[0, :, 0], images[test[:100]])
    assert len(builtin("digits", split="train")) == 1437
    with pytest.raises(DataError, match="unknown built-in dataset"):
        batches("cifar10")


def test_data_that_is_not_data_is_refused(tmp_path):
    with pytest.raises(DataError, match="cannot evaluate on a int"):
        batches(3)
    with pytest.raises(DataError, match="pair of .npy files"):
        batches(str(tmp_path / "x.npy"))
    np.save(tmp_path / "x.npy", np.zeros((5, 4, 3), F))
    np.save(tmp_path / "y.npy", np.zeros(3, np.int64))
    with pytest.raises(DataError, match="3 labels for 4 samples"):
        batches((tmp_path / "x.npy", tmp_path / "y.npy"))
    np.save(tmp_path / "y2.npy", np.full(4, 0.5))
    with pytest.raises(DataError, match="integer labels"):
        batches((tmp_path / "x.npy", tmp_path / "y2.npy"))


# ----------------------------------------------------------------------------- .npy files


def _npy(path, header: str, payload: bytes = b"") -> None:
    text = header.encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    body = text + b" " * pad + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body + payload)


def test_npy_header_declaring_more_than_the_file_holds_is_refused_before_allocating(tmp_path, monkeypatch):
    path = tmp_path / "bomb.npy"
    _npy(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }", b"\0" * 16)
    monkeypatch.setattr(np, "fromfile", lambda *a, **k: pytest.fail("allocated"))
    with pytest.raises(DataError, match=r"header declares 40000000000 bytes .* the file holds 16"):
        read_npy(path, max_bytes=1 << 40)
    with pytest.raises(DataError, match="over the 1024-byte limit"):
        read_npy(path, max_bytes=1024)


def test_npy_pickles_objects_and_records_are_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="Python objects"):
        read_npy(tmp_path / "obj.npy")
    np.save(tmp_path / "rec.npy", np.zeros(3, dtype=[("a", "<f4")]))
    with pytest.raises(DataError, match="numeric array"):
        read_npy(tmp_path / "rec.npy")
    np.savez(tmp_path / "z.npz", a=np.zeros(3))
    with pytest.raises(DataError, match="npz archive"):
        read_npy(tmp_path / "z.npz")
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY\x01\x00\xff")
    with pytest.raises(DataError, match="damaged .npy header"):
        read_npy(tmp_path / "junk.npy")


@pytest.mark.parametrize("order", ["C", "F"])
def test_npy_arrays_read_back_exactly(tmp_path, order):
    a = np.asfortranarray(np.arange(24, dtype=np.float64).reshape(2, 3, 4)) if order == "F" else np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    np.save(tmp_path / "a.npy", a)
    for mmap in (False, True):
        b = read_npy(tmp_path / "a.npy", mmap=mmap)
        assert b.dtype == a.dtype
        np.testing.assert_array_equal(b, a)


def test_the_core_imports_evaluation_and_recordings_without_torch_or_ray():
    import subprocess
    import sys

    code = ("import sys, nirbridge, nirbridge.evaluation, nirbridge.recording, nirbridge.datasets; "
            "nirbridge.evaluate; print(sorted(m for m in ('torch', 'ray', 'tonic', 'sklearn') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_graphs_with_metadata_pickle_whole():
    """Ray workers receive the graph pickled: read-only metadata must survive the round trip."""
    import pickle

    graph = _net().replace(metadata=POLICY.to_metadata() | {"tags": ["a", "b"]})
    back = pickle.loads(pickle.dumps(graph))
    assert back == graph and Policy.from_metadata(back.metadata) == POLICY
    with pytest.raises(TypeError, match="read-only"):
        back.metadata["x"] = 1
