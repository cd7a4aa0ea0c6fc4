"""HipRadiomics extraction benchmarks (issue 6 goals).

1. Overhead of HipRadiomics' extraction (mask checks, label handling, geometry check, feature
   collection) over calling PyRadiomics directly on the same files: goal <= 10 %.
2. Wall time of ``radiologyai hip extract`` on a 100-case synthetic cohort of 48^3 volumes with
   2 worker processes: goal <= 60 s on 2 cores.

Run: .venv/bin/python Testing/benchmarks/bench_hip_extraction.py [--cases 100] [--overhead-cases 12] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "HipRadiomics"), str(ROOT / "RadiologyAICommon")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--overhead-cases", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    import numpy as np
    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    from HipRadiomicsLib.extraction import extract_files
    from HipRadiomicsLib.radiomics_params import load_params
    from HipRadiomicsLib.synthetic import SynthConfig, generate_cohort

    radiomics.setVerbosity(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench_hip_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        cohort = generate_cohort(tmp / "cohort", SynthConfig(n_cases=args.cases, seed=args.seed))
        print(f"synthetic cohort: {args.cases} cases of 48^3 voxels in {time.perf_counter() - t0:.1f} s")

        # 1. overhead vs direct PyRadiomics (same params, same files, single process)
        params = load_params()
        direct = RadiomicsFeatureExtractor(params.as_dict())
        ids = [f"synth{i + 1:03d}" for i in range(min(args.overhead_cases, args.cases))]
        files = [(str(tmp / "cohort" / "images" / f"{c}.nrrd"), str(tmp / "cohort" / "masks" / f"{c}_mask.nrrd")) for c in ids]
        extract_files(*files[0], params)  # warm-up both paths (imports, extractor cache)
        direct.execute(*files[0])
        t_direct, t_ours, max_rel = [], [], 0.0
        for r in range(args.repeats):
            for image, mask in files:
                order = (0, 1) if r % 2 == 0 else (1, 0)
                for which in order:
                    start = time.perf_counter()
                    if which == 0:
                        ref = direct.execute(image, mask)
                        t_direct.append(time.perf_counter() - start)
                    else:
                        ours = extract_files(image, mask, params)
                        t_ours.append(time.perf_counter() - start)
                ref_values = {k: float(v) for k, v in ref.items() if not k.startswith("diagnostics_")}
                diffs = [abs(ours.features[k] - v) / max(abs(v), 1e-12) for k, v in ref_values.items()]
                max_rel = max(max_rel, max(diffs))
        total_direct, total_ours = sum(t_direct), sum(t_ours)
        overhead = (total_ours - total_direct) / total_direct
        print(f"overhead: direct PyRadiomics {total_direct:.2f} s, HipRadiomics {total_ours:.2f} s over "
              f"{len(files)} cases x {args.repeats} repeats -> overhead {100 * overhead:+.1f} % (goal <= 10 %); "
              f"max relative feature difference {max_rel:.1e}")

        # 2. 100-case cohort through the CLI with worker processes
        out = tmp / "features.csv"
        cmd = [sys.executable, "-m", "RadiologyAICommonLib", "--progress", "none", "hip", "extract", str(cohort), "--output",
               str(out), "--workers", str(args.workers)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "HipRadiomics"), str(ROOT / "RadiologyAICommon")]))
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"extract failed: {done.stderr}")
        summary = json.loads(done.stdout)
        print(f"cohort extraction: {summary['cases']} cases ({summary['failed']} failed), {summary['n_features']} features, "
              f"{args.workers} workers, {wall:.1f} s wall (goal <= 60 s on 2 cores), os.cpu_count()={os.cpu_count()}, "
              f"load average before/after {os.getloadavg()[0]:.1f}")
        np.seterr(all="ignore")


if __name__ == "__main__":
    main()
