"""Centreline and sub-voxel radius of a vessel segmentation.

1. **Skeleton** by scikit-image's 3D thinning (Lee, Kashyap & Chu 1994). That thinning
   deletes straight tubes of even voxel thickness entirely (a 2x2 or 4x4 bar, or a round
   tube of even diameter, gives an empty skeleton). Guard: every vessel voxel must lie within
   the distance-transform ball of its nearest centreline point (plus 1.5 voxels); where it does
   not, the ridge of the distance transform (its local maxima) is added as centreline.
2. **Direction** at each centreline point: principal axis of the centreline points within
   ``max(2.5 mm, one voxel in every direction)`` (in mm, so anisotropic voxels are handled).
   Where that neighbourhood is flat (second eigenvalue > half the first) the "centreline" is
   the medial surface of a plate (e.g. the partial-volume dome of the diaphragm in thick
   slices); such points keep a radius but are left out of the log-linear fit.
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
   (nearest neighbour in mm, by k-d tree over the vessel voxels only: vessels fill a few per cent
   of the lung box, so sparse queries are far cheaper than a dense distance transform).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from RadiologyAICommonLib.imageio import voxels_of
from RadiologyAICommonLib.progress import ProgressCallback, no_progress

from .parameters import VesselQuantParameters

PLATE_PLANARITY = 0.5  # centreline neighbourhoods flatter than this are plates (left out of the LKEB fit)


@dataclass
class Centerline:
    points: np.ndarray  # (N, 3) int voxel indices (z, y, x) in the array it was computed on
    radius_mm: np.ndarray  # (N,) sub-voxel radius (or distance-transform fallback)
    edt_radius_mm: np.ndarray  # (N,) distance-transform radius (distance to background, minus half a voxel)
    direction: np.ndarray  # (N, 3) unit vectors in (z, y, x) mm space
    tube_like: np.ndarray | None = None  # (N,) bool: the centreline is a curve here, not a plate's medial surface


def vessel_edt(label: np.ndarray, vessel_voxels: np.ndarray, spacing_zyx) -> np.ndarray:
    """Distance (mm) from each vessel voxel to the nearest background voxel centre.

    Sparse: the nearest background voxel always has a vessel voxel among its 26 neighbours, so a
    k-d tree of that thin shell replaces a distance transform of the whole (mostly empty) lung box.
    """
    spacing = np.asarray(spacing_zyx, float)
    if len(vessel_voxels) == 0:
        return np.zeros(0)
    shell_points = _shell(label, vessel_voxels)
    if len(shell_points) == 0:  # the vessel fills the whole box
        shell_points = np.array([[-1, -1, -1]])
    tree = cKDTree(shell_points * spacing)
    distance, _ = tree.query(vessel_voxels * spacing, workers=-1)
    return distance


# The offsets of a voxel's 26 neighbours, (26, 3).
_NEIGHBOURS_26 = np.array([offset for offset in np.ndindex(3, 3, 3) if offset != (1, 1, 1)]) - 1


def _shell(label: np.ndarray, vessel_voxels: np.ndarray) -> np.ndarray:
    """The background voxels among the 26 neighbours of the vessel voxels, (n, 3) in C order: the label's one-voxel
    dilation less the label, found from the vessel voxels alone (dilating a large lung's whole box took 2.8 s for
    0.1 M vessel voxels)."""
    shape = np.array(label.shape)
    found = []
    for offset in _NEIGHBOURS_26:
        near = vessel_voxels + offset
        near = near[np.all((near >= 0) & (near < shape), axis=1)]
        near = near[label[tuple(near.T)] == 0]
        found.append(np.ravel_multi_index(tuple(near.T), label.shape))
    return np.stack(np.unravel_index(np.unique(np.concatenate(found)), label.shape), 1)


def _ridge(points: np.ndarray, edt_map: np.ndarray) -> np.ndarray:
    """Which of ``points`` are local maxima (>=) of the distance map among their 26 neighbours (0 beyond the map's
    faces); read at the points' neighbours only (a padded copy of a large lung's map took 2 s)."""
    shape = np.array(edt_map.shape)
    values = edt_map[tuple(points.T)]
    keep = np.ones(len(points), bool)
    for offset in _NEIGHBOURS_26:
        near = points + offset
        inside = np.all((near >= 0) & (near < shape), axis=1)
        neighbour = np.zeros(len(points), edt_map.dtype)
        neighbour[inside] = edt_map[tuple(near[inside].T)]
        keep &= values >= neighbour
    return keep


def skeletonize_vessels(label: np.ndarray, edt_map: np.ndarray, spacing_zyx, voxels: np.ndarray | None = None):
    """3D skeleton (bool) with the even-thickness guard described in the module docstring.

    ``edt_map`` is the distance (mm) to the background at vessel voxels (0 elsewhere); ``voxels``, when given, is
    ``np.argwhere(label)`` (a scan of the whole box fewer).
    """
    skeleton = _skeleton_per_piece(label)
    voxels = np.argwhere(label) if voxels is None else voxels
    uncovered = _uncovered(voxels, skeleton, edt_map, spacing_zyx)
    if uncovered.any():
        candidates = voxels[uncovered]
        ridge = candidates[_ridge(candidates, edt_map)]
        skeleton[tuple(ridge.T)] = True
    return skeleton


def _skeleton_per_piece(label: np.ndarray) -> np.ndarray:
    """scikit-image's thinning of each 26-connected piece in its own box (plus one voxel), which is the thinning of
    the whole: a voxel's deletion reads only its 26 neighbours, and the passes over the box each take a few seconds on
    a whole-lung box holding a few per cent of vessel (a noisy 36 l lung: 2.1 -> 0.5 s, the same skeleton)."""
    from skimage.morphology import skeletonize

    skeleton = np.zeros(label.shape, bool)
    image = sitk.GetImageFromArray(label.astype(np.uint8, copy=False))
    pieces = voxels_of(sitk.ConnectedComponent(image, True))
    for number, where in enumerate(ndi.find_objects(pieces), start=1):
        window = tuple(slice(max(w.start - 1, 0), w.stop + 1) for w in where)
        skeleton[window] |= skeletonize(pieces[window] == number).astype(bool)
    return skeleton


def _uncovered(voxels: np.ndarray, skeleton: np.ndarray, edt_map: np.ndarray, spacing_zyx) -> np.ndarray:
    """Vessel voxels farther from every centreline point than that point's radius + 1.5 voxels."""
    points = np.argwhere(skeleton)
    if len(points) == 0:
        return np.ones(len(voxels), bool)
    distance, owner = nearest_centerline(points, voxels, spacing_zyx)
    owner_radius = edt_map[tuple(points[owner].T)]
    return distance > owner_radius + 1.5 * max(spacing_zyx)


