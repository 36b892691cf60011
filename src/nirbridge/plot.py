"""Raster and membrane plots of simulation results (needs matplotlib: `pip install 'nirbridge[plot]'`).

    fig = nirbridge.plot.plot_result(result, input=x, graph=g, path="run.png")
    fig = nirbridge.plot.plot_result(original, compare=converted, labels=("snntorch", "norse"))

`plot_result` draws, for each recorded node, its membrane potential (with the threshold when
the graph is given) and its output spikes over time, below a raster of the network input. With
`compare=` a second result is overlaid (dashed lines, other markers) and every spike present in
only one of the two is circled in red, with the count in the panel title, so a conversion that
changed what the network computes is visible at a glance.

Figures are built on matplotlib's non-interactive Agg canvas without touching `pyplot`, so
plotting never opens a window, never switches the backend of the calling program and leaves no
global figure state behind. matplotlib is imported only when a plot is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import NirbridgeError
from .result import SimulationResult

__all__ = ["MissingDependencyError", "membrane", "plot_result", "raster"]

#: colours of the first and the compared result; differing spikes are circled in DIFF_COLOR
COLORS = ("tab:blue", "tab:orange")
DIFF_COLOR = "tab:red"


class MissingDependencyError(NirbridgeError, ImportError):
    """An optional dependency (matplotlib for plots) is not installed."""


def _matplotlib():
    """Import matplotlib's object API with the Agg canvas, or say how to install it."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError(
            f"plotting needs matplotlib, which is not installed ({exc}); "
            "install it with: pip install 'nirbridge[plot]'"
        ) from None
    return Figure, FigureCanvasAgg


# ----------------------------------------------------------------------------- array helpers


def _select(values: np.ndarray, batch: int | None, name: str = "values") -> np.ndarray:
    """(time, batch, *features) -> (time, neurons) for one batch entry; (time, neurons) and
    (time,) pass through."""
    values = np.asarray(values)
    if values.ndim == 0:
        raise NirbridgeError(f"{name}: expected an array over time, got a scalar")
    if values.ndim == 1:
        return values[:, None]
    if values.ndim == 2 and batch is None:
        return values
    b = 0 if batch is None else batch
    if values.ndim == 2:  # (time, batch): one feature
        values = values[:, :, None]
    if not -values.shape[1] <= b < values.shape[1]:
        raise NirbridgeError(f"{name}: batch index {b} out of range for batch size {values.shape[1]}")
    return values[:, b].reshape(values.shape[0], -1)


def _time(n_steps: int, dt: float | None) -> np.ndarray:
    steps = np.arange(n_steps)
    return steps * dt if dt else steps


def _time_label(dt: float | None) -> str:
    return "time (s)" if dt else "time step"


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.isin(values, (0, 1)).all())


# ----------------------------------------------------------------------------- primitives


def raster(
    ax,
    spikes: np.ndarray,
    *,
    batch: int | None = 0,
    dt: float | None = None,
    color: str | None = COLORS[0],
    marker: str = "|",
    size: float | None = None,
    label: str | None = None,
    offset: float = 0.0,
):
    """Scatter one mark per nonzero entry of `spikes` at (time, neuron index).

    `spikes` is (time, batch, *features) (one batch entry, `batch`, is drawn; features are
    flattened in C order), (time, neurons) or (time,). `dt` turns steps into seconds; `offset`
    shifts the marks vertically (to set two overlaid rasters apart). Returns the
    PathCollection (empty when there are no spikes)."""
    s = _select(spikes, batch, "spikes")
    t_idx, n_idx = np.nonzero(s)
    t = _time(s.shape[0], dt)
    if size is None:
        size = 40.0 if s.shape[1] <= 50 else 10.0
    coll = ax.scatter(t[t_idx], n_idx + offset, marker=marker, s=size, c=color, label=label, linewidths=1)
    ax.set_xlim(t[0] - (dt or 1) * 0.5, t[-1] + (dt or 1) * 0.5)
    ax.set_ylim(-0.5, max(s.shape[1], 1) - 0.5)
    ax.set_ylabel("neuron")
    ax.set_xlabel(_time_label(dt))
    return coll


