"""HipRadiomics model benchmark (issue 6 goals).

A 100-case synthetic cohort with a real signal: synth -> extract -> train (default pipeline:
near-constant filter, collinearity 0.9, Boruta (RF), XGBoost, stratified 70/30). Goals: AUC >= 0.85
on the held-out 30 %; the DeLong 95 % CI matches a brute-force stratified bootstrap (2000 resamples
of the test set) within 0.02 (interval end points; the normal-approximation bootstrap interval
AUC +- 1.96 SD_boot is what DeLong estimates; the percentile interval is printed too).

Several independent cohorts (seeds) are run because 30 test cases give an AUC with an SE of
about 0.05-0.08: one cohort says little. The ideal-observer AUC of the generator is printed as the ceiling.

Run: .venv/bin/python Testing/benchmarks/bench_hip_model.py [--cases 100] [--seeds 11 12 13] [--boot 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "HipRadiomics"), str(ROOT / "RadiologyAICommon")]


def cli(*args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "HipRadiomics"), str(ROOT / "RadiologyAICommon")]))
    done = subprocess.run(
        [sys.executable, "-m", "RadiologyAICommonLib", "--progress", "none", "hip", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"hip {args[0]} failed: {done.stderr}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[11, 12, 13],
        help="seeds of the synthetic cohorts (the split/model seed is 0)",
    )
    parser.add_argument("--boot", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from HipRadiomicsLib.synthetic import oracle_auc

    print(f"ideal-observer AUC of the generator: {oracle_auc():.3f}")
    aucs, diffs = [], []
    for seed in args.seeds:
        print(f"--- cohort seed {seed}")
        auc, diff = run_one(args, seed)
        aucs.append(auc)
        diffs.append(diff)
    print(
        f"=== {len(aucs)} cohorts: AUC {', '.join(f'{a:.3f}' for a in aucs)} "
        f"(mean {sum(aucs) / len(aucs):.3f}; goal >= 0.85); "
        f"max |DeLong - bootstrap| CI end-point difference {max(diffs):.4f} (goal <= 0.02)"
    )


def run_one(args, seed: int) -> tuple[float, float]:
    import numpy as np
    import pandas as pd

    from HipRadiomicsLib import stats

    with tempfile.TemporaryDirectory(prefix="bench_hip_model_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        cli("synth", "--output-dir", str(tmp / "cohort"), "--cases", str(args.cases), "--seed", str(seed))
        t1 = time.perf_counter()
        cli(
            "extract",
            str(tmp / "cohort" / "cohort.csv"),
            "--output",
            str(tmp / "features.csv"),
            "--workers",
            str(args.workers),
        )
        t2 = time.perf_counter()
        cli("train", str(tmp / "features.csv"), "--output-dir", str(tmp / "model"))
        t3 = time.perf_counter()
        metrics = json.loads((tmp / "model" / "metrics.json").read_text())
        predictions = pd.read_csv(tmp / "model" / "test_predictions.csv")
        y = predictions["label"].to_numpy(dtype=int)
        p = predictions["probability"].to_numpy(dtype=float)
        boot = stats.bootstrap_auc(y, p, n_boot=args.boot, seed=0)[:, 0]
        auc = metrics["auc"]
        normal_boot = [max(0.0, auc - stats.Z95 * boot.std(ddof=1)), min(1.0, auc + stats.Z95 * boot.std(ddof=1))]
        percentile = list(np.percentile(boot, [2.5, 97.5]))
        delong = metrics["auc_ci95"]
        diff_normal = max(abs(a - b) for a, b in zip(delong, normal_boot))
        diff_percentile = max(abs(a - b) for a, b in zip(delong, percentile))
        print(f"timings: synth {t1 - t0:.1f} s, extract {t2 - t1:.1f} s, train {t3 - t2:.1f} s")
        print(
            f"test set: {metrics['n_test']} cases {metrics['n_test_by_class']}; selected {metrics['n_selected']} of "
            f"{metrics['n_input_features']} features ({metrics['n_after_collinearity']} after collinearity filter)"
        )
        print(
            f"AUC {auc:.3f}, DeLong 95% CI {delong[0]:.3f}-{delong[1]:.3f} "
            f"(SE {metrics['auc_se']:.4f}) -- goal AUC >= 0.85"
        )
        print(
            f"bootstrap ({args.boot}): SE {boot.std(ddof=1):.4f}; normal CI {normal_boot[0]:.3f}-{normal_boot[1]:.3f} "
            f"(max end-point difference {diff_normal:.4f}, goal <= 0.02); "
            f"percentile CI {percentile[0]:.3f}-{percentile[1]:.3f} "
            f"(difference {diff_percentile:.4f})"
        )
        print(
            f"accuracy {metrics['accuracy']:.3f} sensitivity {metrics['sensitivity']:.3f} "
            f"specificity {metrics['specificity']:.3f}"
        )
        for reader in metrics["readers"]:
            print(
                f"{reader['name']}: AUC {reader['auc']:.3f} ({reader['auc_ci95'][0]:.3f}-{reader['auc_ci95'][1]:.3f}), "
                f"paired DeLong p = {reader['p_value']:.3f}"
            )
        return auc, diff_normal


if __name__ == "__main__":
    main()
