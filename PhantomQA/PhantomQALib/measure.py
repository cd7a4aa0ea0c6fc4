"""Per-design-radius measurements of one acquisition, from the vessel tool's output.

For each design radius r (the phantom's known truth):

- **MPV** (median pixel value, HU) and **IQR** (75th - 25th percentile, HU) of the CT values
  of the found vessel voxels in the *lumen core* of the design vessels of radius r: voxels
  whose centre lies within ``max(r - core_margin_mm, half the largest voxel size)`` of the
  vessel's design centreline. The core keeps the wall's partial-volume and blur transition
  (1100 HU from air to vessel) out of the statistics, so the IQR measures what the dose and
  the reconstruction do to the vessel's CT numbers, as in the seed study; for vessels
  thinner than a voxel it is the centreline voxels. ``mpv_all_hu`` / ``iqr_all_hu`` give the
  same statistics over every found voxel of the vessel (core and wall) for reference.
- **detected volume** of the found voxels that belong to a design vessel of radius r. A
  found voxel belongs to the design vessel that owns it on the scan grid (partial volume
  included), or, when it lies just outside every design vessel, to the nearest one within
  ``attribution_margin_mm`` (blur widens vessels); farther voxels are false positives;
- **detection rate**: fraction of the design centreline samples of radius r that have a
  found voxel (centre) within max(r, half a voxel diagonal);
- **radius error**: mean (tool radius - design radius) over the detected centreline
  samples; the tool radius is its radius map at the found voxel nearest the sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from .rasterize import GridDesign, continuous_index, physical_points

PER_RADIUS_COLUMNS = [
    "radius_mm",
    "mpv_hu",
    "iqr_hu",
    "n_voxels",
    "mpv_all_hu",
    "iqr_all_hu",
    "detected_volume_ml",
    "design_volume_ml",
    "detection_rate",
    "radius_err_mm",
    "n_centreline_points",
]


@dataclass
class MeasureParameters:
    attribution_margin_mm: float | None = None  # default: the largest voxel dimension
    core_margin_mm: float = 1.0  # lumen core = within (radius - this) of the centreline
    min_voxels: int = 5  # fewer found voxels than this -> MPV / IQR reported as NaN


def _median_iqr(values: np.ndarray, min_voxels: int) -> tuple[float, float]:
    if values.size < max(min_voxels, 1):
        return float("nan"), float("nan")
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return float(q50), float(q75 - q25)


def _crop_box(mask: np.ndarray, pad: int = 3):
    idx = np.argwhere(mask)
    if idx.size == 0:
        return None
    lo = np.maximum(idx.min(0) - pad, 0)
    hi = np.minimum(idx.max(0) + pad + 1, mask.shape)
    return tuple(slice(a, b) for a, b in zip(lo, hi))


def measure_per_radius(
    ct: np.ndarray,
    grid: GridDesign,
    vessel_label: np.ndarray,
    vessel_radius: np.ndarray | None,
    parameters: MeasureParameters | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Per-radius table (PER_RADIUS_COLUMNS) and a summary dict for one acquisition."""
    p = parameters or MeasureParameters()
    spacing_zyx = np.array(grid.reference.GetSpacing()[::-1], float)
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    margin = p.attribution_margin_mm if p.attribution_margin_mm is not None else float(spacing_zyx.max())
    found = np.asarray(vessel_label) > 0
    ct = np.asarray(ct)
    radii = grid.design_radii_mm

    # Attribution of found voxels to design radii: owned voxels keep their vessel's radius;
    # found voxels just outside every vessel take the (largest) radius owned within the margin.
    owned = grid.radius > 0
    attributed = grid.radius.copy()
    box = _crop_box(owned | found, pad=int(np.ceil(margin / spacing_zyx.min())) + 1)
    if box is not None:
        reach = np.ceil(margin / spacing_zyx).astype(int)
        zz, yy, xx = np.meshgrid(*[np.arange(-n, n + 1) for n in reach], indexing="ij")
        ball = (zz * spacing_zyx[0]) ** 2 + (yy * spacing_zyx[1]) ** 2 + (xx * spacing_zyx[2]) ** 2 <= margin**2 + 1e-9
        near = ndimage.grey_dilation(grid.radius[box], footprint=ball)
        attributed[box] = np.where(owned[box], grid.radius[box], near)
    rows = []
    # Detection: distance from each centreline sample to the nearest found voxel (k-d tree).
    centres = grid.centrelines
    kji = np.rint(continuous_index(grid.reference, centres[:, :3])).astype(int)
    inside_grid = np.all((kji >= 0) & (kji < np.array(ct.shape)), axis=1)
    point_distance = np.full(len(centres), np.inf)
    point_tool_radius = np.full(len(centres), np.nan)
    if found.any() and len(centres):
        from scipy.spatial import cKDTree

        found_kji = np.argwhere(found)
        tree = cKDTree(physical_points(grid.reference, found_kji))
        distance, index = tree.query(centres[:, :3], k=1, distance_upper_bound=max(float(centres[:, 3].max()), 5.0))
        hit = np.isfinite(distance)
        point_distance[hit] = distance[hit]
        if vessel_radius is not None:
            point_tool_radius[hit] = np.asarray(vessel_radius)[tuple(found_kji[index[hit]].T)]
    half_diag = 0.5 * float(np.linalg.norm(spacing_zyx))
    axis_distance = grid.axis_distance if grid.axis_distance is not None else np.zeros(ct.shape, np.float32)
    core_floor = 0.5 * float(spacing_zyx.max())
    for r in radii:
        in_r = np.isclose(attributed, r, atol=1e-3) & found
        core = found & np.isclose(grid.radius, r, atol=1e-3) & (axis_distance <= max(r - p.core_margin_mm, core_floor))
        values = ct[core].astype(float)
        all_values = ct[in_r].astype(float)
        design_volume = float(grid.occupancy[np.isclose(grid.radius, r, atol=1e-3)].sum() * voxel_ml)
        points = np.isclose(centres[:, 3], r, atol=1e-3) & inside_grid
        detected = points & (point_distance <= max(r, half_diag))
        mpv, iqr = _median_iqr(values, p.min_voxels)
        mpv_all, iqr_all = _median_iqr(all_values, p.min_voxels)
        tool_r = point_tool_radius[detected]
        tool_r = tool_r[np.isfinite(tool_r) & (tool_r > 0)]
        rows.append(
            {
                "radius_mm": r,
                "mpv_hu": mpv,
                "iqr_hu": iqr,
                "n_voxels": int(values.size),
                "mpv_all_hu": mpv_all,
                "iqr_all_hu": iqr_all,
                "detected_volume_ml": all_values.size * voxel_ml,
                "design_volume_ml": design_volume,
                "detection_rate": float(detected.sum() / points.sum()) if points.any() else float("nan"),
                "radius_err_mm": float(np.mean(tool_r - r)) if tool_r.size else float("nan"),
                "n_centreline_points": int(points.sum()),
            }
        )
    table = pd.DataFrame(rows, columns=PER_RADIUS_COLUMNS)
    attributed_found = (attributed > 0) & found
    summary = {
        "detected_volume_ml": float(found.sum() * voxel_ml),
        "true_positive_volume_ml": float(attributed_found.sum() * voxel_ml),
        "false_positive_volume_ml": float((found & ~(attributed > 0)).sum() * voxel_ml),
        "design_volume_ml": float(grid.occupancy.sum() * voxel_ml),
        "detection_rate": float(np.mean(point_distance[inside_grid] <= np.maximum(centres[inside_grid, 3], half_diag)))
        if inside_grid.any()
        else float("nan"),
    }
    return table, summary
