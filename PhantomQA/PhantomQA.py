import os
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import parameterNodeWrapper, WithinRange

from PhantomQALib.logic import PhantomQALogic
from RadiologyAICommonLib.userinput import path_is_set


#
# PhantomQA
#


class PhantomQA(ScriptedLoadableModule):
    """CT dose x reconstruction study on a lung-vessel phantom."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("PhantomQA")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "RadiologyAI")]
        self.parent.dependencies = ["RadiologyAICommon"]
        self.parent.contributors = ["RadiologyAI contributors"]
        self.parent.helpText = _("""
Runs the dose x reconstruction study of a lung-vessel phantom: each acquisition (a DICOM folder, a manifest
CSV, or volumes loaded in the scene mapped to reconstruction and CTDIvol) goes through VesselQuant, and the
median HU (MPV), IQR, detected volume, detection rate and radius error per design radius are reported as
mean &plusmn; SD over repetitions. 'Run demo' simulates the published study (5 doses x 3 reconstructions x 4
repetitions). See the module's README for the method and its calibration.
""")
        self.parent.acknowledgementText = _("""
Implements the phantom study design of Hernandez-Giron et al. (3D-printed lung-vessel phantom, CTDIvol
0.2-4.0 mGy, FBP / iterative / deep-learning reconstruction) on top of the VesselQuant module.
""")


#
# PhantomQAParameterNode
#


@parameterNodeWrapper
class PhantomQAParameterNode:
    """
    sourcePath - manifest CSV or DICOM folder of the study (ignored when useSceneVolumes is set).
    useSceneVolumes - analyse the volumes listed in the table instead.
    designPath - design folder / design.json / surface model; empty = design beside the manifest or
        the built-in phantom.
    outputDir - where the results go.
    workers - worker processes.
    """

    sourcePath: Path
    useSceneVolumes: bool = False
    designPath: Path
    outputDir: Path
    workers: Annotated[int, WithinRange(1, 64)] = 2


#
# PhantomQAWidget
#


class PhantomQAWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    RECON_CHOICES = ["fbp", "ir", "dlr"]

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._runner = None
        self._lastOutputDir = None
        self._workDir = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/PhantomQA.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = PhantomQALogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        from RadiologyAICommonLib.slicerui import WorkerRunner

        self._runner = WorkerRunner(self.ui.progressBar, self.ui.statusLabel)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.demoButton.connect("clicked(bool)", self.onDemoButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.refreshVolumesButton.connect("clicked(bool)", self.onRefreshVolumes)
        self.ui.openReportButton.connect("clicked(bool)", self.onOpenReport)
        self.ui.loadResultsButton.connect("clicked(bool)", self.onLoadResults)
        self.ui.cancelButton.enabled = False
        self.ui.openReportButton.enabled = False

        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._runner is not None and self._runner.running:
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
        self.setParameterNode(PhantomQAParameterNode(self.logic.getParameterNode()))
        if not path_is_set(self._parameterNode.outputDir):
            self._parameterNode.outputDir = Path(tempfile.gettempdir()) / "PhantomQA"

    def setParameterNode(self, inputParameterNode: Optional[PhantomQAParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        busy = self._runner is not None and self._runner.running
        p = self._parameterNode
        hasSource = p is not None and (
            p.useSceneVolumes
            and self.ui.volumesTable.rowCount > 0
            or (path_is_set(p.sourcePath) and os.path.exists(p.sourcePath))
        )
        if hasSource and not busy:
            self.ui.applyButton.toolTip = _("Run the study")
            self.ui.applyButton.enabled = True
        else:
            self.ui.applyButton.toolTip = _("Select a manifest CSV or DICOM folder, or list scene volumes")
            self.ui.applyButton.enabled = False
        self.ui.demoButton.enabled = not busy
        self.ui.cancelButton.enabled = busy

    # -- scene volumes ------------------------------------------------------------
    def onRefreshVolumes(self) -> None:
        """List the scalar volumes of the scene with the logic's recon / dose guesses (editable)."""
        import qt

        nodes = slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
        nodes = [n for n in nodes if not n.IsA("vtkMRMLLabelMapVolumeNode")]
        table = self.ui.volumesTable
        table.setRowCount(len(nodes))
        counters = {}
        for row, node in enumerate(nodes):
            guess = self.logic.guessAcquisition(node)
            recon = guess["recon"] or "fbp"
            dose = guess["ctdivol_mgy"] or 1.0
            counters[(recon, dose)] = counters.get((recon, dose), 0) + 1
            repetition = guess["repetition"] or counters[(recon, dose)]
            item = qt.QTableWidgetItem(node.GetName())
            item.setData(qt.Qt.UserRole, node.GetID())
            table.setItem(row, 0, item)
            table.setItem(row, 1, qt.QTableWidgetItem(recon))
            table.setItem(row, 2, qt.QTableWidgetItem(f"{dose:g}"))
            table.setItem(row, 3, qt.QTableWidgetItem(str(repetition)))
        self._checkCanApply()

    def _sceneEntries(self):
        import qt

        table = self.ui.volumesTable
        entries = []
        for row in range(table.rowCount):
            node = slicer.mrmlScene.GetNodeByID(table.item(row, 0).data(qt.Qt.UserRole))
            entries.append((node, table.item(row, 1).text(), table.item(row, 2).text(), table.item(row, 3).text()))
        return entries

    # -- running --------------------------------------------------------------------
    def _start(self, args, workDir=None) -> None:
        self._lastOutputDir = str(self._parameterNode.outputDir)
        self.ui.openReportButton.enabled = False
        self._workDir = workDir
        self._runner.start(args, self._onFinished)
        self._checkCanApply()

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start the phantom study."), waitCursor=True):
            from RadiologyAICommonLib.dependencies import ensure_module_requirements
            from RadiologyAICommonLib.workdir import make_work_dir, remove_work_dir

            ensure_module_requirements(__file__, "PhantomQA")
            p = self._parameterNode
            if not p.useSceneVolumes:
                self._start(self.logic.studyArguments(str(p.sourcePath), str(p.outputDir), p.workers, p.designPath))
                return
            workDir = make_work_dir("PhantomQA")  # the scene's volumes, exported for the worker
            try:
                args = self.logic.sceneStudyArguments(
                    self._sceneEntries(), workDir, str(p.outputDir), p.workers, p.designPath
                )
            except Exception:
                remove_work_dir(workDir)
                raise
            self._start(args, workDir)

    def onDemoButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start the demo."), waitCursor=True):
            from RadiologyAICommonLib.dependencies import ensure_module_requirements

            ensure_module_requirements(__file__, "PhantomQA")
            p = self._parameterNode
            self._start(self.logic.demoArguments(str(p.outputDir), p.workers))

    def onCancelButton(self) -> None:
        self._runner.cancel()
        self._checkCanApply()

    def _onFinished(self, result) -> None:
        from RadiologyAICommonLib.workdir import remove_work_dir

        remove_work_dir(self._workDir)
        self._workDir = None
        self._checkCanApply()
        if result.ok:
            self.onLoadResults()

    def onLoadResults(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the study results."), waitCursor=True):
            from RadiologyAICommonLib.dependencies import ensure_module_requirements

            ensure_module_requirements(__file__, "PhantomQA")
            folder = self._lastOutputDir or str(self._parameterNode.outputDir)
            nodes = self.logic.loadResults(folder)
            slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView)
            slicer.modules.plots.logic().ShowChartInLayout(nodes.iqrChart)
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(nodes.summaryTable.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()
            self._lastOutputDir = folder
            self.ui.openReportButton.enabled = os.path.exists(os.path.join(folder, "report.html"))

    def onOpenReport(self) -> None:
        import qt

        report = os.path.join(self._lastOutputDir or "", "report.html")
        if os.path.exists(report):
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(report))


