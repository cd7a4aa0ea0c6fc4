"""MRML adapters on real MRML scenes (slicer-core): geometry round-trips, segments, tables, plots."""

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from RadiologyAICommonLib.imageio import image_from_array

from imagetestdata import make_image, oblique_direction

pytestmark = pytest.mark.usefixtures("mrml_scene")


def _assert_same_image(a: sitk.Image, b: sitk.Image):
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-9)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))


@pytest.mark.parametrize("direction", [None, oblique_direction(), (-1, 0, 0, 0, 0, 1, 0, -1, 0)])
def test_volume_round_trip_keeps_geometry(direction):
    from RadiologyAICommonLib import mrml

    image = make_image(direction=direction)
    node = mrml.image_to_volume_node(image, "ct")
    _assert_same_image(mrml.volume_node_to_image(node), image)


def test_volume_node_geometry_is_ras():
    """The node's RAS position of voxel (i, j, k) equals the LPS physical point with x, y negated."""
    import vtk

    from RadiologyAICommonLib import mrml

    image = make_image(direction=oblique_direction())
    node = mrml.image_to_volume_node(image, "ct")
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    ijk = (3, 5, 7)
    ras = matrix.MultiplyPoint((*ijk, 1.0))[:3]
    lps = image.TransformIndexToPhysicalPoint(ijk)
    np.testing.assert_allclose(ras, (-lps[0], -lps[1], lps[2]), atol=1e-9)


def test_volume_with_transform_is_refused(mrml_scene):
    from RadiologyAICommonLib import RadiologyAIError, mrml

    node = mrml.image_to_volume_node(make_image(), "ct")
    transform = mrml_scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(RadiologyAIError, match="harden"):
        mrml.volume_node_to_image(node)


def test_labelmap_to_segmentation_named_coloured_segments():
    from RadiologyAICommonLib import mrml

    reference = make_image(direction=oblique_direction())
    labels = np.zeros(sitk.GetArrayViewFromImage(reference).shape, np.uint8)
    labels[2:5, 3:6, 4:8] = 1
    labels[7:9, 8:10, 9:12] = 2
    label_image = image_from_array(labels, reference)
    segments = {1: ("Vessels", (0.8, 0.1, 0.1)), 2: ("Lungs", (0.2, 0.5, 0.9)), 3: ("Empty", (0, 1, 0))}
    node = mrml.labelmap_to_segmentation_node(label_image, segments, "result")
    segmentation = node.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == [
        "Vessels",
        "Lungs",
        "Empty",
    ]
    np.testing.assert_allclose(
        segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("Lungs")).GetColor(), (0.2, 0.5, 0.9)
    )
    volume = mrml.image_to_volume_node(reference, "ref")
    for value, name in ((1, "Vessels"), (2, "Lungs")):
        back = sitk.GetArrayFromImage(mrml.segment_to_image(node, name, volume))
        np.testing.assert_array_equal(back, (labels == value).astype(np.uint8))
    assert not sitk.GetArrayFromImage(mrml.segment_to_image(node, "Empty", volume)).any()


def test_segment_to_image_unknown_segment():
    from RadiologyAICommonLib import RadiologyAIError, mrml

    reference = make_image()
    label = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    label.CopyInformation(reference)
    node = mrml.labelmap_to_segmentation_node(label, {1: ("A", (1, 0, 0))}, "s")
    with pytest.raises(RadiologyAIError, match="no segment 'B'"):
        mrml.segment_to_image(node, "B", mrml.image_to_volume_node(reference, "r"))


def test_dataframe_to_table_node_and_plot(mrml_scene):
    import slicer

    from RadiologyAICommonLib import mrml

    df = pd.DataFrame({"radius_mm": [0.5, 1.0, 1.5], "voxel_count": [10, 20, 5], "label": ["a", "b", "c"]})
    table = mrml.dataframe_to_table_node(df, "stats")
    back = slicer.util.dataframeFromTable(table)
    assert list(back.columns) == ["radius_mm", "voxel_count", "label"]
    np.testing.assert_allclose(back["radius_mm"], df["radius_mm"])
    assert back["label"].tolist() == ["a", "b", "c"]
    chart = mrml.plot_chart_node(table, "radius_mm", ["voxel_count"], "Volume vs radius", y_title="voxels")
    assert chart.GetNumberOfPlotSeriesNodes() == 1
    series = chart.GetNthPlotSeriesNode(0)
    assert series.GetXColumnName() == "radius_mm" and series.GetYColumnName() == "voxel_count"
    assert series.GetTableNode() is table
