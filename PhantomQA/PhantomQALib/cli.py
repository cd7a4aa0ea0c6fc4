"""``radiologyai phantom simulate | study | demo``.

Import-light: the cores load inside the handlers. Every input is validated before anything
is written, and all outputs go through ``staged_output_dir`` (nothing half-written).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.userinput import parse_names, parse_numbers

DEFAULT_DOSES = "0.2,0.5,1.0,2.1,4.0"
DEFAULT_RECONS = "fbp,ir,dlr"


def _recon_list(text: str) -> list[str]:
    from .recon import normalise_recon

    names = [normalise_recon(item, "--recons") for item in parse_names(text) or []]
    if not names:
        raise RadiologyAIError("--recons: give at least one of fbp, ir, dlr")
    if len(set(names)) != len(names):
        raise RadiologyAIError(f"--recons: repeated reconstruction in '{text}'")
    return names


def _int_triple(text: str, what: str) -> tuple:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise RadiologyAIError(f"{what}: expected three whole numbers like 128,128,80") from None
    if len(values) != 3 or min(values) < 8:
        raise RadiologyAIError(f"{what}: expected three sizes of at least 8 voxels")
    return values


def _add_simulation_args(parser) -> None:
    parser.add_argument("--doses", default=DEFAULT_DOSES, help=f"CTDIvol values in mGy (default {DEFAULT_DOSES})")
    parser.add_argument(
        "--recons", default=DEFAULT_RECONS, help="reconstructions to emulate: fbp, ir, dlr (default all)"
    )
    parser.add_argument(
        "--repetitions", type=int, default=4, help="repeated acquisitions per recon and dose (default 4, at least 2)"
    )
    parser.add_argument("--seed", type=int, default=0, help="noise seed of the study (default 0)")
    parser.add_argument(
        "--method",
        choices=("fast", "physical"),
        default="fast",
        help="fast image-domain simulator (default) or the physical radon/Poisson/FBP-SART option (slow)",
    )
    parser.add_argument(
        "--phantom",
        choices=("printed", "small"),
        default="printed",
        help="built-in phantom: 'printed' (the printed phantom's scale, 9.5 ml, default) or 'small' (4.3 ml, fast)",
    )
    parser.add_argument(
        "--size",
        default=None,
        help="scan grid in voxels x,y,z (default 144,144,96 for the printed phantom, 128,128,80 for the small one)",
    )
    parser.add_argument("--spacing", default="0.7,0.7,1.0", help="scan voxel size in mm x,y,z (default 0.7,0.7,1.0)")
    parser.add_argument("--phantom-seed", type=int, default=7, help="seed of the phantom tree's branching (default 7)")


def _add_run_args(parser) -> None:
    from RadiologyAICommonLib.cli import add_overwrite_argument

    add_overwrite_argument(parser)
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: all CPUs; 1 = in this process)"
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on a dask.distributed cluster (e.g. tcp://host:8786); workers must see the same paths",
    )


def configure_parser(parser) -> None:
    sub = parser.add_subparsers(dest="phantom_command", metavar="SUBCOMMAND", required=True)

    sim = sub.add_parser("simulate", help="simulate the phantom's acquisitions (NRRD) + manifest.csv + design files")
    sim.add_argument("--output-dir", required=True, help="folder for acquisitions/, manifest.csv and design/")
    _add_simulation_args(sim)
    _add_run_args(sim)
    sim.set_defaults(handler=handle_simulate)

    study = sub.add_parser(
        "study", help="analyse a study: a manifest CSV (path,recon,ctdivol_mgy,repetition) or a DICOM folder"
    )
    study.add_argument("source", metavar="MANIFEST_OR_DICOM_DIR")
    study.add_argument("--output-dir", required=True, help="folder for summary.csv, volumes.csv, report.html ...")
    study.add_argument(
        "--design",
        default=None,
        help=(
            "design folder, design.json, label map, or surface model (STL/OBJ/VTK); "
            "default: design/ beside the manifest, else the built-in phantom"
        ),
    )
    study.add_argument("--design-radius", default=None, help="radius map (mm) that goes with a label-map --design")
    study.add_argument(
        "--design-radii",
        default=None,
        help="nominal design radii (mm) to snap a surface/label design's local radii to, e.g. 4.25,3,2,1.5,1",
    )
    study.add_argument(
        "--registration",
        choices=("auto", "always", "never"),
        default="auto",
        help="rigid design-to-scan registration (default auto: only when the design does not already fit)",
    )
    study.add_argument(
        "--recon-map",
        action="append",
        default=[],
        metavar="KERNEL=RECON",
        help="DICOM: map a kernel or series description to fbp/ir/dlr (repeatable)",
    )
    _add_run_args(study)
    study.set_defaults(handler=handle_study)

    demo = sub.add_parser(
        "demo",
        help="simulate the seed study (5 doses x 3 recons x 4 repetitions) and analyse it: what 'make demo' runs",
    )
    demo.add_argument("--output-dir", required=True)
    _add_simulation_args(demo)
    _add_run_args(demo)
    demo.add_argument(
        "--no-scans", action="store_true", help="do not keep the simulated scans (NRRD) in the output folder"
    )
    demo.set_defaults(handler=handle_demo)


# ----------------------------------------------------------------------------- helpers
def _simulation_setup(args):
    from .acquisitions import MIN_REPETITIONS, Acquisition
    from .study_phantom import PRESET_SCAN_SIZES, make_study_phantom, preset_parameters
    from .simulate import ScanGeometry
    from .study import SimulationParameters

    doses = parse_numbers(args.doses, "--doses")
    recons = _recon_list(args.recons)
    if args.repetitions < MIN_REPETITIONS:
        raise RadiologyAIError(
            f"--repetitions must be at least {MIN_REPETITIONS} (the study reports mean ± SD), got {args.repetitions}"
        )
    size = _int_triple(args.size, "--size") if args.size else PRESET_SCAN_SIZES[args.phantom]
    spacing = tuple(parse_numbers(args.spacing, "--spacing", unique=False))
    if len(spacing) != 3:
        raise RadiologyAIError("--spacing: expected three voxel sizes in mm, like 0.7,0.7,1.0")
    if args.workers is not None and args.workers < 1:
        raise RadiologyAIError(f"--workers must be at least 1, got {args.workers}")
    if args.method == "physical" and abs(spacing[0] - spacing[1]) > 1e-9:
        raise RadiologyAIError("--method physical needs square in-plane pixels (--spacing x equal to y)")
    geometry = ScanGeometry(size=size, spacing_mm=spacing)
    geometry.reference()  # validates
    design = make_study_phantom(preset_parameters(args.phantom, seed=args.phantom_seed))
    lo, hi = design.bounds_mm()
    half_fov = [(n - 1) * s / 2 for n, s in zip(size, spacing)]
    vessel_lo, vessel_hi = design.centreline_points()[:, :3].min(0), design.centreline_points()[:, :3].max(0)
    if any(max(abs(a), abs(b)) > h for a, b, h in zip(vessel_lo, vessel_hi, half_fov)):
        raise RadiologyAIError(
            f"--size/--spacing: the scan field of view ({2 * half_fov[0]:.0f} x {2 * half_fov[1]:.0f} "
            f"x {2 * half_fov[2]:.0f} mm) does not hold the phantom's vessel tree"
        )
    acquisitions = [
        Acquisition(
            f"acquisitions/{recon}_{dose:g}mGy_rep{rep}.nrrd",
            recon,
            dose,
            rep,
            source=f"simulated {recon} {dose:g} mGy rep {rep}",
        )
        for recon in recons
        for dose in doses
        for rep in range(1, args.repetitions + 1)
    ]
    spec = SimulationParameters(geometry=geometry, seed=args.seed, method=args.method)
    return design, acquisitions, spec


def _study_parameters(args):
    from .registration import RegistrationParameters
    from .study import StudyParameters

    return StudyParameters(
        workers=args.workers,
        scheduler=args.scheduler,
        registration=RegistrationParameters(mode=getattr(args, "registration", "auto")),
    )


def _write_manifest(folder: Path, acquisitions) -> None:
    import pandas as pd

    from RadiologyAICommonLib.atomic import write_csv

    from .acquisitions import write_manifest_rows

    write_csv(folder / "manifest.csv", pd.DataFrame(write_manifest_rows(acquisitions, folder)))


def _print_results(outputs: dict, folder: Path, extra: dict | None = None) -> None:
    print(outputs["terminal_table"])
    trends = {k: round(v, 3) for k, v in outputs["trends"].items()}
    result = {"output_dir": str(folder), "trends": trends, **(extra or {})}
    print(json.dumps(result, indent=2))


# ----------------------------------------------------------------------------- handlers
def handle_simulate(args, progress) -> int:
    from RadiologyAICommonLib.outputs import staged_output_dir

    from .designio import save_design
    from .study import DesignRef, make_jobs, run_jobs

    design, acquisitions, spec = _simulation_setup(args)
    parameters = _study_parameters(args)
    output = Path(args.output_dir)
    with staged_output_dir(output, command="phantom simulate", overwrite=args.overwrite) as staging:
        save_design(design, staging / "design")
        (staging / "acquisitions").mkdir()
        jobs = make_jobs(
            acquisitions, DesignRef(phantom=design), parameters, spec, analyse=False, write_dir=staging / "acquisitions"
        )
        run_jobs(jobs, parameters, progress, what="simulating")
        _write_manifest(staging, acquisitions)
    print(
        json.dumps(
            {
                "output_dir": str(output),
                "manifest": str(output / "manifest.csv"),
                "design": str(output / "design"),
                "acquisitions": len(acquisitions),
            },
            indent=2,
        )
    )
    return 0


def _resolve_design(args):
    from .study import DesignRef

    radii = tuple(parse_numbers(args.design_radii, "--design-radii")) if args.design_radii else None
    if args.design:
        ref = DesignRef(
            path=str(Path(args.design).absolute()),
            radius_path=str(Path(args.design_radius).absolute()) if args.design_radius else None,
            nominal_radii=radii,
        )
    else:
        source = Path(args.source)
        beside = (source.parent if source.is_file() else source) / "design"
        if beside.is_dir():
            ref = DesignRef(path=str(beside.absolute()))
        else:
            print(
                "note: no --design given and no design/ beside the input: using the built-in parametric phantom",
                file=sys.stderr,
            )
            ref = DesignRef()
    design = ref.load()  # validates the design before anything runs
    if ref.path is None:
        ref = DesignRef(phantom=design)
    return ref, design


def handle_study(args, progress) -> int:
    from RadiologyAICommonLib.outputs import staged_output_dir

    from .acquisitions import load_acquisitions
    from .reporting import write_study_outputs
    from .study import run_study

    overrides = {}
    for item in args.recon_map:
        if "=" not in item:
            raise RadiologyAIError(f"--recon-map '{item}': expected KERNEL=RECON, e.g. 'FC52=fbp'")
        key, value = item.split("=", 1)
        overrides[key.strip()] = value.strip()
    acquisitions = load_acquisitions(args.source, overrides)
    design_ref, _ = _resolve_design(args)
    parameters = _study_parameters(args)
    if parameters.workers is not None and parameters.workers < 1:
        raise RadiologyAIError(f"--workers must be at least 1, got {parameters.workers}")
    output = Path(args.output_dir)
    inputs = [args.source, args.design, args.design_radius, *(a.path for a in acquisitions)]
    with staged_output_dir(output, command="phantom study", inputs=inputs, overwrite=args.overwrite) as staging:
        study = run_study(acquisitions, design_ref, parameters, progress)
        outputs = write_study_outputs(staging, study)
    _print_results(outputs, output, {"acquisitions": len(acquisitions), "seconds": round(study.seconds, 1)})
    return 0


def handle_demo(args, progress) -> int:
    import time

    from RadiologyAICommonLib.outputs import staged_output_dir
    from RadiologyAICommonLib.progress import subprogress

    from .designio import save_design
    from .reporting import write_study_outputs
    from .study import DesignRef, run_study

    started = time.perf_counter()
    design, acquisitions, spec = _simulation_setup(args)
    parameters = _study_parameters(args)
    output = Path(args.output_dir)
    with staged_output_dir(output, command="phantom demo", overwrite=args.overwrite) as staging:
        progress(0.0, "writing the phantom design")
        save_design(design, staging / "design")
        write_dir = None
        if not args.no_scans:
            write_dir = staging / "acquisitions"
            write_dir.mkdir()
        study = run_study(
            acquisitions,
            DesignRef(phantom=design),
            parameters,
            subprogress(progress, 0.02, 0.97),
            simulation=spec,
            write_dir=write_dir,
        )
        if not args.no_scans:
            _write_manifest(staging, acquisitions)
        progress(0.97, "writing the report")
        outputs = write_study_outputs(
            staging,
            study,
            title="PhantomQA demo: simulated dose x reconstruction study",
            notes=[
                (
                    f"Simulated with the {spec.method} acquisition simulator (seed {spec.seed}); "
                    "reconstructions are emulations named by what they imitate, not vendor algorithms."
                )
            ],
        )
        progress(1.0, "done")
    _print_results(
        outputs, output, {"acquisitions": len(acquisitions), "seconds": round(time.perf_counter() - started, 1)}
    )
    return 0
