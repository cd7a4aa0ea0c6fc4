"""VesselQuant pipeline: CT -> lung mask -> vesselness -> graph cut -> centreline radius -> per-radius table.

The one entry point the CLI, the Slicer logic and PhantomQA call::

    result = run_vessel_quant(ct, lung_mask=None, parameters=VesselQuantParameters(), progress=cb)

All heavy work happens inside the lung's bounding box (plus a filter margin); the graph cut
only gets the uncertain voxels. Inputs are validated first and every user mistake raises
:class:`RadiologyAIError`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import SimpleITK as sitk

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import image_from_array, same_geometry, validate_scalar_volume, voxels_of
from RadiologyAICommonLib.memory import check_memory, return_free_pages, reusing_freed_memory
from RadiologyAICommonLib.progress import ProgressCallback, no_progress, subprogress

from .centerline import compute_centerline
from .graphcut import segment_vessels
from .lungmask import bounding_box, segment_lungs, shrink_factors
from .nodules import find_nodule_like
from .parameters import VesselQuantParameters
from .quantify import loglinear_fit, per_radius_table, small_vessel_volume_ml
from .vesselness import multiscale_vesselness

__all__ = ["VesselQuantParameters", "VesselQuantResult", "run_vessel_quant", "validate_ct", "validate_lung_mask"]


@dataclass
class VesselQuantResult:
    lung_mask: sitk.Image  # uint8 0/1, same geometry as the CT
    vessel_label: sitk.Image  # uint8 0/1
    vessel_radius: sitk.Image  # float32, mm, 0 outside vessels
    per_radius: pd.DataFrame  # radius_mm, voxel_count, volume_ml, median_hu, iqr_hu
    summary: (
        dict  # total_volume_ml, lung_volume_ml, vessel_fraction, small_vessel_volume_ml, fit_*, runtime_s, parameters
    )
    centerline: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["x_mm", "y_mm", "z_mm", "radius_mm"])
    )
    """Centreline points in physical (LPS) coordinates with their radius."""
    nodule_label: sitk.Image | None = None
    """uint8 0/1: nodule-like blobs the graph cut took and that are not counted as vessel (nodules.py)."""


# A user's lung mask whose median CT value is above this holds no lung (soft tissue, the wrong mask).
LUNG_MASK_MAX_MEDIAN_HU = -500.0
# The Hessian's Gaussian derivatives need a few voxels along each axis (ITK refuses fewer than 4).
MIN_VOXELS_PER_AXIS = 4
# Peak memory per CT voxel, with a margin: 3.2 GiB on a 512 x 512 x 400 all-parenchyma CT with a dense tree (32 B).
PEAK_BYTES_PER_VOXEL = 40


def validate_ct(ct: sitk.Image, what: str = "CT") -> sitk.Image:
    """A finite 3D scalar volume in Hounsfield units (air near -1000); raise otherwise."""
    if not isinstance(ct, sitk.Image):
        raise RadiologyAIError(f"{what}: expected a SimpleITK image, got {type(ct).__name__}")
    validate_scalar_volume(ct, what, min_voxels_per_axis=MIN_VOXELS_PER_AXIS)
    array = sitk.GetArrayViewFromImage(ct)
    low, high = float(array.min()), float(array.max())
    dark = np.count_nonzero(array < -500) / array.size
    if dark < 0.001:
        raise RadiologyAIError(
            f"{what}: does not look like a CT in Hounsfield units (intensities {low:g} to {high:g}, "
            "almost nothing below -500 HU where air and lung should be); MRI and other images are not supported"
        )
    if low < -4000 or high > 40000:
        raise RadiologyAIError(f"{what}: intensities {low:g} to {high:g} are outside any CT range; expected HU")
    return ct


def validate_lung_mask(mask: sitk.Image, ct: sitk.Image, what: str = "lung mask") -> np.ndarray:
    """The user's lung mask as a bool (z, y, x) array; raise if its geometry or content is wrong."""
    if not isinstance(mask, sitk.Image):
        raise RadiologyAIError(f"{what}: expected a SimpleITK image, got {type(mask).__name__}")
    if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
        raise RadiologyAIError(f"{what}: expected a 3D scalar label image")
    if not same_geometry(mask, ct):
        raise RadiologyAIError(
            f"{what}: its geometry differs from the CT (size {mask.GetSize()} vs {ct.GetSize()}, spacing "
            f"{tuple(round(s, 4) for s in mask.GetSpacing())} vs {tuple(round(s, 4) for s in ct.GetSpacing())}, "
            "or origin/direction); resample it onto the CT first"
        )
    array = sitk.GetArrayViewFromImage(mask)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise RadiologyAIError(f"{what}: contains NaN or infinite values")
    lung = array > 0
    if not lung.any():
        raise RadiologyAIError(f"{what}: is empty (no voxel > 0)")
    median_hu = float(np.median(sitk.GetArrayViewFromImage(ct)[lung]))
    if median_hu > LUNG_MASK_MAX_MEDIAN_HU:  # parenchyma is about -850 HU; vessels are a few % of a lung
        raise RadiologyAIError(
            f"{what}: holds no lung: the CT's median inside it is {median_hu:.0f} HU, where lung "
            f"parenchyma is below {LUNG_MASK_MAX_MEDIAN_HU:.0f} HU; is it the mask of this CT?"
        )
    return lung


