"""The transfer study in miniature: train briefly, convert through a saved NIR file to every
backend, evaluate, compare spike for spike; the naive path; the Norse-first path; the plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("snntorch")
pytest.importorskip("norse")
pytest.importorskip("tonic")
pytest.importorskip("matplotlib")
pytest.importorskip("nirbridge_snntorch")
pytest.importorskip("nirbridge_norse")

import nir  # noqa: E402
from benchmarks.transfer import naive, report  # noqa: E402
from benchmarks.transfer.__main__ import main  # noqa: E402
from benchmarks.transfer.datasets import DEFAULT_T, load_dataset, make_loader  # noqa: E402
from benchmarks.transfer.train import SeedNet  # noqa: E402

import nirbridge  # noqa: E402
from nirbridge.semantics import Policy  # noqa: E402

torch.set_num_threads(1)

LIMIT, PLOTS = 48, 2
NIRBRIDGE_MODELS = {"snnTorch, trained (original)", "Norse (nirbridge)", "snnTorch (nirbridge)",
                    "NumPy reference (nirbridge)"}
NORSE_FIRST_MODELS = {"Norse CSNN, trained (original)", "snnTorch (nirbridge)", "NumPy reference (nirbridge)",
                      "Norse (nirbridge, back from the NIR file)"}
FIRING_BAND = (0.005, 0.9)  # per layer: spikes per neuron and step over the test set


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One short run of the whole demo on both built-in datasets."""
    out = tmp_path_factory.mktemp("transfer")
    code = main(["--dataset", "digits", "digits-dvs", "--epochs", "3", "--hidden", "32", "--limit", str(LIMIT),
                 "--norse-epochs", "1", "--plots", str(PLOTS), "--out", str(out), "--no-progress",
                 "--threads", "1", "--results", str(out / "published")])
    assert code == 0
    return out, json.loads((out / "transfer.json").read_text())


def rows_of(results, dataset, part):
    return {r["model"]: r for r in results["datasets"][dataset][part]}


@pytest.mark.parametrize("dataset", ["digits", "digits-dvs"])
def test_nirbridge_rows_agree_fully_with_every_layer_firing(demo, dataset):
    out, results = demo
    rows = rows_of(results, dataset, "rows")
    assert set(rows) == NIRBRIDGE_MODELS
    original = rows["snnTorch, trained (original)"]
    for layer, rate in original["firing_rates"].items():
        assert FIRING_BAND[0] < rate < FIRING_BAND[1], f"{dataset} {layer} fires at {rate}"
    assert set(original["firing_rates"]) == {"lif1", "lif2"}
    train = json.loads((out / dataset / "train.json").read_text())
    entries = LIMIT * DEFAULT_T[dataset] * 10  # test samples x steps x output neurons
    for model, r in rows.items():
        assert r["samples"] == LIMIT
        assert r["compared_spikes"] == entries, model
        assert r["agreement"] == 1.0 and r["differing_spikes"] == 0, (model, r)
        assert r["accuracy"] == train["test_accuracy"], model  # the training run's own evaluation
        assert r["seconds_per_sample"] > 0
        assert FIRING_BAND[0] < r["output_spike_rate"] < FIRING_BAND[1]


def test_saved_nir_file_carries_the_snntorch_policy_and_is_plain_nir(demo):
    out, _ = demo
    path = out / "digits" / "model.nir"
    graph = nirbridge.load(path)
    assert Policy.from_metadata(graph.metadata) == Policy.preset("snntorch")
    assert [graph.nodes[n].type for n in ("fc1", "lif1", "fc2", "lif2")] == ["Affine", "CubaLIF", "Affine", "CubaLIF"]
    assert isinstance(nir.read(str(path)), nir.NIRGraph)