def nearest_centerline(points: np.ndarray, voxels: np.ndarray, spacing_zyx):
    """Distance (mm) and index of the nearest centreline point for each voxel (k-d tree, all cores)."""
    spacing = np.asarray(spacing_zyx, float)
    tree = cKDTree(points * spacing)
    distance, owner = tree.query(voxels * spacing, workers=-1)
    return distance, owner.astype(np.int64)


def _offsets_within(radius_mm: float, spacing_zyx) -> np.ndarray:
    reach = [int(np.ceil(radius_mm / s)) for s in spacing_zyx]
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), axis=-1).reshape(-1, 3)
    mm = grid * np.asarray(spacing_zyx)
    keep = (np.sum(mm * mm, axis=1) <= radius_mm * radius_mm) & np.any(grid != 0, axis=1)
    return grid[keep]


def centerline_directions(skeleton: np.ndarray, points: np.ndarray, spacing_zyx) -> tuple[np.ndarray, np.ndarray]:
    """Unit direction (z, y, x in mm) of the centreline at each point (principal axis of its neighbours
    within max(2.5 mm, one voxel in every direction)), and the planarity of that neighbourhood
    (second / first eigenvalue: near 0 on a curve, large on the medial surface of a plate)."""
    spacing = np.asarray(spacing_zyx, float)
    radius = max(2.5, 1.01 * float(spacing.max()))
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
    values, vectors = np.linalg.eigh(tensor)
    direction = vectors[:, :, 2]
    lonely = np.trace(tensor, axis1=1, axis2=2) == 0
    direction[lonely] = (1.0, 0.0, 0.0)
    planarity = np.where(values[:, 2] > 0, values[:, 1] / np.maximum(values[:, 2], 1e-12), 0.0)
    return direction, planarity


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
    owner_map: np.ndarray,
    spacing_zyx,
    vessel_hu: float,
    background_hu: float,
    parameters: VesselQuantParameters,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Partial-volume cross-section radius at each centreline point (NaN where it cannot be measured): step 3 of
    the module docstring, one compiled loop over the points (:func:`VesselQuantLib.kernels.cross_section_radius`)."""
    from .kernels import cross_section_radius

    progress = progress or no_progress
    spacing = np.asarray(spacing_zyx, float)
    step = 0.6 * float(spacing.min())
    if len(centerline.points) == 0:
        return np.full(0, np.nan)
    progress(0.0, "radius: cross-section areas")
    inner = centerline.edt_radius_mm + parameters.profile_margin_mm
    outer = inner + max(parameters.background_ring_mm, 2 * step)
    u, v = _perpendicular_basis(centerline.direction)
    result = cross_section_radius(
        np.asarray(hu, np.float32),
        label.astype(np.uint8, copy=False),
        owner_map,
        centerline.points * spacing,
        u,
        v,
        spacing,
        inner,
        outer,
        step,
        float(vessel_hu),
        float(background_hu),
    )
    progress(1.0, "radius: done")
    return result


def core_vessel_hu(hu: np.ndarray, edt_mm: np.ndarray, label: np.ndarray, fallback: float | None) -> float | None:
    """Full-contrast vessel HU: median HU deep inside thick vessels, where partial volume and blur
    do not reach (at least 2 mm, else 1.5 or 1 mm, from the segmentation's edge; 50 voxels needed)."""
    for depth in (2.0, 1.5, 1.0):
        core = label & (edt_mm >= depth)
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
    empty = Centerline(np.zeros((0, 3), int), np.zeros(0), np.zeros(0), np.zeros((0, 3)), np.zeros(0, bool))
    if not label.any():
        return empty, np.zeros(label.shape, np.float32)
    progress(0.0, "centreline: distance to background")
    voxels = np.argwhere(label)
    edt_map = np.zeros(label.shape, np.float32)
    edt_map[tuple(voxels.T)] = vessel_edt(label, voxels, spacing_zyx)
    progress(0.1, "centreline: skeleton")
    skeleton = skeletonize_vessels(label, edt_map, spacing_zyx, voxels)
    points = np.argwhere(skeleton)
    # distance to the nearest background voxel centre overshoots the edge by about half a voxel
    half_voxel = 0.5 * float(np.mean(spacing_zyx))
    edt_radius = np.maximum(edt_map[tuple(points.T)] - half_voxel, 0.5 * half_voxel).astype(float)
    progress(0.3, "centreline: directions")
    direction, planarity = centerline_directions(skeleton, points, spacing_zyx)
    centerline = Centerline(points, edt_radius.copy(), edt_radius, direction, planarity < PLATE_PLANARITY)
    _, owner = nearest_centerline(points, voxels, spacing_zyx)
    # read only at vessel voxels, all of which are set here: left unset elsewhere (filling a whole-box int32 map
    # took 1 s on a 36 l lung)
    owner_map = np.empty(label.shape, np.int32)
    owner_map[tuple(voxels.T)] = owner
    if p.vessel_hu is None:
        vessel_hu = core_vessel_hu(hu, edt_map, label, vessel_hu)
    if p.subvoxel_radius and vessel_hu is not None and background_hu is not None:
        refined = subvoxel_radius(
            hu,
            label,
            centerline,
            owner_map,
            spacing_zyx,
            vessel_hu,
            background_hu,
            p,
            progress=lambda f, m: progress(0.4 + 0.5 * f, m),
        )
        # keep the partial-volume estimate where it is plausible for the segmented width
        plausible = (
            np.isfinite(refined) & (refined >= 0.4 * edt_radius) & (refined <= 2.0 * edt_radius + max(spacing_zyx))
        )
        centerline.radius_mm = np.where(plausible, refined, edt_radius)
    progress(0.9, "centreline: radius map")
    del edt_map, owner_map, skeleton  # before the map is made: peak memory
    radius_map = np.zeros(label.shape, np.float32)
    radius_map[tuple(voxels.T)] = centerline.radius_mm[owner]
    progress(1.0, "centreline: done")
    return centerline, radius_map
