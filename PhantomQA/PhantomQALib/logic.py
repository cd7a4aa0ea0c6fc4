"""PhantomQALogic: the MRML adapter of PhantomQA (no Qt).

- volumes in the scene -> acquisitions: each volume with its recon / dose / repetition is
  exported as NRRD and listed in a manifest CSV, which the study runner (worker process or
  :meth:`PhantomQALogic.runStudy`) analyses;
- a study's output folder -> table nodes (summary, volumes, acquisitions) and plot chart
  nodes (IQR, MPV and volume vs dose per reconstruction, detection vs radius);
- the prefill of recon and dose from what the scene knows about a volume (DICOM tags
  through Slicer's DICOM database when the volume was loaded from DICOM, or a
  ``recon_<dose>mGy_rep<n>`` name as written by ``radiologyai phantom simulate``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk
import slicer

from RadiologyAICommonLib import mrml
from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.logicbase import LogicBase

if TYPE_CHECKING:  # pandas is a requirement: imported on use, after ensure_requirements
    import pandas as pd

from .published import CALIBRATION_RADIUS_MM
from .recon import RECON_MODELS, normalise_recon, recon_from_dicom

_NAME_PATTERN = re.compile(r"(?P<recon>fbp|ir|dlr)[_\- ]+(?P<dose>\d+(?:\.\d+)?)\s*mGy(?:[_\- ]+rep(?P<rep>\d+))?", re.I)


class PhantomQALogic(LogicBase):
    def __init__(self) -> None:
        LogicBase.__init__(self)

    # ------------------------------------------------------------------ acquisitions
    @staticmethod
    def guessAcquisition(volumeNode) -> dict:
        """Best guess of ``{"recon", "ctdivol_mgy", "repetition"}`` for a volume (values may be None)."""
        guess = {"recon": None, "ctdivol_mgy": None, "repetition": None}
        kernel = description = ""
        uids = volumeNode.GetAttribute("DICOM.instanceUIDs") if volumeNode is not None else None
        database = getattr(slicer, "dicomDatabase", None)
        if uids and database is not None:
            try:
                first = database.fileForInstance(uids.split()[0])
                kernel = database.fileValue(first, "0018,1210") or ""
                description = database.fileValue(first, "0008,103E") or ""
                ctdi = database.fileValue(first, "0018,9345")
                guess["ctdivol_mgy"] = float(ctdi) if ctdi else None
            except (AttributeError, ValueError):
                pass
        if kernel or description:
            guess["recon"] = recon_from_dicom(kernel, description)
        match = _NAME_PATTERN.search(volumeNode.GetName() if volumeNode is not None else "")
        if match:
            guess["recon"] = guess["recon"] or match.group("recon").lower()
            guess["ctdivol_mgy"] = guess["ctdivol_mgy"] or float(match.group("dose"))
            guess["repetition"] = int(match.group("rep")) if match.group("rep") else None
        return guess

    def writeManifest(self, entries: list, folder: str) -> Path:
        """Export volumes and write ``manifest.csv``.

        ``entries``: list of ``(volumeNode, recon, ctdivol_mgy, repetition)``. Returns the manifest path.
        """
        import pandas as pd

        from RadiologyAICommonLib.atomic import write_csv
        from RadiologyAICommonLib.imageio import write_image

        from .acquisitions import Acquisition, check_repetitions

        if not entries:
            raise RadiologyAIError("select at least two volumes per reconstruction and dose")
        folder = Path(folder)
        acquisitions, rows = [], []
        for number, (node, recon, dose, repetition) in enumerate(entries, start=1):
            where = f"volume '{node.GetName() if node else '?'}'"
            recon = normalise_recon(recon, where)
            try:
                dose = float(dose)
            except (TypeError, ValueError):
                raise RadiologyAIError(f"{where}: CTDIvol '{dose}' is not a number") from None
            if not np.isfinite(dose) or dose <= 0:
                raise RadiologyAIError(f"{where}: CTDIvol must be a positive dose in mGy, got {dose}")
            acquisitions.append(Acquisition(node.GetName(), recon, dose, int(repetition), source=where))
        check_repetitions(acquisitions, "selected volumes")
        folder.mkdir(parents=True, exist_ok=True)
        for (node, *_), acq in zip(entries, acquisitions):
            name = f"{acq.recon}_{acq.ctdivol_mgy:g}mGy_rep{acq.repetition}.nrrd"
            write_image(mrml.volume_node_to_image(node), folder / name)
            rows.append({"path": name, "recon": acq.recon, "ctdivol_mgy": acq.ctdivol_mgy, "repetition": acq.repetition})
        manifest = folder / "manifest.csv"
        write_csv(manifest, pd.DataFrame(rows))
        return manifest

    def runStudy(self, manifest: str, outputDir: str, design: str | None = None, workers: int | None = 1, progress=None,
                 overwrite: bool = False) -> dict:
        """Run a (small) study in this process: returns the output tables (see :mod:`.reporting`).

        ``overwrite``: write into a non-empty ``outputDir``, replacing only an earlier run's outputs.
        """
        from RadiologyAICommonLib.outputs import staged_output_dir

        from .acquisitions import load_acquisitions
        from .reporting import write_study_outputs
        from .study import DesignRef, StudyParameters, run_study

        acquisitions = load_acquisitions(manifest)
        source = Path(manifest)
        beside = (source.parent if source.is_file() else source) / "design"
        if not design and beside.is_dir():  # as the CLI: the design written beside the manifest
            design = str(beside)
        ref = DesignRef(path=str(Path(design).absolute())) if design else DesignRef()
        loaded = ref.load()
        if ref.path is None:
            ref = DesignRef(phantom=loaded)
        inputs = [manifest, design, *(a.path for a in acquisitions)]
        with staged_output_dir(outputDir, command="phantom study", inputs=inputs, overwrite=overwrite) as staging:
            study = run_study(acquisitions, ref, StudyParameters(workers=workers), progress)
            outputs = write_study_outputs(staging, study)
        return outputs

    # ------------------------------------------------------------------ results -> nodes
    def loadResults(self, outputDir: str, radius_mm: float = CALIBRATION_RADIUS_MM) -> dict:
        """Tables and plots of a study folder (summary.csv, volumes.csv, acquisitions.csv)."""
        import pandas as pd

        folder = Path(outputDir)
        files = {name: folder / f"{name}.csv" for name in ("summary", "volumes", "acquisitions")}
        for name in ("summary", "volumes"):
            if not files[name].is_file():
                raise RadiologyAIError(f"{folder}: no {name}.csv; is it a PhantomQA study folder?")
        summary = pd.read_csv(files["summary"])
        volumes = pd.read_csv(files["volumes"])
        acquisitions = pd.read_csv(files["acquisitions"]) if files["acquisitions"].is_file() else None
        return self.resultsToNodes(summary, volumes, acquisitions, radius_mm)

    def resultsToNodes(self, summary: pd.DataFrame, volumes: pd.DataFrame, acquisitions: pd.DataFrame | None = None, radius_mm: float = CALIBRATION_RADIUS_MM) -> dict:
        nodes = {
            "summaryTable": mrml.dataframe_to_table_node(summary, "PhantomQA summary"),
            "volumesTable": mrml.dataframe_to_table_node(volumes, "PhantomQA volumes"),
        }
        if acquisitions is not None:
            nodes["acquisitionsTable"] = mrml.dataframe_to_table_node(acquisitions, "PhantomQA acquisitions")
        at_r = summary[np.isclose(summary["radius_mm"], radius_mm)]
        recons = [r for r in RECON_MODELS if r in set(summary["recon"])] + sorted(set(summary["recon"]) - set(RECON_MODELS))
        for key, frame, column, title, y_title in (
            ("iqr", at_r, "iqr_mean_hu", f"IQR of {radius_mm:g} mm vessels vs dose", "IQR (HU)"),
            ("mpv", at_r, "mpv_mean_hu", f"MPV of {radius_mm:g} mm vessels vs dose", "MPV (HU)"),
            ("volume", volumes, "volume_mean_ml", "Detected vessel volume vs dose", "volume (ml)"),
        ):
            wide = frame.pivot_table(index="ctdivol_mgy", columns="recon", values=column).reindex(columns=recons).reset_index()
            wide.columns = [str(c) for c in wide.columns]
            table = mrml.dataframe_to_table_node(wide.astype(float), f"PhantomQA {key} vs dose")
            nodes[f"{key}Table"] = table
            nodes[f"{key}Chart"] = mrml.plot_chart_node(table, "ctdivol_mgy", recons, title, "CTDIvol (mGy)", y_title, name=f"PhantomQA {key} chart")
        top = summary["ctdivol_mgy"].max()
        detection = summary[np.isclose(summary["ctdivol_mgy"], top)].pivot_table(index="radius_mm", columns="recon", values="detection_mean")
        detection = detection.reindex(columns=recons).reset_index()
        detection.columns = [str(c) for c in detection.columns]
        table = mrml.dataframe_to_table_node(detection.astype(float), "PhantomQA detection vs radius")
        nodes["detectionTable"] = table
        nodes["detectionChart"] = mrml.plot_chart_node(table, "radius_mm", recons, f"Detection rate vs design radius at {top:g} mGy", "design radius (mm)", "detection rate", name="PhantomQA detection chart")
        return nodes

    def loadAcquisitions(self, manifest: str) -> list:
        """Load the scans of a manifest as volume nodes named ``recon_<dose>mGy_rep<n>``."""
        from .acquisitions import read_manifest

        nodes = []
        for acq in read_manifest(manifest):
            image = sitk.ReadImage(acq.path)
            nodes.append(mrml.image_to_volume_node(image, acq.key))
        return nodes
