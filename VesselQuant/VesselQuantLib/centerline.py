"""Centreline and sub-voxel radius of a vessel segmentation.

1. **Skeleton** by scikit-image's 3D thinning (Lee, Kashyap & Chu 1994). That thinning
   deletes straight tubes of even voxel thickness entirely (a 2x2 or 4x4 bar, or a round
   tube of even diameter, gives an empty skeleton). Guard: every vessel voxel must lie within
   the distance-transform ball of its nearest centreline point (plus 1.5 voxels); where it does
   not, the ridge of the distance transform (its local maxima) is added as centreline.
2. **Direction** at each centreline point: principal axis of the centreline points within
   ``max(2.5 mm, 2.5 voxels)`` (in mm, so anisotropic voxels are handled).
3. **Radius.** The distance transform (in mm) is quantised and biased by up to half a voxel.
   Instead the partial-volume area of the cross-section is integrated: the HU is sampled
   (trilinear) on a disc perpendicular to the direction, converted to a vessel fraction
   ``f = (I - background) / (vessel HU - background)`` with the background the median of a
   ring just outside the disc, and ``r = sqrt(sum(f) dA / pi)``. The integral of the
   fraction is unchanged by the scanner blur and by where the segmentation put its edge,
   and noise averages out over the disc (the same idea as the partial-volume area
   estimates used for airway and vessel sizing). Samples that belong to another vessel
   (segmented, with a far-away nearest centreline point) are left out.
4. **Radius map**: every vessel voxel takes the radius of its nearest centreline point
   (Euclidean distance transform with indices, in mm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from RadiologyAICommonLib.progress import ProgressCallback, no_progress

from .parameters import VesselQuantParameters

_MAX_SAMPLES = 4_000_000


@dataclass
class Centerline:
    points: np.ndarray  # (N, 3) int voxel indices (z, y, x) in the array it was computed on
    radius_mm: np.ndarray  # (N,) sub-voxel radius (or distance-transform fallback)
    edt_radius_mm: np.ndarray  # (N,) distance-transform radius (distance to background, minus half a voxel)
    direction: np.ndarray  # (N, 3) unit vectors in (z, y, x) mm space


def skeletonize_vessels(label: np.ndarray, edt_mm: np.ndarray, spacing_zyx) -> np.ndarray:
    """3D skeleton with the even-thickness guard described in the module docstring."""
    from skimage.morphology import skeletonize

    skeleton = skeletonize(label).astype(bool)
    uncovered = _uncovered(label, skeleton, edt_mm, spacing_zyx)
    if uncovered.any():
        ridge = edt_mm >= ndi.maximum_filter(edt_mm, size=3)
        skeleton |= ridge & uncovered & label
        # a component with no ridge voxel at all (cannot happen for a non-empty one, but be safe)
        remaining = _uncovered(label, skeleton, edt_mm, spacing_zyx)
        skeleton |= remaining & (edt_mm >= ndi.maximum_filter(np.where(remaining, edt_mm, 0), size=3))
    return skeleton


def _uncovered(label, skeleton, edt_mm, spacing_zyx) -> np.ndarray:
    if not skeleton.any():
        return label.copy()
    dist, idx = nearest_skeleton(skeleton, spacing_zyx, label)
    owner_radius = edt_mm[idx[0], idx[1], idx[2]]
    return label & (dist > owner_radius + 1.5 * max(spacing_zyx))


def nearest_skeleton(skeleton: np.ndarray, spacing_zyx, where: np.ndarray):
    """Distance (mm) and indices of the nearest skeleton voxel, for the voxels in ``where``.

    Computed in z-slabs with a halo so memory stays bounded on whole-lung volumes.
    """
    shape = skeleton.shape
    dist = np.zeros(shape, np.float32)
    idx = np.zeros((3,) + shape, np.int32)
    slab = max(8, int(2_000_000 // max(1, shape[1] * shape[2])))
    halo = max(4, slab // 2)
    for z0 in range(0, shape[0], slab):
        z1 = min(shape[0], z0 + slab)
        if not where[z0:z1].any():
            continue
        a0, a1 = max(0, z0 - halo), min(shape[0], z1 + halo)
        block = skeleton[a0:a1]
        if not block.any():
            a0, a1 = 0, shape[0]
            block = skeleton
        d, i = ndi.distance_transform_edt(~block, sampling=spacing_zyx, return_indices=True)
        dist[z0:z1] = d[z0 - a0 : z1 - a0]
        idx[0, z0:z1] = i[0, z0 - a0 : z1 - a0] + a0
        idx[1:, z0:z1] = i[1:, z0 - a0 : z1 - a0]
    return dist, idx


def _offsets_within(radius_mm: float, spacing_zyx) -> np.ndarray:
    reach = [int(np.ceil(radius_mm / s)) for s in spacing_zyx]
    grid = np.stack(
        np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), axis=-1
    ).reshape(-1, 3)
    mm = grid * np.asarray(spacing_zyx)
    keep = (np.sum(mm * mm, axis=1) <= radius_mm * radius_mm) & np.any(grid != 0, axis=1)
    return grid[keep]


def centerline_directions(skeleton: np.ndarray, points: np.ndarray, spacing_zyx) -> np.ndarray:
    """Unit direction (z, y, x in mm) of the centreline at each point: principal axis of its neighbours."""
    spacing = np.asarray(spacing_zyx, float)
    radius = max(2.5, 2.5 * float(spacing.max()))
    offsets = _offsets_within(radius, spacing)
    pad = int(np.max(np.abs(offsets))) if offsets.size else 1
    padded = np.pad(skeleton, pad)
    shape = padded.shape
    flat = np.ravel_multi_index(tuple((points + pad).T), shape)
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    tensor = np.zeros((len(points), 3, 3))
    flat_skel = padded.ravel()
    for offset in offsets:
        present = flat_skel[flat + int(offset @ strides)]
        if present.any():
            mm = offset * spacing
            tensor[present] += np.outer(mm, mm)
    _, vectors = np.linalg.eigh(tensor)
    direction = vectors[:, :, 2]
    lonely = np.trace(tensor, axis1=1, axis2=2) == 0
    direction[lonely] = (1.0, 0.0, 0.0)
    return direction


def _perpendicular_basis(direction: np.ndarray):
    helper = np.where(np.abs(direction[:, :1]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]))
    u = np.cross(direction, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(direction, u)
    return u, v


def subvoxel_radius(
    hu: np.ndarray,
    label: np.ndarray,
    centerline: Centerline,
    nearest_idx: np.ndarray,
    spacing_zyx,
    vessel_hu: float,
    background_hu: float,
    parameters: VesselQuantParameters,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Partial-volume cross-section radius at each centreline point (NaN where it cannot be measured)."""
    progress = progress or no_progress
    spacing = np.asarray(spacing_zyx, float)
    step = 0.5 * float(spacing.min())
    n = len(centerline.points)
    result = np.full(n, np.nan)
    if n == 0:
        return result
    inner = centerline.edt_radius_mm + parameters.profile_margin_mm
    outer = inner + max(parameters.background_ring_mm, 2 * step)
    group_of = np.ceil(outer / step).astype(int)
    u, v = _perpendicular_basis(centerline.direction)
    centres_mm = centerline.points * spacing
    hu = np.asarray(hu, np.float32)
    label_u8 = label.astype(np.uint8)
    groups = np.unique(group_of)
    for gi, g in enumerate(groups):
        progress(gi / len(groups), "radius: cross-section areas")
        members = np.flatnonzero(group_of == g)
        reach = g * step
        a, b = np.meshgrid(np.arange(-g, g + 1) * step, np.arange(-g, g + 1) * step, indexing="ij")
        rho = np.hypot(a, b).ravel()
        keep = rho <= reach
        a, b, rho = a.ravel()[keep], b.ravel()[keep], rho[keep]
        per_chunk = max(1, _MAX_SAMPLES // a.size)
        for start in range(0, members.size, per_chunk):
            sel = members[start : start + per_chunk]
            pos_mm = (
                centres_mm[sel, None, :]
                + a[None, :, None] * u[sel, None, :]
                + b[None, :, None] * v[sel, None, :]
            )
            coords = (pos_mm / spacing).reshape(-1, 3).T
            values = ndi.map_coordinates(hu, coords, order=1, mode="nearest").reshape(len(sel), -1)
            nearest = np.rint(coords).astype(np.int64)
            for axis in range(3):
                np.clip(nearest[axis], 0, hu.shape[axis] - 1, out=nearest[axis])
            in_vessel = label_u8[nearest[0], nearest[1], nearest[2]].reshape(len(sel), -1).astype(bool)
            owner = nearest_idx[:, nearest[0], nearest[1], nearest[2]].reshape(3, len(sel), -1)
            owner_mm = np.moveaxis(owner, 0, -1) * spacing
            far = np.linalg.norm(owner_mm - centres_mm[sel, None, :], axis=2) > (1.5 * outer[sel, None] + step)
            foreign = in_vessel & far

            ring = (rho[None, :] > inner[sel, None]) & ~in_vessel
            ring_values = np.where(ring, values, np.nan)
            enough = ring.sum(axis=1) >= 8
            with np.errstate(all="ignore"):
                local_bg = np.nanmedian(ring_values, axis=1)
            local_bg = np.where(enough, local_bg, background_hu)
            contrast = vessel_hu - local_bg
            fraction = (values - local_bg[:, None]) / np.maximum(contrast, 1.0)[:, None]
            fraction[foreign] = 0.0
            disc = rho[None, :] <= inner[sel, None]
            area = np.sum(np.where(disc, fraction, 0.0), axis=1) * step * step
            radius = np.sqrt(np.maximum(area, 0.0) / np.pi)
            radius[contrast < 1.0] = np.nan
            result[sel] = radius
    progress(1.0, "radius: done")
    return result


def core_vessel_hu(hu: np.ndarray, edt_mm: np.ndarray, fallback: float | None) -> float | None:
    """Full-contrast vessel HU: median HU deep inside thick vessels, where partial volume and blur
    do not reach (at least 2 mm, else 1.5 or 1 mm, from the segmentation's edge; 50 voxels needed)."""
    for depth in (2.0, 1.5, 1.0):
        core = edt_mm >= depth
        if np.count_nonzero(core) >= 50:
            return float(np.median(hu[core]))
    return fallback


def compute_centerline(
    hu: np.ndarray,
    label: np.ndarray,
    spacing_zyx,
    vessel_hu: float | None,
    background_hu: float | None,
    parameters: VesselQuantParameters | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[Centerline, np.ndarray]:
    """Centreline with radii, and the radius map (float32 mm, 0 outside ``label``)."""
    p = parameters or VesselQuantParameters()
    progress = progress or no_progress
    spacing_zyx = tuple(float(s) for s in spacing_zyx)
    radius_map = np.zeros(label.shape, np.float32)
    empty = Centerline(np.zeros((0, 3), int), np.zeros(0), np.zeros(0), np.zeros((0, 3)))
    if not label.any():
        return empty, radius_map
    progress(0.0, "centreline: distance transform")
    edt_mm = ndi.distance_transform_edt(label, sampling=spacing_zyx).astype(np.float32)
    progress(0.1, "centreline: skeleton")
    skeleton = skeletonize_vessels(label, edt_mm, spacing_zyx)
    points = np.argwhere(skeleton)
    # distance to the nearest background voxel centre overshoots the edge by about half a voxel
    half_voxel = 0.5 * float(np.mean(spacing_zyx))
    edt_radius = np.maximum(edt_mm[tuple(points.T)] - half_voxel, 0.5 * half_voxel).astype(float)
    progress(0.3, "centreline: directions")
    direction = centerline_directions(skeleton, points, spacing_zyx)
    centerline = Centerline(points, edt_radius.copy(), edt_radius, direction)
    _, nearest_idx = nearest_skeleton(skeleton, spacing_zyx, label)
    if p.vessel_hu is None:
        vessel_hu = core_vessel_hu(hu, edt_mm, vessel_hu)
    if p.subvoxel_radius and vessel_hu is not None and background_hu is not None:
        refined = subvoxel_radius(
            hu, label, centerline, nearest_idx, spacing_zyx, vessel_hu, background_hu, p,
            progress=lambda f, m: progress(0.4 + 0.5 * f, m),
        )
        ok = np.isfinite(refined)
        centerline.radius_mm = np.where(ok, refined, edt_radius)
    progress(0.9, "centreline: radius map")
    index_of = np.full(label.shape, -1, np.int64)
    index_of[tuple(points.T)] = np.arange(len(points))
    owner = index_of[nearest_idx[0][label], nearest_idx[1][label], nearest_idx[2][label]]
    radius_map[label] = np.where(owner >= 0, centerline.radius_mm[np.maximum(owner, 0)], 0.0)
    progress(1.0, "centreline: done")
    return centerline, radius_map
