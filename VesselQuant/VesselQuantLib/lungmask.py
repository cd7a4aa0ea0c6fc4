"""Lung mask from HU: dark regions inside the body, airways removed, vessels filled in.

Steps (classic threshold-based lung segmentation, e.g. Hu, Hoffman & Reinhardt, IEEE TMI 2001):

1. lightly smoothed HU below ``lung_threshold_hu`` (-400) is air or lung;
2. 3D connected regions touching the *in-plane* border of the scan are outside air (the
   first and last slices are allowed: chest CT slabs cut through the lungs);
3. regions of at least ``min_lung_volume_ml`` and at least 10 % of the largest are kept
   (drops bowel gas and small air pockets);
4. very dark air (< ``airway_threshold_hu``, the trachea and main bronchi) in pieces smaller
   than 30 % of the lung region is removed with a 1.5 mm rim (its partial-volume edge); an
   air-filled phantom, whose whole interior is that dark, is therefore kept;
5. holes are filled slice by slice (only holes up to ``max_vessel_hole_mm2``: a vessel's or
   bronchus' cross-section, not the diaphragm's dome or the heart seen as an island in one
   slice) and in 3D, which puts the vessels (and the intrapulmonary bronchi, enclosed by
   parenchyma) back into the mask while the trachea, which is not enclosed, stays out;
6. a vessel that is not enclosed in any slice or in 3D (it runs in-plane from the hilum or the
   wall, lies against the wall, or enters it: every vessel tree reaches the hilum, so 3D hole
   filling never closes it) is taken in by content: bright voxels that the lung surrounds within
   ``lung_closing_mm`` (a closing with a ball: the vessel is thinner than the ball) and that lie
   at least ``lung_closing_min_depth_mm`` inside the closed lung. The heart, the mediastinum and
   the diaphragm are far wider than the ball, and the partial-volume band where the lung meets
   them obliquely lies at the closed lung's surface, so both stay out. The last mm of a vessel that
   enters the wall or the mediastinum, which that depth rule leaves out, join as the vessel's **end**: in
   front of the part taken in, and encircled by lung across the vessel's axis (a disc closing oriented
   by the vessel; a band or a ridge is encircled across one direction only, a bronchial wall's chords
   cross its dark lumen; :func:`_vessel_ends`). Growing the vessels by those mm without the disc test
   took in 12-18 ml of bronchial walls and partial-volume bands at a real thorax's hila; with it, 1.1 ml;
7. a juxta-pleural nodule (soft tissue on the wall, which the lung wraps around) is taken in when a
   closing with a ball of twice ``juxta_pleural_max_radius_mm`` adds it and it passes the nodule step's
   shape tests (compact, ball-shaped; ``nodules.py``), which then reports it as nodule-like; a bump
   that fails is judged again with what step 6 took in beside it (a small nodule's deep part).

Works on phantoms too (air or foam inside a PMMA holder: the holder's interior).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import image_from_array, voxels_of
from RadiologyAICommonLib.progress import ProgressCallback, no_progress

from .nodules import (
    distance_outside,
    find_nodule_like,
    is_nodule_shaped,
    merge_overlapping,
    min_nodule_voxels,
    widened,
)
from .parameters import VesselQuantParameters
from .vesselness import gaussian_smoothed

SOFT_TISSUE_MAX_HU = 300.0
"""Juxta-pleural nodules are soft tissue: brighter voxels (bone of the ribs and spine) never join the lung."""


def segment_lungs(
    ct: sitk.Image, parameters: VesselQuantParameters | None = None, progress: ProgressCallback | None = None
) -> sitk.Image:
    """Return the lung mask (uint8 0/1, the CT's geometry). Raises if no lung-like region exists."""
    p = parameters or VesselQuantParameters()
    progress = progress or no_progress
    shrink = shrink_factors(ct, p)
    if shrink != (1, 1, 1):
        # Large, fine scans: find the lungs on a grid averaged over 2 x 2 in-plane voxels (4x fewer voxels,
        # still finer than 1.5 mm), then interpolate the mask back onto the CT's grid.
        coarse = segment_lungs_at_full_resolution(sitk.BinShrink(sitk.Cast(ct, sitk.sitkFloat32), shrink), p, progress)
        return _upsample_mask(coarse, ct, shrink, p)
    return segment_lungs_at_full_resolution(ct, p, progress)


def _upsample_mask(coarse: sitk.Image, ct: sitk.Image, shrink, p: VesselQuantParameters) -> sitk.Image:
    """Interpolate a mask found on the shrunk grid back onto the CT's grid (inside the lungs' box only).

    The interpolated edge may take in the partial-volume rim of the chest wall: where the interpolated
    value is below 1 (the edge band), only voxels darker than the lung threshold are kept, as the
    full-resolution mask does.
    """
    array = sitk.GetArrayViewFromImage(coarse).astype(bool)
    full = np.zeros(sitk.GetArrayViewFromImage(ct).shape, np.uint8)
    if not array.any():
        out = image_from_array(full, ct)
        return out
    lo, hi = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(array.any(axis=other))
        factor = shrink[::-1][axis]
        lo.append(max(0, (int(hit[0]) - 1) * factor))
        hi.append(min(full.shape[axis], (int(hit[-1]) + 2) * factor))
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    # onto the box's grid, given by size, origin, spacing and direction (a reference image would copy the CT's box)
    resampled = sitk.Resample(
        sitk.Cast(coarse, sitk.sitkFloat32),
        [b - a for a, b in zip(lo[::-1], hi[::-1])],
        sitk.Transform(),
        sitk.sitkLinear,
        ct.TransformIndexToPhysicalPoint([int(i) for i in lo[::-1]]),
        ct.GetSpacing(),
        ct.GetDirection(),
        0.0,
        sitk.sitkFloat32,
        True,
    )
    value = voxels_of(resampled)  # a view: no float copy of the box
    inside = value >= 0.5
    edge = inside & (value < 0.999)
    inside[edge & (sitk.GetArrayViewFromImage(ct)[box] >= p.lung_threshold_hu)] = False
    full[box] = inside
    out = image_from_array(full, ct)
    return out


def shrink_factors(ct: sitk.Image, p: VesselQuantParameters) -> tuple[int, int, int]:
    """(x, y, z) binning for whole-lung shape work on a large, fine CT: 2 x 2 in-plane below 0.75 mm voxels
    when the CT has more than ``lung_mask_shrink_above_voxels`` (the lung mask and the nodule search use it)."""
    spacing = ct.GetSpacing()
    if ct.GetNumberOfPixels() < p.lung_mask_shrink_above_voxels:
        return (1, 1, 1)
    return tuple(2 if (axis < 2 and spacing[axis] < 0.75) else 1 for axis in range(3))


def segment_lungs_at_full_resolution(
    ct: sitk.Image, p: VesselQuantParameters, progress: ProgressCallback | None = None
) -> sitk.Image:
    """:func:`segment_lungs` on the given grid (no shrinking)."""
    progress = progress or no_progress
    progress(0.0, "lung mask: thresholding")
    whole_hu = gaussian_smoothed(voxels_of(ct), ct.GetSpacing()[::-1], 0.7)
    air = whole_hu < p.lung_threshold_hu
    voxel_ml = float(np.prod(ct.GetSpacing())) / 1000.0

    labels, sizes = _components(air)
    if len(sizes) == 1:
        raise _no_lungs(p)
    border = np.zeros(len(sizes), bool)
    for face in (labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]):
        border[np.unique(face)] = True
    sizes[border] = 0
    progress(0.3, "lung mask: selecting lung regions")
    largest = int(sizes.max())
    if largest * voxel_ml < p.min_lung_volume_ml:
        raise _no_lungs(p)
    keep = (sizes >= 0.1 * largest) & (sizes * voxel_ml >= p.min_lung_volume_ml)
    # Steps 4-7 and the last selection work in the lungs' bounding box with a 1-voxel frame: what lies beyond it is
    # not lung, and the frame carries the background around the lungs that hole filling needs.
    box = bounding_box(keep[labels], margin=1)
    lungs = keep[labels[box]]
    hu = whole_hu[box]
    del labels

    # Trachea and main bronchi: very dark air in pieces much smaller than the lung region.
    progress(0.5, "lung mask: removing airways")
    dark = lungs & (hu < p.airway_threshold_hu)
    if dark.any():
        dark_labels, dark_sizes = _components(dark)
        airway = dark_sizes < 0.3 * lungs.sum()
        airway[0] = False
        airway = airway[dark_labels]
        del dark_labels
        if airway.any():
            # the airway's partial-volume rim (and a thin carina) is brighter than the threshold
            radius = [max(1, int(round(1.5 / s))) for s in ct.GetSpacing()]
            near_airway = bounding_box(airway, margin=radius[::-1])
            grown = sitk.BinaryDilate(sitk.GetImageFromArray(airway[near_airway].view(np.uint8)), radius, sitk.sitkBall)
            airway[near_airway] = sitk.GetArrayViewFromImage(grown).astype(bool)
        lungs &= ~airway

    progress(0.7, "lung mask: filling vessels")
    lungs = _fill_holes_per_slice(lungs, float(ct.GetSpacing()[0] * ct.GetSpacing()[1]), p.max_vessel_hole_mm2)
    lungs = voxels_of(sitk.BinaryFillhole(sitk.GetImageFromArray(lungs.view(np.uint8)))).astype(bool)
    progress(0.8, "lung mask: vessels against the wall and in-plane, juxta-pleural nodules")
    whole = np.zeros(whole_hu.shape, bool)  # the juxta-pleural shape test looks beyond the box's faces
    whole[box] = lungs
    lungs = _taken_in_by_closings(whole, whole_hu, tuple(float(s) for s in ct.GetSpacing()[::-1]), p)[box]

    # Removing the airways can leave slivers: keep the substantial regions again.
    labels, sizes = _components(lungs)
    if len(sizes) == 1:
        raise _no_lungs(p)
    keep = (sizes >= 0.1 * sizes.max()) & (sizes * voxel_ml >= p.min_lung_volume_ml)
    if not keep.any():
        raise _no_lungs(p)
    full = np.zeros(sitk.GetArrayViewFromImage(ct).shape, np.uint8)
    full[box] = keep[labels]

    mask = image_from_array(full, ct)
    progress(1.0, "lung mask: done")
    return mask


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face-connected components (SimpleITK, multi-threaded): labels 1..n, largest first (0 = background; a read-only
    view, no copy of the label volume), and their sizes in voxels (``sizes[0]`` = 0)."""
    relabel = sitk.RelabelComponentImageFilter()
    image = relabel.Execute(sitk.ConnectedComponent(sitk.GetImageFromArray(mask.view(np.uint8)), False))
    return voxels_of(image), np.array([0, *relabel.GetSizeOfObjectsInPixels()], np.int64)


def bounding_box(mask: np.ndarray, margin) -> tuple[slice, slice, slice]:
    """The (z, y, x) slices of ``mask``'s bounding box widened by ``margin`` voxels (one per axis or one for all),
    clipped to the array."""
    margins = [int(m) for m in np.broadcast_to(margin, 3)]
    box = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(max(0, int(hit[0]) - margins[axis]), min(mask.shape[axis], int(hit[-1]) + 1 + margins[axis])))
    return tuple(box)


def _taken_in_by_closings(lungs: np.ndarray, hu: np.ndarray, spacing_zyx, p: VesselQuantParameters) -> np.ndarray:
    """Steps 6 and 7: the vessels no slice encloses and the juxta-pleural nodules join ``lungs``.

    Both closings are done with Euclidean distance maps in mm (exact for anisotropic voxels) and share the distance
    from the lung (one map fewer), taken in the lungs' bounding box padded by the larger ball. Each closing's second
    map needs only the box padded by its own ball: the pad's outer layer is farther than the ball from the lung, and
    so is everything beyond it, whose nearest point in the padded box (its clamp onto the box) is no farther from a
    voxel of the box; the map is exact there. Both close the same lung: the larger closing holds what the smaller one
    adds, so closing the lung with it added would give the same.
    """
    near = float(p.lung_closing_mm)
    wide = 2.0 * float(p.juxta_pleural_max_radius_mm) if p.nodule_scales_mm else 0.0
    if max(near, wide) <= 0 or not lungs.any():
        return lungs
    box = bounding_box(lungs, margin=0)  # a closing lies inside the convex hull, so inside the lungs' bounding box
    region = hu[box]

    def pad_for(radius: float) -> list[int]:  # voxels per axis beyond the ball's reach from the lung
        return [int(np.ceil(radius / s)) + 1 for s in spacing_zyx]

    outer = pad_for(max(near, wide))
    from_lung = voxels_of(distance_outside(np.pad(lungs[box], [(n, n) for n in outer]), spacing_zyx))

    def distance_from_far(radius: float) -> np.ndarray:
        """Distance (mm) from the voxels farther than ``radius`` from the lung, on the box (a read-only view)."""
        pad = pad_for(radius)
        inner = tuple(slice(o - n, size - (o - n)) for o, n, size in zip(outer, pad, from_lung.shape))
        distance = voxels_of(distance_outside(from_lung[inner] > radius, spacing_zyx))
        return distance[tuple(slice(n, -n) for n in pad)]

    out = lungs.copy()
    taken_in = np.zeros(region.shape, bool)
    if near > 0:  # at least lung_closing_min_depth_mm below the closed lung's surface
        depth = distance_from_far(near)
        bright = region >= p.lung_threshold_hu
        taken_in = (depth >= near + p.lung_closing_min_depth_mm) & ~lungs[box] & bright
        taken_in |= _vessel_ends(lungs[box], taken_in, bright, depth, spacing_zyx, p)
        del depth, bright  # before the wide closing's map
        out[box] |= taken_in
    if wide > 0:
        closed = distance_from_far(wide) > wide
        out[box] |= _juxta_pleural_nodules(out[box], taken_in, hu, box, closed, spacing_zyx, p)
    return out


END_SLACK_MM = 1.0
"""A vessel's end lies in front of its deep part: no farther from it than the depth the depth rule left out, plus this
(the voxel grid, and a vessel that enters obliquely)."""


def _vessel_ends(lungs: np.ndarray, taken_in: np.ndarray, bright: np.ndarray, depth: np.ndarray, spacing_zyx, p):
    """The ends of the vessels step 6 took in, where they enter the wall or the mediastinum (step 6's second part).

    The depth rule leaves out the last ``lung_closing_mm`` + ``lung_closing_min_depth_mm`` of a vessel that enters a
    wide body (a 4 mm vessel entering a flat wall: about 6 mm, where a ball in the wall reaches into its base and then
    the 3 mm). An end is taken in where it lies in front of the vessel's deep part (the part step 6 took in: its
    distance from it plus its depth below the far set is at most the deep part's depth, plus ``END_SLACK_MM``), lung
    encircles it across the vessel's axis (the gradient of that distance; :func:`kernels.encircled_by_lung`: four
    bright chords of at most twice ``lung_closing_mm`` between lung) and it joins the deep part face to face.

    A partial-volume band or a ridge where the lung meets a wider body obliquely (the diaphragm's dome, the heart,
    the hila) is encircled, if at all, across one direction, not across a disc; the chords across the wall of an
    airway taken out in step 4 cross its dark lumen. The work is done in crops around the fronts (the deep parts'
    voxels next to the band), wide enough for the chords and merged where they overlap (``merge_overlapping``).
    """
    from .kernels import encircled_by_lung

    ends = np.zeros(taken_in.shape, bool)
    surface = float(p.lung_closing_mm + p.lung_closing_min_depth_mm)  # the deep part's depth below the far set
    reach = surface + END_SLACK_MM
    front = taken_in & (depth < reach + max(spacing_zyx))  # the deep voxels an end can lie in front of
    if not front.any():
        return ends
    core = [int(np.ceil(reach / s)) + 1 for s in spacing_zyx]
    pad = [c + int(np.ceil(2.0 * p.lung_closing_mm / s)) + 2 for c, s in zip(core, spacing_zyx)]
    spacing = np.asarray(spacing_zyx, float)
    pieces, _ = _components(front)
    fronts = ndi.find_objects(pieces)
    boxes = [[(b.start, b.stop) for b in widened(where, pad, ends.shape)] for where in fronts]
    for crop in [tuple(slice(a, b) for a, b in box) for box in merge_overlapping(boxes)]:
        inner = np.zeros([c.stop - c.start for c in crop], bool)  # the fronts' cores within the crop
        for where in fronts:  # each front's widened box lies in exactly one merged crop, and its core with it
            core_box = widened(where, core, ends.shape)
            if all(c.start <= k.start and k.stop <= c.stop for c, k in zip(crop, core_box)):
                inner[tuple(slice(k.start - c.start, k.stop - c.start) for c, k in zip(crop, core_box))] = True
        inner[[0, -1]] = inner[:, [0, -1]] = inner[:, :, [0, -1]] = False  # the axis needs the neighbours
        deep = taken_in[crop]
        candidate = inner & ~lungs[crop] & ~deep & bright[crop] & (depth[crop] < surface)
        if not candidate.any():
            continue
        from_deep = voxels_of(distance_outside(deep, spacing_zyx))
        candidate &= from_deep <= reach - depth[crop]
        points = np.argwhere(candidate)
        if not len(points):
            continue
        del candidate
        encircled = np.zeros(len(points), bool)
        lung, light = np.ascontiguousarray(lungs[crop]), np.ascontiguousarray(bright[crop])
        encircled_by_lung(lung, light, from_deep, points, spacing, 2.0 * p.lung_closing_mm, encircled)
        del lung, light, from_deep
        end = np.zeros(deep.shape, bool)
        end[tuple(points[encircled].T)] = True
        # the ends that join the deep part face to face (bool maps only: no label volume of the crop)
        ends[crop] |= ndi.binary_propagation(end & ndi.binary_dilation(deep), mask=end)
    return ends


def _juxta_pleural_nodules(
    lungs: np.ndarray, taken_in: np.ndarray, hu: np.ndarray, box, closed: np.ndarray, spacing_zyx, p
) -> np.ndarray:
    """Soft-tissue blobs on the lung's surface that the lung wraps around: what a closing with a ball of twice
    ``juxta_pleural_max_radius_mm`` adds (``closed``), in pieces that pass the nodule step's shape tests (step 7).
    ``lungs``, ``taken_in`` (what step 6 added to them) and ``closed`` are the ``box`` of ``hu`` (the whole CT: the
    shape test looks beyond the box's faces).

    Step 6 may already have taken in the deep part of a small nodule (the part the small ball's closing reaches
    3 mm below its surface), which leaves a crescent here, neither compact nor ball-shaped
    (:func:`_crescents_of_nodules`).

    Twice: balls from the wall's side dip into the nodule's base, and leave out a lens of depth
    R - sqrt(R^2 - a^2) for a base of radius a (a 12 mm nodule on the wall: about 2.6 mm with R = 15 mm, 1.2 mm
    with R = 30 mm), which then cuts the nodule's inscribed ball short.

    A juxta-pleural nodule is brighter than the threshold and touches the wall, so neither hole filling nor the
    small closing takes it in; it would otherwise stay out of the lung but for the partial-volume cap the graph cut
    labels vessel. Plates and lenses in the lung's wider concavities (along the mediastinum, the spine, the
    diaphragm's rim) are not compact, and tube stubs where vessels leave the lung are not ball-shaped.
    """
    added = np.zeros(lungs.shape, bool)
    region = hu[box]
    bumps = closed & ~lungs & (region >= p.lung_threshold_hu) & (region <= SOFT_TISSUE_MAX_HU)
    smallest = min_nodule_voxels(spacing_zyx, p)
    radius = float(p.juxta_pleural_max_radius_mm)

    def shaped(piece, where) -> bool:
        offset = [b.start + w.start for b, w in zip(box, where)]
        return is_nodule_shaped(piece, hu, offset, spacing_zyx, p, max_radius_mm=radius)

    pieces, sizes = _components(bumps)  # largest first: the pieces big enough to test are 1..n
    n = int(np.count_nonzero(sizes >= smallest))
    for number, where in enumerate(ndi.find_objects(pieces, max_label=n) if n else [], start=1):
        piece = pieces[where] == number
        if shaped(piece, where):
            added[where] |= piece
    if taken_in.any():
        added |= _crescents_of_nodules(bumps & ~added, taken_in, lungs, region, shaped, smallest, spacing_zyx, p)
    return added


def _crescents_of_nodules(failed, taken_in, lungs, region, shaped, smallest, spacing_zyx, p) -> np.ndarray:
    """The bumps of ``failed`` (pieces that failed the shape test) that are the crescents of nodules whose deep part
    step 6 took in (``taken_in``): each such piece is judged again joined with what step 6 took in beside it, and
    where that fails too (a nodule against the end of a vessel step 6 took in), the nodule step's opening cuts the two
    apart, in a window around the crescent (a nodule no thicker than the thickest allowed wraps it)."""
    added = np.zeros(failed.shape, bool)
    joint, joint_sizes = _components(failed | taken_in)
    holds_bump, holds_taken_in = np.zeros(len(joint_sizes), bool), np.zeros(len(joint_sizes), bool)
    holds_bump[joint[failed]] = True
    holds_taken_in[joint[taken_in]] = True
    retry = holds_bump & holds_taken_in & (joint_sizes >= smallest)  # without step 6's voxels: failed already
    retry[0] = False
    reach = [int(np.ceil(2 * max(p.nodule_scales_mm) / s)) + 2 for s in spacing_zyx]
    widest = [2.0 * float(p.juxta_pleural_max_radius_mm) / s for s in spacing_zyx]
    for number, where in enumerate(ndi.find_objects(np.where(retry[joint], joint, 0)), start=1):
        if where is None:
            continue
        piece = joint[where] == number
        if shaped(piece, where):
            added[where] |= piece & failed[where]
            continue
        around = bounding_box(piece & failed[where], 0)  # the crescent
        if any(a.stop - a.start > w for a, w in zip(around, widest)):
            continue
        window = tuple(
            slice(max(0, w.start + a.start - r), min(size, w.start + a.stop + r))
            for w, a, r, size in zip(where, around, reach, failed.shape)
        )
        candidate = joint[window] == number
        blobs, _ = find_nodule_like(candidate, region[window], spacing_zyx, p, lung=lungs[window] | candidate)
        added[window] |= blobs & failed[window]
    return added


def _fill_holes_per_slice(mask: np.ndarray, pixel_mm2: float, max_hole_mm2: float) -> np.ndarray:
    """2D hole filling in every slice: vessels and bronchi enclosed by lung in-plane join the lung.

    Holes larger than ``max_hole_mm2`` are left open: no vessel cross-section is that large, but the
    dome of the diaphragm, the heart or a tumour seen as an island in one slice can be.
    All slices at once: scipy's filling and labelling with in-plane (4-) connectivity only, so each slice is filled
    from its own border (what lies beyond the first and last slice reaches no voxel).
    """
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndi.generate_binary_structure(2, 1)
    holes = ndi.binary_fill_holes(mask, in_plane) & ~mask
    labels, _ = ndi.label(holes, in_plane)
    small = np.bincount(labels.ravel()) <= max_hole_mm2 / pixel_mm2
    small[0] = False
    return mask | small[labels]


def _no_lungs(p: VesselQuantParameters) -> RadiologyAIError:
    return RadiologyAIError(
        f"no lung-like region found: no enclosed region darker than {p.lung_threshold_hu:g} HU of at least "
        f"{p.min_lung_volume_ml:g} ml inside the body; is this a chest CT in HU? (or give a lung mask)"
    )
