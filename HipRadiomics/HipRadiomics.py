import html
import pathlib
from typing import Annotated, Optional

import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer import vtkMRMLScalarVolumeNode

from HipRadiomicsLib.logic import HipRadiomicsLogic
from RadiologyAICommonLib.userinput import path_is_set


#
# HipRadiomics
#


class HipRadiomics(ScriptedLoadableModule):
    """Radiomics classifier (PyRadiomics -> Boruta -> XGBoost) for MRI of the femoral head."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("HipRadiomics")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "RadiologyAI")]
        self.parent.dependencies = ["RadiologyAICommon"]
        self.parent.contributors = ["RadiologyAI contributors"]
        self.parent.helpText = _("""
Radiomics classifier for two-class questions on MRI, by default avascular necrosis versus transient osteoporosis of
the hip (Klontzas et al.): PyRadiomics features of the femoral head, collinearity filter, Boruta feature selection and
XGBoost, validated on a held-out split with AUC and DeLong 95% confidence intervals, compared with readers.
<br><b>Predict</b>: choose the MRI volume, the femoral-head segment and a trained model folder.
<br><b>Train</b>: choose a cohort CSV (case_id, image, mask, label[, reader...]) and an output folder; \
training runs in a
separate process with progress and Cancel.
See the module's README for the method, parameters and limitations.
""")
        self.parent.acknowledgementText = _("""
Uses PyRadiomics (van Griethuysen et al., Cancer Research 2017), Boruta (Kursa and Rudnicki, J Stat Softw 2010),
XGBoost (Chen and Guestrin, KDD 2016) and scikit-learn. DeLong's test follows DeLong et al. (Biometrics 1988) with the
fast algorithm of Sun and Xu (IEEE SPL 2014). Part of the RadiologyAI extension.
""")


#
# HipRadiomicsParameterNode
#


@parameterNodeWrapper
class HipRadiomicsParameterNode:
    """
    inputVolume - the MRI volume.
    modelDirectory - folder written by 'radiologyai hip train' (model.json + pipeline.json).
    topFeatures - number of contributing features listed for a prediction.
    cohortCsv - cohort CSV for training.
    trainOutputDirectory - folder that receives the trained model.
    selector - feature selector (boruta or rfecv).
    testSize - held-out fraction.
    seed - seed of the split, Boruta and XGBoost.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    modelDirectory: pathlib.Path
    topFeatures: Annotated[int, WithinRange(1, 50)] = 10
    cohortCsv: pathlib.Path
    trainOutputDirectory: pathlib.Path
    selector: Annotated[str, Choice(["boruta", "rfecv"])] = "boruta"
    testSize: Annotated[float, WithinRange(0.1, 0.5)] = 0.3
    seed: Annotated[int, WithinRange(0, 1000000)] = 0


#
# HipRadiomicsWidget
#


class HipRadiomicsWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._runner = None
        self._pendingCommands = []

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/HipRadiomics.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = HipRadiomicsLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.segmentSelector.connect("currentSegmentChanged(QString)", self._checkCanApply)
        self.ui.segmentSelector.connect("currentNodeChanged(vtkMRMLNode*)", self._checkCanApply)
        self.ui.trainButton.connect("clicked(bool)", self.onTrainButton)
        self.ui.cancelTrainButton.connect("clicked(bool)", self.onCancelTrainButton)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(HipRadiomicsParameterNode(self.logic.getParameterNode()))
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode: Optional[HipRadiomicsParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        p = self._parameterNode
        segmentChosen = bool(self.ui.segmentSelector.currentNode() and self.ui.segmentSelector.currentSegmentID())
        if p and p.inputVolume and segmentChosen and path_is_set(p.modelDirectory):
            self.ui.applyButton.toolTip = _("Extract the segment's radiomics features and predict the class")
            self.ui.applyButton.enabled = True
        else:
            self.ui.applyButton.toolTip = _("Select the MRI volume, the femoral-head segment and a model folder")
            self.ui.applyButton.enabled = False
        training = self._runner is not None and self._runner.running
        canTrain = bool(p and path_is_set(p.cohortCsv) and path_is_set(p.trainOutputDirectory))
        self.ui.trainButton.enabled = canTrain and not training
        self.ui.cancelTrainButton.enabled = training

    def _ensureDependencies(self) -> None:
        from RadiologyAICommonLib.dependencies import ensure_module_requirements

        ensure_module_requirements(__file__, "HipRadiomics")

    def onApplyButton(self) -> None:
        """Predict the class of the selected segment with the chosen model."""
        with slicer.util.tryWithErrorDisplay(_("Failed to compute the prediction."), waitCursor=True):
            self._ensureDependencies()
            p = self._parameterNode
            result = self.logic.predict(
                p.inputVolume,
                self.ui.segmentSelector.currentNode(),
                self.ui.segmentSelector.currentSegmentID(),
                str(p.modelDirectory),
                p.topFeatures,
            )
            lines = [
                f"<b>{html.escape(result.className)}</b> &mdash; P({html.escape(result.classNames[1])}) = "
                f"{result.probability:.3f} (threshold {result.threshold:.2f})",
                "<br>Top contributing features (SHAP, log-odds):",
            ]
            for item in result.topFeatures:
                lines.append(
                    f"<br>&nbsp;&nbsp;{html.escape(item['feature'])}: {item['shap_log_odds']:+.3f} "
                    f"(towards {html.escape(str(item['towards']))})"
                )
            self.ui.resultLabel.text = "".join(lines)
            appLogic = slicer.app.applicationLogic()
            appLogic.GetSelectionNode().SetActiveTableID(result.contributionsTableNode.GetID())
            appLogic.PropagateTableSelection()
            slicer.modules.plots.logic().ShowChartInLayout(result.importanceChartNode)

    # ---- training panel (worker process)
    def onTrainButton(self) -> None:
        from RadiologyAICommonLib.slicerui import WorkerRunner

        with slicer.util.tryWithErrorDisplay(_("Failed to start training."), waitCursor=True):
            self._ensureDependencies()
            p = self._parameterNode
            self._pendingCommands = self.logic.trainingCommands(
                str(p.cohortCsv), str(p.trainOutputDirectory), selector=p.selector, testSize=p.testSize, seed=p.seed
            )
            if self._runner is None:
                self._runner = WorkerRunner(self.ui.trainProgressBar, self.ui.trainStatusLabel)
            self.ui.trainResultLabel.text = ""
            self._runNextCommand()

    def _runNextCommand(self) -> None:
        command = self._pendingCommands.pop(0)
        self._runner.start(command, self._onCommandFinished)
        self._checkCanApply()

    def _onCommandFinished(self, result) -> None:
        if result.ok and self._pendingCommands:
            self._runNextCommand()
            return
        self._pendingCommands = []
        self._checkCanApply()
        if not result.ok:
            return
        metrics = self.logic.loadMetrics(str(self._parameterNode.trainOutputDirectory))
        text = (
            f"AUC {metrics.auc:.3f} (95% CI {metrics.auc_ci95[0]:.3f}-{metrics.auc_ci95[1]:.3f}, DeLong) on "
            f"{metrics.n_test} test cases; {metrics.n_selected} features selected."
        )
        for reader in metrics.readers:
            if reader.auc is not None:
                text += f"<br>{html.escape(reader.name)}: AUC {reader.auc:.3f}, paired DeLong p = {reader.p_value:.3f}"
        self.ui.trainResultLabel.text = text
        self._parameterNode.modelDirectory = self._parameterNode.trainOutputDirectory

    def onCancelTrainButton(self) -> None:
        self._pendingCommands = []
        if self._runner is not None:
            self._runner.cancel()
        self._checkCanApply()


#
# HipRadiomicsTest
#


class HipRadiomicsTest(ScriptedLoadableModuleTest):
    """Trains a small model on a synthetic cohort, then predicts a synthetic case loaded into the scene."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_HipRadiomics1()

    def test_HipRadiomics1(self):
        import tempfile

        from RadiologyAICommonLib.dependencies import ensure_module_requirements

        self.delayDisplay("Starting the test")
        ensure_module_requirements(__file__, "HipRadiomics")  # as Apply does: the requirements before their imports
        from RadiologyAICommonLib import mrml
        from RadiologyAICommonLib.cli import main as cli_main
        from HipRadiomicsLib.synthetic import make_case

        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            self.assertEqual(
                cli_main(
                    [
                        "--progress",
                        "none",
                        "hip",
                        "synth",
                        "--output-dir",
                        str(tmp / "c"),
                        "--cases",
                        "24",
                        "--size",
                        "32",
                    ]
                ),
                0,
            )
            self.assertEqual(
                cli_main(
                    [
                        "--progress",
                        "none",
                        "hip",
                        "extract",
                        str(tmp / "c" / "cohort.csv"),
                        "--output",
                        str(tmp / "f.csv"),
                        "--workers",
                        "1",
                    ]
                ),
                0,
            )
            self.assertEqual(
                cli_main(
                    [
                        "--progress",
                        "none",
                        "hip",
                        "train",
                        str(tmp / "f.csv"),
                        "--output-dir",
                        str(tmp / "m"),
                        "--boruta-max-iter",
                        "10",
                    ]
                ),
                0,
            )
            case = make_case(1, seed=123)
            volume = mrml.image_to_volume_node(case.image, "hip MRI")
            segmentation = mrml.labelmap_to_segmentation_node(
                case.mask, {1: ("femoral head", (0.9, 0.6, 0.2))}, "hip seg"
            )
            result = HipRadiomicsLogic().predict(volume, segmentation, "femoral head", str(tmp / "m"))
            self.assertIn(result.className, result.classNames)
            self.assertTrue(0.0 <= result.probability <= 1.0)
            self.assertGreater(result.featuresTableNode.GetNumberOfRows(), 50)
        self.delayDisplay("Test passed")
