"""Optional growth of sub-resolution vessels out of the graph-cut result (hysteresis, dose-aware threshold).

On when ``VesselQuantParameters.thin_vessel_min_radius_mm`` is set (off by default: it adds volume at
the lowest doses of a dose series, which would bias the comparisons PhantomQA makes).

The graph cut's data term judges each voxel alone, and a vessel thinner than the blur is faint: at
three times the normal noise most of a 0.25 mm twig stays below it. Such a twig is, however, a ridge
that leaves a vessel already found. Like Canny's hysteresis, ridge voxels of the thin-vessel channel
(see :func:`~.graphcut._thin_vessel_evidence`) that connect to the segmentation are added when their
line-averaged HU passes a lower threshold.

The threshold is a likelihood-ratio test between two ridges: a noise ridge (line HU around the median
of all ridge candidates, which are mostly noise) and the ridge of a vessel of radius
``thin_vessel_min_radius_mm``, whose line HU is higher by its contrast after the scan's blur. The test
accepts half-way between them. That contrast comes from the physics, not from the noise: at normal dose
the threshold is many noise SDs above the noise ridges (no noise is grown), at low dose only a few, which
is where a faint vessel is worth the risk. When even the half-way point is within the noise of the
ridges (thick slices, heavy blur: such a vessel cannot be seen), nothing is grown.

The blur is measured on the scan itself, from how steep the edges of thick vessels are in the
finest-scale smoothing (an edge blurred by a Gaussian of SD s has the steepest slope
contrast / (sqrt(2 pi) s)).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.special import ndtr

_EDGE_BAND = 0.05  # edge voxels: smoothed HU within this fraction of the contrast from the midpoint
_MIN_EDGE_POINTS = 50
THICK_VESSEL_SIGMA_MM = 1.5
"""Edges for the blur estimate are taken where a vesselness scale at least this coarse won (thick vessels)."""
VISIBLE_SD = 1.0
"""A thin vessel whose half contrast is less than this many robust SDs of the ridges' line HU is not visible in the
scan: nothing is grown."""


def edge_blur_mm(smoothed, near_thick_vessel, background_hu, vessel_hu, spacing_zyx) -> float | None:
    """SD (mm) of the Gaussian blur of ``smoothed`` (scanner PSF and smoothing together), from thick-vessel edges.

    At voxels of ``near_thick_vessel`` whose HU is half-way between ``background_hu`` and ``vessel_hu``
    (the middle of an edge), the central-difference gradient of an edge blurred by s is
    contrast x (2 Phi(h n / s) - 1) / (2 h) per axis (h the spacing, n the edge normal); solved for s at
    each voxel (bisection), the median is returned. None when fewer than 50 such voxels exist.
    """
    contrast = float(vessel_hu - background_hu)
    midpoint = 0.5 * (vessel_hu + background_hu)
    shape = np.array(smoothed.shape)
    points = np.argwhere(near_thick_vessel)
    points = points[np.all((points > 0) & (points < shape - 1), axis=1)]
    points = points[np.abs(smoothed[tuple(points.T)] - midpoint) < _EDGE_BAND * contrast]
    if len(points) < _MIN_EDGE_POINTS or contrast <= 0:
        return None
    h = np.asarray(spacing_zyx, float)
    gradient = np.empty((len(points), 3))
    for axis in range(3):
        step = np.zeros(3, int)
        step[axis] = 1
        ahead, behind = smoothed[tuple((points + step).T)], smoothed[tuple((points - step).T)]
        gradient[:, axis] = (ahead.astype(np.float64) - behind) / (2.0 * h[axis])
    magnitude = np.linalg.norm(gradient, axis=1)
    normal = np.abs(gradient) / np.maximum(magnitude, 1e-9)[:, None]
    low, high = np.full(len(points), 0.01), np.full(len(points), 10.0)
    # vectorised bisection on all voxels at once (scipy's scalar root finders would loop in Python);
    # the modelled gradient falls as the blur grows
    for _ in range(40):
        sigma = 0.5 * (low + high)
        modelled = np.linalg.norm(contrast * (2.0 * ndtr(h * normal / sigma[:, None]) - 1.0) / (2.0 * h), axis=1)
        steeper = modelled > magnitude
        low, high = np.where(steeper, sigma, low), np.where(steeper, high, sigma)
    return float(np.median(0.5 * (low + high)))


def thin_vessel_contrast_hu(radius_mm: float, blur_mm: float, contrast_hu: float) -> float:
    """Peak contrast of a vessel of ``radius_mm`` after a Gaussian blur of SD ``blur_mm`` (its cross-section's
    centre: the blurred disc integrates to contrast x (1 - exp(-r^2 / (2 s^2))))."""
    return float(contrast_hu * (1.0 - np.exp(-(radius_mm**2) / (2.0 * blur_mm**2))))


def grow_thin_vessels(
    label: np.ndarray, ridge_zyx: np.ndarray, ridge_line_hu: np.ndarray, threshold_hu: float
) -> np.ndarray:
    """``label`` plus the connected pieces (26-neighbours) of ridge voxels brighter than ``threshold_hu``
    that touch it."""
    bright = ridge_zyx[ridge_line_hu > threshold_hu]
    candidates = np.zeros(label.shape, bool)
    candidates[tuple(bright.T)] = True
    candidates &= ~label
    if not candidates.any():
        return label
    pieces, count = ndi.label(candidates, structure=np.ones((3, 3, 3), bool))
    points = np.argwhere(candidates)  # a few thousand: look at their neighbours, not at the whole box
    touching = np.zeros(len(points), bool)
    shape = np.array(label.shape)
    for offset in np.argwhere(np.ones((3, 3, 3), bool)) - 1:
        neighbour = points + offset
        inside = np.all((neighbour >= 0) & (neighbour < shape), axis=1)
        touching[inside] |= label[tuple(neighbour[inside].T)]
    keep = np.zeros(count + 1, bool)
    keep[pieces[tuple(points[touching].T)]] = True
    return label | keep[pieces]


def growth_threshold_hu(ridge_line_hu: np.ndarray, expected_contrast_hu: float, min_sd: float) -> float | None:
    """Half-way between the median ridge and a thin vessel's ridge (``ridge_line_hu``: line HU of all ridge
    candidates, mostly noise); None when that half-way point is less than ``min_sd`` robust SDs of the ridges above
    their median: such a vessel is not visible in this scan (thick slices, heavy blur), and growing would add noise."""
    median = float(np.median(ridge_line_hu))
    spread = 1.4826 * float(np.median(np.abs(ridge_line_hu - median)))
    half = 0.5 * expected_contrast_hu
    return median + half if half >= min_sd * spread else None


__all__ = [
    "THICK_VESSEL_SIGMA_MM",
    "VISIBLE_SD",
    "edge_blur_mm",
    "grow_thin_vessels",
    "growth_threshold_hu",
    "thin_vessel_contrast_hu",
]
