"""Benchmark: train SalivarySeg on 16 synthetic cases, then segment unseen synthetic cases.

Goal (issue 5): Dice >= 0.7 on unseen synthetic cases, the whole run (data, training, prediction)
in <= 15 min on 2 CPU cores. Everything goes through the ``radiologyai`` CLI, as a user would run it:

    radiologyai salivary train DATA --output-dir MODEL --threads 2      (CLI defaults otherwise)
    radiologyai salivary predict UNSEEN --model MODEL --output-dir PRED
    radiologyai salivary evaluate --pred PRED --truth UNSEEN

The training data are 16 training cases plus 2 validation cases (``split`` column of cases.csv,
used for model selection / early stopping); the unseen cases come from another index range.

Run: .venv/bin/python Testing/benchmarks/bench_salivary_train_predict.py [--threads 2] [--unseen 4]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cli(*args) -> dict:
    command = [sys.executable, "-m", "RadiologyAICommonLib", "--progress", "none", "salivary", *map(str, args)]
    process = subprocess.run(command, capture_output=True, text=True)
    if process.returncode != 0:
        sys.exit(f"command failed ({process.returncode}): {' '.join(command)}\n{process.stderr}")
    return json.loads(process.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-cases", type=int, default=16)
    parser.add_argument("--val-cases", type=int, default=2)
    parser.add_argument("--unseen", type=int, default=4, help="unseen cases to predict (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="keep the data and model here (default: a temporary folder, removed)")
    parser.add_argument("--train-args", default="", help="extra arguments for 'train', e.g. \"--epochs 20\"")
    args = parser.parse_args()

    from SalivarySegLib.synthetic import make_dataset

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-salivary-"))
    work.mkdir(parents=True, exist_ok=True)
    timings = {}
    try:
        start = time.perf_counter()
        n = args.train_cases + args.val_cases
        make_dataset(work / "data", n, seed=args.seed, splits=["train"] * args.train_cases + ["val"] * args.val_cases)
        make_dataset(work / "unseen", args.unseen, seed=args.seed, start_index=1000)
        timings["synthetic_data_s"] = time.perf_counter() - start

        t = time.perf_counter()
        trained = cli(
            "train",
            work / "data",
            "--output-dir",
            work / "model",
            "--threads",
            args.threads,
            "--seed",
            args.seed,
            *args.train_args.split(),
        )
        timings["training_s"] = time.perf_counter() - t

        t = time.perf_counter()
        cli(
            "predict",
            work / "unseen",
            "--model",
            work / "model",
            "--output-dir",
            work / "pred",
            "--threads",
            args.threads,
        )
        timings["prediction_s"] = time.perf_counter() - t
        timings["total_s"] = time.perf_counter() - start

        scores = cli("evaluate", "--pred", work / "pred", "--truth", work / "unseen")
        history = (work / "model" / "history.csv").read_text().splitlines()
        summary = scores["summary"]
        print(
            "SalivarySeg benchmark: train on",
            args.train_cases,
            "synthetic cases (+",
            args.val_cases,
            "validation), predict",
            args.unseen,
            "unseen cases;",
            args.threads,
            "threads",
        )
        print(f"  {'case':10s} {'diagnosis':10s} {'Dice':>6s} {'HD95 mm':>8s} {'ASD mm':>7s}  predicted (p)")
        for row in scores["cases"]:
            p = row["probability"]
            print(
                f"  {row['case_id']:10s} {row['diagnosis'] or '-':10s} {row['dice']:6.3f} "
                f"{(row['hd95_mm'] if row['hd95_mm'] is not None else float('nan')):8.2f} "
                f"{(row['asd_mm'] if row['asd_mm'] is not None else float('nan')):7.2f}  "
                f"{row['predicted_class']} ({'-' if p is None else f'{p:.2f}'})"
            )
        dice = summary["dice"]
        print(
            f"  unseen Dice mean {dice['mean']:.3f} (min {dice['min']:.3f}); HD95 mean "
            f"{summary['hd95_mm']['mean']}; accuracy {summary['classification']['accuracy']}"
        )
        print(
            f"  V-Net epochs run: {sum(1 for line in history[1:] if line.startswith('segmentation'))}, "
            f"validation-set Dice of the best epoch {trained.get('dice_mean')}"
        )
        for key, value in timings.items():
            print(f"  {key:18s} {value:8.1f} s")
        per_case = timings["prediction_s"] / max(args.unseen, 1)
        print(f"  prediction per case (incl. process start) {per_case:.1f} s")
        ok = dice["mean"] >= 0.7 and timings["total_s"] <= 15 * 60
        print("GOAL", "MET" if ok else "NOT MET", "(mean unseen Dice >= 0.7 and total <= 15 min)")
        return 0 if ok else 1
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
