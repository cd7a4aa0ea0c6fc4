import shutil
import tempfile
from pathlib import Path
from typing import Optional

import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode

from SalivarySegLib.logic import SalivarySegLogic
from RadiologyAICommonLib.userinput import path_is_set
from RadiologyAICommonLib.workdir import make_work_dir, output_dir, remove_work_dir


#
# SalivarySeg
#


class SalivarySeg(ScriptedLoadableModule):
    """Salivary-gland tumour segmentation (V-Net) and benign/malignant classification (ResNet-50) on CT."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SalivarySeg")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "RadiologyAI")]
        self.parent.dependencies = ["RadiologyAICommon"]
        self.parent.contributors = ["RadiologyAI contributors"]
        self.parent.helpText = _("""
Segments a salivary-gland tumour on a non-contrast head-and-neck CT with a V-Net and classifies it as
benign or malignant with a ResNet-50 on 2D slices through the lesion, following Ugga, Cuocolo et al.,
IEEE JBHI 2021 (doi:10.1109/JBHI.2021.3120178). Choose the CT and a model folder trained with
<code>radiologyai salivary train</code>, then Apply. The result is a "Tumour" segment on the CT's grid
and the class with its probability. Research use only.
See the <a href="https://github.com/radiologyai/SlicerRadiologyAI/blob/main/SalivarySeg/README.md">module page</a>.
""")
        self.parent.acknowledgementText = _("""
Method: Ugga L, Perillo T, Cuocolo R, et al., IEEE Journal of Biomedical and Health Informatics 2021.
Built on MONAI and PyTorch (PyTorch extension).
""")


#
# SalivarySegParameterNode
#


@parameterNodeWrapper
class SalivarySegParameterNode:
    """
    inputVolume - the CT (HU) to segment.
    modelFolder - model folder written by 'radiologyai salivary train'.
    outputSegmentation - segmentation that receives the "Tumour" segment (created when empty).
    """

    inputVolume: vtkMRMLScalarVolumeNode
    modelFolder: Path
    outputSegmentation: vtkMRMLSegmentationNode


#
# SalivarySegWidget
#


class SalivarySegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._runner = None
        self._workDir = None
        self._runVolume = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SalivarySeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SalivarySegLogic()

        from RadiologyAICommonLib.slicerui import WorkerRunner

        self._runner = WorkerRunner(self.ui.progressBar, self.ui.statusLabel)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._runner is not None and self._runner.running:
            self._runner.cancel()
        self._removeWorkDir()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        if self._runner is not None and self._runner.running:
            self._runner.cancel()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(SalivarySegParameterNode(self.logic.getParameterNode()))
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode: Optional[SalivarySegParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        running = self._runner is not None and self._runner.running
        folder = self._parameterNode.modelFolder if self._parameterNode else None
        if running:
            self.ui.applyButton.toolTip = _("A prediction is running")
            self.ui.applyButton.enabled = False
        elif self._parameterNode and self._parameterNode.inputVolume and path_is_set(folder):
            self.ui.applyButton.toolTip = _("Segment the tumour and classify it")
            self.ui.applyButton.enabled = True
        else:
            self.ui.applyButton.toolTip = _("Select a CT volume and a model folder")
            self.ui.applyButton.enabled = False
        self.ui.cancelButton.enabled = running

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start the prediction."), waitCursor=True):
            from RadiologyAICommonLib.dependencies import ensure_module_requirements, ensure_torch

            ensure_torch()
            ensure_module_requirements(__file__, "SalivarySeg")
            self.logic.checkModelFolder(str(self._parameterNode.modelFolder))
            self._clearResults()
            self._removeWorkDir()
            self._workDir = make_work_dir("SalivarySeg")
            self._runVolume = self._parameterNode.inputVolume
            args = self.logic.predictionArguments(self._runVolume, str(self._parameterNode.modelFolder), self._workDir)
            self._runner.start(args, self.onPredictionFinished)
            self._checkCanApply()

    def onCancelButton(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        self._checkCanApply()

    def onPredictionFinished(self, result) -> None:
        try:
            if result.ok:
                with slicer.util.tryWithErrorDisplay(_("Failed to load the prediction."), waitCursor=True):
                    prediction = self.logic.loadPrediction(
                        output_dir(self._workDir), self._runVolume, self._parameterNode.outputSegmentation
                    )
                    self._parameterNode.outputSegmentation = prediction.segmentationNode
                    self._showResults(prediction)
        finally:
            self._removeWorkDir()
            self._checkCanApply()

    def _showResults(self, prediction) -> None:
        if prediction.className is None:
            self.ui.classLabel.text = _("no tumour found")
            self.ui.probabilityLabel.text = "-"
        else:
            self.ui.classLabel.text = prediction.className
            self.ui.probabilityLabel.text = f"{prediction.probability:.2f}"
        self.ui.volumeLabel.text = f"{prediction.lesionVolumeMl:.1f} ml"
        self.ui.statusLabel.text = prediction.summary

    def _clearResults(self) -> None:
        for label in (self.ui.classLabel, self.ui.probabilityLabel, self.ui.volumeLabel):
            label.text = "-"

    def _removeWorkDir(self) -> None:
        remove_work_dir(self._workDir)
        self._workDir = None


#
# SalivarySegTest
#


class SalivarySegTest(ScriptedLoadableModuleTest):
    """Trains a tiny model on two synthetic CTs and runs the logic in-process (a smoke test, not an accuracy test)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SalivarySeg1()

    def test_SalivarySeg1(self):
        self.delayDisplay("Starting the test")
        from RadiologyAICommonLib.dependencies import ensure_module_requirements

        ensure_module_requirements(__file__, "SalivarySeg")  # as Apply does: the requirements before their imports
        from RadiologyAICommonLib.mrml import image_to_volume_node
        from SalivarySegLib.synthetic import SyntheticParameters, make_case, make_dataset
        from SalivarySegLib.training import TrainingParameters, train

        workDir = Path(tempfile.mkdtemp(prefix="SalivarySegTest-"))
        try:
            params = SyntheticParameters(fov_mm=(160.0, 160.0, 96.0), spacing_mm=(2.0, 2.0, 2.0))
            make_dataset(workDir / "data", 6, seed=3, params=params)
            train(
                workDir / "data",
                workDir / "model",
                TrainingParameters(
                    epochs=1,
                    classifier_epochs=1,
                    patch_size=(32, 32, 32),
                    samples_per_case=1,
                    save_validation_masks=False,
                ),
            )
            case = make_case(99, seed=3, params=params)
            volume = image_to_volume_node(case.image, "TestCT")
            result = SalivarySegLogic().process(volume, str(workDir / "model"), inProcess=True)
            segmentation = result.segmentationNode.GetSegmentation()
            self.assertTrue(segmentation.GetSegmentIdBySegmentName("Tumour"))
            self.assertIn(result.className, (None, "benign", "malignant"))
        finally:
            shutil.rmtree(workDir, ignore_errors=True)
        self.delayDisplay("Test passed")
