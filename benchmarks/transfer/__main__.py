"""Train the seed network on each dataset and report its test accuracy.

``python -m benchmarks.transfer [--dataset digits digits-dvs] [--epochs N] ...`` writes
``<out>/<dataset>/model.pt`` (+ ``model.pt.json``) and ``<out>/<dataset>/train.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from .datasets import DATASETS, DEFAULT_BATCH_SIZE, DEFAULT_T, DatasetMissingError, load_dataset
from .evaluate import evaluate
from .train import as_model_fn, build_model, save_model, train

BUILT_IN = ("digits", "digits-dvs")
DEFAULT_EPOCHS = {"digits": 20, "digits-dvs": 15}


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
    return p.parse_args(argv)


def run(name: str, args: argparse.Namespace) -> dict:
    """Train on ``name``, evaluate on its test split, save model and metrics; returns the metrics."""
    progress = not args.no_progress
    start = time.perf_counter()
    train_set, test_set = load_dataset(
        name, data_dir=args.data_dir, T=args.T, time_window=args.time_window, limit=args.limit,
        seed=args.seed, download=not args.no_download,
    )
    load_seconds = time.perf_counter() - start
    batch_size = args.batch_size or DEFAULT_BATCH_SIZE.get(name, 64)
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS.get(name, 5)
    net = build_model(train_set, hidden=args.hidden, alpha=args.alpha, beta=args.beta, seed=args.seed)
    start = time.perf_counter()
    history = train(net, train_set, epochs=epochs, batch_size=batch_size, seed=args.seed, progress=progress)
    seconds = time.perf_counter() - start
    result = evaluate(as_model_fn(net), test_set, batch_size=batch_size, progress=progress,
                      desc=f"test {name}")
    metrics = {
        "dataset": name, "train_samples": len(train_set), "test_samples": len(test_set),
        "epochs": epochs, "batch_size": batch_size, "model": net.config,
        "load_seconds": load_seconds, "train_seconds": seconds, "history": history, "test_accuracy": result["accuracy"],
        "seconds_per_sample": result["seconds_per_sample"],
    }
    folder = args.out / name
    save_model(net, folder / "model.pt")
    (folder / "train.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.dataset:
        try:
            m = run(name, args)
        except DatasetMissingError as err:
            print(f"{name}: {err}", file=sys.stderr)
            return 2
        rows.append(m)
        print(f"{name}: test accuracy {m['test_accuracy']:.1%} ({m['test_samples']} samples); data "
              f"{m['load_seconds']:.0f} s, training {m['epochs']} epochs {m['train_seconds']:.0f} s")
    print("\n| dataset | train / test samples | epochs | data time | train time | test accuracy |")
    print("|---|---|---|---|---|---|")
    for m in rows:
        print(f"| {m['dataset']} | {m['train_samples']} / {m['test_samples']} | {m['epochs']} | "
              f"{m['load_seconds']:.0f} s | {m['train_seconds']:.0f} s | {m['test_accuracy']:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
