"""Radiomics features of one image + mask with PyRadiomics.

The work is PyRadiomics' own ``RadiomicsFeatureExtractor.execute``; this module only adds
what a clinical user needs around it: the mask label chosen (or inferred when the mask holds a
single label), clear errors for an empty mask or a missing label, and a mask whose geometry
differs from the image's resampled onto the image grid (nearest neighbour) *only* when the
labelled region lies inside the image's physical extent; otherwise the case is rejected.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import read_volume, same_geometry, validate_scalar_volume

from .radiomics_params import RadiomicsParameters, load_params

DIAGNOSTICS_PREFIX = "diagnostics_"


@dataclass
class CaseFeatures:
    """Features of one case: numeric PyRadiomics features, diagnostics, and how the mask was used."""

    features: "OrderedDict[str, float]"
    diagnostics: dict = field(default_factory=dict)
    label: int = 1
    mask_resampled: bool = False
    seconds: float = 0.0


_EXTRACTORS: dict[str, object] = {}


def get_extractor(params: RadiomicsParameters):
    """A PyRadiomics extractor for ``params``, cached per process (building one re-validates the params)."""
    extractor = _EXTRACTORS.get(params.sha256)
    if extractor is None:
        import radiomics
        from radiomics.featureextractor import RadiomicsFeatureExtractor

        radiomics.setVerbosity(logging.ERROR)
        extractor = RadiomicsFeatureExtractor(params.as_dict())
        _EXTRACTORS[params.sha256] = extractor
    return extractor


def _physical_box(image: sitk.Image, index_min, index_max) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned physical bounding box of the voxel block [index_min, index_max] (voxel edges included)."""
    corners = []
    for cx in (index_min[0] - 0.5, index_max[0] + 0.5):
        for cy in (index_min[1] - 0.5, index_max[1] + 0.5):
            for cz in (index_min[2] - 0.5, index_max[2] + 0.5):
                corners.append(image.TransformContinuousIndexToPhysicalPoint((float(cx), float(cy), float(cz))))
    corners = np.array(corners)
    return corners.min(axis=0), corners.max(axis=0)


def mask_labels(mask: sitk.Image) -> list[int]:
    values = np.unique(sitk.GetArrayViewFromImage(mask))
    return [int(v) for v in values if v != 0]


def prepare_mask(
    image: sitk.Image, mask: sitk.Image, label: int | None = None, what: str = "mask", default_label: int = 1
) -> tuple[sitk.Image, int, bool]:
    """Check the mask and bring it onto the image grid; return ``(mask, label, resampled)``.

    ``label`` None: ``default_label`` if present, else the only non-zero label of the mask.
    """
    if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
        raise RadiologyAIError(f"{what}: expected a 3D label map (one integer label per voxel)")
    array = sitk.GetArrayViewFromImage(mask)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
            raise RadiologyAIError(f"{what}: a label map must hold whole numbers (got fractional or NaN values)")
    labels = mask_labels(mask)
    if not labels:
        raise RadiologyAIError(f"{what}: the mask is empty (no non-zero voxel)")
    if label is None:
        if default_label in labels:
            label = default_label
        elif len(labels) == 1:
            label = labels[0]
        else:
            raise RadiologyAIError(f"{what}: holds labels {labels}; choose one with the mask label option")
    label = int(label)
    if label not in labels:
        raise RadiologyAIError(f"{what}: label {label} does not exist in the mask (labels present: {labels})")
    mask = sitk.Cast(mask, sitk.sitkUInt32) if mask.GetPixelID() != sitk.sitkUInt32 else mask
    if same_geometry(image, mask):
        return mask, label, False
    # Different grids: resample the mask onto the image only if the labelled region overlaps the image.
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(sitk.Equal(mask, label), sitk.sitkUInt8))
    x, y, z, sx, sy, sz = stats.GetBoundingBox(1)
    mask_lo, mask_hi = _physical_box(mask, (x, y, z), (x + sx - 1, y + sy - 1, z + sz - 1))
    size = image.GetSize()
    image_lo, image_hi = _physical_box(image, (0, 0, 0), (size[0] - 1, size[1] - 1, size[2] - 1))
    if np.any(mask_hi <= image_lo) or np.any(mask_lo >= image_hi):
        raise RadiologyAIError(
            f"{what}: the labelled region (physical box {np.round(mask_lo, 1).tolist()} "
            f"to {np.round(mask_hi, 1).tolist()} mm) "
            f"does not overlap the image (box {np.round(image_lo, 1).tolist()} "
            f"to {np.round(image_hi, 1).tolist()} mm); "
            "check that image and mask belong together"
        )
    binary = sitk.Cast(sitk.Equal(mask, label), sitk.sitkUInt32) * label
    resampled = sitk.Resample(binary, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt32)
    if not sitk.GetArrayViewFromImage(resampled).any():
        raise RadiologyAIError(
            f"{what}: after resampling onto the image grid the label {label} covers no image voxel "
            "(the mask is outside the image or thinner than one image voxel)"
        )
    return resampled, label, True


def extract_features(
    image: sitk.Image,
    mask: sitk.Image,
    params: RadiomicsParameters | None = None,
    label: int | None = None,
    what: str = "case",
) -> CaseFeatures:
    """PyRadiomics features of ``image`` inside ``mask == label``.

    Returns the numeric features (PyRadiomics names, e.g. ``original_glcm_Contrast``) in
    PyRadiomics' order, and its ``diagnostics_*`` entries separately.
    """
    start = time.perf_counter()
    params = params or load_params()
    validate_scalar_volume(image, f"{what} image")
    default_label = int(params.params.get("setting", {}).get("label", 1))
    mask, label, resampled = prepare_mask(image, mask, label, f"{what} mask", default_label)
    extractor = get_extractor(params)
    try:
        result = extractor.execute(image, mask, label=label)
    except (ValueError, AssertionError, RuntimeError) as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise RadiologyAIError(f"{what}: PyRadiomics could not extract features ({message})") from None
    features: OrderedDict[str, float] = OrderedDict()
    diagnostics = {}
    for name, value in result.items():
        if name.startswith(DIAGNOSTICS_PREFIX):
            diagnostics[name] = value if isinstance(value, (str, int, float, bool)) else str(value)
        else:
            features[name] = float(value)
    return CaseFeatures(features, diagnostics, label, resampled, time.perf_counter() - start)


def extract_files(
    image_path, mask_path, params: RadiomicsParameters | None = None, label: int | None = None, what: str | None = None
) -> CaseFeatures:
    """:func:`extract_features` on files (any format SimpleITK reads, or DICOM series folders)."""
    image = read_volume(image_path, "image")
    from RadiologyAICommonLib.imageio import read_image

    mask = read_image(mask_path, "mask")
    return extract_features(image, mask, params, label, what or f"{image_path}")
