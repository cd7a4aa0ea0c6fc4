"""MRML adapters: Slicer nodes <-> SimpleITK images and pandas tables.

Geometry: SimpleITK images are in LPS, Slicer nodes in RAS. A volume node's IJK-to-RAS
matrix is ``diag(-1, -1, 1) @ direction @ diag(spacing)`` with origin ``(-x, -y, z)``;
both conversions use exactly that, so origin, spacing and (oblique) direction round-trip.
Voxel arrays have the same (k, j, i) order in both worlds, so no transposes are needed.

Imports ``slicer`` (the real application, or the slicer-core wheel); never Qt.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from .errors import RadiologyAIError
from .imageio import image_from_array

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _scene():
    return slicer.mrmlScene


def _ijk_to_ras(image: sitk.Image) -> np.ndarray:
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = _LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = _LPS_TO_RAS @ np.array(image.GetOrigin(), dtype=float)
    return matrix


def _set_geometry(node, image: sitk.Image) -> None:
    matrix = vtk.vtkMatrix4x4()
    ijk_to_ras = _ijk_to_ras(image)
    for row in range(4):
        for col in range(4):
            matrix.SetElement(row, col, ijk_to_ras[row, col])
    node.SetIJKToRASMatrix(matrix)


def _geometry_from_node(node) -> tuple[tuple, tuple, tuple]:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    m = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    lps = _LPS_TO_RAS @ m[:3, :3]  # columns: spacing * direction, in LPS
    spacing = np.linalg.norm(lps, axis=0)
    direction = lps / spacing
    origin = _LPS_TO_RAS @ m[:3, 3]
    return tuple(origin), tuple(spacing), tuple(direction.flatten())


def volume_node_to_image(node) -> sitk.Image:
    """A scalar (or label-map) volume node as a SimpleITK image with the node's geometry (LPS).

    A parent transform is not applied (harden it first); the image is a copy.
    """
    if node is None or node.GetImageData() is None:
        raise RadiologyAIError("select an input volume that holds image data")
    if node.GetParentTransformNode() is not None:
        raise RadiologyAIError(f"volume '{node.GetName()}' is under a transform: harden the transform first")
    array = slicer.util.arrayFromVolume(node)
    if array.ndim != 3:
        raise RadiologyAIError(f"volume '{node.GetName()}' is not a scalar volume")
    image = sitk.GetImageFromArray(np.array(array, copy=True))
    origin, spacing, direction = _geometry_from_node(node)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def image_to_volume_node(image: sitk.Image, name: str, node=None, class_name: str = "vtkMRMLScalarVolumeNode"):
    """Put a SimpleITK image into a (new or given) volume node, geometry included."""
    if node is None:
        node = _scene().AddNewNodeByClass(class_name, name)
    array = sitk.GetArrayFromImage(image)
    slicer.util.updateVolumeFromArray(node, array)
    _set_geometry(node, image)
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node


def labelmap_to_segmentation_node(label_image: sitk.Image, segments: dict, name: str, node=None):
    """A label image as a segmentation node, one named, coloured segment per label value.

    ``segments`` maps label value -> (segment name, (r, g, b) in 0..1). Labels absent from
    the image still get an (empty) segment, so the segment list is predictable.
    """
    scene = _scene()
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    labelmap = image_to_volume_node(
        sitk.Cast(label_image, sitk.sitkUInt8), name + "_labels", class_name="vtkMRMLLabelMapVolumeNode"
    )
    try:
        segmentation = node.GetSegmentation()
        node.SetReferenceImageGeometryParameterFromVolumeNode(labelmap)
        for value, (segment_name, color) in sorted(segments.items()):
            existing = segmentation.GetSegmentIdBySegmentName(segment_name)
            if existing:
                segmentation.RemoveSegment(existing)
            array = (slicer.util.arrayFromVolume(labelmap) == value).astype(np.uint8)
            single = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
            try:
                slicer.util.updateVolumeFromArray(single, array)
                single.CopyOrientation(labelmap)
                before = set(segmentation.GetSegmentIDs())
                if array.any():
                    slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(single, node)
                new_ids = [i for i in segmentation.GetSegmentIDs() if i not in before]
                if new_ids:
                    segment = segmentation.GetSegment(new_ids[0])
                else:
                    segment_id = segmentation.AddEmptySegment(segment_name, segment_name)
                    segment = segmentation.GetSegment(segment_id)
                segment.SetName(segment_name)
                segment.SetColor(*color)
            finally:
                scene.RemoveNode(single)
    finally:
        scene.RemoveNode(labelmap)
    return node


def segment_to_image(segmentation_node, segment, reference_volume_node) -> sitk.Image:
    """One segment (name or ID) as a uint8 0/1 image on the reference volume's grid."""
    segmentation = segmentation_node.GetSegmentation()
    segment_id = segment if segmentation.GetSegment(segment) else segmentation.GetSegmentIdBySegmentName(segment)
    if not segment_id:
        raise RadiologyAIError(f"segmentation '{segmentation_node.GetName()}' has no segment '{segment}'")
    array = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, segment_id, reference_volume_node)
    reference = volume_node_to_image(reference_volume_node)
    image = image_from_array((np.asarray(array) > 0).astype(np.uint8), reference)
    return image


def dataframe_to_table_node(dataframe, name: str, node=None):
    """A pandas DataFrame as a table node (numeric columns stay numeric, others become strings)."""
    if node is None:
        node = _scene().AddNewNodeByClass("vtkMRMLTableNode", name)
    from pandas.api import types

    table = node.GetTable()
    table.Initialize()
    for column in dataframe.columns:
        values = dataframe[column]
        if types.is_integer_dtype(values.dtype) or types.is_bool_dtype(values.dtype):
            array = vtk.vtkIntArray()
            cast = int
        elif types.is_float_dtype(values.dtype):
            array = vtk.vtkDoubleArray()
            cast = float
        else:
            array = vtk.vtkStringArray()
            cast = str
        array.SetName(str(column))
        for value in values.tolist():
            array.InsertNextValue(cast(value))
        table.AddColumn(array)
    table.Modified()
    node.Modified()
    return node


def plot_chart_node(
    table_node, x_column: str, y_columns, title: str, x_title: str = "", y_title: str = "", name: str | None = None
):
    """A plot chart (one line series per y column, markers on) over a table node's columns."""
    scene = _scene()
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name or title)
    chart.SetTitle(title)
    chart.SetXAxisTitle(x_title or x_column)
    chart.SetYAxisTitle(y_title)
    palette = [(0.12, 0.47, 0.71), (1.0, 0.5, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16), (0.58, 0.4, 0.74)]
    for index, y_column in enumerate([y_columns] if isinstance(y_columns, str) else list(y_columns)):
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{title}: {y_column}")
        series.SetAndObserveTableNodeID(table_node.GetID())
        series.SetXColumnName(x_column)
        series.SetYColumnName(y_column)
        series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
        series.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleSolid)
        series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
        series.SetColor(*palette[index % len(palette)])
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    return chart