def index_to_physical(image: sitk.Image, index_xyz: np.ndarray) -> np.ndarray:
    """Continuous (x, y, z) voxel indices -> physical LPS points (vectorised)."""
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    scaled = np.asarray(index_xyz, float) * np.asarray(image.GetSpacing(), float)
    return np.asarray(image.GetOrigin(), float) + scaled @ direction.T


@reusing_freed_memory()
def run_vessel_quant(
    ct: sitk.Image,
    lung_mask: sitk.Image | None = None,
    parameters: VesselQuantParameters | None = None,
    progress: ProgressCallback | None = None,
) -> VesselQuantResult:
    """Segment the lung vessels of ``ct`` (HU) and quantify them per radius (see the module docstring)."""
    start = time.perf_counter()
    p = dataclasses.replace(parameters) if parameters is not None else VesselQuantParameters()
    p.validate()
    progress = progress or no_progress
    validate_ct(ct)
    check_memory(
        ct.GetNumberOfPixels() * PEAK_BYTES_PER_VOXEL, f"VesselQuant on a {' x '.join(map(str, ct.GetSize()))} CT"
    )
    spacing_zyx = tuple(float(s) for s in ct.GetSpacing()[::-1])

    progress(0.0, "lung mask")
    # the box holds all of the lung; the volume's mask is made again from it at the end: peak memory
    box = _LungBox.of(ct, _lung(ct, lung_mask, p, subprogress(progress, 0.0, 0.1)), spacing_zyx, p)
    # after the lung mask and the vesselness: the holes their temporaries leave are too small for the volumes that
    # follow, which would grow the heap while the holes stay resident (measured: no cost in time)
    return_free_pages()
    maps = multiscale_vesselness(box.hu, spacing_zyx, box.lung, p, subprogress(progress, 0.1, 0.45))
    return_free_pages()
    label_roi, report = segment_vessels(
        box.hu, maps.vesselness, box.lung, spacing_zyx, p, subprogress(progress, 0.45, 0.7), maps=maps
    )
    del maps
    model = report.intensity_model.as_dict() if report.intensity_model is not None else None
    progress(0.7, "nodule-like blobs")
    label_roi, nodule, nodules = _take_out_nodules(label_roi, box, ct, spacing_zyx, p)
    vessels = _centreline_radius(label_roi, box, ct, spacing_zyx, model, p, subprogress(progress, 0.7, 0.95))

    progress(0.95, "quantification")
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    vessel = vessels.label.astype(bool)
    radii = vessels.radius[vessel]
    table = per_radius_table(radii, sitk.GetArrayViewFromImage(ct)[vessel], voxel_ml, p)
    total_ml = float(vessel.sum() * voxel_ml)
    lung_ml = float(np.count_nonzero(box.lung) * voxel_ml)
    alpha, beta, r2 = loglinear_fit(vessels.fit_radii, p)
    summary = {
        "total_volume_ml": total_ml,
        "lung_volume_ml": lung_ml,
        "vessel_fraction": total_ml / lung_ml if lung_ml > 0 else float("nan"),
        "small_vessel_volume_ml": small_vessel_volume_ml(radii, voxel_ml, p),
        "fit_alpha": alpha,
        "fit_beta": beta,
        "fit_r2": r2,
        "runtime_s": round(time.perf_counter() - start, 3),
        "parameters": p.to_dict(),
        "centerline_points": int(len(vessels.centerline_radii)),
        "graph_nodes": report.graph_nodes,
        "thin_vessel_growth": report.thin_vessel_growth,
        "intensity_model": model,
        "lung_mask_source": "user" if lung_mask is not None else "automatic",
        "nodule_like_count": len(nodules),
        "nodule_like_volume_ml": float(nodule.sum() * voxel_ml),
        "nodule_like": nodules,
    }
    progress(1.0, "done")
    return VesselQuantResult(
        lung_mask=image_from_array(box.in_volume(box.lung, np.uint8), ct),
        vessel_label=image_from_array(vessels.label, ct),
        vessel_radius=image_from_array(vessels.radius, ct),
        per_radius=table,
        summary=summary,
        centerline=vessels.centerline,
        nodule_label=image_from_array(nodule, ct),
    )


def _lung(
    ct: sitk.Image, lung_mask: sitk.Image | None, p: VesselQuantParameters, progress: ProgressCallback
) -> np.ndarray:
    """The lung mask (the user's, checked, or the automatic one) as a bool (z, y, x) array."""
    if lung_mask is None:
        return voxels_of(segment_lungs(ct, p, progress)).view(bool)  # 0/1 bytes read as bool: no copy of the volume
    return validate_lung_mask(lung_mask, ct)


