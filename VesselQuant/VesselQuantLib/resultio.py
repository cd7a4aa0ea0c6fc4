"""Write a :class:`VesselQuantResult` to a folder (the CLI's outputs) and read it back.

Files: ``vessel_label.nrrd``, ``vessel_radius.nrrd``, ``lung_mask.nrrd``, ``nodule_label.nrrd``,
``per_radius.csv``, ``summary.json``. The Slicer widget runs the CLI in a worker process and reads the folder
back with :func:`read_result`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import SimpleITK as sitk

from RadiologyAICommonLib.atomic import write_csv, write_json
from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import write_image

from .cli import OUTPUT_FILES
from .pipeline import VesselQuantResult


def write_result(result: VesselQuantResult, folder: str | Path) -> None:
    """Write the output files into ``folder`` (each atomically)."""
    folder = Path(folder)
    write_image(result.vessel_label, folder / "vessel_label.nrrd")
    nodules = result.nodule_label
    if nodules is None:
        nodules = sitk.Image(result.vessel_label.GetSize(), sitk.sitkUInt8)
        nodules.CopyInformation(result.vessel_label)
    write_image(nodules, folder / "nodule_label.nrrd")
    write_image(result.vessel_radius, folder / "vessel_radius.nrrd")
    write_image(result.lung_mask, folder / "lung_mask.nrrd")
    write_csv(folder / "per_radius.csv", result.per_radius)
    write_json(folder / "summary.json", result.summary)


def read_result(folder: str | Path) -> VesselQuantResult:
    """Read a folder written by :func:`write_result` (or ``radiologyai vessels``)."""
    folder = Path(folder)
    missing = [name for name in OUTPUT_FILES if not (folder / name).is_file()]
    if missing:
        raise RadiologyAIError(f"{folder}: not a VesselQuant output folder (missing {', '.join(missing)})")
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    summary = {k: (float("nan") if v is None else v) for k, v in summary.items()}
    return VesselQuantResult(
        lung_mask=sitk.ReadImage(str(folder / "lung_mask.nrrd")),
        vessel_label=sitk.ReadImage(str(folder / "vessel_label.nrrd")),
        vessel_radius=sitk.ReadImage(str(folder / "vessel_radius.nrrd")),
        per_radius=pd.read_csv(folder / "per_radius.csv"),
        summary=summary,
        nodule_label=sitk.ReadImage(str(folder / "nodule_label.nrrd")),
    )
