"""The transfer study: train in snnTorch, move through NIR to every backend, compare.

``python -m benchmarks.transfer [--dataset digits digits-dvs] [--epochs N] ...`` per dataset:

1. trains the seed network (or, with ``--reuse``, loads ``<out>/<dataset>/model.pt``), writing
   ``model.pt`` (+ ``model.pt.json``) and ``train.json``;
2. exports it with ``nirbridge.convert(net, to="nir")`` to ``model.nir`` (with its policy),
   converts that file to Norse, snnTorch and the NumPy reference, and evaluates each on the whole
   test set with the same batches against the original (``transfer.py``);
3. runs the naive path, ``snntorch.export_to_nir`` -> ``norse.torch.from_nir`` (``naive.py``;
   ``--skip-naive``);
4. plots a few test samples, original and converted overlaid (``sample_<i>.png``, and
   ``sample_<i>_naive.png`` for the naive path);
5. on event datasets, trains a Norse CSNN and converts it to snnTorch (``norse_first.py``;
   ``--skip-norse-first``).

The tables go to the terminal and to ``<out>/transfer.md`` and ``<out>/transfer.json``; the
demo changes no tracked file. Refreshing the committed results is a deliberate step:
``--results benchmarks/results`` also copies the tables there and the digits plots to
``docs/img/`` (``make refresh-demo``); ``--results DIR`` copies the tables to DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

import nirbridge

from .datasets import DATASETS, DEFAULT_BATCH_SIZE, DEFAULT_T, DatasetMissingError, load_dataset
from .train import as_model_fn, build_model, load_model, save_model, train

BUILT_IN = ("digits", "digits-dvs")
DEFAULT_EPOCHS = {"digits": 20, "digits-dvs": 15}
EVENT_DATASETS = ("digits-dvs", "nmnist", "pokerdvs")
ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "benchmarks" / "results"
README_PLOTS = {"digits": ROOT / "docs" / "img" / "transfer_digits.png",
                "digits-naive": ROOT / "docs" / "img" / "transfer_digits_naive.png"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.transfer", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", nargs="+", choices=DATASETS, default=list(BUILT_IN),
                   help="datasets to train on (default: the built-in ones)")
    p.add_argument("--epochs", type=int, help=f"training epochs (default: {DEFAULT_EPOCHS}, else 5)")
    p.add_argument("--hidden", type=int, default=128, help="hidden neurons (default: 128)")
    p.add_argument("--T", type=int, help=f"time steps of frame datasets (default: {DEFAULT_T})")
    p.add_argument("--time-window", type=float, help="frame length in us of nmnist/pokerdvs")
    p.add_argument("--batch-size", type=int, help="default: 64 (8 for pokerdvs)")
    p.add_argument("--alpha", type=float, default=0.5, help="synaptic decay (default: 0.5)")
    p.add_argument("--beta", type=float, default=0.8, help="membrane decay (default: 0.8)")
    p.add_argument("--limit", type=int, help="at most this many samples per split")
    p.add_argument("--data-dir", type=Path, default=Path(".data"), help="real datasets (default: .data)")
    p.add_argument("--out", type=Path, default=Path("out/transfer"), help="results (default: out/transfer)")
    p.add_argument("--seed", type=int, default=0, help="split, DVS noise, initialisation, batches")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--no-download", action="store_true", help="use only data already in --data-dir")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--reuse", action="store_true", help="load <out>/<dataset>/model.pt when present instead of training")
    p.add_argument("--plots", type=int, default=3, help="test samples to plot per dataset (default: 3)")
    p.add_argument("--skip-naive", action="store_true", help="leave out snntorch.export_to_nir -> norse.from_nir")
    p.add_argument("--skip-norse-first", action="store_true", help="leave out the Norse CSNN")
    p.add_argument("--norse-epochs", type=int, default=4, help="training epochs of the Norse CSNN (default: 4)")
    p.add_argument("--results", type=Path,
                   help=f"also copy the tables there ({RESULTS_DIR.relative_to(ROOT)}: the committed results, "
                        "with the README plots to docs/img; default: no copy)")
    return p.parse_args(argv)


def run(name: str, args: argparse.Namespace) -> dict:
    """Train on ``name`` (or reuse its saved model), evaluate on its test split, save model and
    metrics; returns the metrics, with the model and the splits under ``_net``, ``_train``, ``_test``."""
    progress = not args.no_progress
    start = time.perf_counter()
    train_set, test_set = load_dataset(
        name, data_dir=args.data_dir, T=args.T, time_window=args.time_window, limit=args.limit,
        seed=args.seed, download=not args.no_download,
    )
    load_seconds = time.perf_counter() - start
    batch_size = args.batch_size or DEFAULT_BATCH_SIZE.get(name, 64)
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS.get(name, 5)
    folder = args.out / name
    if args.reuse and (folder / "model.pt").is_file():
        net = load_model(folder / "model.pt")
        if net.config["n_in"] != build_model(train_set, hidden=1).config["n_in"]:
            raise SystemExit(f"{folder / 'model.pt'}: made for other inputs ({net.config}); run without --reuse")
        saved = json.loads((folder / "train.json").read_text()) if (folder / "train.json").is_file() else {}
        epochs, history, seconds = saved.get("epochs", 0), saved.get("history", {}), saved.get("train_seconds", 0.0)
    else:
        net = build_model(train_set, hidden=args.hidden, alpha=args.alpha, beta=args.beta, seed=args.seed)
        start = time.perf_counter()
        history = train(net, train_set, epochs=epochs, batch_size=batch_size, seed=args.seed, progress=progress)
        seconds = time.perf_counter() - start
    sample = torch.as_tensor(np.stack([test_set[i][0] for i in range(2)], axis=1))  # (T, 2, ...) for the export
    result = nirbridge.evaluate(net, test_set, backends=[], original=as_model_fn(net), sample=sample,
                                batch_size=batch_size, progress=progress)["original"]
    metrics = {
        "dataset": name, "train_samples": len(train_set), "test_samples": len(test_set),
        "epochs": epochs, "batch_size": batch_size, "model": net.config,
        "load_seconds": load_seconds, "train_seconds": seconds, "history": history, "test_accuracy": result.accuracy,
        "seconds_per_sample": result.seconds_per_sample,
    }
    save_model(net, folder / "model.pt")
    (folder / "train.json").write_text(json.dumps(metrics, indent=2))
    return metrics | {"_net": net, "_train": train_set, "_test": test_set}


def transfer_stage(m: dict, args: argparse.Namespace) -> dict:
    """Steps 2-5 of the module doc for one trained dataset; returns its part of the results."""
    from .norse_first import norse_first
    from .transfer import transfer_seednet

    name, progress = m["dataset"], not args.no_progress
    folder = args.out / name
    start = time.perf_counter()
    part = transfer_seednet(name, m["_net"], m["_test"], folder, batch_size=m["batch_size"], progress=progress,
                            with_naive=not args.skip_naive, plots=args.plots)
    part["seconds"] = time.perf_counter() - start
    part["train"] = {k: v for k, v in m.items() if not k.startswith("_")}
    if not args.skip_norse_first and name in EVENT_DATASETS:
        start = time.perf_counter()
        nf = norse_first(name, m["_train"], m["_test"], folder, epochs=args.norse_epochs,
                         batch_size=m["batch_size"], seed=args.seed, progress=progress)
        part["norse_first_rows"] = nf.pop("rows")
        part["norse_first"] = nf | {"seconds": time.perf_counter() - start}
    return part


def publish(results: dict, md: Path, js: Path, target: Path) -> list[Path]:
    """Copy the tables to ``target``; when that is benchmarks/results, the README plots to docs/img."""
    target.mkdir(parents=True, exist_ok=True)
    copied = [Path(shutil.copyfile(md, target / "transfer.md")), Path(shutil.copyfile(js, target / "transfer.json"))]
    if target.resolve() != RESULTS_DIR:
        return copied
    plots = results["datasets"].get("digits", {}).get("plots", [])
    for key, suffix in (("digits", ".png"), ("digits-naive", "_naive.png")):
        found = [p for p in plots if p.endswith(suffix) and (suffix != ".png" or not p.endswith("_naive.png"))]
        if found:
            README_PLOTS[key].parent.mkdir(parents=True, exist_ok=True)
            copied.append(Path(shutil.copyfile(found[0], README_PLOTS[key])))
    return copied


def main(argv=None) -> int:
    from . import report

    wall = time.perf_counter()
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    rows, results = [], {"setup": _setup(argv, args), "datasets": {}}
    for name in args.dataset:
        try:
            m = run(name, args)
        except DatasetMissingError as err:
            print(f"{name}: {err}", file=sys.stderr)
            return 2
        rows.append(m)
        print(f"{name}: test accuracy {m['test_accuracy']:.1%} ({m['test_samples']} samples); data "
              f"{m['load_seconds']:.0f} s, training {m['epochs']} epochs {m['train_seconds']:.0f} s")
        results["datasets"][name] = transfer_stage(m, args)
        m.pop("_net"), m.pop("_train"), m.pop("_test")
    print("\n| dataset | train / test samples | epochs | data time | train time | test accuracy |")
    print("|---|---|---|---|---|---|")
    for m in rows:
        print(f"| {m['dataset']} | {m['train_samples']} / {m['test_samples']} | {m['epochs']} | "
              f"{m['load_seconds']:.0f} s | {m['train_seconds']:.0f} s | {m['test_accuracy']:.1%} |")
    results["wall_seconds"] = time.perf_counter() - wall
    md, js = report.write(results, args.out)
    text = report.markdown(results)
    print("\n" + text[text.index("## "):] if "## " in text else "")
    target = args.results
    if target is not None and str(target) not in ("", "."):
        for path in publish(results, md, js, target):
            print(f"copied to {path}")
    plots = [p for d in results["datasets"].values() for p in d.get("plots", [])]
    print(f"tables: {md}, {js}; {len(plots)} plots under {args.out}; wall time {results['wall_seconds']:.0f} s")
    return 0


def _setup(argv, args) -> dict:
    shown = " ".join(argv if argv is not None else sys.argv[1:])
    return {"command": f"python -m benchmarks.transfer {shown}".strip(), "threads": args.threads,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}"}


if __name__ == "__main__":
    sys.exit(main())