def membrane(
    ax,
    v: np.ndarray,
    threshold: float | np.ndarray | None = None,
    *,
    batch: int | None = 0,
    neurons: Sequence[int] | None = None,
    max_neurons: int = 8,
    dt: float | None = None,
    color: str | None = None,
    linestyle: str = "-",
    label: str | None = None,
):
    """Plot membrane potential over time, one line per neuron.

    `v` is shaped like `raster`'s `spikes`. `neurons` picks which (flat) neurons to draw; by
    default the first `max_neurons`. `threshold` (a scalar, or one value per neuron shaped
    like the node's parameters) is drawn as dashed horizontal lines, one per distinct value
    among the drawn neurons. Returns the list of membrane lines (threshold lines excluded; they
    carry the label "threshold")."""
    vv = _select(v, batch, "v")
    idx = np.arange(min(vv.shape[1], max_neurons)) if neurons is None else np.asarray(list(neurons), dtype=int)
    t = _time(vv.shape[0], dt)
    lines = []
    for k, i in enumerate(idx):
        (line,) = ax.plot(
            t, vv[:, i], linestyle=linestyle, color=color, linewidth=1,
            label=label if k == 0 else None,
        )
        lines.append(line)
    if threshold is not None:
        thr = np.asarray(threshold, dtype=float).reshape(-1)
        values = thr if thr.size == 1 else thr[idx[idx < thr.size]]
        for k, value in enumerate(np.unique(values)):
            ax.axhline(value, linestyle="--", color="0.4", linewidth=0.8, label="threshold" if k == 0 else None)
    ax.set_ylabel("v")
    ax.set_xlabel(_time_label(dt))
    return lines


# ----------------------------------------------------------------------------- figures


def _threshold_of(graph, node: str):
    if graph is None:
        return None
    found = graph.resolve(node)
    if not found:
        return None
    sub, name = found
    return getattr(sub.nodes[name], "v_threshold", None)


def _most_active(spikes: np.ndarray | None, n: int, count: int) -> np.ndarray:
    """The `count` neurons that spike most (ties by index), or the first ones without spikes."""
    if spikes is None or count >= n:
        return np.arange(min(n, count))
    totals = spikes.sum(axis=0)
    order = np.argsort(-totals, kind="stable")[:count]
    return np.sort(order)