@dataclass
class _LungBox:
    """The lung's bounding box plus the filters' reach, where everything after the lung mask works."""

    roi: tuple  # slices (z, y, x) of the full volume
    hu: np.ndarray  # float32, the one copy of the box's HU (a read-only view of its image)
    lung: np.ndarray  # bool, the lung inside the box (all of it)
    volume_shape: tuple  # (z, y, x) of the full volume

    @classmethod
    def of(cls, ct: sitk.Image, lung: np.ndarray, spacing_zyx, p: VesselQuantParameters) -> "_LungBox":
        margin = tuple(int(np.ceil(3.0 * max(p.vesselness_sigmas_mm) / s)) for s in spacing_zyx)
        roi = bounding_box(lung, margin)
        hu = sitk.Cast(
            sitk.RegionOfInterest(ct, [s.stop - s.start for s in roi[::-1]], [s.start for s in roi[::-1]]),
            sitk.sitkFloat32,
        )
        return cls(roi, voxels_of(hu), np.ascontiguousarray(lung[roi]), lung.shape)

    @property
    def start(self) -> np.ndarray:
        return np.array([s.start for s in self.roi])

    def in_volume(self, values: np.ndarray, dtype) -> np.ndarray:
        """``values`` of the box placed in a volume of zeros (``dtype``)."""
        volume = np.zeros(self.volume_shape, dtype)
        volume[self.roi] = values
        return volume


def _take_out_nodules(
    label_roi: np.ndarray, box: _LungBox, ct: sitk.Image, spacing_zyx, p: VesselQuantParameters
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Nodule-like blobs leave the vessel label: (vessel label in the box, nodule label of the volume, records)."""
    nodule_roi, nodules = find_nodule_like(
        label_roi.astype(bool), box.hu, spacing_zyx, p, shrink_factors(ct, p)[::-1], lung=box.lung
    )
    if nodule_roi.any():
        label_roi = np.where(nodule_roi, 0, label_roi).astype(label_roi.dtype)
    nodule = box.in_volume(nodule_roi, np.uint8)
    for record in nodules:
        index_zyx = np.asarray(record.pop("index_zyx")) + box.start
        record["centre_mm"] = [
            round(float(v), 2) for v in index_to_physical(ct, index_zyx[None, ::-1].astype(float))[0]
        ]
    return label_roi, nodule, nodules


@dataclass
class _Vessels:
    """The vessel label and radius map of the volume, and the centreline they were measured on."""

    label: np.ndarray  # uint8, the full volume
    radius: np.ndarray  # float32 mm, the full volume, 0 outside vessels
    centerline: pd.DataFrame  # x_mm, y_mm, z_mm, radius_mm (LPS)
    centerline_radii: np.ndarray
    fit_radii: np.ndarray  # the tube-like centreline points the log-linear fit uses


def _centreline_radius(
    label_roi: np.ndarray,
    box: _LungBox,
    ct: sitk.Image,
    spacing_zyx,
    model: dict | None,
    p: VesselQuantParameters,
    progress: ProgressCallback,
) -> _Vessels:
    """Centreline and radius of the vessels (in their own box, with the profile's reach), put back in the volume."""

    def no_vessels() -> _Vessels:  # the volume's empty maps, made once the centreline's own are gone: peak memory
        return _Vessels(
            np.zeros(box.volume_shape, np.uint8),
            np.zeros(box.volume_shape, np.float32),
            pd.DataFrame(columns=["x_mm", "y_mm", "z_mm", "radius_mm"]),
            np.zeros(0),
            np.zeros(0),
        )

    if not label_roi.any():
        return no_vessels()
    reach = max(p.vesselness_sigmas_mm) * 2 + p.profile_margin_mm + p.background_ring_mm + 2.0
    sub = bounding_box(label_roi, tuple(int(np.ceil(reach / s)) for s in spacing_zyx))
    vessel_hu = model["vessel_hu"] if model else p.vessel_hu
    background_hu = model["background_hu"] if model else None
    line, radius_sub = compute_centerline(
        box.hu[sub], label_roi[sub], spacing_zyx, vessel_hu, background_hu, p, progress
    )
    offset = np.array([box.roi[a].start + sub[a].start for a in range(3)])
    full = tuple(slice(offset[a], offset[a] + radius_sub.shape[a]) for a in range(3))
    vessels = no_vessels()
    vessels.label[full] = label_roi[sub]
    vessels.radius[full] = radius_sub
    vessels.centerline_radii = line.radius_mm
    vessels.fit_radii = line.radius_mm[line.tube_like] if line.tube_like is not None else line.radius_mm
    if len(line.points):
        physical = index_to_physical(ct, (line.points + offset)[:, ::-1].astype(float))
        vessels.centerline = pd.DataFrame(
            {"x_mm": physical[:, 0], "y_mm": physical[:, 1], "z_mm": physical[:, 2], "radius_mm": line.radius_mm}
        )
    return vessels