@pytest.mark.parametrize("dataset", ["digits", "digits-dvs"])
def test_naive_rows_show_crashes_and_measured_differences(demo, dataset):
    _, results = demo
    rows = results["datasets"][dataset]["naive"]
    crashed = [r for r in rows if "error" in r]
    ran = [r for r in rows if "error" not in r]
    for r in crashed:
        assert r["error"].startswith(("snntorch.export_to_nir: ", "norse.torch.from_nir: ")) and "accuracy" not in r
    assert sorted(r["dt"] for r in ran) == [1e-4, naive.norse_default_dt()]
    assert len({r["route"] for r in ran}) == 1 and ran[0]["route"].startswith("after the usual workarounds")
    for r in ran:
        assert 0 <= r["agreement"] <= 1 and r["samples"] == LIMIT
        assert r["compared_spikes"] == LIMIT * DEFAULT_T[dataset] * 10
    # snnTorch resets one step late, Norse at once: the spikes differ even at the right dt
    assert next(r for r in ran if r["dt"] == 1e-4)["differing_spikes"] > 0
    md = (demo[0] / "transfer.md").read_text()
    for r in crashed:
        assert report._cell(r["error"]) in md


def test_a_crash_of_the_naive_functions_becomes_a_row_with_its_text(monkeypatch, tmp_path):
    import norse.torch
    import snntorch.export_nir

    calls = []

    def export_to_nir(model, sample):
        calls.append(tuple(sample.shape))
        if len(calls) == 1:
            raise ValueError("first | broken\nexport")
        return "graph"

    def from_nir(graph, dt=1e-3):
        raise RuntimeError(f"cannot import at dt={dt}")

    monkeypatch.setattr(snntorch.export_nir, "export_to_nir", export_to_nir)
    monkeypatch.setattr(norse.torch, "from_nir", from_nir)
    net = SeedNet(6, 5, 3)
    attempts = naive.attempts(net, torch.zeros(4, 2, 6))
    assert calls == [(4, 2, 6), (6,), (1, 6), (6,)]
    assert attempts[0].model is None and attempts[0].error == "snntorch.export_to_nir: ValueError: first | broken export"
    imports = attempts[1:]
    assert len(imports) == 6 and all(a.model is None for a in imports)
    assert {a.error for a in imports} == {"norse.torch.from_nir: RuntimeError: cannot import at dt=0.0001",
                                         "norse.torch.from_nir: RuntimeError: cannot import at dt=0.001"}
    rows = [{"dataset": "d", "table": "naive", "model": a.route, "route": a.route, "error": a.error} for a in attempts]
    md = report.table(rows, "naive")
    assert "first \\| broken export" in md and md.count("\n") == len(rows) + 1


def test_the_real_naive_crash_text_is_the_one_the_library_raises():
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    net = SeedNet(6, 5, 3)
    sample = torch.rand(4, 2, 6)
    try:
        export_to_nir(net, sample)
    except Exception as exc:
        expected = " ".join(str(exc).split())
    else:
        pytest.skip("this snnTorch exports the model as it is")
    first = naive.attempts(net, sample, dts=(1e-4,))[0]
    assert first.model is None and first.error.endswith(expected)


def test_norse_first_path_converts_exactly(demo):
    _, results = demo
    part = results["datasets"]["digits-dvs"]
    rows = {r["model"]: r for r in part["norse_first_rows"]}
    assert set(rows) == NORSE_FIRST_MODELS
    original = rows["Norse CSNN, trained (original)"]
    assert set(original["firing_rates"]) == {"lif1", "lif2", "lif3"}
    for layer, rate in original["firing_rates"].items():
        assert FIRING_BAND[0] < rate < FIRING_BAND[1], f"{layer} fires at {rate}"
    for model, r in rows.items():
        assert r["agreement"] == 1.0 and r["differing_spikes"] == 0, (model, r)
        assert r["compared_spikes"] == LIMIT * DEFAULT_T["digits-dvs"] * 10
        assert r["accuracy"] == original["accuracy"]
    types = list(part["norse_first"]["nodes"].values())
    assert types.count("SumPool2d") == 2 and types.count("Threshold") == 2  # the two max pools
    assert "norse_first_rows" not in results["datasets"]["digits"]


