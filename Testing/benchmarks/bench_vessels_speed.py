"""VesselQuant speed and peak memory against the hand-made alternative, on whole-chest-sized CTs.

Cases (``--case``; each CT built once and cached):

* ``chest``: a 512 x 512 x 400 phantom CT (``VesselQuantLib/vessel_phantom.py``, 0.7 x 0.7 x 1 mm): a body
  with two lungs;
* ``parenchyma``: a 512 x 512 x 400 CT of the independent family (``branching_phantom.py``) whose whole interior
  (34 l) is noisy parenchyma (30 HU, ramp noise spectrum) holding 14 dense trees entering through the wall: the
  lung volume, not the vessels, sets the cost there;
* ``real``: the real full-thorax CT of ``../shared/data/chest-ct-2mm`` (read from DICOM).

For each case it runs in separate processes, one after the other on the same machine:

* the whole VesselQuant pipeline (automatic lung mask, vesselness, graph cut, centreline radius,
  quantification);
* the baseline: 4-scale SimpleITK ObjectnessMeasure (Gaussian smoothing + objectness at 0.5, 1, 2
  and 3 mm, maximum over scales) on the same volume.

Each child reports its compute wall time (reading the file excluded) and its peak resident memory
(ru_maxrss, file reading included), and for VesselQuant the graph nodes per vessel voxel found. Goals (issues 3
and 13): pipeline <= 0.3 x baseline time and <= 4 GB, in every case.

    .venv/bin/python Testing/benchmarks/bench_vessels_speed.py [--case chest parenchyma real] [--size 512 512 400]
        [--work-dir DIR]
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


def read_ct(path: str):
    """The CT of a file (NRRD, NIfTI, ...) or of a DICOM folder (its one series), as a SimpleITK image."""
    import SimpleITK as sitk

    if Path(path).is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(path))
        return reader.Execute()
    return sitk.ReadImage(path)


def child(kind: str, path: str) -> None:
    import SimpleITK as sitk

    ct = read_ct(path)
    start = time.perf_counter()
    if kind == "vesselquant":
        from VesselQuantLib.pipeline import run_vessel_quant

        result = run_vessel_quant(ct)
        vessel_voxels = int(sitk.GetArrayViewFromImage(result.vessel_label).sum())
        extra = {
            "vessel_ml": result.summary["total_volume_ml"],
            "lung_ml": result.summary["lung_volume_ml"],
            "graph_nodes": result.summary["graph_nodes"],
            "vessel_voxels": vessel_voxels,
            "nodes_per_vessel_voxel": result.summary["graph_nodes"] / max(vessel_voxels, 1),
        }
    else:
        from VesselQuantLib.evaluation import simpleitk_objectness

        simpleitk_objectness(ct, (0.5, 1.0, 2.0, 3.0))
        extra = {}
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({"kind": kind, "seconds": seconds, "peak_gb": peak_gb, **extra}))


REAL_CT = Path(__file__).resolve().parents[3] / "shared" / "data" / "chest-ct-2mm" / "dicom"


def make_case_ct(case: str, size, work: Path) -> Path:
    """The CT of one case (built once into ``work``; the real CT is read where it lies)."""
    if case == "real":
        if not REAL_CT.is_dir():
            sys.exit(f"the real thorax CT is not at {REAL_CT}")
        return REAL_CT
    path = work / f"{case}_{'x'.join(map(str, size))}.nrrd"
    if path.exists():
        return path
    print(f"building the {case} CT {size} (once) ...", flush=True)
    # In a process of its own: Linux carries a process's peak resident memory over into the children it forks, so
    # building the CT here (about 8 GB for the parenchyma case) would become every child's measured peak.
    built = subprocess.run([sys.executable, __file__, "--build", case, str(path), *map(str, size)])
    if built.returncode != 0:
        sys.exit(f"building the {case} CT failed")
    return path


def build_case_ct(case: str, path: str, size) -> None:
    import SimpleITK as sitk

    if case == "chest":
        from VesselQuantLib.vessel_phantom import make_vessel_phantom

        image = make_vessel_phantom(size_xyz=tuple(size), noise_sd_hu=30.0, seed=0).image
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        from branching_phantom import make_branching_phantom

        image = make_branching_phantom(
            size_xyz=tuple(size), spacing_xyz=(0.7, 0.7, 1.0), trees=14, nodules=0, noise_sd_hu=30.0, seed=0
        ).image
    sitk.WriteImage(image, str(path), True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--case", nargs="+", choices=("chest", "parenchyma", "real"), default=["chest", "parenchyma", "real"]
    )
    parser.add_argument("--size", type=int, nargs=3, default=[512, 512, 400])
    parser.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "radiologyai-bench-vessels"))
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--build", nargs=5, metavar=("CASE", "PATH", "X", "Y", "Z"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.build:
        build_case_ct(args.build[0], args.build[1], [int(n) for n in args.build[2:]])
        return
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    print(f"cores: {os.cpu_count()}")
    met = True
    for case in args.case:
        path = make_case_ct(case, args.size, work)
        results = {}
        for kind in ("vesselquant", "objectness"):
            done = subprocess.run(
                [sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True
            )
            if done.returncode != 0:
                sys.exit(f"{case} / {kind} failed:\n{done.stderr[-3000:]}")
            results[kind] = json.loads(done.stdout.strip().splitlines()[-1])
        ours, base = results["vesselquant"], results["objectness"]
        ratio = ours["seconds"] / base["seconds"]
        fast, small = ratio <= 0.3, ours["peak_gb"] <= 4.0
        met &= fast and small
        print(f"\n[{case}] {path}")
        print(
            f"  VesselQuant pipeline: {ours['seconds']:.1f} s, peak {ours['peak_gb']:.2f} GB; "
            f"lung {ours['lung_ml']:.0f} ml, "
            f"vessels {ours['vessel_ml']:.1f} ml; graph nodes {ours['graph_nodes']:,} = "
            f"{ours['nodes_per_vessel_voxel']:.2f} per vessel voxel"
        )
        print(f"  4-scale SimpleITK ObjectnessMeasure: {base['seconds']:.1f} s, peak {base['peak_gb']:.2f} GB")
        print(
            f"  time ratio pipeline / baseline: {ratio:.3f} (goal <= 0.3: {'met' if fast else 'NOT met'}); "
            f"peak memory goal <= 4 GB: {'met' if small else 'NOT met'}",
            flush=True,
        )
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
