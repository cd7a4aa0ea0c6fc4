"""VesselQuantLogic: the MRML adapter of the VesselQuant pipeline.

CT volume node (+ optional lung segment) -> :func:`run_vessel_quant` -> a segmentation node
with "Vessels" and "Lungs" (and "Nodule-like" when blobs were found), a radius volume node with
a colour map, a table node of the per-radius statistics and a plot chart (volume and IQR against
radius). Works in Slicer and on the slicer-core wheel (headless, tests); imports no Qt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk
import slicer

from RadiologyAICommonLib import mrml
from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import image_from_array
from RadiologyAICommonLib.logicbase import LogicBase
from RadiologyAICommonLib.progress import ProgressCallback
from RadiologyAICommonLib.userinput import parse_numbers

from .parameters import VesselQuantParameters

if TYPE_CHECKING:  # the pipeline needs the module's requirements: imported on use, after ensure_requirements
    from .pipeline import VesselQuantResult

VESSEL_COLOR = (0.85, 0.2, 0.2)
LUNG_COLOR = (0.55, 0.75, 0.95)
NODULE_COLOR = (0.95, 0.8, 0.2)
RADIUS_COLOR_NODE_ID = "vtkMRMLColorTableNodeRainbow"


@dataclass
class VesselQuantNodes:
    """The nodes one run creates (or fills)."""

    segmentation: object  # vtkMRMLSegmentationNode with segments "Vessels", "Lungs" and maybe "Nodule-like"
    radiusVolume: object  # vtkMRMLScalarVolumeNode, mm, 0 outside vessels
    table: object  # vtkMRMLTableNode: radius_mm, voxel_count, volume_ml, median_hu, iqr_hu
    chart: object  # vtkMRMLPlotChartNode: volume and IQR against radius
    summaryTable: object  # vtkMRMLTableNode: one row per summary measure
    result: VesselQuantResult


class VesselQuantLogic(LogicBase):
    """Run VesselQuant on MRML nodes. Usable without the widget (headless Slicer, scripts, tests)."""

    def __init__(self) -> None:
        LogicBase.__init__(self)

    def process(
        self,
        ctNode,
        lungSegmentationNode=None,
        lungSegment: str | None = None,
        parameters: VesselQuantParameters | None = None,
        progress: ProgressCallback | None = None,
        name: str | None = None,
    ) -> VesselQuantNodes:
        """Segment and quantify the lung vessels of ``ctNode``; return the new nodes."""
        from .pipeline import run_vessel_quant

        if ctNode is None:
            raise RadiologyAIError("select a CT volume")
        ct = mrml.volume_node_to_image(ctNode)
        lung = None
        if lungSegmentationNode is not None:
            segment = lungSegment or _first_segment_id(lungSegmentationNode)
            lung = mrml.segment_to_image(lungSegmentationNode, segment, ctNode)
        result = run_vessel_quant(ct, lung, parameters, progress)
        return self.loadResult(result, ctNode, name)

    @staticmethod
    def parseDesignRadii(text: str | None) -> tuple[float, ...] | None:
        """Design radii typed by the user (mm, commas or spaces: ``"0.5, 1 2"``); blank -> None (bins of the data)."""
        if not (text or "").strip():
            return None
        return tuple(parse_numbers(text, "design radii (mm)"))

    # -- worker path -------------------------------------------------------------------------
    def processArguments(
        self,
        ctNode,
        lungSegmentationNode,
        workDir,
        parameters: VesselQuantParameters | None = None,
        lungSegment: str | None = None,
    ) -> list[str]:
        """Write the CT, the lung segment (if any) and the parameters into ``workDir``; the worker's arguments.

        The worker writes its results into :func:`~RadiologyAICommonLib.workdir.output_dir` of ``workDir``;
        :meth:`loadOutput` turns them into nodes.
        """
        from RadiologyAICommonLib.atomic import write_json
        from RadiologyAICommonLib.imageio import write_image
        from RadiologyAICommonLib.workdir import output_dir

        if ctNode is None:
            raise RadiologyAIError("select a CT volume")
        workDir = Path(workDir)
        workDir.mkdir(parents=True, exist_ok=True)
        write_image(mrml.volume_node_to_image(ctNode), workDir / "ct.nrrd")
        write_json(workDir / "parameters.json", (parameters or VesselQuantParameters()).to_dict())
        args = [
            "vessels",
            str(workDir / "ct.nrrd"),
            "--output-dir",
            str(output_dir(workDir)),
            "--parameters",
            str(workDir / "parameters.json"),
        ]
        if lungSegmentationNode is not None:
            segment = lungSegment or _first_segment_id(lungSegmentationNode)
            write_image(mrml.segment_to_image(lungSegmentationNode, segment, ctNode), workDir / "lung.nrrd")
            args += ["--lung-mask", str(workDir / "lung.nrrd")]
        return args

    def loadOutput(self, outputDir, ctNode, name: str | None = None) -> VesselQuantNodes:
        """Nodes from the folder a ``radiologyai vessels`` run wrote (see :mod:`.resultio`)."""
        from .resultio import read_result

        return self.loadResult(read_result(outputDir), ctNode, name)

    def loadResult(self, result: VesselQuantResult, ctNode, name: str | None = None) -> VesselQuantNodes:
        """Turn a :class:`VesselQuantResult` (computed here or by the worker process) into nodes."""
        base = name or f"{ctNode.GetName()} vessels"
        label = sitk.GetArrayViewFromImage(result.lung_mask).astype(np.uint8)  # 1 = lung
        label = np.where(sitk.GetArrayViewFromImage(result.vessel_label) > 0, 2, label).astype(np.uint8)
        segments = {2: ("Vessels", VESSEL_COLOR), 1: ("Lungs", LUNG_COLOR)}
        if result.nodule_label is not None and sitk.GetArrayViewFromImage(result.nodule_label).any():
            label = np.where(sitk.GetArrayViewFromImage(result.nodule_label) > 0, 3, label).astype(np.uint8)
            segments[3] = ("Nodule-like", NODULE_COLOR)
        label_image = image_from_array(label, result.lung_mask)
        segmentation = mrml.labelmap_to_segmentation_node(label_image, segments, f"{base} segmentation")
        # "Lungs" holds the whole lung, vessels included (labels are exclusive, segments need not be)
        _add_vessels_to_lungs(segmentation, result, ctNode)
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(ctNode)

        radius_volume = mrml.image_to_volume_node(result.vessel_radius, f"{base} radius (mm)")
        radius_volume.CreateDefaultDisplayNodes()
        display = radius_volume.GetDisplayNode()
        if display is not None:
            display.SetAndObserveColorNodeID(RADIUS_COLOR_NODE_ID)
            display.AutoWindowLevelOff()
            top = float(max(result.per_radius["radius_mm"].max(), 1.0)) if len(result.per_radius) else 5.0
            display.SetWindowLevelMinMax(0.0, top)
            display.SetLowerThreshold(1e-3)
            display.SetApplyThreshold(True)

        table = mrml.dataframe_to_table_node(result.per_radius, f"{base} per radius")
        chart = mrml.plot_chart_node(
            table,
            "radius_mm",
            ["volume_ml", "iqr_hu"],
            title=f"{base}: volume and HU IQR per radius",
            x_title="radius (mm)",
            y_title="volume (ml) / IQR (HU)",
        )
        summary_table = mrml.dataframe_to_table_node(_summary_frame(result.summary), f"{base} summary")
        return VesselQuantNodes(segmentation, radius_volume, table, chart, summary_table, result)


def _first_segment_id(segmentation_node) -> str:
    ids = list(segmentation_node.GetSegmentation().GetSegmentIDs())
    if not ids:
        raise RadiologyAIError(f"segmentation '{segmentation_node.GetName()}' has no segment to use as lung mask")
    return ids[0]


def _add_vessels_to_lungs(segmentation, result: VesselQuantResult, ct_node) -> None:
    """Replace the "Lungs" segment by the full lung mask (the label map had vessels carved out)."""
    seg = segmentation.GetSegmentation()
    lungs_id = seg.GetSegmentIdBySegmentName("Lungs")
    if not lungs_id:
        return
    lung = sitk.GetArrayViewFromImage(result.lung_mask).astype(np.uint8)
    slicer.util.updateSegmentBinaryLabelmapFromArray(lung, segmentation, lungs_id, ct_node)


def _summary_frame(summary: dict):
    import pandas as pd

    rows = []
    for key, value in summary.items():
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            rows.append({"measure": key, "value": float(value)})
    return pd.DataFrame(rows, columns=["measure", "value"])