def plot_result(
    result: SimulationResult,
    nodes: Sequence[str] | None = None,
    compare: SimulationResult | None = None,
    path: str | Path | None = None,
    *,
    input: np.ndarray | None = None,
    graph=None,
    batch: int = 0,
    dt: float | None = None,
    labels: tuple[str, str] = ("original", "converted"),
    max_neurons: int = 8,
    title: str | None = None,
):
    """One figure of a simulation: the network input, then per recorded node its membrane
    potential and output spikes over time.

    - `nodes`: which recorded nodes to draw, in order (default: every node in `result.states`).
      A node recorded with `v` gets a membrane panel, with `spikes` a raster panel; a stateless
      node recorded with `y` gets one panel of its values.
    - `compare`: a second result of the same network (e.g. the converted model) overlaid on
      the first; spikes present in only one of them are circled in red and counted in the
      title. Every drawn node must be recorded in both.
    - `input`: the network input (time, batch, *features), drawn first as a raster (as a
      heat map when it is not 0/1).
    - `graph`: the simulated graph; when given, thresholds are drawn on membrane panels.
    - `batch`: which batch entry to draw; `dt`: label time in seconds instead of steps.
    - `title`: a title over the whole figure.
    - `path`: also write the figure there (PNG by extension, 100 dpi).

    Returns the matplotlib Figure (not registered with pyplot)."""
    Figure, FigureCanvasAgg = _matplotlib()
    if nodes is None:
        nodes = list(result.states)
    nodes = list(nodes)
    for node in nodes:
        if node not in result.states:
            raise NirbridgeError(
                f"node {node!r} was not recorded; recorded: {', '.join(result.states) or 'none'}"
            )
        if compare is not None and node not in compare.states:
            raise NirbridgeError(
                f"node {node!r} was not recorded in the compared result; "
                f"recorded there: {', '.join(compare.states) or 'none'}"
            )

    panels: list[tuple[str, str]] = []  # (node, variable)
    if input is not None:
        panels.append(("", "input"))
    for node in nodes:
        state = result.states[node]
        if "v" in state:
            panels.append((node, "v"))
        if "spikes" in state:
            panels.append((node, "spikes"))
        if "v" not in state and "spikes" not in state:
            if "y" not in state:
                raise NirbridgeError(f"node {node!r}: nothing to plot (recorded {', '.join(state) or 'nothing'})")
            panels.append((node, "y"))
    if not panels:
        raise NirbridgeError("nothing to plot: no recorded nodes and no input")

    fig = Figure(figsize=(10, 1.9 * len(panels) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    name_a, name_b = labels
    for ax, (node, var) in zip(axes, panels):
        if var == "input":
            x = _select(input, batch, "input")
            if _is_binary(x):
                raster(ax, x, batch=None, dt=dt, color="0.2")
            else:
                t = _time(x.shape[0], dt)
                step = (dt or 1)
                ax.imshow(
                    x.T, aspect="auto", origin="lower", interpolation="nearest", cmap="viridis",
                    extent=(t[0] - step / 2, t[-1] + step / 2, -0.5, x.shape[1] - 0.5),
                )
                ax.set_ylabel("input")
            ax.set_title(f"input ({x.shape[1]} channels, batch entry {batch})", loc="left", fontsize=9)
            continue
        state = result.states[node]
        if var == "v":
            spikes = _select(state["spikes"], batch) if "spikes" in state else None
            v = _select(state["v"], batch, f"{node}.v")
            chosen = _most_active(spikes, v.shape[1], max_neurons)
            membrane(ax, v, _threshold_of(graph, node), batch=None, neurons=chosen, dt=dt,
                     color=COLORS[0], label=name_a if compare is not None else None)
            if compare is not None:
                membrane(ax, compare.states[node]["v"], batch=batch, neurons=chosen, dt=dt,
                         color=COLORS[1], linestyle="--", label=name_b)
            shown = f"{len(chosen)} of {v.shape[1]} neurons" if len(chosen) < v.shape[1] else f"{v.shape[1]} neurons"
            ax.set_title(f"{node}: membrane potential ({shown})", loc="left", fontsize=9)
        elif var == "y":
            y = _select(state["y"], batch, f"{node}.y")
            chosen = np.arange(min(y.shape[1], max_neurons))
            membrane(ax, y, batch=None, neurons=chosen, dt=dt, color=COLORS[0],
                     label=name_a if compare is not None else None)
            if compare is not None:
                membrane(ax, compare.states[node]["y"], batch=batch, neurons=chosen, dt=dt,
                         color=COLORS[1], linestyle="--", label=name_b)
            ax.set_ylabel("y")
            ax.set_title(f"{node}: output", loc="left", fontsize=9)
        else:
            a = _select(state["spikes"], batch, f"{node}.spikes")
            panel_title = f"{node}: spikes ({int(np.count_nonzero(a))})"
            if compare is None:
                raster(ax, a, batch=None, dt=dt, color=COLORS[0])
            else:
                b = _select(compare.states[node]["spikes"], batch, f"{node}.spikes (compared)")
                if a.shape != b.shape:
                    raise NirbridgeError(
                        f"node {node!r}: spike shapes differ between the results: {a.shape} vs {b.shape}"
                    )
                raster(ax, a, batch=None, dt=dt, color=COLORS[0], label=name_a)
                raster(ax, b, batch=None, dt=dt, color=COLORS[1], marker="_", label=name_b)
                diff = (a != 0) != (b != 0)
                n_diff = int(np.count_nonzero(diff))
                if n_diff:
                    t_idx, n_idx = np.nonzero(diff)
                    ax.scatter(_time(a.shape[0], dt)[t_idx], n_idx, marker="o", s=60, facecolors="none",
                               edgecolors=DIFF_COLOR, linewidths=1.2, label="differs")
                panel_title = (f"{node}: spikes ({name_a} {int(np.count_nonzero(a))}, "
                         f"{name_b} {int(np.count_nonzero(b))}, {n_diff} differ)")
            ax.set_title(panel_title, loc="left", fontsize=9)
        if compare is not None and ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=7)
    for ax in axes[:-1]:
        ax.set_xlabel("")
    if title:
        fig.suptitle(title)
    if path is not None:
        save_figure(fig, path)
    return fig


def figure_format(path: str | Path) -> str:
    """The image format a figure written to `path` gets (from the extension; none = png);
    an error names the supported ones."""
    _, FigureCanvasAgg = _matplotlib()
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    supported = FigureCanvasAgg.get_supported_filetypes()
    if fmt not in supported:
        raise NirbridgeError(f"{path}: cannot write a .{fmt} figure; use one of: {', '.join(sorted(supported))}")
    return fmt


def save_figure(fig, path: str | Path, *, dpi: int = 100) -> Path:
    """Write `fig` to `path` (format from the extension) through a temporary file renamed into
    place, so a failed write leaves no partial file. Returns the path."""
    from .atomic import replacing

    path = Path(path)
    fmt = figure_format(path)
    with replacing(path) as tmp, open(tmp, "wb") as fh:
        fig.savefig(fh, format=fmt, dpi=dpi)
    return path
