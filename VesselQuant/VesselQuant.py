from typing import Annotated, Optional

import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode

from VesselQuantLib.logic import VesselQuantLogic


#
# VesselQuant
#


class VesselQuant(ScriptedLoadableModule):
    """Graph-cut lung-vessel segmentation and per-radius quantification on chest CT."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("VesselQuant")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "RadiologyAI")]
        self.parent.dependencies = ["RadiologyAICommon"]
        self.parent.contributors = ["RadiologyAI contributors"]
        self.parent.helpText = _("""
Lung-vessel morphology on chest CT after the LUMC/LKEB graph-cut method (Zhai et al., Med Phys 2019):
lung mask, multi-scale vesselness in mm, graph cut on the uncertain voxels, centreline with sub-voxel radius,
and per radius the vessel volume, median HU and HU inter-quartile range, with the log-linear fit of the radius
histogram and the small-vessel volume.
<br>Choose the CT (in HU) and, optionally, a segmentation whose first segment is the lung mask; press Apply.
Results: a segmentation ("Vessels", "Lungs"), a radius map (mm), a per-radius table and a plot.
See the module's README for the method, parameters and limitations.
""")
        self.parent.acknowledgementText = _("""
Method: Z. Zhai et al., "Automatic quantitative analysis of pulmonary vascular morphology in CT images",
Medical Physics 2019 (LUMC/LKEB). Uses SimpleITK, SciPy, scikit-image and PyMaxflow (Boykov-Kolmogorov max-flow).
Part of the RadiologyAI extension.
""")


#
# VesselQuantParameterNode
#


# "Grow faint thin vessels": look for vessels down to this radius (the smallest LKEB radius bin).
_GROWN_THIN_VESSEL_RADIUS_MM = 0.25


@parameterNodeWrapper
class VesselQuantParameterNode:
    """
    inputVolume - chest CT in HU.
    lungSegmentation - optional segmentation whose first segment is the lung mask.
    intensityWeight - weight of the intensity likelihood in the graph-cut data term (LKEB: 0.6).
    vesselThreshold - vesselness above which a voxel with vessel HU is a fixed vessel seed (LKEB: 0.8).
    smoothnessWeight - weight of the graph-cut boundary term.
    radiusBinWidth - width of the radius bins in mm.
    designRadii - optional list of radii in mm (comma or space separated) used as bins instead.
    growThinVessels - also grow faint sub-millimetre vessels (noisy scans; off for dose comparisons).
    runInBackground - run in a separate process (the GUI stays responsive and can cancel).
    """

    inputVolume: vtkMRMLScalarVolumeNode
    lungSegmentation: Optional[vtkMRMLSegmentationNode]
    intensityWeight: Annotated[float, WithinRange(0.0, 1.0)] = 0.6
    vesselThreshold: Annotated[float, WithinRange(0.01, 1.0)] = 0.8
    smoothnessWeight: Annotated[float, WithinRange(0.0, 5.0)] = 0.5
    radiusBinWidth: Annotated[float, WithinRange(0.05, 2.0)] = 0.25
    designRadii: str = ""
    growThinVessels: bool = False
    runInBackground: bool = True


#
# VesselQuantWidget
#


class VesselQuantWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._runner = None
        self._workDir = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/VesselQuant.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = VesselQuantLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.cancelButton.enabled = False

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.onCancelButton()
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
        self.setParameterNode(VesselQuantParameterNode(self.logic.getParameterNode()))
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode: Optional[VesselQuantParameterNode]) -> None:
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
        if self._parameterNode and self._parameterNode.inputVolume and not busy:
            self.ui.applyButton.toolTip = _("Segment and quantify the lung vessels")
            self.ui.applyButton.enabled = True
        else:
            self.ui.applyButton.toolTip = _("Select a CT volume") if not busy else _("A run is in progress")
            self.ui.applyButton.enabled = False

    def _parameters(self):
        from VesselQuantLib.parameters import VesselQuantParameters

        p = self._parameterNode
        return VesselQuantParameters(
            intensity_weight=p.intensityWeight,
            vessel_vesselness=p.vesselThreshold,
            smoothness_weight=p.smoothnessWeight,
            radius_bin_mm=p.radiusBinWidth,
            radius_bins_mm=self.logic.parseDesignRadii(p.designRadii),
            thin_vessel_min_radius_mm=_GROWN_THIN_VESSEL_RADIUS_MM if p.growThinVessels else None,
        ).validate()

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("VesselQuant failed."), waitCursor=True):
            from RadiologyAICommonLib.dependencies import ensure_module_requirements

            ensure_module_requirements(__file__, "VesselQuant")
            parameters = self._parameters()
            ctNode = self._parameterNode.inputVolume
            lungNode = self._parameterNode.lungSegmentation
            if self._parameterNode.runInBackground:
                self._startWorker(ctNode, lungNode, parameters)
            else:

                def progress(fraction, message):
                    self.ui.progressBar.setValue(int(round(100 * fraction)))
                    self.ui.statusLabel.text = message
                    slicer.app.processEvents()

                nodes = self.logic.process(ctNode, lungNode, parameters=parameters, progress=progress)
                self._showResults(nodes, ctNode)

    def _startWorker(self, ctNode, lungNode, parameters) -> None:
        from RadiologyAICommonLib.slicerui import WorkerRunner
        from RadiologyAICommonLib.workdir import make_work_dir, output_dir, remove_work_dir

        workDir = make_work_dir("VesselQuant")
        try:
            args = self.logic.processArguments(ctNode, lungNode, workDir, parameters)
        except Exception:
            remove_work_dir(workDir)
            raise
        self._workDir = workDir
        self._runner = WorkerRunner(self.ui.progressBar, self.ui.statusLabel)

        def finished(result):
            try:
                if result.ok:
                    with slicer.util.tryWithErrorDisplay(_("Could not load the VesselQuant results."), waitCursor=True):
                        nodes = self.logic.loadOutput(output_dir(workDir), ctNode)
                        self._showResults(nodes, ctNode)
            finally:
                self.ui.cancelButton.enabled = False
                remove_work_dir(workDir)
                self._workDir = None
                self._checkCanApply()

        self._runner.start(args, finished)
        self.ui.cancelButton.enabled = True
        self._checkCanApply()

    def onCancelButton(self) -> None:
        if self._runner is not None and self._runner.running:
            self._runner.cancel()

    def _showResults(self, nodes, ctNode) -> None:
        slicer.util.setSliceViewerLayers(background=ctNode, foreground=nodes.radiusVolume, foregroundOpacity=0.4)
        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None:
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView)
            slicer.modules.plots.logic().ShowChartInLayout(nodes.chart)
            selection = slicer.app.applicationLogic().GetSelectionNode()
            selection.SetActiveTableID(nodes.table.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()
        summary = nodes.result.summary
        self.ui.resultLabel.text = _(
            "Vessel volume {total:.1f} ml in {lung:.0f} ml of lung ({fraction:.1%}); small vessels {small:.1f} ml; "
            "log-linear fit R\u00b2 {r2:.2f}"
        ).format(
            total=summary["total_volume_ml"],
            lung=summary["lung_volume_ml"],
            fraction=summary["vessel_fraction"],
            small=summary["small_vessel_volume_ml"],
            r2=summary["fit_r2"],
        )
        if summary.get("nodule_like_count"):
            self.ui.resultLabel.text += _(
                "; {count} nodule-like blob(s), {volume:.1f} ml, not counted as vessel"
            ).format(count=int(summary["nodule_like_count"]), volume=summary["nodule_like_volume_ml"])


#
# VesselQuantTest
#


class VesselQuantTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_VesselQuant1()

    def test_VesselQuant1(self):
        """Phantom with known vessels -> logic -> segmentation, radius map, table and plot."""
        self.delayDisplay("Starting the test")
        from RadiologyAICommonLib.dependencies import ensure_module_requirements

        ensure_module_requirements(__file__, "VesselQuant")  # as Apply does: the requirements before their imports
        from RadiologyAICommonLib import mrml
        from VesselQuantLib.evaluation import evaluate
        from VesselQuantLib.vessel_phantom import make_vessel_phantom

        phantom = make_vessel_phantom(size_xyz=(100, 100, 48), seed=3, root_radius_mm=2.5)
        ctNode = mrml.image_to_volume_node(phantom.image, "VesselQuant phantom")
        nodes = VesselQuantLogic().process(ctNode)
        segmentation = nodes.segmentation.GetSegmentation()
        self.assertTrue(segmentation.GetSegmentIdBySegmentName("Vessels"))
        self.assertTrue(segmentation.GetSegmentIdBySegmentName("Lungs"))
        self.assertEqual(nodes.table.GetTable().GetNumberOfColumns(), 5)
        self.assertGreater(evaluate(nodes.result, phantom)["dice"], 0.9)
        self.delayDisplay("Test passed")
