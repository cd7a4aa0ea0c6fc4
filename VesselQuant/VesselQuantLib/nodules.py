"""Nodule-like blobs in the vessel segmentation: compact, ball-shaped, and thicker than the tube they hang on.

A solid nodule has vessel-like HU and is as bright as a vessel, so the graph cut takes it. It is
told apart by shape, at several scales R (``nodule_scales_mm``):

1. a morphological opening of the segmentation with a ball of radius R (two distance maps:
   erosion where the inside distance exceeds R, then everything within R of that core) removes
   every tube thinner than R and keeps what is at least that thick;
2. a piece of what is left is *compact* when its volume is at most ``nodule_max_compactness``
   times that of its largest inscribed ball (a sphere: about 1; a tube piece as long as it is
   wide: 1.5; longer: more);
3. and *ball-shaped* when, at its centre, the Hessian of the CT at the scale of its inscribed radius
   (sigma = r / sqrt(3), the scale at which a ball of radius r responds most) curves alike in
   every direction: |l1| / |l3| >= ``nodule_min_blobness`` (a ball: 1; a tube: 0; a bulge at a
   thick vessel's branching point: about 0.3-0.5).

Large scales come first: they cut a large nodule free of the thick vessel it hangs on (at a small
scale the two would be one piece, compact enough to pass); small scales then find a small nodule on a
thin vessel (the vessel is opened away). What is found is reported (count, volume, centre and radius of
each) and left out of the vessels, never silently dropped.
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from RadiologyAICommonLib.imageio import voxels_of

from .parameters import VesselQuantParameters


def distance_outside(mask, spacing_zyx) -> sitk.Image:
    """Euclidean distance (mm, float32) from each voxel outside ``mask`` (a bool array, or a 0/1 image of the same
    grid) to the nearest voxel of it; <= 0 inside.

    SimpleITK's Maurer transform: multi-threaded and float32, 4-7x faster than scipy's; outside the object it equals
    the exact distance to the nearest object voxel (to float32 rounding, 1e-5 mm: tests on it allow ``TIE_MM``).
    The map stays an image (its array can be read as a view): no float copy of a large box.
    """
    if isinstance(mask, np.ndarray):
        mask = sitk.GetImageFromArray(mask.view(np.uint8))
        mask.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    return sitk.SignedMaurerDistanceMap(mask, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)


def _distance_inside(mask: np.ndarray, spacing_zyx) -> np.ndarray:
    """Distance (mm) from each voxel of ``mask`` to its surface (half a voxel short of the nearest outside voxel);
    0 outside it."""
    if mask.all():  # no outside voxel to measure from: scipy's convention (the distance to the array's far corner)
        return ndi.distance_transform_edt(mask, sampling=spacing_zyx).astype(np.float32) - 0.5 * min(spacing_zyx)
    distance = voxels_of(distance_outside(~mask, spacing_zyx))
    return np.where(mask, distance - np.float32(0.5 * min(spacing_zyx)), np.float32(0.0))


def _blobness(
    hu: np.ndarray, centre, radius_mm: float, spacing_zyx, lung: np.ndarray | None = None, beside=None
) -> float:
    """|l1| / |l3| of the Hessian at ``centre`` at scale r / sqrt(3) (computed on a patch around it; ``centre`` may
    lie between voxels, where the Hessian is interpolated linearly).

    With ``lung``, what lies outside it counts as parenchyma (the median HU of the patch's lung): a
    juxta-pleural nodule is then judged by its own shape, not by the chest wall it sits on (a ball beside a
    flat wall makes the Hessian plate-like). ``beside`` (a function of the patch's window giving a bool mask of it)
    marks more voxels to see as parenchyma: the thick vessel a nodule touches.
    0 when the scale is under half the thickest voxel side: the second derivatives are then undersampled along it,
    and in 5 mm slices the junctions of vessels crossing them look like balls.
    """
    sigma_mm = radius_mm / math.sqrt(3.0)
    if sigma_mm < 0.5 * max(spacing_zyx):
        return 0.0
    sigma = np.asarray([sigma_mm / s for s in spacing_zyx])
    half = np.ceil(4 * sigma).astype(int) + 1
    centre = np.asarray(centre, float)
    lo = np.maximum(np.rint(centre).astype(int) - half, 0)
    hi = np.minimum(np.rint(centre).astype(int) + half + 1, hu.shape)
    window = tuple(slice(a, b) for a, b in zip(lo, hi))
    patch = hu[window].astype(np.float64)
    if lung is not None or beside is not None:
        inside = np.ones(patch.shape, bool) if lung is None else lung[window]
        if beside is not None:
            inside = inside & ~beside(window)
        if inside.any() and not inside.all():
            patch[~inside] = float(np.median(patch[inside]))
    at = (centre - lo).reshape(3, 1)
    hessian = np.zeros((3, 3))
    for i in range(3):
        for j in range(i, 3):
            order = [0, 0, 0]
            order[i] += 1
            order[j] += 1
            field = ndi.gaussian_filter(patch, sigma, order=order, mode="nearest")
            value = ndi.map_coordinates(field, at, order=1, mode="nearest")[0]
            hessian[i, j] = hessian[j, i] = value / (spacing_zyx[i] * spacing_zyx[j])
    eigen = np.sort(np.abs(np.linalg.eigvalsh(hessian)))
    return float(eigen[0] / eigen[2]) if eigen[2] > 0 else 0.0


# Distances within this of each other are ties: the distance maps are float32 (rounding 1e-5 mm), and on a voxel grid
# distances equal to a test's limit are common (a ball centred between two slices has two deepest voxels; a depth of
# 3 voxels meets a 2.5 mm limit on 1 mm slices less half a voxel): rounding must not decide a test.
TIE_MM = 1e-3


def _deepest_point(depth: np.ndarray) -> np.ndarray:
    """The centre of a piece for its shape test: the mean index of its deepest voxels (ties within ``TIE_MM``), so
    that which of two equally deep voxels ``argmax`` picks by rounding cannot decide whether a blob is ball-shaped."""
    return np.argwhere(depth >= depth.max() - TIE_MM).mean(axis=0)


def _ball_mm3(radius_mm: float) -> float:
    return 4.0 / 3.0 * math.pi * radius_mm**3


def _compact(volume_mm3: float, inscribed_radius_mm: float, p: VesselQuantParameters) -> bool:
    """At most ``nodule_max_compactness`` times the volume of the inscribed ball (step 2 of the module docstring)."""
    return volume_mm3 <= p.nodule_max_compactness * _ball_mm3(inscribed_radius_mm)


def min_nodule_voxels(spacing_zyx, p: VesselQuantParameters) -> int:
    """The fewest voxels a nodule-like piece holds: those of the smallest ball of ``nodule_scales_mm``."""
    return math.ceil(_ball_mm3(min(p.nodule_scales_mm)) / float(np.prod(spacing_zyx)))


def is_nodule_shaped(
    piece: np.ndarray, hu: np.ndarray, offset_zyx, spacing_zyx, p: VesselQuantParameters, max_radius_mm: float
) -> bool:
    """Whether an isolated ``piece`` (bool, its own box, placed at ``offset_zyx`` in ``hu``) passes this module's
    shape tests: at least as thick as the smallest ball, at most ``max_radius_mm`` thick, compact, and ball-shaped
    in the CT (the lung mask's test for juxta-pleural nodules)."""
    voxels = int(piece.sum())
    volume_mm3 = voxels * float(np.prod(spacing_zyx))
    smallest = min(p.nodule_scales_mm)
    # first the tests without a distance map: too small for the smallest ball, or too large to be compact about
    # even the thickest ball allowed (the plates along the mediastinum and the diaphragm)
    if voxels < min_nodule_voxels(spacing_zyx, p) or not _compact(volume_mm3, max_radius_mm, p):
        return False
    inside = _distance_inside(np.pad(piece, 1), spacing_zyx)[1:-1, 1:-1, 1:-1]
    r_in = float(inside.max())
    if not smallest - TIE_MM <= r_in <= max_radius_mm + TIE_MM:
        return False
    if not _compact(volume_mm3, r_in, p):
        return False
    centre = _deepest_point(inside) + np.asarray(offset_zyx)
    return _blobness(hu, centre, r_in, spacing_zyx) >= p.nodule_min_blobness


def find_nodule_like(
    label: np.ndarray,
    hu: np.ndarray,
    spacing_zyx,
    p: VesselQuantParameters,
    shrink_zyx=(1, 1, 1),
    lung: np.ndarray | None = None,
    _hu_factors=(1, 1, 1),
) -> tuple[np.ndarray, list[dict]]:
    """The nodule-like voxels of a vessel ``label`` (bool array) and one record per blob: its centre (voxel index,
    z y x), its radius (of the ball of the same volume) and its volume.

    Only the neighbourhoods of structures thick enough to hold the smallest ball are examined: a
    minimum filter with the cube inscribed in that ball finds them cheaply, and the distance maps are
    computed in a box around each (a chest CT's vessels are sparse; one map of the whole lung took 10 s).
    ``shrink_zyx`` bins the search (a large, fine CT: 2 x 2 in-plane, as the lung mask): a 2.5 mm ball is
    still several binned voxels wide, and the blobs found are mapped back onto the segmentation.
    ``lung`` (bool, on the grid of ``hu``): the lung mask, outside which the shape test sees parenchyma.
    """
    if any(f > 1 for f in shrink_zyx):
        return _on_binned_grid(label, hu, spacing_zyx, p, tuple(int(f) for f in shrink_zyx), lung)
    found = np.zeros(label.shape, bool)
    records: list[dict] = []
    scales = sorted(p.nodule_scales_mm or ())
    if not label.any() or not scales:
        return found, records
    cube = [max(1, 2 * int((scales[0] / math.sqrt(3.0)) // s) + 1) for s in spacing_zyx]
    thick = ndi.minimum_filter(label.astype(np.uint8), size=cube).astype(bool)
    if not thick.any():
        return found, records
    reach = [int(math.ceil(2 * scales[-1] / s)) + 2 for s in spacing_zyx]
    pieces, _ = ndi.label(thick)
    boxes = [
        [(max(0, w.start - r), min(n, w.stop + r)) for w, r, n in zip(where, reach, label.shape)]
        for where in ndi.find_objects(pieces)
    ]
    for box in (tuple(slice(a, b) for a, b in merged) for merged in merge_overlapping(boxes)):
        taken, box_records = _nodules_in_box(
            label[box] & ~found[box], hu, lung, box, spacing_zyx, scales, p, _hu_factors
        )
        found[box] |= taken
        records += box_records
    return found, records


def _bin_mask(mask: np.ndarray, factors) -> np.ndarray:
    """A block of ``factors`` voxels is set when at least half of it is (the mask is padded to a multiple)."""
    pad = [(0, (-n) % f) for n, f in zip(mask.shape, factors)]
    padded = np.pad(mask.view(np.uint8), pad, mode="edge")
    count = np.zeros(tuple(n // f for n, f in zip(padded.shape, factors)), np.uint16)
    for offset in np.ndindex(*factors):  # a strided slice per voxel of the block: far faster than a reshaped sum
        count += padded[tuple(slice(o, None, f) for o, f in zip(offset, factors))]
    return count * 2 >= int(np.prod(factors))


def _on_binned_grid(label, hu, spacing_zyx, p, factors, lung):
    coarse_spacing = tuple(s * f for s, f in zip(spacing_zyx, factors))
    coarse, records = find_nodule_like(_bin_mask(label, factors), hu, coarse_spacing, p, lung=lung, _hu_factors=factors)
    found = coarse
    for axis, f in enumerate(factors):
        found = np.repeat(found, f, axis=axis)
    found = found[tuple(slice(0, n) for n in label.shape)] & label
    for record in records:
        record["index_zyx"] = tuple(int(i * f + f // 2) for i, f in zip(record["index_zyx"], factors))
    return found, records


def widened(box, margin, shape) -> tuple[slice, ...]:
    """``box`` (slices) widened by ``margin`` voxels per axis, clipped to ``shape``."""
    return tuple(slice(max(0, b.start - m), min(n, b.stop + m)) for b, m, n in zip(box, margin, shape))


def merge_overlapping(boxes: list) -> list:
    """Union of overlapping boxes ([(start, stop)] per axis) until none overlap (few boxes: a simple sweep)."""
    boxes = [list(b) for b in boxes]
    merged = True
    while merged:
        merged = False
        out: list = []
        for box in boxes:
            for other in out:
                if all(a < d and c < b for (a, b), (c, d) in zip(box, other)):
                    other[:] = [(min(a, c), max(b, d)) for (a, b), (c, d) in zip(box, other)]
                    merged = True
                    break
            else:
                out.append(box)
        boxes = out
    return boxes


def _nodules_in_box(
    sub: np.ndarray, hu: np.ndarray, lung, box, spacing_zyx, scales, p: VesselQuantParameters, hu_factors
):
    inside = _distance_inside(sub, spacing_zyx)
    voxel_mm3 = float(np.prod(spacing_zyx))
    taken = np.zeros(sub.shape, bool)
    records: list[dict] = []
    interior = np.zeros(sub.shape, bool)  # a piece touching the box's cut faces may go on beyond them: never a blob
    shape = tuple(-(-n // f) for n, f in zip(hu.shape, hu_factors))  # the (binned) grid the label lives on
    interior[tuple(slice(1 if b.start > 0 else 0, -1 if b.stop < n else None) for b, n in zip(box, shape))] = True
    for scale in sorted(scales, reverse=True):  # large first: a large blob is cut free of the thick vessel it hangs on
        core = (inside > scale + TIE_MM) & ~taken
        if not core.any():
            continue
        # A piece of the opening holds its core and is at least as large: a core already too large for a compact
        # piece (a long thick vessel's axis) needs no opening at all. Only the other cores' surroundings are opened.
        cores, count = ndi.label(core)
        keep = np.zeros(count + 1, bool)
        for number, where_core in enumerate(ndi.find_objects(cores), start=1):
            local = cores[where_core] == number
            r_max = float(inside[where_core][local].max())
            keep[number] = _compact(local.sum() * voxel_mm3, r_max, p)
        if not keep[1:].any():
            continue
        core = keep[cores]
        reach = [int(math.ceil(scale / s)) + 2 for s in spacing_zyx]
        hit = [np.flatnonzero(core.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
        near = tuple(slice(max(0, int(h[0]) - r), int(h[-1]) + 1 + r) for h, r in zip(hit, reach))
        opened = np.zeros(sub.shape, bool)
        opened[near] = (_distance_inside(~core[near], spacing_zyx) <= scale + TIE_MM) & sub[near] & ~taken[near]
        pieces, count = ndi.label(opened)
        if count == 0:
            continue
        within = scale + 0.5 * min(spacing_zyx) + TIE_MM  # the opening's reach from its cores (mm)
        for where_piece, local, rest in _split_by_core(pieces, np.where(core, cores, 0), within, spacing_zyx):
            depth = np.where(local, inside[where_piece], 0.0)
            r_in = float(depth.max())
            centre = tuple(
                int(i) + w.start for i, w in zip(np.unravel_index(int(np.argmax(depth)), depth.shape), where_piece)
            )
            volume = float(local.sum() * voxel_mm3)
            on_edge = not interior[where_piece][local].all()
            # a share of a split piece must be thicker than the ball by a voxel: where a tube is about as thick as the
            # ball, the noisy wall breaks its core into beads, each compact, which the opening joins again
            thinnest = scale if rest is None else scale + max(spacing_zyx)
            if on_edge or r_in < thinnest - TIE_MM or not _compact(volume, r_in, p):
                continue
            where = tuple(int(c) + b.start for c, b in zip(centre, box))
            # the shape test at the mean of the deepest voxels; the rim and the record keep the voxel argmax picks
            deepest = _deepest_point(depth) + [w.start + b.start for w, b in zip(where_piece, box)]
            fine = tuple(min(d * f + f // 2, n - 1) for d, f, n in zip(deepest, hu_factors, hu.shape))
            fine_spacing = tuple(s / f for s, f in zip(spacing_zyx, hu_factors))
            beside = (
                None
                if rest is None
                else _on_fine_grid(rest, [w.start + b.start for w, b in zip(where_piece, box)], hu_factors)
            )
            if _blobness(hu, fine, float(r_in), fine_spacing, lung, beside) < p.nodule_min_blobness:
                continue
            piece = np.zeros(sub.shape, bool)
            piece[where_piece] = local
            piece |= _rim(piece, sub & ~taken, centre, spacing_zyx)
            taken |= piece
            volume_mm3 = float(piece.sum() * voxel_mm3)
            records.append(
                {
                    "index_zyx": where,
                    "radius_mm": (3.0 * volume_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0),
                    "volume_ml": volume_mm3 / 1000.0,
                }
            )  # radius of the ball of the same volume
    return taken, records


# The graph cut's partial-volume rim around a blob, beyond what the opening gives back: up to this many voxels.
_RIM_VOXELS = 2


def _rim(piece: np.ndarray, label: np.ndarray, centre, spacing_zyx) -> np.ndarray:
    """The voxels of ``label`` within ``_RIM_VOXELS`` (26-neighbour steps) of a blob ``piece`` and no farther from
    its ``centre`` (the deepest point) than its farthest voxel plus 0.75 voxel: the opening leaves out the
    partial-volume rim the graph cut took, and, where a juxta-pleural blob meets the wall at an angle, the wedge the
    ball does not reach; a vessel touching the blob leaves that ball at once and keeps the rest of its length.
    """
    spacing = np.asarray(spacing_zyx)
    reach = float(np.linalg.norm((np.argwhere(piece) - np.asarray(centre)) * spacing, axis=1).max())
    grown = ndi.binary_dilation(piece, np.ones((3, 3, 3), bool), iterations=_RIM_VOXELS) & label & ~piece
    at = np.argwhere(grown)
    far = np.linalg.norm((at - np.asarray(centre)) * spacing, axis=1) > reach + 0.75 * float(spacing.max())
    grown[tuple(at[far].T)] = False
    return grown


def _split_by_core(pieces: np.ndarray, cores: np.ndarray, within_mm: float, spacing_zyx):
    """(box, mask, rest) for each piece of an opening (``pieces``, labelled; ``cores`` the labelled cores it
    was grown from, 0 elsewhere; every voxel of a piece lies within ``within_mm`` of a core): a piece grown from one
    core whole (``rest`` None), a piece grown from several split among them by nearest core (``rest``: the other
    cores' share, same box).

    A nodule touching a thick vessel, each with a core of its own, is one piece of the opening: too long to be
    compact and, at the nodule's centre, tube-like for the vessel beside it. Split, the nodule's share is judged
    alone, with the vessel's share seen as parenchyma. The nearest core is found in the piece's box widened by
    ``within_mm``: a voxel's nearest core lies no farther than that, so no nearer core lies outside.
    """
    widen = [int(math.ceil(within_mm / s)) for s in spacing_zyx]
    for number, where in enumerate(ndi.find_objects(pieces), start=1):
        local = pieces[where] == number
        held = np.unique(cores[where][local])
        held = held[held > 0]
        if held.size <= 1:
            yield where, local, None
            continue
        window = widened(where, widen, cores.shape)
        around = cores[window]
        _, index = ndi.distance_transform_edt(around == 0, sampling=spacing_zyx, return_indices=True)
        owner = around[tuple(index)][tuple(slice(w.start - v.start, w.stop - v.start) for w, v in zip(where, window))]
        for core in held:
            share = local & (owner == core)
            yield where, share, local & ~share


def _on_fine_grid(mask: np.ndarray, start, factors):
    """A function of a window of the fine grid giving ``mask`` there (``mask`` lies on the grid binned by
    ``factors``, from ``start`` on; False outside it)."""

    def window_of(window) -> np.ndarray:
        out = np.ones(tuple(w.stop - w.start for w in window), bool)
        axes = []
        for axis, (w, f, s, n) in enumerate(zip(window, factors, start, mask.shape)):
            at = np.arange(w.start, w.stop) // f - s
            valid = (at >= 0) & (at < n)
            shape = [1, 1, 1]
            shape[axis] = -1
            out &= valid.reshape(shape)
            axes.append(np.clip(at, 0, n - 1))
        return out & mask[np.ix_(*axes)]

    return window_of
