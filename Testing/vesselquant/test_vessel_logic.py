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
    vessels = slicer.util.arrayFromSegmentBinaryLabelmap(nodes.segmentation, segmentation.GetSegmentIdBySegmentName("Vessels"), ct_node)
    lungs = slicer.util.arrayFromSegmentBinaryLabelmap(nodes.segmentation, segmentation.GetSegmentIdBySegmentName("Lungs"), ct_node)
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
    assert (np.asarray(slicer.util.arrayFromSegmentBinaryLabelmap(nodes.segmentation, lungs, ct_node)) > 0)[nodule].all()