#
# PhantomQATest
#


class PhantomQATest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_PhantomQA1()

    def test_PhantomQA1(self):
        """Simulate a small study, run it in-process through the logic, load results into the scene."""
        self.delayDisplay("Starting the test")
        from RadiologyAICommonLib.dependencies import ensure_module_requirements

        ensure_module_requirements(__file__, "PhantomQA")  # as Apply does: the requirements before their imports
        import pandas as pd

        from PhantomQALib.acquisitions import Acquisition
        from PhantomQALib.designio import save_design
        from PhantomQALib.study_phantom import PRESET_SCAN_SIZES, make_study_phantom, preset_parameters
        from PhantomQALib.simulate import ScanGeometry
        from PhantomQALib.study import DesignRef, SimulationParameters, StudyParameters, make_jobs, run_jobs

        folder = Path(tempfile.mkdtemp(prefix="PhantomQATest-"))
        design = make_study_phantom(preset_parameters("small"))
        save_design(design, folder / "design")
        (folder / "scans").mkdir()
        acquisitions = [
            Acquisition(f"scans/{r}_{d:g}mGy_rep{k}.nrrd", r, d, k)
            for r in ("fbp", "ir")
            for d in (0.5, 4.0)
            for k in (1, 2)
        ]
        jobs = make_jobs(
            acquisitions,
            DesignRef(phantom=design),
            StudyParameters(workers=1),
            SimulationParameters(geometry=ScanGeometry(size=PRESET_SCAN_SIZES["small"])),
            analyse=False,
            write_dir=folder / "scans",
        )
        run_jobs(jobs, StudyParameters(workers=1))
        pd.DataFrame(
            [
                {"path": a.path, "recon": a.recon, "ctdivol_mgy": a.ctdivol_mgy, "repetition": a.repetition}
                for a in acquisitions
            ]
        ).to_csv(folder / "manifest.csv", index=False)
        outputs = self.logic_run(folder)
        self.assertIn("summary", outputs)
        nodes = PhantomQALogic().loadResults(str(folder / "results"))
        self.assertIsNotNone(nodes.iqrChart)
        self.delayDisplay("Test passed")

    def logic_run(self, folder):
        return PhantomQALogic().runStudy(
            str(folder / "manifest.csv"), str(folder / "results"), design=str(folder / "design"), workers=1
        )
