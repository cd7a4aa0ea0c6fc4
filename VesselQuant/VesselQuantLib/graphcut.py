"""Graph-cut vessel segmentation (PyMaxflow) built only on the uncertain voxels.

Following Zhai et al. (Med Phys 2019, LUMC/LKEB):

* **Seeds.** Lung voxels with negligible vesselness (< 0.0009) and HU below the intensity
  midpoint are fixed background; voxels with very high vesselness (> 0.8) and HU above it
  are fixed vessel. Everything outside the lung is background. Only the remaining
  (uncertain) voxels become graph nodes: a full-grid graph costs about 240 bytes a voxel.
* **Likelihoods fitted per scan.** The parenchyma HU (median and robust SD of the fixed
  background) and the full-contrast vessel HU (upper quartile of the fixed vessel) define a
  sigmoid intensity likelihood centred half-way (a voxel at least half filled with vessel);
  the vesselness likelihood is a sigmoid of log-vesselness that is 0.02 at the background
  threshold and 0.98 at the vessel threshold. The data term mixes them with weight
  ``intensity_weight`` (0.6) on intensity.
* **Sub-resolution vessels.** A vessel thinner than the blur never reaches the half-contrast
  HU, so the mixture alone would drop it; a voxel is also vessel-like with probability
  P_V(fine scales) x P(HU > parenchyma + ``thin_vessel_contrast_sd`` SD), where the HU is
  smoothed at the finest scale and averaged along the local tube axis (a line integral: the
  noise drops, the signal of a line does not). The larger of the two is used. On the flank
  of a thick vessel the fine-scale vesselness is zero, so this cannot grow large vessels.
  The channel fires only on the ridge of the tube (non-maximum suppression across the tube
  axis, ``thin_vessel_ridge_slack``): a vessel thinner than the blur is segmented about one
  voxel thick, as its partial-volume truth is, not as a band as wide as the blur (which
  doubled the volume of sub-millimetre vessels and with it the small-vessel volume).
* **Thin-vessel growth** (optional, off by default). After the cut, ridge voxels of that channel
  that touch the result are grown into it when bright enough for a vessel of
  ``thin_vessel_min_radius_mm`` after the scan's measured blur (hysteresis with a dose-aware
  threshold, :mod:`.thinvessels`).
* **Pruning.** Uncertain voxels whose data term is already decisively background
  (P < ``prune_probability``) are fixed as well; with noise, many parenchyma voxels have some
  vesselness, and this keeps the graph a small fraction of the lung.
* **Boundary term** ``smoothness_weight x exp(-|I_p - I_q| / kappa) / d_pq`` on 6-neighbours,
  kappa = ``smoothness_contrast_sd`` x parenchyma SD, d_pq the neighbour distance in mm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from scipy.special import expit

from RadiologyAICommonLib.progress import ProgressCallback, no_progress

from .parameters import VesselQuantParameters

_SAMPLE = 500_000


@dataclass
class IntensityModel:
    """Per-scan intensity statistics used by the data term and the radius estimator."""

    background_hu: float
    background_sd: float
    vessel_hu: float
    midpoint_hu: float
    scale_hu: float

    def as_dict(self) -> dict:
        return {k: round(float(v), 3) for k, v in asdict(self).items()}


def _sample(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return values if values.size <= _SAMPLE else rng.choice(values, _SAMPLE, replace=False)


def fit_intensity_model(
    hu: np.ndarray, vesselness: np.ndarray, lung: np.ndarray, parameters: VesselQuantParameters
) -> IntensityModel | None:
    """Fit the sigmoid intensity likelihood from the seeds; None when the lung holds no clear vessel."""
    p = parameters
    rng = np.random.default_rng(0)
    background = hu[lung & (vesselness < p.background_vesselness)]
    if background.size < 100:
        background = hu[lung]
    background = _sample(background, rng).astype(np.float64)
    mu_b = float(np.median(background))
    sd_b = max(1.4826 * float(np.median(np.abs(background - mu_b))), 1.0)
    if p.vessel_hu is not None:
        mu_v = float(p.vessel_hu)
    else:
        seeds = hu[lung & (vesselness > p.vessel_vesselness) & (hu > mu_b + 5.0 * sd_b)]
        if seeds.size < 10:
            return None
        mu_v = float(np.percentile(_sample(seeds, rng), 75))
    if mu_v <= mu_b + 3.0 * sd_b:
        return None
    midpoint = 0.5 * (mu_b + mu_v)
    scale = max(sd_b, 0.02 * (mu_v - mu_b))
    return IntensityModel(mu_b, sd_b, mu_v, midpoint, scale)


def vessel_probability(
    hu: np.ndarray,
    vesselness: np.ndarray,
    model: IntensityModel,
    p: VesselQuantParameters,
    line_hu: np.ndarray | None = None,
    line_sd: float | None = None,
    fine_vesselness: np.ndarray | None = None,
):
    """Data-term probability that each voxel is vessel (see the module docstring).

    ``line_hu`` (HU smoothed at the finest scale and averaged along the tube axis) and ``line_sd`` (its
    parenchyma noise SD) feed the sub-resolution channel, judged with ``fine_vesselness``; without them
    that channel is off.
    """
    p_int = expit((hu - model.midpoint_hu) / model.scale_hu)
    lo, hi = np.log10(p.background_vesselness + 1e-6), np.log10(p.vessel_vesselness)
    mid, width = 0.5 * (lo + hi), (hi - lo) / (2.0 * np.log(49.0))

    def likelihood(v):
        return expit((np.log10(np.maximum(v, 1e-6)) - mid) / width)

    p_ves = likelihood(vesselness)
    prob = p.intensity_weight * p_int + (1.0 - p.intensity_weight) * p_ves
    if line_hu is not None and line_sd:
        # a fine-scale tube significantly brighter than the parenchyma: the ridge of a thin vessel
        level = model.background_hu + p.thin_vessel_contrast_sd * line_sd
        tube = likelihood(fine_vesselness if fine_vesselness is not None else vesselness)
        prob = np.maximum(prob, tube * expit((line_hu - level) / line_sd))
    return np.clip(prob, p.probability_floor, 1.0 - p.probability_floor)


# A neighbour lies across the tube when its offset makes more than 60 degrees with the tube axis.
_ACROSS_COS = 0.5
# Samples of the line average along the tube axis (mm): a thin vessel is a line, so averaging along it
# lowers the noise but not the signal.
_LINE_OFFSETS_MM = np.array([-1.4, -0.7, 0.7, 1.4])


def _thin_vessel_evidence(hu, lung, vesselness, spacing_zyx, node_zyx, p: VesselQuantParameters, maps=None):
    """Evidence for sub-resolution vessels at some graph nodes ((n, 3) voxel indices).

    Returns

    * the HU smoothed at the finest vesselness scale and averaged along the local tube axis (the
      Hessian eigenvector of the smallest eigenvalue at that scale),
    * the parenchyma noise SD of that line average (measured the same way on background voxels,
      with random directions; None when the lung has too little background), and
    * whether each node is on the ridge of its tube: its ridge strength at the finest scale
      (-(l2 + l3), see :class:`~.vesselness.VesselnessMaps`), averaged along the axis, is at least
      ``thin_vessel_ridge_slack`` x that of every 26-neighbour across the tube (non-maximum
      suppression, as in Canny's edge thinning). A tube thinner than the blur then becomes a line
      about one voxel thick, as its partial-volume truth is, instead of a band as wide as the blur.
      Curvature is used rather than the HU because the ridge of a faint vessel beside a thick one
      sits on the thick one's blurred edge, a slope the second derivatives ignore; and rather than
      Frangi's measure, which saturates across the whole band of a clear thin vessel.
      Without ``maps`` the vesselness stands in for the ridge strength.
    """
    from .kernels import cross_section_maximum, line_average, tube_axes

    if maps is not None:
        smoothed, ridge_map = maps.smoothed_finest, maps.ridge_finest
    else:
        image = sitk.GetImageFromArray(np.ascontiguousarray(hu, np.float32))
        image.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
        smoothed = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, float(min(p.vesselness_sigmas_mm))))
        ridge_map = vesselness
    shape = hu.shape
    spacing = np.asarray(spacing_zyx, float)
    points = node_zyx.astype(np.float64)
    axes = np.empty((len(points), 3), np.float32)
    tube_axes(smoothed, np.ravel_multi_index(tuple(node_zyx.T), shape), spacing, 1.0, axes)
    steps = axes.astype(np.float64) / spacing  # voxels per mm along the axis
    values = line_average(smoothed, points, steps, _LINE_OFFSETS_MM)
    ridge = cross_section_maximum(
        np.ascontiguousarray(ridge_map, np.float32), points, steps, _LINE_OFFSETS_MM, spacing, _ACROSS_COS,
        float(p.thin_vessel_ridge_slack),
    )

    rng = np.random.default_rng(1)
    background_idx = np.flatnonzero((lung & (vesselness < p.background_vesselness)).ravel())
    if background_idx.size > 100_000:
        background_idx = rng.choice(background_idx, 100_000, replace=False)
    sd = None
    if background_idx.size >= 100:
        sample = np.stack(np.unravel_index(background_idx, shape), 1).astype(np.float64)
        random_dirs = rng.normal(size=sample.shape)
        random_dirs /= np.linalg.norm(random_dirs, axis=1, keepdims=True)
        background = line_average(smoothed, sample, random_dirs / spacing, _LINE_OFFSETS_MM)
        sd = max(1.4826 * float(np.median(np.abs(background - np.median(background)))), 0.5)
    return values, sd, ridge


def _grow_thin_vessels(label, lung, maps, model, ridge_zyx, ridge_line_hu, spacing_zyx, p, info):
    """Hysteresis growth of sub-resolution vessels (see :mod:`.thinvessels`); records what it did in ``info``."""
    from .thinvessels import (
        THICK_VESSEL_SIGMA_MM, edge_blur_mm, grow_thin_vessels, growth_threshold_hu, thin_vessel_contrast_hu,
    )

    sigmas = sorted(p.vesselness_sigmas_mm)
    thick = next((k for k, s in enumerate(sigmas) if s >= THICK_VESSEL_SIGMA_MM), len(sigmas) - 1)
    blur = edge_blur_mm(maps.smoothed_finest, lung & (maps.scale_index >= thick), model.background_hu,
                        model.vessel_hu, spacing_zyx)
    if blur is None:  # no thick vessel edges to measure the blur on
        info["thin_vessel_growth"] = None
        return label
    contrast = thin_vessel_contrast_hu(p.thin_vessel_min_radius_mm, blur, model.vessel_hu - model.background_hu)
    threshold = growth_threshold_hu(ridge_line_hu, contrast, p.thin_vessel_contrast_sd)
    grown = label if threshold is None else grow_thin_vessels(label, ridge_zyx, ridge_line_hu, threshold) & lung
    info["thin_vessel_growth"] = {
        "blur_sd_mm": round(blur, 3),
        "expected_contrast_hu": round(contrast, 1),
        "threshold_hu": None if threshold is None else round(threshold, 1),
        "grown_voxels": int(grown.sum() - label.sum()),
    }
    return grown


def segment_vessels(
    hu: np.ndarray,
    vesselness: np.ndarray,
    lung: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    parameters: VesselQuantParameters | None = None,
    progress: ProgressCallback | None = None,
    maps=None,
) -> tuple[np.ndarray, dict]:
    """Vessel mask (bool, same shape) and a dict of what the graph cut did.

    ``maps`` (a :class:`~.vesselness.VesselnessMaps`) provides the fine-scale vesselness, tube axes and
    finest-scale smoothing for the sub-resolution channel; without it that channel uses ``vesselness``
    and recomputes the smoothing.
    """
    import maxflow  # heavy optional dependency (radiologyai[vessels])

    from .kernels import unpadded_index

    p = parameters or VesselQuantParameters()
    progress = progress or no_progress
    progress(0.0, "graph cut: fitting likelihoods")
    model = fit_intensity_model(hu, vesselness, lung, p)
    if model is None:
        return np.zeros(hu.shape, bool), {"intensity_model": None, "graph_nodes": 0, "fixed_vessel_voxels": 0}

    # state: 0 background (fixed or outside the lung), 1 fixed vessel, 2 uncertain (a graph node)
    above = hu > model.midpoint_hu
    state = np.zeros(tuple(s + 2 for s in hu.shape), np.int8)
    inner = state[1:-1, 1:-1, 1:-1]
    inner[lung] = 2
    inner[lung & (vesselness < p.background_vesselness) & ~above] = 0
    inner[lung & (vesselness > p.vessel_vesselness) & above] = 1
    del above
    flat_state = state.ravel()
    nodes_flat = np.flatnonzero(flat_state == 2)
    padded_hu = np.pad(hu.astype(np.float32, copy=False), 1, mode="edge").ravel()
    prob = np.zeros(0)
    pruned = 0
    ridge_zyx, ridge_line_hu = np.zeros((0, 3), int), np.zeros(0)
    if nodes_flat.size:
        progress(0.1, "graph cut: data term")
        node_zyx = unpadded_index(nodes_flat, np.array(state.shape))
        roi_flat = np.ravel_multi_index(tuple(node_zyx.T), hu.shape)
        node_v = vesselness.ravel()[roi_flat]
        fine = maps.fine.ravel()[roi_flat] if maps is not None else node_v
        del roi_flat
        node_hu = padded_hu[nodes_flat]
        prob = vessel_probability(node_hu, node_v, model, p)
        # the thin-vessel channel is at most the fine-scale tube likelihood: evaluate it only where it could matter
        maybe_thin = vessel_probability(node_hu, fine, model, VesselQuantParameters(intensity_weight=0.0))
        where = np.flatnonzero(maybe_thin >= min(p.prune_probability, 0.5) * 0.999)
        if where.size:
            line_hu, line_sd, ridge = _thin_vessel_evidence(hu, lung, vesselness, spacing_zyx, node_zyx[where], p, maps)
            where = where[ridge]
            ridge_zyx, ridge_line_hu = node_zyx[where], line_hu[ridge]
            prob[where] = vessel_probability(node_hu[where], node_v[where], model, p, ridge_line_hu, line_sd, fine[where])
            del line_hu, ridge
        del node_v, fine, maybe_thin, node_zyx, node_hu
        # Voxels whose data term is already decisively background are fixed too (keeps the graph small:
        # noise ridges in the parenchyma have some vesselness but parenchyma HU).
        decisive = prob < p.prune_probability
        pruned = int(decisive.sum())
        flat_state[nodes_flat[decisive]] = 0
        nodes_flat, prob = nodes_flat[~decisive], prob[~decisive]
    n = int(nodes_flat.size)
    info = {
        "intensity_model": model.as_dict(),
        "graph_nodes": n,
        "pruned_background_voxels": pruned,
        "fixed_vessel_voxels": int((state == 1).sum()),
    }

    label_padded = flat_state == 1
    if n:
        progress(0.2, f"graph cut: building graph on {n} uncertain voxels")
        node_id = np.full(state.size, -1, np.int32)
        node_id[nodes_flat] = np.arange(n, dtype=np.int32)
        cap_source = -np.log1p(-prob)  # paid when the node ends up background
        cap_sink = -np.log(prob)  # paid when the node ends up vessel
        kappa = max(p.smoothness_contrast_sd * model.background_sd, 1e-3)
        strides = (state.shape[1] * state.shape[2], state.shape[2], 1)
        graph = maxflow.Graph[float](n, 3 * n)
        graph.add_nodes(n)
        hu_nodes = padded_hu[nodes_flat]
        for axis, stride in enumerate(strides):
            distance = float(spacing_zyx[axis])
            for sign in (1, -1):
                other = nodes_flat + sign * stride
                weight = (p.smoothness_weight / distance) * np.exp(-np.abs(hu_nodes - padded_hu[other]) / kappa)
                other_state = flat_state[other]
                cap_source += np.where(other_state == 1, weight, 0.0)
                cap_sink += np.where(other_state == 0, weight, 0.0)
                if sign == 1:
                    pair = other_state == 2
                    w = weight[pair]
                    graph.add_edges(np.flatnonzero(pair).astype(np.int32), node_id[other[pair]], w, w)
        graph.add_grid_tedges(np.arange(n, dtype=np.int32), cap_source, cap_sink)
        progress(0.6, "graph cut: max-flow")
        graph.maxflow()
        vessel_nodes = ~graph.get_grid_segments(np.arange(n, dtype=np.int32))  # source side = vessel
        label_padded[nodes_flat[vessel_nodes]] = True
        del graph, node_id
    label = label_padded.reshape(state.shape)[1:-1, 1:-1, 1:-1].copy()
    label &= lung

    # Remove specks of noise (pieces smaller than min_component_mm3) and pieces with no tube in them
    # (maximum vesselness below min_component_vesselness: plates and blobs such as the partial-volume
    # dome of the diaphragm in thick slices).
    voxel_mm3 = float(np.prod(spacing_zyx))
    min_voxels = int(np.ceil(p.min_component_mm3 / voxel_mm3))
    removed = 0
    if label.any() and (min_voxels > 1 or p.min_component_vesselness > 0):
        labels, count = ndi.label(label, structure=np.ones((3, 3, 3), bool))
        flat_labels = labels.ravel()
        inside = np.flatnonzero(flat_labels)  # vessels are a few percent of the box: count only them
        piece = flat_labels[inside]
        sizes = np.bincount(piece, minlength=count + 1)
        peak_v = np.zeros(count + 1)
        np.maximum.at(peak_v, piece, vesselness.ravel()[inside])
        del inside, piece
        drop = (sizes < min_voxels) | (peak_v < p.min_component_vesselness)
        drop[0] = False
        removed = int(sizes[drop].sum())
        label[drop[labels]] = False
    info["removed_speck_voxels"] = removed
    # after the specks are gone: growth must not reconnect the fragments they removed
    if maps is not None and p.thin_vessel_min_radius_mm is not None and len(ridge_line_hu):
        progress(0.9, "graph cut: growing thin vessels")
        label = _grow_thin_vessels(label, lung, maps, model, ridge_zyx, ridge_line_hu, spacing_zyx, p, info)
    progress(1.0, "graph cut: done")
    return label, info
