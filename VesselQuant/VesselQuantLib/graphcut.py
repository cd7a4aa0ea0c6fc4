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
  P_V(fine scales) x sigmoid((HU - parenchyma) / SD - ``thin_vessel_contrast_sd``), where the HU is
  smoothed at the finest scale and averaged along the local tube axis (a line integral: the
  noise drops, the signal of a line does not), and the parenchyma and SD are the median and robust
  SD of that average over the lung (random voxels, random directions). The larger of the two is used. On the flank
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

from dataclasses import asdict, dataclass, fields

import numpy as np
import SimpleITK as sitk
from scipy.special import expit

from RadiologyAICommonLib.imageio import voxels_of
from RadiologyAICommonLib.progress import ProgressCallback, no_progress, subprogress

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


@dataclass
class GraphCutReport:
    """What :func:`segment_vessels` did; counts are voxels of the box it was given."""

    intensity_model: IntensityModel | None  # None: too few vessel-like voxels to fit one (nothing segmented)
    fixed_vessel_voxels: int = 0  # seeds: certain vessel, outside the graph
    pruned_background_voxels: int = 0  # uncertain voxels left out of the graph as certain background
    speck_thin_voxels: int = 0  # thin-channel specks that the clean-up would remove anyway
    background_island_voxels: int = 0  # uncertain groups with nothing vessel-like in reach (exact)
    graph_nodes: int = 0
    removed_speck_voxels: int = 0  # removed by the clean-up after the cut
    thin_vessel_growth: dict | None = None  # blur_sd_mm, expected_contrast_hu, threshold_hu, grown_voxels


def _sample(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return values if values.size <= _SAMPLE else rng.choice(values, _SAMPLE, replace=False)


def fit_intensity_model(
    hu: np.ndarray, vesselness: np.ndarray, lung: np.ndarray, parameters: VesselQuantParameters
) -> IntensityModel | None:
    """Fit the sigmoid intensity likelihood from the seeds; None when the lung holds no clear vessel."""
    from .vesselness import sample_of_mask

    p = parameters
    rng = np.random.default_rng(0)
    background_mask = vesselness < p.background_vesselness
    background_mask &= lung
    count = int(np.count_nonzero(background_mask))
    if count < 100:
        background_mask, count = lung, int(np.count_nonzero(lung))
    # the draw of _sample(hu[background_mask], rng), without that array (a noisy lung's background is most of it)
    background = hu.ravel()[sample_of_mask(background_mask, count, rng, _SAMPLE)].astype(np.float64)
    del background_mask
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
    line_null: tuple[float, float] | None = None,
    fine_vesselness: np.ndarray | None = None,
):
    """Data-term probability that each voxel is vessel (see the module docstring).

    ``line_hu`` (HU smoothed at the finest scale and averaged along the tube axis) and ``line_null`` (the median and
    robust SD of that average in the parenchyma) feed the sub-resolution channel, judged with ``fine_vesselness``;
    without them that channel is off.
    """
    p_int = expit((hu - model.midpoint_hu) / model.scale_hu)
    p_ves = _vesselness_likelihood(vesselness, p)
    prob = p.intensity_weight * p_int + (1.0 - p.intensity_weight) * p_ves
    if line_hu is not None and line_null is not None:
        # a fine-scale tube significantly brighter than the parenchyma: the ridge of a thin vessel
        centre, sd = line_null
        level = centre + p.thin_vessel_contrast_sd * sd
        tube = _vesselness_likelihood(fine_vesselness if fine_vesselness is not None else vesselness, p)
        prob = np.maximum(prob, tube * expit((line_hu - level) / sd))
    return np.clip(prob, p.probability_floor, 1.0 - p.probability_floor)


def _vesselness_likelihood(v: np.ndarray, p: VesselQuantParameters) -> np.ndarray:
    """Sigmoid likelihood of log-vesselness: 0.02 at ``background_vesselness``, 0.98 at ``vessel_vesselness``."""
    lo, hi = np.log10(p.background_vesselness + 1e-6), np.log10(p.vessel_vesselness)
    mid, width = 0.5 * (lo + hi), (hi - lo) / (2.0 * np.log(49.0))
    return expit((np.log10(np.maximum(v, 1e-6)) - mid) / width)


