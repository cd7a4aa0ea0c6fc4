"""SalivarySegLogic: CT volume node + model folder -> "Tumour" segmentation node + class and probability.

Two ways to run the same core (:func:`SalivarySegLib.inference.predict`):

* through the CLI worker process (what the widget does: the GUI stays responsive, Cancel kills
  the process): :meth:`SalivarySegLogic.startPrediction` writes the volume to a temporary NRRD
  and returns a :class:`~RadiologyAICommonLib.worker.WorkerProcess` (or the CLI arguments for a
  ``WorkerRunner``); :meth:`SalivarySegLogic.loadPrediction` turns its output into nodes;
* in-process (tests, headless scripts): :meth:`SalivarySegLogic.process` with ``inProcess=True``.

Imports slicer (MRML), numpy, SimpleITK and the cores only; never Qt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import SimpleITK as sitk


from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.logicbase import LogicBase
from RadiologyAICommonLib.workdir import make_work_dir, output_dir, remove_work_dir

TUMOUR_SEGMENT = "Tumour"
TUMOUR_COLOR = (0.9, 0.2, 0.2)


@dataclass
class SalivarySegResult:
    segmentationNode: object
    className: str | None
    probability: float | None
    probabilities: dict = field(default_factory=dict)
    lesionVolumeMl: float = 0.0

    @property
    def summary(self) -> str:
        if self.className is None:
            return "No tumour found"
        return f"{self.className} (probability {self.probability:.2f}), tumour volume {self.lesionVolumeMl:.1f} ml"


class SalivarySegLogic(LogicBase):
    """MRML adapter of SalivarySegLib (no Qt; works under the slicer-core wheel)."""

    def __init__(self) -> None:
        LogicBase.__init__(self)

    # -- model -------------------------------------------------------------------------------
    @staticmethod
    def checkModelFolder(modelFolder) -> dict:
        """The model's config (format/version checked, weights not loaded); raises RadiologyAIError."""
        from .model_package import read_config

        if not modelFolder:
            raise RadiologyAIError("choose a model folder (written by 'radiologyai salivary train')")
        return read_config(modelFolder)

    # -- worker path -------------------------------------------------------------------------
    def predictionArguments(self, inputVolumeNode, modelFolder, workDir, device: str = "cpu") -> list[str]:
        """Write the input volume to ``workDir`` and return the CLI arguments that predict it."""
        from RadiologyAICommonLib.imageio import write_image
        from RadiologyAICommonLib.mrml import volume_node_to_image

        self.checkModelFolder(modelFolder)
        image = volume_node_to_image(inputVolumeNode)
        workDir = Path(workDir)
        workDir.mkdir(parents=True, exist_ok=True)
        write_image(image, workDir / "input.nrrd")
        return [
            "salivary",
            "predict",
            str(workDir / "input.nrrd"),
            "--model",
            str(modelFolder),
            "--output-dir",
            str(output_dir(workDir)),
            "--device",
            device,
        ]

    def startPrediction(self, inputVolumeNode, modelFolder, onProgress=None, device: str = "cpu"):
        """Start the worker process; returns ``(worker, workDir)``. Poll ``worker.poll()``; cancel with
        ``.cancel()``."""
        from RadiologyAICommonLib.worker import WorkerProcess

        workDir = make_work_dir("SalivarySeg")
        try:
            args = self.predictionArguments(inputVolumeNode, modelFolder, workDir, device)
        except Exception:
            remove_work_dir(workDir)
            raise
        return WorkerProcess(args, on_progress=onProgress).start(), workDir

    def loadPrediction(self, outputDir, inputVolumeNode, segmentationNode=None) -> SalivarySegResult:
        """Nodes from a ``predict`` output folder (tumour_label.nrrd + prediction.json)."""
        outputDir = Path(outputDir)
        label_path, json_path = outputDir / "tumour_label.nrrd", outputDir / "prediction.json"
        if not label_path.is_file() or not json_path.is_file():
            raise RadiologyAIError(f"{outputDir}: the prediction did not produce its results")
        prediction = json.loads(json_path.read_text(encoding="utf-8"))
        return self._toNodes(sitk.ReadImage(str(label_path)), prediction, inputVolumeNode, segmentationNode)

    # -- in-process path ---------------------------------------------------------------------
    def process(
        self,
        inputVolumeNode,
        modelFolder,
        segmentationNode=None,
        inProcess: bool = True,
        device: str = "cpu",
        progress=None,
    ) -> SalivarySegResult:
        """Segment and classify ``inputVolumeNode``; blocking. ``inProcess=False`` runs the CLI worker and waits."""
        if inputVolumeNode is None:
            raise RadiologyAIError("select an input CT volume")
        if inProcess:
            from RadiologyAICommonLib.mrml import volume_node_to_image

            from .inference import predict
            from .model_package import load_model_package
            from .runtime import resolve_device

            device = resolve_device(device)
            package = load_model_package(modelFolder, device=device)
            image = volume_node_to_image(inputVolumeNode)
            result = predict(image, package, device, progress=progress, what=f"volume '{inputVolumeNode.GetName()}'")
            return self._toNodes(result.label, result.to_json(), inputVolumeNode, segmentationNode)
        worker, workDir = self.startPrediction(inputVolumeNode, modelFolder, progress, device)
        try:
            outcome = worker.wait()
            if not outcome.ok:
                raise RadiologyAIError(
                    outcome.error or "\n".join(outcome.log[-5:]) or f"exit code {outcome.returncode}"
                )
            return self.loadPrediction(output_dir(workDir), inputVolumeNode, segmentationNode)
        finally:
            remove_work_dir(workDir)

    # -- nodes -------------------------------------------------------------------------------
    def _toNodes(self, label: sitk.Image, prediction: dict, inputVolumeNode, segmentationNode) -> SalivarySegResult:
        from RadiologyAICommonLib.mrml import labelmap_to_segmentation_node

        name = f"{inputVolumeNode.GetName()} tumour"
        node = labelmap_to_segmentation_node(label, {1: (TUMOUR_SEGMENT, TUMOUR_COLOR)}, name, node=segmentationNode)
        node.SetReferenceImageGeometryParameterFromVolumeNode(inputVolumeNode)
        node.SetNodeReferenceID("SalivarySegInputVolume", inputVolumeNode.GetID())
        node.SetAttribute("SalivarySeg.class", str(prediction.get("class")))
        node.SetAttribute("SalivarySeg.probability", str(prediction.get("probability")))
        return SalivarySegResult(
            node,
            prediction.get("class"),
            prediction.get("probability"),
            dict(prediction.get("probabilities") or {}),
            float(prediction.get("lesion_volume_ml") or 0.0),
        )


__all__ = ["SalivarySegLogic", "SalivarySegResult", "TUMOUR_SEGMENT"]
