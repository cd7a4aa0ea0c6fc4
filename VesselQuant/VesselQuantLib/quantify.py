"""Per-radius quantification and the LKEB summary measures.

* Per radius bin (default: 0.25 mm bins centred on multiples of 0.25 mm, or the nearest of
  the user's design radii): voxel count, volume (ml), median HU (the "MPV" of Zhai et al.)
  and inter-quartile range of HU of the CT voxels whose radius falls in the bin.
* Total vessel volume, lung volume, vessel fraction.
* LKEB log-linear fit of the radius histogram of the centreline,
  ``log(count of centreline points at radius r) = alpha * r + beta``, with R^2 (natural log),
  over the bins from the histogram's mode upwards (below it the scan's resolution, not the
  anatomy, limits the count).
* Small-vessel volume: vessel voxels whose cross-section ``pi r^2`` is below 5 mm^2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .parameters import VesselQuantParameters

PER_RADIUS_COLUMNS = ["radius_mm", "voxel_count", "volume_ml", "median_hu", "iqr_hu"]


def assign_bins(radius_mm: np.ndarray, p: VesselQuantParameters) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of each radius and the bins' radii (design radii, or multiples of the bin width)."""
    radius_mm = np.asarray(radius_mm, float)
    if p.radius_bins_mm:
        centres = np.asarray(sorted(p.radius_bins_mm), float)
        edges = 0.5 * (centres[1:] + centres[:-1])
        return np.searchsorted(edges, radius_mm), centres
    width = float(p.radius_bin_mm)
    index = np.maximum(np.rint(radius_mm / width).astype(np.int64), 1) - 1
    top = int(index.max()) + 1 if index.size else 0
    return index, width * np.arange(1, top + 1)


def per_radius_table(radius_mm: np.ndarray, hu: np.ndarray, voxel_ml: float, p: VesselQuantParameters) -> pd.DataFrame:
    """One row per radius bin from the radii and HU of the vessel voxels."""
    index, centres = assign_bins(radius_mm, p)
    rows = []
    order = np.argsort(index, kind="stable")
    sorted_index, sorted_hu = index[order], np.asarray(hu, float)[order]
    bounds = np.searchsorted(sorted_index, np.arange(len(centres) + 1))
    for k, centre in enumerate(centres):
        values = sorted_hu[bounds[k] : bounds[k + 1]]
        if values.size == 0 and not p.radius_bins_mm:
            continue
        if values.size:
            q1, med, q3 = np.percentile(values, [25, 50, 75])
        else:
            q1 = med = q3 = np.nan
        rows.append(
            {
                "radius_mm": round(float(centre), 6),
                "voxel_count": int(values.size),
                "volume_ml": round(float(values.size * voxel_ml), 6),
                "median_hu": float(med),
                "iqr_hu": float(q3 - q1),
            }
        )
    return pd.DataFrame(rows, columns=PER_RADIUS_COLUMNS)


def loglinear_fit(centerline_radius_mm: np.ndarray, p: VesselQuantParameters) -> tuple[float, float, float]:
    """(alpha, beta, R^2) of log(centreline count per radius bin) = alpha * r + beta; NaNs if < 3 bins.

    Fitted over the bins from ``fit_min_radius_mm`` (default: the most populated bin, because below it
    the count is limited by the scan's resolution, not by the anatomy) upwards, using bins with at
    least ``fit_min_count`` centreline points (log counts of a handful of points are noise).
    """
    index, centres = assign_bins(centerline_radius_mm, p)
    counts = np.bincount(index, minlength=len(centres))[: len(centres)] if index.size else np.zeros(0)
    used = counts >= max(1, p.fit_min_count)
    if counts.size:
        start = p.fit_min_radius_mm if p.fit_min_radius_mm is not None else centres[int(np.argmax(counts))]
        used &= centres >= start - 1e-9
    if used.sum() < 3:
        return float("nan"), float("nan"), float("nan")
    x, y = centres[used], np.log(counts[used])
    alpha, beta = np.polyfit(x, y, 1)
    residual = y - (alpha * x + beta)
    total = np.sum((y - y.mean()) ** 2)
    r2 = 1.0 - np.sum(residual**2) / total if total > 0 else float("nan")
    return float(alpha), float(beta), float(r2)


def small_vessel_volume_ml(radius_mm: np.ndarray, voxel_ml: float, p: VesselQuantParameters) -> float:
    """Volume of vessel voxels whose cross-section pi r^2 is below ``small_vessel_area_mm2``."""
    limit = np.sqrt(p.small_vessel_area_mm2 / np.pi)
    return float(np.count_nonzero(np.asarray(radius_mm) < limit) * voxel_ml)