def _tube_probability(fine_vesselness: np.ndarray, p: VesselQuantParameters) -> np.ndarray:
    """The most the thin-vessel channel can give: :func:`vessel_probability` of the fine-scale tube likelihood alone
    (no intensity, no line average), clipped as it is."""
    return np.clip(_vesselness_likelihood(fine_vesselness, p), p.probability_floor, 1.0 - p.probability_floor)


# A neighbour lies across the tube when its offset makes more than 60 degrees with the tube axis.
_ACROSS_COS = 0.5
# Samples of the line average along the tube axis (mm): a thin vessel is a line, so averaging along it
# lowers the noise but not the signal.
_LINE_OFFSETS_MM = np.array([-1.4, -0.7, 0.7, 1.4])


class _ThinVesselEvidence:
    """Evidence for sub-resolution vessels at graph nodes; what the whole lung shares is computed once.

    :meth:`at` gives, for nodes ((n, 3) voxel indices),

    * the HU smoothed at the finest vesselness scale and averaged along the local tube axis (the
      Hessian eigenvector of the smallest eigenvalue at that scale), and
    * whether each node is on the ridge of its tube: its ridge strength at the finest scale
      (-(l2 + l3), see :class:`~.vesselness.VesselnessMaps`), averaged along the axis, is at least
      ``thin_vessel_ridge_slack`` x that of every 26-neighbour across the tube (non-maximum
      suppression, as in Canny's edge thinning). A tube thinner than the blur then becomes a line
      about one voxel thick, as its partial-volume truth is, instead of a band as wide as the blur.
      Curvature is used rather than the HU because the ridge of a faint vessel beside a thick one
      sits on the thick one's blurred edge, a slope the second derivatives ignore; and rather than
      Frangi's measure, which saturates across the whole band of a clear thin vessel.
      Without ``maps`` the vesselness stands in for the ridge strength.

    ``line_null`` is the median and robust SD of that line average in the parenchyma, measured the same way at random
    lung voxels along random directions (None when the lung is too small). The lung, not the background seeds: those
    are the voxels with no vesselness at any scale, darker than the parenchyma by about one SD of the line average
    (the study, independent and tuned phantom families alike), which set the channel's level about one SD too low and
    let a tenth of a noisy lung through as noise ridges. Vessels are a few percent of the lung: they barely move the
    median.
    """

    def __init__(self, hu, lung, vesselness, spacing_zyx, p: VesselQuantParameters, maps=None):
        from .kernels import line_average
        from .vesselness import gaussian_smoothed, sample_of_mask

        if maps is not None:
            self.smoothed, ridge_map = maps.smoothed_finest, maps.ridge_finest
        else:
            self.smoothed = gaussian_smoothed(hu, spacing_zyx, float(min(p.vesselness_sigmas_mm)))
            ridge_map = vesselness
        self.ridge_map = np.ascontiguousarray(ridge_map, np.float32)
        self.spacing = np.asarray(spacing_zyx, float)
        self.slack = float(p.thin_vessel_ridge_slack)
        rng = np.random.default_rng(1)
        sample_idx = sample_of_mask(lung, int(np.count_nonzero(lung)), rng, 100_000)
        self.line_null = None
        if sample_idx.size >= 100:
            sample = np.stack(np.unravel_index(sample_idx, hu.shape), 1).astype(np.float64)
            random_dirs = rng.normal(size=sample.shape)
            random_dirs /= np.linalg.norm(random_dirs, axis=1, keepdims=True)
            values = line_average(self.smoothed, sample, random_dirs / self.spacing, _LINE_OFFSETS_MM)
            centre = float(np.median(values))
            self.line_null = (centre, max(1.4826 * float(np.median(np.abs(values - centre))), 0.5))

    def line_average(self, node_zyx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Line-averaged HU at nodes, and the tube axis there (voxels per mm along it) for :meth:`on_ridge`."""
        from .kernels import line_average, tube_axes

        axes = np.empty((len(node_zyx), 3), np.float32)
        tube_axes(self.smoothed, np.ravel_multi_index(tuple(node_zyx.T), self.smoothed.shape), self.spacing, 1.0, axes)
        steps = axes.astype(np.float64) / self.spacing
        return line_average(self.smoothed, node_zyx.astype(np.float64), steps, _LINE_OFFSETS_MM), steps

    def on_ridge(self, node_zyx: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Whether each node is on its tube's ridge (it reads up to 26 line averages a node)."""
        from .kernels import cross_section_maximum

        points = node_zyx.astype(np.float64)
        return cross_section_maximum(
            self.ridge_map, points, steps, _LINE_OFFSETS_MM, self.spacing, _ACROSS_COS, self.slack
        )


def _grow_thin_vessels(
    label, lung, maps, model, ridge_zyx, ridge_line_hu, spacing_zyx, p
) -> tuple[np.ndarray, dict | None]:
    """Hysteresis growth of sub-resolution vessels (see :mod:`.thinvessels`): the grown label and what it did."""
    from .thinvessels import (
        THICK_VESSEL_SIGMA_MM,
        VISIBLE_SD,
        edge_blur_mm,
        grow_thin_vessels,
        growth_threshold_hu,
        thin_vessel_contrast_hu,
    )

    if maps.scale_index is None:
        raise ValueError("the vesselness maps hold no winning scale: make them with the growth's parameters")
    sigmas = sorted(p.vesselness_sigmas_mm)
    thick = next((k for k, s in enumerate(sigmas) if s >= THICK_VESSEL_SIGMA_MM), len(sigmas) - 1)
    blur = edge_blur_mm(
        maps.smoothed_finest, lung & (maps.scale_index >= thick), model.background_hu, model.vessel_hu, spacing_zyx
    )
    if blur is None:  # no thick vessel edges to measure the blur on
        return label, None
    contrast = thin_vessel_contrast_hu(p.thin_vessel_min_radius_mm, blur, model.vessel_hu - model.background_hu)
    threshold = growth_threshold_hu(ridge_line_hu, contrast, VISIBLE_SD)
    grown = label if threshold is None else grow_thin_vessels(label, ridge_zyx, ridge_line_hu, threshold) & lung
    return grown, {
        "blur_sd_mm": round(blur, 3),
        "expected_contrast_hu": round(contrast, 1),
        "threshold_hu": None if threshold is None else round(threshold, 1),
        "grown_voxels": int(grown.sum() - label.sum()),
    }


def _holds_tube(labels: np.ndarray, vesselness: np.ndarray, count: int, min_vesselness: float) -> np.ndarray:
    """Per label 0..count: whether a voxel of it (``labels`` and ``vesselness`` per voxel) reaches ``min_vesselness``
    (a count of such voxels: the same answer as comparing each piece's maximum, without numpy's slow ``maximum.at``)."""
    return np.bincount(labels[vesselness >= min_vesselness], minlength=count + 1) > 0


def _speck_attractors(thin_flat, flat_state, nodes_flat, prob, vesselness, shape, min_voxels, min_vesselness):
    """Which of ``thin_flat`` (nodes that the thin-vessel channel alone makes vessel-like, flat indices on the padded
    grid) lie in a group of would-be vessel voxels (26-connected: fixed vessel and nodes with ``prob`` >= 0.5) that the
    clean-up after the cut removes anyway: fewer than ``min_voxels`` voxels, or no voxel with ``vesselness`` (the
    unpadded map) of ``min_vesselness``; and that holds nothing but such thin-channel voxels.

    In noise the thin-vessel channel passes many short noise ridges; as graph nodes each would hold a group of
    parenchyma voxels in the graph only to be removed as a speck.
    """
    support = flat_state == 1
    support[nodes_flat[prob >= 0.5]] = True
    members = np.flatnonzero(support)  # the labelled voxels: a pass over bytes, not over the labels
    components = sitk.ConnectedComponentImageFilter()
    components.SetFullyConnected(True)
    labels = voxels_of(components.Execute(sitk.GetImageFromArray(support.reshape(shape).view(np.uint8)))).ravel()
    del support
    count = components.GetObjectCount()  # labels 1..count
    member_labels = labels[members]
    sizes = np.bincount(member_labels, minlength=count + 1)
    from .kernels import unpadded_index

    member_zyx = unpadded_index(members, np.array(shape))
    tube = _holds_tube(member_labels, vesselness[tuple(member_zyx.T)], count, min_vesselness)
    only_thin = np.bincount(labels[thin_flat], minlength=count + 1) == sizes
    speck = only_thin & ((sizes < min_voxels) | ~tube)
    speck[0] = False
    return speck[labels[thin_flat]]


def _background_islands(flat_state: np.ndarray, nodes_flat: np.ndarray, prob: np.ndarray, shape) -> np.ndarray:
    """Which graph nodes lie in a face-connected group of uncertain voxels that holds no node the data term calls
    vessel (``prob`` >= 0.5) and touches no fixed vessel voxel.

    Such a group is background in the minimum cut, exactly: labelled all background it pays each node's smaller data
    cost and no boundary cost (its neighbours are fixed background), and any other labelling pays more. In a noisy,
    large lung most noise ridges are such groups: leaving them out keeps the graph near the vessels' size.
    """
    components = sitk.ConnectedComponentImageFilter()  # face connectivity: the graph's edges
    region = sitk.GetImageFromArray((flat_state >= 1).reshape(shape).view(np.uint8))
    labels = voxels_of(components.Execute(region)).ravel()
    del region
    node_labels = labels[nodes_flat]
    attracted = np.zeros(components.GetObjectCount() + 1, bool)  # labels 1..count
    attracted[node_labels[prob >= 0.5]] = True
    attracted[labels[np.flatnonzero(flat_state == 1)]] = True
    return ~attracted[node_labels]


def _index_type(size: int) -> type:
    """The narrowest integer type for flat indices into ``size`` voxels (int32 for any CT but the largest: half the
    memory of numpy's int64 for the tens of millions of candidate nodes of a noisy lung)."""
    return np.int32 if size <= np.iinfo(np.int32).max else np.int64


# Nodes whose data term is computed at once (about): bounds the temporaries (about 100 bytes a node) on a large lung,
# and small ones leave small holes between the parts kept (1 M a chunk: 70 MiB more peak on the parenchyma CT).
_DATA_TERM_CHUNK = 250_000


@dataclass
class _Nodes:
    """The graph's nodes (flat indices on the padded grid) with their data-term probability, and the thin-vessel
    channel's ridge voxels (unpadded z y x, their line-averaged HU) for the optional growth."""

    flat: np.ndarray
    prob: np.ndarray
    thin_base: np.ndarray  # for nodes only the thin channel makes vessel-like: flat index, probability without it
    thin_base_prob: np.ndarray
    ridge_zyx: np.ndarray  # empty unless the thin-vessel growth is on
    ridge_line_hu: np.ndarray

    def fix_background(self, which: np.ndarray, flat_state: np.ndarray) -> None:
        """Nodes ``which`` leave the graph as fixed background."""
        flat_state[self.flat[which]] = 0
        self.flat, self.prob = self.flat[~which], self.prob[~which]


def _hu_at(hu: np.ndarray, flat: np.ndarray, padded_shape) -> np.ndarray:
    """``hu`` at flat indices of the grid padded by one voxel; the pad reads its nearest voxel (numpy's "edge" mode),
    without a padded copy of the volume."""
    from .kernels import unpadded_index

    zyx = unpadded_index(flat, np.array(padded_shape))
    np.clip(zyx, 0, np.array(hu.shape) - 1, out=zyx)
    return hu[tuple(zyx.T)]


def _seed_states(hu, vesselness, lung, model: IntensityModel, p: VesselQuantParameters) -> np.ndarray:
    """int8 on the grid padded by one voxel: 0 background (fixed or outside the lung), 1 fixed vessel, 2 uncertain."""
    state = np.zeros(tuple(s + 2 for s in hu.shape), np.int8)
    inner = state[1:-1, 1:-1, 1:-1]
    inner[lung] = 2
    above = hu > model.midpoint_hu
    # in place: each temporary is a volume
    fixed = vesselness < p.background_vesselness
    fixed &= lung
    fixed &= ~above
    inner[fixed] = 0
    np.greater(vesselness, p.vessel_vesselness, out=fixed)
    fixed &= lung
    fixed &= above
    inner[fixed] = 1
    return state


def _ridge_can_matter(base: np.ndarray, lifted: np.ndarray, p: VesselQuantParameters) -> np.ndarray:
    """Which candidates of the thin-vessel channel need the ridge test: off the ridge a node keeps its probability
    without the channel (``base``), on it it gets ``lifted``; where lifted is no higher, or too low to escape pruning,
    the test cannot change the node (exact). With the optional growth, which reads every ridge voxel, all are tested.
    """
    if p.thin_vessel_min_radius_mm is not None:
        return np.ones(base.shape, bool)
    return (lifted > base) & (lifted >= p.prune_probability)


def _data_term(hu, vesselness, lung, spacing_zyx, state, model, p, maps, progress) -> _Nodes:
    """The uncertain voxels whose data term is at least ``prune_probability`` (the others are decisively background:
    noise ridges in the parenchyma have some vesselness but parenchyma HU), chunk by chunk."""
    import functools

    # flat views (a 1-D gather is twice as fast as a 3-D one; ravel copies once at most)
    values = vesselness.ravel()
    maps_of = (values, hu.ravel(), maps.fine.ravel() if maps is not None else values)

    @functools.cache
    def evidence() -> _ThinVesselEvidence:  # what the whole lung shares, computed once, when first needed
        return _ThinVesselEvidence(hu, lung, vesselness, spacing_zyx, p, maps)

    parts: dict[str, list] = {f.name: [] for f in fields(_Nodes)}
    for done, nodes in _uncertain_in_chunks(state, _DATA_TERM_CHUNK):
        progress(done, "graph cut: data term")
        for key, value in _data_term_of_chunk(nodes, state.shape, maps_of, model, p, evidence).items():
            parts[key].append(value)
    index_type = _index_type(state.size)
    empty = {
        "flat": np.zeros(0, index_type),
        "prob": np.zeros(0),
        "thin_base": np.zeros(0, index_type),
        "thin_base_prob": np.zeros(0),
        "ridge_zyx": np.zeros((0, 3), np.int64),
        "ridge_line_hu": np.zeros(0),
    }
    # one array at a time, each one's chunks dropped as it is joined: peak memory
    return _Nodes(**{k: np.concatenate(parts.pop(k)) if parts[k] else empty[k] for k in list(parts)})


def _uncertain_in_chunks(state: np.ndarray, size: int):
    """The flat indices of the uncertain voxels (``state`` 2) in ascending order, as chunks of whole slices holding
    about ``size`` each (at least a slice), with the share done before each: the whole list (tens of millions in a
    noisy lung) is never held. Indices are compact (:func:`_index_type`)."""
    index_type = _index_type(state.size)
    per_slice = np.count_nonzero(state.reshape(state.shape[0], -1) == 2, axis=1)
    before = np.concatenate([[0], np.cumsum(per_slice)])  # nodes before each slice
    plane, z = state[0].size, 0
    while z < state.shape[0]:
        end = max(z + 1, int(np.searchsorted(before, before[z] + size, side="right")) - 1)
        yield before[z] / max(before[-1], 1), (np.flatnonzero(state[z:end] == 2) + z * plane).astype(index_type)
        z = end


def _data_term_of_chunk(nodes, padded_shape, maps_of, model, p, evidence) -> dict[str, np.ndarray]:
    """:func:`_data_term` on some of the uncertain voxels (flat indices on the padded grid): the parts of
    :class:`_Nodes` they give. ``maps_of`` holds the flat vesselness, HU and fine-scale vesselness; ``evidence()`` the
    :class:`_ThinVesselEvidence`."""
    from .kernels import unpadded_flat, unpadded_index

    values, hu_values, fine_values = maps_of
    at = unpadded_flat(nodes, np.array(padded_shape))
    node_v, node_hu, fine = values[at], hu_values[at], fine_values[at]
    del at
    prob = vessel_probability(node_hu, node_v, model, p)
    out = {}
    # the thin-vessel channel is at most the fine-scale tube likelihood: evaluate it only where it could matter
    where = np.flatnonzero(_tube_probability(fine, p) >= min(p.prune_probability, 0.5) * 0.999)
    if where.size and evidence().line_null is not None:
        where_zyx = unpadded_index(nodes[where], np.array(padded_shape))
        line_hu, steps = evidence().line_average(where_zyx)
        base = prob[where]
        lifted = vessel_probability(node_hu[where], node_v[where], model, p, line_hu, evidence().line_null, fine[where])
        test = np.flatnonzero(_ridge_can_matter(base, lifted, p))
        ridge = test[evidence().on_ridge(where_zyx[test], steps[test])]
        where, where_zyx, line_hu, base = where[ridge], where_zyx[ridge], line_hu[ridge], base[ridge]
        prob[where] = lifted[ridge]
        thin = (prob[where] >= 0.5) & (base < 0.5)
        out["thin_base"], out["thin_base_prob"] = nodes[where[thin]], base[thin]
        if p.thin_vessel_min_radius_mm is not None:  # only the optional growth reads the ridge
            out["ridge_zyx"], out["ridge_line_hu"] = where_zyx, line_hu
    keep = prob >= p.prune_probability
    out["flat"], out["prob"] = nodes[keep], prob[keep]
    return out


def _fix_specks_and_islands(nodes: _Nodes, flat_state, vesselness, shape, min_voxels, p) -> tuple[int, int]:
    """Take out of the graph what the cut or the clean-up after it can only call background.

    Returns the counts: thin-channel speck voxels, background-island voxels.

    1. nodes that only the thin-vessel channel made vessel-like and that lie in a speck the clean-up would remove
       (:func:`_speck_attractors`) get their probability without that channel;
    2. nodes below ``prune_probability`` are fixed background;
    3. groups of uncertain voxels with nothing vessel-like in reach are fixed background (exact:
       :func:`_background_islands`).
    """
    specks = 0
    if nodes.thin_base.size:
        speck = _speck_attractors(
            nodes.thin_base,
            flat_state,
            nodes.flat,
            nodes.prob,
            vesselness,
            shape,
            min_voxels,
            p.min_component_vesselness,
        )
        position = np.searchsorted(nodes.flat, nodes.thin_base[speck])
        nodes.prob[position] = nodes.thin_base_prob[speck]
        specks = int(speck.sum())
    nodes.fix_background(nodes.prob < p.prune_probability, flat_state)
    island = _background_islands(flat_state, nodes.flat, nodes.prob, shape)
    nodes.fix_background(island, flat_state)
    return specks, int(island.sum())


def _minimum_cut(nodes: _Nodes, flat_state, hu, shape, spacing_zyx, model, p, progress) -> np.ndarray:
    """Label on the padded grid (flat): fixed vessel plus the nodes on the source side of the minimum cut."""
    import maxflow  # heavy optional dependency (radiologyai[vessels])

    label = flat_state == 1
    n = int(nodes.flat.size)
    if not n:
        return label
    progress(0.0, f"graph cut: building graph on {n} uncertain voxels")
    node_id = np.full(flat_state.size, -1, np.int32)
    node_id[nodes.flat] = np.arange(n, dtype=np.int32)
    cap_source = -np.log1p(-nodes.prob)  # paid when the node ends up background
    cap_sink = -np.log(nodes.prob)  # paid when the node ends up vessel
    kappa = max(p.smoothness_contrast_sd * model.background_sd, 1e-3)
    strides = (shape[1] * shape[2], shape[2], 1)
    graph = maxflow.Graph[float](n, 3 * n)
    graph.add_nodes(n)
    hu_nodes = _hu_at(hu, nodes.flat, shape)
    for axis, stride in enumerate(strides):
        distance = float(spacing_zyx[axis])
        for sign in (1, -1):
            other = nodes.flat + sign * stride
            weight = (p.smoothness_weight / distance) * np.exp(-np.abs(hu_nodes - _hu_at(hu, other, shape)) / kappa)
            other_state = flat_state[other]
            cap_source += np.where(other_state == 1, weight, 0.0)
            cap_sink += np.where(other_state == 0, weight, 0.0)
            if sign == 1:
                pair = other_state == 2
                w = weight[pair]
                graph.add_edges(np.flatnonzero(pair).astype(np.int32), node_id[other[pair]], w, w)
    del node_id
    graph.add_grid_tedges(np.arange(n, dtype=np.int32), cap_source, cap_sink)
    progress(0.5, "graph cut: max-flow")
    graph.maxflow()
    vessel_nodes = ~graph.get_grid_segments(np.arange(n, dtype=np.int32))  # source side = vessel
    label[nodes.flat[vessel_nodes]] = True
    return label


def _remove_specks(label: np.ndarray, vesselness: np.ndarray, min_voxels: int, p: VesselQuantParameters) -> int:
    """Remove (in place) pieces smaller than ``min_voxels`` and pieces with no tube in them (maximum vesselness below
    ``min_component_vesselness``: plates and blobs such as the partial-volume dome of the diaphragm in thick slices);
    returns the voxels removed."""
    if not label.any() or (min_voxels <= 1 and p.min_component_vesselness <= 0):
        return 0
    components = sitk.ConnectedComponentImageFilter()
    components.SetFullyConnected(True)  # 26-connected (multi-threaded, unlike scipy's labelling)
    labels = voxels_of(components.Execute(sitk.GetImageFromArray(label.view(np.uint8))))
    count = components.GetObjectCount()
    flat_labels = labels.ravel()
    inside = np.flatnonzero(flat_labels)  # vessels are a few percent of the box: count only them
    piece = flat_labels[inside]
    sizes = np.bincount(piece, minlength=count + 1)
    tube = _holds_tube(piece, vesselness.ravel()[inside], count, p.min_component_vesselness)
    del inside, piece
    drop = (sizes < min_voxels) | ~tube
    drop[0] = False
    label[drop[labels]] = False
    return int(sizes[drop].sum())


def segment_vessels(
    hu: np.ndarray,
    vesselness: np.ndarray,
    lung: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    parameters: VesselQuantParameters | None = None,
    progress: ProgressCallback | None = None,
    maps=None,
) -> tuple[np.ndarray, GraphCutReport]:
    """Vessel mask (bool, same shape) and a :class:`GraphCutReport` of what the graph cut did.

    ``maps`` (a :class:`~.vesselness.VesselnessMaps`) provides the fine-scale vesselness, tube axes and
    finest-scale smoothing for the sub-resolution channel; without it that channel uses ``vesselness``
    and recomputes the smoothing.
    """
    p = parameters or VesselQuantParameters()
    progress = progress or no_progress
    progress(0.0, "graph cut: fitting likelihoods")
    model = fit_intensity_model(hu, vesselness, lung, p)
    if model is None:
        return np.zeros(hu.shape, bool), GraphCutReport(intensity_model=None)
    min_voxels = int(np.ceil(p.min_component_mm3 / float(np.prod(spacing_zyx))))

    state = _seed_states(hu, vesselness, lung, model, p)
    flat_state = state.ravel()
    report = GraphCutReport(model, fixed_vessel_voxels=int(np.count_nonzero(flat_state == 1)))
    uncertain = int(np.count_nonzero(flat_state == 2))
    nodes = _data_term(hu, vesselness, lung, spacing_zyx, state, model, p, maps, subprogress(progress, 0.05, 0.2))
    if maps is not None and p.thin_vessel_min_radius_mm is None:
        maps.release("fine", "smoothed_finest", "ridge_finest", "scale_index")  # only the growth needs them now
    flat_state[flat_state == 2] = 0
    flat_state[nodes.flat] = 2
    report.pruned_background_voxels = uncertain - int(nodes.flat.size)
    report.speck_thin_voxels, report.background_island_voxels = _fix_specks_and_islands(
        nodes, flat_state, vesselness, state.shape, min_voxels, p
    )
    report.graph_nodes = int(nodes.flat.size)
    label = _minimum_cut(nodes, flat_state, hu, state.shape, spacing_zyx, model, p, subprogress(progress, 0.2, 0.7))
    label = label.reshape(state.shape)[1:-1, 1:-1, 1:-1].copy()
    del state, flat_state
    label &= lung
    report.removed_speck_voxels = _remove_specks(label, vesselness, min_voxels, p)
    # after the specks are gone: growth must not reconnect the fragments they removed
    if maps is not None and len(nodes.ridge_line_hu):
        progress(0.9, "graph cut: growing thin vessels")
        label, report.thin_vessel_growth = _grow_thin_vessels(
            label, lung, maps, model, nodes.ridge_zyx, nodes.ridge_line_hu, spacing_zyx, p
        )
    progress(1.0, "graph cut: done")
    return label, report
