"""``radiologyai vessels``: lung-vessel segmentation and per-radius quantification of one chest CT.

    radiologyai vessels CT --output-dir DIR [--lung-mask MASK] [--radius-bins R [R ...]]

Writes into DIR (all or nothing): ``vessel_label.nrrd`` (uint8, 1 = vessel), ``vessel_radius.nrrd``
(float32, mm), ``lung_mask.nrrd``, ``nodule_label.nrrd`` (nodule-like blobs, not counted as vessel),
``per_radius.csv`` and ``summary.json``; prints the summary
as JSON on stdout. Import-light: the pipeline (SciPy, scikit-image, PyMaxflow) loads in the handler.
"""

from __future__ import annotations

import json
from pathlib import Path

# What a run writes (resultio.py writes and reads them; kept here, where importing costs nothing).
OUTPUT_FILES = (
    "vessel_label.nrrd",
    "vessel_radius.nrrd",
    "lung_mask.nrrd",
    "nodule_label.nrrd",
    "per_radius.csv",
    "summary.json",
)


def configure_parser(parser) -> None:
    from RadiologyAICommonLib.cli import add_overwrite_argument, add_series_argument

    parser.add_argument(
        "ct", metavar="CT", help="chest CT in HU: an image file (NRRD, NIfTI, MHA...) or a DICOM series folder"
    )
    add_series_argument(parser)
    parser.add_argument("--output-dir", required=True, metavar="DIR", help="folder for the results (created if needed)")
    parser.add_argument(
        "--lung-mask", metavar="MASK", help="lung mask on the CT's grid (> 0 = lung); default: computed from HU"
    )
    parser.add_argument(
        "--radius-bins",
        nargs="+",
        type=float,
        metavar="R",
        help="design radii in mm; each vessel voxel is counted at the nearest (default: 0.25 mm bins)",
    )
    parser.add_argument(
        "--radius-bin-width", type=float, default=0.25, metavar="MM", help="width of the default radius bins (0.25 mm)"
    )
    parser.add_argument(
        "--vessel-hu",
        type=float,
        metavar="HU",
        help="full-contrast vessel HU for the radius estimate (default: measured per scan)",
    )
    parser.add_argument(
        "--parameters",
        metavar="JSON",
        help="JSON file of VesselQuant parameters (the 'parameters' object of a summary.json works)",
    )
    add_overwrite_argument(parser)
    parser.set_defaults(handler=run)


def _load_parameters(args):
    from RadiologyAICommonLib.errors import RadiologyAIError

    from .parameters import VesselQuantParameters

    values = {}
    if args.parameters:
        path = Path(args.parameters)
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RadiologyAIError(f"parameters file {path}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RadiologyAIError(f"parameters file {path}: not valid JSON ({exc})") from None
        if not isinstance(values, dict):
            raise RadiologyAIError(f"parameters file {path}: expected a JSON object of parameter names and values")
    if args.radius_bins:
        values["radius_bins_mm"] = args.radius_bins
    if args.radius_bin_width != 0.25 or "radius_bin_mm" not in values:
        values["radius_bin_mm"] = args.radius_bin_width
    if args.vessel_hu is not None:
        values["vessel_hu"] = args.vessel_hu
    try:
        return VesselQuantParameters.from_dict(values)
    except TypeError as exc:
        raise RadiologyAIError(f"invalid VesselQuant parameters: {exc}") from None


def run(args, progress) -> int:
    from RadiologyAICommonLib.cli import require
    from RadiologyAICommonLib.outputs import staged_output_dir
    from RadiologyAICommonLib.imageio import read_image, read_volume

    require("maxflow", "vessels")
    require("skimage", "vessels")
    from RadiologyAICommonLib.atomic import json_ready

    from .pipeline import run_vessel_quant, validate_ct, validate_lung_mask
    from .resultio import write_result

    # validate everything before any output exists
    parameters = _load_parameters(args)
    ct = validate_ct(read_volume(args.ct, "CT", modality="CT", series=args.series), f"CT {args.ct}")
    lung = None
    if args.lung_mask:
        lung = read_image(args.lung_mask, "lung mask")
        validate_lung_mask(lung, ct, f"lung mask {args.lung_mask}")
    inputs = [args.ct, args.lung_mask, args.parameters]
    with staged_output_dir(args.output_dir, command="vessels", inputs=inputs, overwrite=args.overwrite) as staging:
        result = run_vessel_quant(ct, lung, parameters, progress)
        write_result(result, staging)
    print(json.dumps(json_ready(result.summary), indent=2))
    return 0
