"""Benchmark of ``radiologyai phantom demo`` (what ``make demo`` runs): time, trends, calibration.

Usage::

    .venv/bin/python Testing/benchmarks/bench_phantom_demo.py [--workers 2] [--keep DIR]

Runs the demo (5 doses x 3 recons x 4 repetitions = 60 simulated acquisitions through
VesselQuant, plus the report) in a subprocess and prints:

- wall time and CPU time (goal: <= 180 s on 2 cores; the load average of the machine is
  printed too, since other processes slow a shared machine down);
- the seed's trends: Spearman rho of the 3 mm IQR vs dose per recon (goal <= -0.8), IR and
  DLR IQR at the lowest dose relative to FBP (goal: well below, here < 0.75 x FBP), and
  Spearman rho of the detected volume vs dose for IR and DLR (goal: rises, rho > 0);
- the simulated vs published 3 mm IQR table (goal: within 20 %).
Exit status 0 when every goal is met.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from PhantomQALib.aggregate import calibration_table, trends


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=None, help="passed to the demo (default: all CPUs)")
    parser.add_argument("--keep", default=None, help="output folder to keep (default: a temporary one)")
    args = parser.parse_args(argv)
    out_dir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="phantom_demo_")) / "demo"
    command = [str(Path(sys.executable).parent / "radiologyai"), "--progress", "none", "phantom", "demo", "--output-dir", str(out_dir)]
    if args.workers:
        command += ["--workers", str(args.workers)]
    load = os.getloadavg()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"$ {' '.join(command)}")
    print(f"CPUs available: {cpus}; load average before: {load[0]:.2f}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if run.returncode != 0:
        print(run.stderr[-3000:])
        return 1
    print(run.stdout.split("\n{")[0])
    summary = pd.read_csv(out_dir / "summary.csv")
    volumes = pd.read_csv(out_dir / "volumes.csv")
    goals = {}
    print(f"\nwall time {wall:.1f} s, CPU time {cpu:.1f} s (goal: wall <= 180 s on 2 cores)")
    goals["time"] = wall <= 180.0
    rho = trends(summary, volumes)
    print("\ntrends (Spearman rho vs dose):")
    for key, value in rho.items():
        print(f"  {key}: {value:+.2f}")
    goals["iqr_falls"] = all(rho[f"iqr_3mm_spearman_{r}"] <= -0.8 for r in ("fbp", "ir", "dlr"))
    goals["volume_rises_ir_dlr"] = all(rho[f"volume_spearman_{r}"] > 0 for r in ("ir", "dlr"))
    at3 = summary[np.isclose(summary["radius_mm"], 3.0)]
    low = at3[np.isclose(at3["ctdivol_mgy"], at3["ctdivol_mgy"].min())].set_index("recon")["iqr_mean_hu"]
    print(f"\nlowest dose 3 mm IQR: FBP {low['fbp']:.1f}, IR {low['ir']:.1f} ({low['ir'] / low['fbp']:.2f} x FBP), DLR {low['dlr']:.1f} ({low['dlr'] / low['fbp']:.2f} x FBP)")
    goals["low_dose_ir_dlr_below_fbp"] = low["ir"] < 0.75 * low["fbp"] and low["dlr"] < 0.75 * low["fbp"]
    print("\ndetected volume (ml, mean ± SD):")
    for row in volumes.itertuples(index=False):
        print(f"  {row.recon.upper():4s} {row.ctdivol_mgy:4.1f} mGy: {row.volume_mean_ml:.2f} ± {row.volume_sd_ml:.2f}")
    table = calibration_table(summary)
    print("\n| recon | CTDIvol (mGy) | demo 3 mm IQR (HU) | published (HU) | difference |")
    print("|---|---|---|---|---|")
    for row in table.itertuples(index=False):
        print(f"| {row.recon.upper()} | {row.ctdivol_mgy:g} | {row.iqr_mean_hu:.1f} ± {row.iqr_sd_hu:.1f} | {row.published_iqr_hu:.1f} | {row.difference_pct:+.1f} % |")
    goals["calibration_20pct"] = bool((table["difference_pct"].abs() <= 20).all())
    print("\ngoals: " + ", ".join(f"{k}={'met' if v else 'NOT met'}" for k, v in goals.items()))
    print(f"outputs: {out_dir}")
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
