"""Accuracy measures against a phantom with known vessels (used by the tests and benchmarks).

Definitions (all restricted to the true lung region):

* **Dice** of the vessel label against the truth label (voxels at least half filled with
  vessel, plus the voxels the centreline passes through).
* **Detection**: a true centreline point is found when a segmented voxel centre lies within
  ``r + half the voxel diagonal`` of it (r = its true radius): i.e. the segmentation touches
  the voxel the vessel passes through.
* **Detection by radius**, and for vessels of radius <= 0.5 mm by position along their segment
  (fifths of its length, from the parent's end to the tip): where thin vessels are lost.
* **False-positive volume**: segmented voxels with no vessel in them and not next to one
  (outside the truth's partial-volume support dilated by one voxel), in ml.
* **Radius error**: measured radius (the radius map at the voxel nearest to the point) minus
  the true radius, at points away from junctions and other vessels, per design radius; the largest
  |median| for r >= 1 mm counts radii with at least 5 such points (a median of two points is noise).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage as ndi

_MIN_POINTS = 5


def physical_to_index(image: sitk.Image, points_mm: np.ndarray) -> np.ndarray:
    """Physical LPS points -> continuous (z, y, x) voxel indices (vectorised)."""
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    local = (np.asarray(points_mm, float) - np.asarray(image.GetOrigin(), float)) @ direction
    return (local / np.asarray(image.GetSpacing(), float))[:, ::-1]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 1.0


def detected(segmentation: np.ndarray, index_zyx: np.ndarray, radius_mm: np.ndarray, spacing_zyx) -> np.ndarray:
    """Which points have a segmented voxel centre within ``r + half voxel diagonal`` (see module docstring)."""
    spacing = np.asarray(spacing_zyx, float)
    half_diag = 0.5 * float(np.linalg.norm(spacing))
    found = np.zeros(len(index_zyx), bool)
    base = np.floor(index_zyx).astype(int)
    reach = 2
    rng_ = np.arange(-reach + 1, reach + 1)
    offsets = np.stack(np.meshgrid(rng_, rng_, rng_, indexing="ij"), -1).reshape(-1, 3)
    shape = np.asarray(segmentation.shape)
    for off in offsets:
        vox = base + off
        inside = np.all((vox >= 0) & (vox < shape), axis=1)
        dist = np.linalg.norm((vox - index_zyx) * spacing, axis=1)
        hit = np.zeros(len(vox), bool)
        hit[inside] = segmentation[tuple(vox[inside].T)]
        found |= hit & (dist <= radius_mm + half_diag)
    return found


def evaluate(result, phantom, name: str = "VesselQuant") -> dict:
    """All measures for a :class:`VesselQuantResult`-like object (``vessel_label``, ``vessel_radius``)."""
    label = sitk.GetArrayFromImage(result.vessel_label).astype(bool)
    radius_map = sitk.GetArrayFromImage(result.vessel_radius) if result.vessel_radius is not None else None
    return evaluate_arrays(label, radius_map, phantom, name)


def evaluate_arrays(label: np.ndarray, radius_map: np.ndarray | None, phantom, name: str = "method") -> dict:
    lung = sitk.GetArrayFromImage(phantom.lung_mask).astype(bool)
    truth = sitk.GetArrayFromImage(phantom.truth_label).astype(bool) & lung
    fraction = sitk.GetArrayFromImage(phantom.vessel_fraction)
    seg = label & lung
    spacing_zyx = phantom.image.GetSpacing()[::-1]
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    support = ndi.binary_dilation((fraction > 0) | truth, structure=np.ones((3, 3, 3), bool))
    index = physical_to_index(phantom.image, phantom.points_mm)
    radius = phantom.point_radius_mm
    found = detected(seg, index, radius, spacing_zyx)
    out = {
        "method": name,
        "dice": dice(seg, truth),
        "detected_r_ge_0.75": float(found[radius >= 0.75 - 1e-9].mean()),
        "detected_r_le_0.5": float(found[radius <= 0.5 + 1e-9].mean()),
        "false_positive_ml": float((seg & ~support).sum() * voxel_ml),
        "segmented_ml": float(seg.sum() * voxel_ml),
        "truth_ml": float(truth.sum() * voxel_ml),
        "detection_by_radius": pd.DataFrame({"true_radius_mm": radius, "found": found})
        .groupby("true_radius_mm")["found"]
        .agg(["mean", "count"])
        .rename(columns={"mean": "found", "count": "points"}),
        "thin_detection_along_segment": _detection_along_segment(found, phantom, radius <= 0.5 + 1e-9),
    }
    if radius_map is not None:
        nearest = np.rint(index).astype(int)
        for a in range(3):
            nearest[:, a] = np.clip(nearest[:, a], 0, label.shape[a] - 1)
        measured = radius_map[tuple(nearest.T)]
        table = _radius_errors(measured, radius, phantom.point_isolated)
        out["radius_errors"] = table
        out["max_abs_median_radius_error_r_ge_1"] = _worst_median_r_ge_1(table)
        near_junction = getattr(phantom, "point_near_junction", None)
        if near_junction is not None:  # phantoms that mark them (Testing/benchmarks/branching_phantom.py)
            table = _radius_errors(measured, radius, near_junction)
            out["radius_errors_near_junction"] = table
            out["max_abs_median_radius_error_r_ge_1_near_junction"] = _worst_median_r_ge_1(table)
    return out


def _radius_errors(measured: np.ndarray, radius: np.ndarray, points: np.ndarray) -> pd.DataFrame:
    """Median measured - true radius per design radius over the chosen centreline points that were found."""
    usable = points & (measured > 0)
    return (
        pd.DataFrame({"true_radius_mm": radius[usable], "error_mm": measured[usable] - radius[usable]})
        .groupby("true_radius_mm")["error_mm"]
        .agg(["median", "count"])
        .rename(columns={"median": "median_error_mm", "count": "points"})
    )


def _worst_median_r_ge_1(table: pd.DataFrame) -> float:
    big = table.loc[(table.index >= 1.0 - 1e-9) & (table["points"] >= _MIN_POINTS), "median_error_mm"]
    return float(big.abs().max()) if len(big) else float("nan")


def _detection_along_segment(found: np.ndarray, phantom, selected: np.ndarray, parts: int = 5) -> np.ndarray:
    """Share of the selected points found in each of ``parts`` equal stretches of their segment (start to end)."""
    part = np.clip((phantom.point_position[selected] * parts).astype(int), 0, parts - 1)
    hits = np.bincount(part, weights=found[selected], minlength=parts)
    counts = np.bincount(part, minlength=parts)
    return hits / np.maximum(counts, 1)


def simpleitk_objectness(image: sitk.Image, sigmas_mm=(0.5, 1.0, 2.0, 3.0)) -> sitk.Image:
    """The hand-made alternative: multi-scale SimpleITK ObjectnessMeasure (Frangi), max over scales.

    For each sigma (mm): recursive Gaussian smoothing, then ``ObjectnessMeasure`` (bright tubes,
    scale-normalised), maximum over the scales. Also the speed baseline of the benchmarks.
    """
    source = sitk.Cast(image, sitk.sitkFloat32)
    best = None
    for sigma in sigmas_mm:
        response = sitk.ObjectnessMeasure(
            sitk.SmoothingRecursiveGaussian(source, float(sigma)), objectDimension=1, brightObject=True
        )
        best = response if best is None else sitk.Maximum(best, response)
    return best


def frangi_oracle(phantom, sigmas_mm=(0.5, 1.0, 2.0, 3.0), steps: int = 200) -> dict:
    """Multi-scale Frangi given every advantage: the true lung mask and the threshold that maximises its
    Dice against the truth (searched over ``steps`` quantiles of the response inside the lung)."""
    response = sitk.GetArrayFromImage(simpleitk_objectness(phantom.image, sigmas_mm))
    lung = sitk.GetArrayFromImage(phantom.lung_mask).astype(bool)
    truth = sitk.GetArrayFromImage(phantom.truth_label).astype(bool) & lung
    values = response[lung]
    positive = values[values > 0]
    if positive.size == 0:
        return evaluate_arrays(np.zeros_like(lung), None, phantom, "Frangi (oracle threshold)")
    # the best threshold keeps about as many voxels as the truth: search quantiles around that
    fraction = truth.sum() / max(lung.sum(), 1)
    qs = np.unique(np.clip(np.linspace(1 - 4 * fraction, 1 - 0.25 * fraction, steps), 0, 1))
    candidates = np.unique(np.quantile(values, qs))
    truth_in_lung = truth[lung]
    best_t, best_d = candidates[0], -1.0
    for t in candidates:
        seg = values > t
        d = dice(seg, truth_in_lung)
        if d > best_d:
            best_t, best_d = t, d
    label = (response > best_t) & lung
    out = evaluate_arrays(label, None, phantom, "Frangi (oracle threshold)")
    out["threshold"] = float(best_t)
    return out