def test_plots_and_tables_are_written(demo):
    out, results = demo
    for dataset in ("digits", "digits-dvs"):
        expected = {out / dataset / f"sample_{i}.png" for i in range(PLOTS)} | {out / dataset / "sample_0_naive.png"}
        assert {p.resolve() for p in map(type(out), results["datasets"][dataset]["plots"])} == {p.resolve() for p in expected}
        for path in expected:
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
        inputs = np.load(out / dataset / "plot_inputs.npy")
        assert inputs.shape == (DEFAULT_T[dataset], PLOTS, *load_dataset(dataset, limit=LIMIT)[1].input_shape)
    md = (out / "transfer.md").read_text()
    for title in report.TABLES.values():
        assert f"## {title}" in md
    for model in NIRBRIDGE_MODELS | NORSE_FIRST_MODELS:
        assert f"| {model} |" in md
    assert (out / "published" / "transfer.md").read_text() == md
    assert json.loads((out / "published" / "transfer.json").read_text()) == results


def test_first_difference_finds_where_a_converted_model_departs(demo):
    """One hidden neuron that can no longer fire: the first difference is its first spike."""
    from benchmarks.transfer.compare import difference_text, first_difference

    out, _ = demo
    graph = nirbridge.load(out / "digits" / "model.nir")
    _, test = load_dataset("digits", limit=LIMIT)
    loader = make_loader(test, 16)
    spikes = np.concatenate([nirbridge.simulate(graph, np.asarray(x), record=["lif1"]).states["lif1"]["spikes"]
                             for x, _ in loader], axis=1)  # (T, samples, hidden)
    j = int(np.argmax(spikes.sum(axis=(0, 1))))
    lif1 = graph.nodes["lif1"]
    threshold = np.broadcast_to(np.asarray(lif1.v_threshold, dtype=np.float32), spikes.shape[2:]).copy()
    threshold[j] = 1e9
    mute = graph.model_copy(update={"nodes": graph.nodes | {"lif1": lif1.model_copy(update={"v_threshold": threshold})}})

    sample = int(np.flatnonzero(spikes[:, :, j].any(axis=0))[0])  # the lowest sample where j spikes ...
    step = int(np.flatnonzero(spikes[:, sample, j])[0])  # ... and its first spike there

    ev = nirbridge.evaluate(graph, loader, backends=[], progress=False,
                            models={"muted": lambda x: nirbridge.simulate(mute, x, record=["lif1", "lif2"])})
    found = first_difference(graph, ev["muted"], "muted")
    assert (found["node"], found["neuron"], found["step"], found["sample"]) == ("lif1", [j], step, sample)
    assert found["spiked"] == "reference" and found["v_reference"] > found["threshold"]
    text = difference_text("muted", found)
    assert f"test sample {sample}, step {step}" in text and "float32" not in text
    same = nirbridge.evaluate(graph, loader, backends=["numpy"], progress=False)
    assert first_difference(graph, same["numpy"], "numpy") is None


def test_reuse_loads_the_saved_model_instead_of_training(demo, tmp_path):
    import shutil

    out, results = demo
    for name in ("model.pt", "model.pt.json", "train.json"):
        (tmp_path / "digits").mkdir(exist_ok=True)
        shutil.copyfile(out / "digits" / name, tmp_path / "digits" / name)
    code = main(["--dataset", "digits", "--reuse", "--epochs", "50", "--limit", str(LIMIT), "--plots", "0",
                 "--skip-naive", "--out", str(tmp_path), "--no-progress", "--results", ""])
    assert code == 0
    again = json.loads((tmp_path / "transfer.json").read_text())["datasets"]["digits"]
    assert again["train"]["epochs"] == 3 and again["plots"] == [] and again["naive"] == []
    before = rows_of(results, "digits", "rows")
    for model, r in rows_of({"datasets": {"digits": again}}, "digits", "rows").items():
        assert r["accuracy"] == before[model]["accuracy"] and r["differing_spikes"] == 0
    reused = torch.load(tmp_path / "digits" / "model.pt", weights_only=True)
    trained = torch.load(out / "digits" / "model.pt", weights_only=True)
    assert reused.keys() == trained.keys() and all(torch.equal(reused[k], trained[k]) for k in trained)
    assert not (tmp_path / "published").exists()
