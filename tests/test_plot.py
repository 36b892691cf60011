"""nirbridge.plot: panels per recorded node, overlays that show differences, PNG output, and
matplotlib staying optional."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")  # the [plot] extra; test_missing_matplotlib covers its absence

from matplotlib.image import imread  # noqa: E402

from nirbridge import plot  # noqa: E402
from nirbridge.errors import NirbridgeError  # noqa: E402
from nirbridge.ir import Graph  # noqa: E402
from nirbridge.result import SimulationResult  # noqa: E402

T, B = 30, 2


def _result(seed: int = 0, n: int = 5) -> SimulationResult:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(T, B, n)).astype(np.float32)
    spikes = (v > 0.8).astype(np.float32)
    y = rng.normal(size=(T, B, 3)).astype(np.float32)
    return SimulationResult(
        outputs={"out": spikes},
        states={"lif": {"v": v, "I": v * 0.5, "spikes": spikes}, "fc": {"y": y}},
    )


def _graph(n: int = 5) -> Graph:
    f = np.float32
    return Graph(
        nodes={
            "in": {"type": "Input", "shape": np.array([3])},
            "fc": {"type": "Linear", "weight": np.ones((n, 3), f)},
            "lif": {
                "type": "LIF", "tau": np.full(n, 0.01, f), "r": np.ones(n, f), "v_leak": np.zeros(n, f),
                "v_threshold": np.array([0.8] * (n - 1) + [1.5], f), "v_reset": np.zeros(n, f),
            },
            "out": {"type": "Output", "shape": np.array([n])},
        },
        edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")],
    )


def _titles(fig) -> list[str]:
    return [ax.get_title(loc="left") for ax in fig.axes]


def _n_points(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections)


def test_plot_result_has_input_membrane_and_spike_panels_per_node():
    res = _result()
    x = (np.random.default_rng(1).random((T, B, 3)) < 0.3).astype(np.float32)
    fig = plot.plot_result(res, input=x, graph=_graph())
    titles = _titles(fig)
    assert len(fig.axes) == 4  # input, lif v, lif spikes, fc y
    assert titles[0].startswith("input (3 channels")
    assert titles[1].startswith("lif: membrane potential (5 neurons)")
    assert titles[2] == f"lif: spikes ({int(res.states['lif']['spikes'][:, 0].sum())})"
    assert titles[3] == "fc: output"
    # the input raster has one mark per input spike of batch entry 0
    assert _n_points(fig.axes[0]) == int(x[:, 0].sum())
    # membrane: one line per neuron plus one dashed threshold line per distinct threshold
    lines = fig.axes[1].get_lines()
    solid = [ln for ln in lines if ln.get_linestyle() == "-"]
    dashed = [ln for ln in lines if ln.get_linestyle() == "--"]
    assert len(solid) == 5
    assert sorted(ln.get_ydata()[0] for ln in dashed) == pytest.approx([0.8, 1.5])
    np.testing.assert_array_equal(solid[0].get_ydata(), res.states["lif"]["v"][:, 0, 0])
    assert _n_points(fig.axes[2]) == int(res.states["lif"]["spikes"][:, 0].sum())
    assert len(fig.axes[3].get_lines()) == 3


def test_nodes_selects_and_orders_panels_and_batch_selects_entry():
    res = _result()
    fig = plot.plot_result(res, nodes=["fc", "lif"], batch=1, title="run 7")
    assert fig.get_suptitle() == "run 7"
    assert [t.split(":")[0] for t in _titles(fig)] == ["fc", "lif", "lif"]
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_ydata(), res.states["fc"]["y"][:, 1, 0])
    assert _n_points(fig.axes[2]) == int(res.states["lif"]["spikes"][:, 1].sum())


def test_max_neurons_keeps_the_most_active_neurons():
    v = np.zeros((T, 1, 20), np.float32)
    spikes = np.zeros_like(v)
    spikes[::2, 0, 17] = 1
    spikes[::3, 0, 4] = 1
    v[:, 0, :] = np.arange(20)  # neuron i sits at v = i
    res = SimulationResult(outputs={}, states={"lif": {"v": v, "spikes": spikes}})
    fig = plot.plot_result(res, max_neurons=2)
    ax = fig.axes[0]
    assert "2 of 20 neurons" in ax.get_title(loc="left")
    assert sorted(ln.get_ydata()[0] for ln in ax.get_lines()) == [4, 17]


def test_compare_overlays_and_marks_differing_spikes():
    a = _result()
    b = _result()
    spikes_b = b.states["lif"]["spikes"].copy()
    spikes_b[3, 0, 1] = 1 - spikes_b[3, 0, 1]
    spikes_b[10, 0, 4] = 1 - spikes_b[10, 0, 4]
    spikes_b[10, 1, 4] = 1 - spikes_b[10, 1, 4]  # other batch entry: not drawn, not counted
    b.states["lif"] = dict(b.states["lif"], spikes=spikes_b, v=b.states["lif"]["v"] + 0.1)
    fig = plot.plot_result(a, compare=b, labels=("snntorch", "norse"))
    ax_v, ax_s = fig.axes[0], fig.axes[1]
    assert len([ln for ln in ax_v.get_lines() if ln.get_linestyle() == "--"]) == 5  # compared v, dashed
    assert "2 differ" in ax_s.get_title(loc="left")
    assert "snntorch" in ax_s.get_title(loc="left") and "norse" in ax_s.get_title(loc="left")
    circles = [c for c in ax_s.collections if c.get_label() == "differs"]
    assert len(circles) == 1
    assert sorted(map(tuple, circles[0].get_offsets().tolist())) == [(3.0, 1.0), (10.0, 4.0)]
    assert [t.get_text() for t in ax_s.get_legend().get_texts()] == ["snntorch", "norse", "differs"]


def test_compare_identical_results_reports_zero_differences():
    fig = plot.plot_result(_result(), compare=_result())
    assert "0 differ" in fig.axes[1].get_title(loc="left")
    assert fig.get_suptitle() == ""
    assert not [c for c in fig.axes[1].collections if c.get_label() == "differs"]


def test_png_is_written_and_not_blank(tmp_path):
    out = tmp_path / "run.png"
    fig = plot.plot_result(_result(), path=out, input=np.random.default_rng(0).random((T, B, 3)))
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    img = imread(out)
    w, h = fig.get_size_inches() * 100
    assert img.shape[:2] == (round(h), round(w))
    gray = img[..., :3].mean(axis=2)
    assert (gray < 0.5).mean() > 0.005  # ink: lines, marks and text, not an empty canvas
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 20  # several colours
    assert not list(tmp_path.glob(".*.tmp"))


def test_unknown_format_writes_nothing(tmp_path):
    with pytest.raises(NirbridgeError, match=r"cannot write a \.xyz figure"):
        plot.plot_result(_result(), path=tmp_path / "run.xyz")
    assert list(tmp_path.iterdir()) == []


def test_unrecorded_node_is_an_error_naming_the_recorded_ones():
    with pytest.raises(NirbridgeError, match=r"'lif2' was not recorded; recorded: lif, fc"):
        plot.plot_result(_result(), nodes=["lif2"])
    other = SimulationResult(outputs={}, states={"fc": _result().states["fc"]})
    with pytest.raises(NirbridgeError, match=r"not recorded in the compared result"):
        plot.plot_result(_result(), compare=other)


def test_raster_and_membrane_primitives():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    spikes = np.zeros((5, 3, 2, 2))
    spikes[1, 2, 1, 0] = 1  # batch 2, flat neuron 2
    coll = plot.raster(ax, spikes, batch=2)
    assert coll.get_offsets().tolist() == [[1.0, 2.0]]
    assert ax.get_ylim() == (-0.5, 3.5)
    assert plot.raster(ax, spikes, batch=0).get_offsets().shape == (0, 2)
    with pytest.raises(NirbridgeError, match="batch index 3 out of range"):
        plot.raster(ax, spikes, batch=3)

    ax = Figure().subplots()
    lines = plot.membrane(ax, np.arange(12.0).reshape(4, 3), threshold=1.0, batch=None, dt=1e-3)
    assert len(lines) == 3
    np.testing.assert_allclose(lines[0].get_xdata(), [0, 1e-3, 2e-3, 3e-3])
    assert ax.get_xlabel() == "time (s)"
    assert [ln.get_label() for ln in ax.get_lines()][-1] == "threshold"


def test_import_is_lazy_and_pyplot_is_never_used():
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import nirbridge.plot
        from nirbridge.result import SimulationResult
        assert "matplotlib" not in sys.modules, "matplotlib imported at module import"
        res = SimulationResult(outputs={}, states={"n": {"v": np.zeros((3, 1, 2)), "spikes": np.zeros((3, 1, 2))}})
        fig = nirbridge.plot.plot_result(res)
        assert "matplotlib" in sys.modules
        assert "matplotlib.pyplot" not in sys.modules
        print(type(fig.canvas).__name__)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "FigureCanvasAgg"


def test_missing_matplotlib_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(plot.MissingDependencyError, match=r"pip install 'nirbridge\[plot\]'") as info:
        plot.plot_result(_result())
    assert isinstance(info.value, ImportError) and isinstance(info.value, NirbridgeError)
