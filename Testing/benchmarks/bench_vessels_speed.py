"""VesselQuant speed and peak memory against the hand-made alternative, on a whole-chest-sized CT.

Builds (once, cached) a 512 x 512 x 400 phantom CT with 0.7 x 0.7 x 1 mm voxels, then runs in
separate processes, one after the other on the same machine:

* the whole VesselQuant pipeline (automatic lung mask, vesselness, graph cut, centreline radius,
  quantification);
* the baseline: 4-scale SimpleITK ObjectnessMeasure (Gaussian smoothing + objectness at 0.5, 1, 2
  and 3 mm, maximum over scales) on the same volume.

Each child reports its compute wall time (reading the file excluded) and its peak resident memory
(ru_maxrss, file reading included). Goal (issue 3): pipeline <= 0.3 x baseline time, <= 4 GB.

    .venv/bin/python Testing/benchmarks/bench_vessels_speed.py [--size 512 512 400] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(kind: str, path: str) -> None:
    import SimpleITK as sitk

    ct = sitk.ReadImage(path)
    start = time.perf_counter()
    if kind == "vesselquant":
        from VesselQuantLib.pipeline import run_vessel_quant

        result = run_vessel_quant(ct)
        extra = {"vessel_ml": result.summary["total_volume_ml"], "graph_nodes": result.summary["graph_nodes"]}
    else:
        from VesselQuantLib.evaluation import simpleitk_objectness

        simpleitk_objectness(ct, (0.5, 1.0, 2.0, 3.0))
        extra = {}
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({"kind": kind, "seconds": seconds, "peak_gb": peak_gb, **extra}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=3, default=[512, 512, 400])
    parser.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "radiologyai-bench-vessels"))
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    import SimpleITK as sitk

    from VesselQuantLib.phantom import make_vessel_phantom

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"phantom_{'x'.join(map(str, args.size))}.nrrd"
    if not path.exists():
        print(f"building the {args.size} phantom (once) ...", flush=True)
        phantom = make_vessel_phantom(size_xyz=tuple(args.size), noise_sd_hu=30.0, seed=0)
        sitk.WriteImage(phantom.image, str(path), True)
        del phantom
    print(f"CT: {path} ({args.size[0]} x {args.size[1]} x {args.size[2]}, 0.7 x 0.7 x 1 mm), cores: {os.cpu_count()}")
    results = {}
    for kind in ("vesselquant", "objectness"):
        done = subprocess.run([sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{kind} failed:\n{done.stderr[-3000:]}")
        results[kind] = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(results[kind]), flush=True)
    ours, base = results["vesselquant"], results["objectness"]
    ratio = ours["seconds"] / base["seconds"]
    print(f"\nVesselQuant pipeline: {ours['seconds']:.1f} s, peak {ours['peak_gb']:.2f} GB")
    print(f"4-scale SimpleITK ObjectnessMeasure: {base['seconds']:.1f} s, peak {base['peak_gb']:.2f} GB")
    print(f"time ratio pipeline / baseline: {ratio:.3f} (goal <= 0.3: {'met' if ratio <= 0.3 else 'NOT met'}); "
          f"peak memory goal <= 4 GB: {'met' if ours['peak_gb'] <= 4.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
