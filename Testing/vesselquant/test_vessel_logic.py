"""VesselQuantLogic on a real MRML scene (slicer-core)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

pytestmark = pytest.mark.usefixtures("mrml_scene")


def test_logic_creates_segmentation_radius_table_and_chart(small_phantom, mrml_scene):
    import slicer

    from RadiologyAICommonLib import mrml
    from VesselQuantLib.logic import VesselQuantLogic

    ct_node = mrml.image_to_volume_node(small_phantom.image, "phantom CT")
    progress = []
    nodes = VesselQuantLogic().process(ct_node, progress=lambda f, m: progress.append(f))
    assert progress and progress[-1] == pytest.approx(1.0)

    segmentation = nodes.segmentation.GetSegmentation()
    names = [segmentation.GetSegment(i).GetName() for i in segmentation.GetSegmentIDs()]
    assert names.count("Vessels") == 1 and names.count("Lungs") == 1
    vessels = slicer.util.arrayFromSegmentBinaryLabelmap(
        nodes.segmentation, segmentation.GetSegmentIdBySegmentName("Vessels"), ct_node
    )
    lungs = slicer.util.arrayFromSegmentBinaryLabelmap(
        nodes.segmentation, segmentation.GetSegmentIdBySegmentName("Lungs"), ct_node
    )
    label = sitk.GetArrayFromImage(nodes.result.vessel_label)
    assert np.array_equal(np.asarray(vessels) > 0, label > 0)
    assert (np.asarray(lungs) > 0)[label > 0].all()  # the Lungs segment includes the vessels

    radius = mrml.volume_node_to_image(nodes.radiusVolume)
    assert np.allclose(sitk.GetArrayFromImage(radius), sitk.GetArrayFromImage(nodes.result.vessel_radius))
    assert np.allclose(radius.GetDirection(), small_phantom.image.GetDirection())
    assert nodes.radiusVolume.GetDisplayNode().GetColorNodeID() == "vtkMRMLColorTableNodeRainbow"

    table = nodes.table.GetTable()
    columns = [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())]
    assert columns == ["radius_mm", "voxel_count", "volume_ml", "median_hu", "iqr_hu"]
    assert table.GetNumberOfRows() == len(nodes.result.per_radius)
    assert nodes.chart.GetNumberOfPlotSeriesNodes() == 2
    assert nodes.summaryTable.GetTable().GetNumberOfRows() >= 8


def test_logic_uses_lung_segment(small_phantom, mrml_scene):
    from RadiologyAICommonLib import mrml
    from RadiologyAICommonLib.errors import RadiologyAIError
    from VesselQuantLib.logic import VesselQuantLogic

    ct_node = mrml.image_to_volume_node(small_phantom.image, "phantom CT")
    lung_seg = mrml.labelmap_to_segmentation_node(small_phantom.lung_mask, {1: ("lung", (0, 0, 1))}, "my lungs")
    nodes = VesselQuantLogic().process(ct_node, lung_seg, "lung")
    assert nodes.result.summary["lung_mask_source"] == "user"
    lung = sitk.GetArrayFromImage(nodes.result.lung_mask)
    assert np.array_equal(lung, sitk.GetArrayFromImage(small_phantom.lung_mask))
    with pytest.raises(RadiologyAIError, match="no segment"):
        VesselQuantLogic().process(ct_node, lung_seg, "missing")
    with pytest.raises(RadiologyAIError):
        VesselQuantLogic().process(None)


def test_logic_adds_a_nodule_like_segment(nodule_phantom, mrml_scene):
    import slicer

    from RadiologyAICommonLib import mrml
    from VesselQuantLib.logic import VesselQuantLogic

    image, ball = nodule_phantom
    ct_node = mrml.image_to_volume_node(image, "CT with a nodule")
    nodes = VesselQuantLogic().process(ct_node)
    segmentation = nodes.segmentation.GetSegmentation()
    nodule_id = segmentation.GetSegmentIdBySegmentName("Nodule-like")
    assert nodule_id
    nodule = np.asarray(slicer.util.arrayFromSegmentBinaryLabelmap(nodes.segmentation, nodule_id, ct_node)) > 0
    assert np.array_equal(nodule, sitk.GetArrayFromImage(nodes.result.nodule_label) > 0)
    lungs = segmentation.GetSegmentIdBySegmentName("Lungs")
    assert (np.asarray(slicer.util.arrayFromSegmentBinaryLabelmap(nodes.segmentation, lungs, ct_node)) > 0)[
        nodule
    ].all()


def test_worker_arguments_round_trip_gives_the_in_process_result(small_phantom, mrml_scene, tmp_path):
    """processArguments -> the `radiologyai vessels` command -> loadOutput equals process() on the same nodes."""
    from RadiologyAICommonLib import mrml
    from RadiologyAICommonLib.cli import main
    from RadiologyAICommonLib.workdir import make_work_dir, output_dir, remove_work_dir
    from VesselQuantLib.logic import VesselQuantLogic
    from VesselQuantLib.parameters import VesselQuantParameters

    logic = VesselQuantLogic()
    ct_node = mrml.image_to_volume_node(small_phantom.image, "phantom CT")
    parameters = VesselQuantParameters(radius_bins_mm=logic.parseDesignRadii("0.5, 1 2"))
    work_dir = make_work_dir("VesselQuantTest")
    try:
        args = logic.processArguments(ct_node, None, work_dir, parameters)
        assert sorted(p.name for p in work_dir.iterdir()) == ["ct.nrrd", "parameters.json"]
        assert main(args) == 0
        from_worker = logic.loadOutput(output_dir(work_dir), ct_node)
    finally:
        remove_work_dir(work_dir)
    assert not work_dir.exists()
    in_process = logic.process(ct_node, parameters=parameters)
    assert np.array_equal(
        sitk.GetArrayFromImage(from_worker.result.vessel_label), sitk.GetArrayFromImage(in_process.result.vessel_label)
    )
    assert list(from_worker.result.per_radius["radius_mm"]) == list(in_process.result.per_radius["radius_mm"])


def test_design_radii_text_is_parsed_in_the_logic():
    from RadiologyAICommonLib.errors import RadiologyAIError
    from VesselQuantLib.logic import VesselQuantLogic

    assert VesselQuantLogic.parseDesignRadii(" 0.5, 1 2 ") == (0.5, 1.0, 2.0)
    assert VesselQuantLogic.parseDesignRadii("  ") is None
    with pytest.raises(RadiologyAIError, match="design radii .*'1mm' is not a number"):
        VesselQuantLogic.parseDesignRadii("0.5, 1mm")
