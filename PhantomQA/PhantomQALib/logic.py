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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk
import slicer

from RadiologyAICommonLib import mrml
from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.logicbase import LogicBase
from RadiologyAICommonLib.userinput import path_is_set

if TYPE_CHECKING:  # pandas is a requirement: imported on use, after ensure_requirements
    import pandas as pd

from .published import CALIBRATION_RADIUS_MM
from .recon import RECON_MODELS, normalise_recon, recon_from_dicom

_NAME_PATTERN = re.compile(
    r"(?P<recon>fbp|ir|dlr)[_\- ]+(?P<dose>\d+(?:\.\d+)?)\s*mGy(?:[_\- ]+rep(?P<rep>\d+))?", re.I
)


@dataclass
class PhantomQANodes:
    """The nodes of one study's results (:meth:`PhantomQALogic.loadResults`)."""

    summaryTable: object  # vtkMRMLTableNode: one row per recon x dose x design radius (summary.csv)
    volumesTable: object  # vtkMRMLTableNode: detected volume per recon x dose (volumes.csv)
    acquisitionsTable: object | None  # vtkMRMLTableNode: one row per scan (acquisitions.csv), None when absent
    iqrTable: object  # vtkMRMLTableNode: IQR at the calibration radius, CTDIvol x recon
    iqrChart: object  # vtkMRMLPlotChartNode
    mpvTable: object  # vtkMRMLTableNode: MPV at the calibration radius, CTDIvol x recon
    mpvChart: object
    volumeTable: object  # vtkMRMLTableNode: detected volume, CTDIvol x recon
    volumeChart: object
    detectionTable: object  # vtkMRMLTableNode: detection rate at the top dose, design radius x recon
    detectionChart: object


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
            rows.append(
                {"path": name, "recon": acq.recon, "ctdivol_mgy": acq.ctdivol_mgy, "repetition": acq.repetition}
            )
        manifest = folder / "manifest.csv"
        write_csv(manifest, pd.DataFrame(rows))
        return manifest

    def runStudy(
        self,
        manifest: str,
        outputDir: str,
        design: str | None = None,
        workers: int | None = 1,
        progress=None,
        overwrite: bool = False,
    ) -> dict:
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

    # ------------------------------------------------------------------ worker path
    @staticmethod
    def studyArguments(source: str, outputDir: str, workers: int = 1, design: str | None = None) -> list[str]:
        """The worker's arguments that run the study of ``source`` (manifest CSV or DICOM folder) into ``outputDir``.

        The folder the user chose is reused run after run: only RadiologyAI's own files in it are replaced.
        """
        args = [
            "phantom",
            "study",
            str(source),
            "--output-dir",
            str(outputDir),
            "--workers",
            str(int(workers)),
            "--overwrite",
        ]
        if path_is_set(design):
            args += ["--design", str(design)]
        return args

    @staticmethod
    def demoArguments(outputDir: str, workers: int = 1) -> list[str]:
        """The worker's arguments that simulate and analyse the published study into ``outputDir``."""
        return ["phantom", "demo", "--output-dir", str(outputDir), "--workers", str(int(workers)), "--overwrite"]

    def sceneStudyArguments(
        self, entries: list, workDir, outputDir: str, workers: int = 1, design: str | None = None
    ) -> list[str]:
        """Export the scene volumes of ``entries`` (see :meth:`writeManifest`) into ``workDir``; the
        study's arguments."""
        return self.studyArguments(str(self.writeManifest(entries, workDir)), outputDir, workers, design)

    # ------------------------------------------------------------------ results -> nodes
    def loadResults(self, outputDir: str, radiusMm: float = CALIBRATION_RADIUS_MM) -> PhantomQANodes:
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
        return self.resultsToNodes(summary, volumes, acquisitions, radiusMm)

    def resultsToNodes(
        self,
        summary: pd.DataFrame,
        volumes: pd.DataFrame,
        acquisitions: pd.DataFrame | None = None,
        radiusMm: float = CALIBRATION_RADIUS_MM,
    ) -> PhantomQANodes:
        recons = [r for r in RECON_MODELS if r in set(summary["recon"])] + sorted(
            set(summary["recon"]) - set(RECON_MODELS)
        )
        at_r = summary[np.isclose(summary["radius_mm"], radiusMm)]
        vs_dose = {}
        for key, frame, column, title, y_title in (
            ("iqr", at_r, "iqr_mean_hu", f"IQR of {radiusMm:g} mm vessels vs dose", "IQR (HU)"),
            ("mpv", at_r, "mpv_mean_hu", f"MPV of {radiusMm:g} mm vessels vs dose", "MPV (HU)"),
            ("volume", volumes, "volume_mean_ml", "Detected vessel volume vs dose", "volume (ml)"),
        ):
            table = _wide_table(frame, "ctdivol_mgy", column, recons, f"PhantomQA {key} vs dose")
            chart = mrml.plot_chart_node(
                table, "ctdivol_mgy", recons, title, "CTDIvol (mGy)", y_title, name=f"PhantomQA {key} chart"
            )
            vs_dose[key] = (table, chart)
        top = summary["ctdivol_mgy"].max()
        detection = _wide_table(
            summary[np.isclose(summary["ctdivol_mgy"], top)],
            "radius_mm",
            "detection_mean",
            recons,
            "PhantomQA detection vs radius",
        )
        detection_chart = mrml.plot_chart_node(
            detection,
            "radius_mm",
            recons,
            f"Detection rate vs design radius at {top:g} mGy",
            "design radius (mm)",
            "detection rate",
            name="PhantomQA detection chart",
        )
        return PhantomQANodes(
            summaryTable=mrml.dataframe_to_table_node(summary, "PhantomQA summary"),
            volumesTable=mrml.dataframe_to_table_node(volumes, "PhantomQA volumes"),
            acquisitionsTable=(
                mrml.dataframe_to_table_node(acquisitions, "PhantomQA acquisitions")
                if acquisitions is not None
                else None
            ),
            iqrTable=vs_dose["iqr"][0],
            iqrChart=vs_dose["iqr"][1],
            mpvTable=vs_dose["mpv"][0],
            mpvChart=vs_dose["mpv"][1],
            volumeTable=vs_dose["volume"][0],
            volumeChart=vs_dose["volume"][1],
            detectionTable=detection,
            detectionChart=detection_chart,
        )

    def loadAcquisitions(self, manifest: str) -> list:
        """Load the scans of a manifest as volume nodes named ``recon_<dose>mGy_rep<n>``."""
        from .acquisitions import read_manifest

        nodes = []
        for acq in read_manifest(manifest):
            image = sitk.ReadImage(acq.path)
            nodes.append(mrml.image_to_volume_node(image, acq.key))
        return nodes


def _wide_table(frame, index: str, column: str, recons: list, name: str):
    """A table node with one row per ``index`` value and one ``column`` per reconstruction (in ``recons`` order)."""
    wide = frame.pivot_table(index=index, columns="recon", values=column).reindex(columns=recons).reset_index()
    wide.columns = [str(c) for c in wide.columns]
    return mrml.dataframe_to_table_node(wide.astype(float), name)
