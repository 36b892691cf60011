"""The result tables as Markdown (for the terminal, ``transfer.md`` and the README) and JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .compare import difference_text

TABLES = {
    "nirbridge": "snnTorch -> NIR file -> every backend, with nirbridge",
    "naive": "The naive path: snntorch.export_to_nir -> norse.torch.from_nir",
    "norse-first": "Norse first: a Norse CSNN -> snnTorch (and back) with nirbridge",
}


def percent(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.{digits}f} %"


def spikes_text(r: dict) -> str:
    if "differing_spikes" not in r:
        return "-"
    d, n = r["differing_spikes"], r["compared_spikes"]
    frac = d / n if n else 0.0
    if not d:
        return f"0 of {n:,} (0 %)"
    pct = 100 * frac
    return f"{d:,} of {n:,} ({pct:.2f} %)" if pct >= 0.01 else f"{d:,} of {n:,} ({pct:.1g} %)"


def ms(r: dict) -> str:
    return f"{1e3 * r['seconds_per_sample']:.2f} ms" if "seconds_per_sample" in r else "-"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(rows: list[dict], kind: str) -> str:
    """One Markdown table of the rows of ``kind`` ("nirbridge", "naive" or "norse-first")."""
    rows = [r for r in rows if r["table"] == kind]
    if not rows:
        return ""
    if kind == "naive":
        head = ["dataset", "how export_to_nir was called", "Norse dt", "accuracy", "agreement with original",
                "differing output spikes", "time per sample", "error"]
        lines = [[r["dataset"], r["route"], f"{r['dt']:g}" if "dt" in r else "-", percent(r.get("accuracy")),
                  percent(r.get("agreement")), spikes_text(r), ms(r), r.get("error", "")] for r in rows]
    else:
        head = ["dataset", "model", "accuracy", "agreement with original", "differing output spikes",
                "time per sample"]
        lines = [[r["dataset"], r["model"], percent(r.get("accuracy")),
                  "(original)" if r.get("is_original") else percent(r.get("agreement")),
                  "(original)" if r.get("is_original") else spikes_text(r), ms(r)] for r in rows]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_cell(c) for c in line) + " |" for line in lines]
    return "\n".join(out)


def markdown(results: dict) -> str:
    """All tables with a short header saying what was measured."""
    rows = [r for d in results["datasets"].values() for part in ("rows", "naive", "norse_first_rows")
            for r in d.get(part, [])]
    lines = ["# Transfer study: same accuracy, same spikes", ""]
    setup = results.get("setup", {})
    if setup:
        lines += [
            f"Measured by `{setup.get('command', 'python -m benchmarks.transfer')}` on {setup.get('machine', 'this machine')}; "
            f"torch threads: {setup.get('threads')}; wall time {results.get('wall_seconds', 0):.0f} s. "
            "Agreement: fraction of test samples with the same prediction (most output spikes) as the "
            "original. Differing output spikes: (sample, step, output neuron) entries where exactly one "
            "of the two models spiked, over the whole test set. Time per sample: inside the model, "
            "batches of the same size for every row; converted models also record every spiking layer, "
            "which `nirbridge.evaluate` compares with the NumPy reference.", "",
        ]
    for name, d in results["datasets"].items():
        train = d.get("train")
        if train:
            lines.append(f"- `{name}`: {train['train_samples']} training / {train['test_samples']} test samples, "
                         f"{train['epochs']} epochs, training {train['train_seconds']:.0f} s"
                         + (f"; NIR file `{d['nir_file']}`" if d.get("nir_file") else ""))
    lines.append("")
    for kind, title in TABLES.items():
        text = table(rows, kind)
        if text:
            lines += [f"## {title}", "", text, ""]
            notes = [r for r in rows if r["table"] == kind and r.get("first_difference")]
            lines += [f"- {r['dataset']}, {difference_text(r['model'], r['first_difference'])}." for r in notes]
            lines += [""] if notes else []
    return "\n".join(lines)


def write(results: dict, folder: Path) -> tuple[Path, Path]:
    """``folder/transfer.md`` and ``folder/transfer.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / "transfer.md", folder / "transfer.json"
    md.write_text(markdown(results))
    js.write_text(json.dumps(results, indent=2, default=_json))
    return md, js


def _json(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
