"""All tunables of the VesselQuant pipeline in one dataclass with documented defaults.

Defaults follow the LUMC/LKEB graph-cut method (Zhai et al., Med Phys 2019) where the
paper gives a value (vesselness thresholds 0.0009 / 0.8, intensity weight 0.6, 0.25 mm
radius bins, small vessels < 5 mm^2 cross-section); the rest are documented choices of
this implementation. Every length is in millimetres, every intensity in HU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from RadiologyAICommonLib.errors import RadiologyAIError


@dataclass
class VesselQuantParameters:
    # --- lung mask (ignored when the caller gives one) -------------------------------
    lung_threshold_hu: float = -400.0
    """Air/lung voxels are darker than this (HU)."""
    airway_threshold_hu: float = -950.0
    """Trachea and main bronchi: lightly smoothed HU below this, in pieces smaller than 30 % of the lung region."""
    lung_mask_shrink_above_voxels: int = 30_000_000
    """CTs larger than this with in-plane voxels under 0.75 mm get their lung mask on a 2 x 2 in-plane
    averaged grid (speed; the mask is interpolated back)."""
    max_vessel_hole_mm2: float = 400.0
    """In-slice holes of the lung up to this area are filled (vessels, bronchi); larger ones (diaphragm dome,
    heart, tumour seen as an island) stay out of the lung mask."""
    min_lung_volume_ml: float = 5.0
    """A region darker than ``lung_threshold_hu`` must hold at least this much to count as lung."""

    # --- multi-scale vesselness (Frangi, sigmas in mm) ---------------------------------
    vesselness_sigmas_mm: tuple[float, ...] = (0.5, 0.9, 1.6, 2.8)
    """Gaussian scales in mm; a bright tube of radius r responds best near sigma = r / sqrt(2)."""
    frangi_alpha: float = 0.5
    """Plate-vs-line sensitivity (Frangi alpha)."""
    frangi_beta: float = 0.5
    """Blob-vs-line sensitivity (Frangi beta)."""
    structureness_noise_factor: float = 3.0
    """Frangi's c per scale = this x the median Hessian norm in the lung (a per-scan noise level)."""
    vesselness_min_contrast_sd: float | None = 0.5
    """Vesselness is evaluated only where the smoothed HU exceeds the lung's median by this many robust SDs
    (a bright tube's centre always does); elsewhere it is 0. None evaluates everywhere (slower)."""
    max_subsampling_ratio: float = 0.5
    """Coarse scales are computed on a grid subsampled to at most ``ratio x sigma`` per axis (speed)."""

    # --- graph cut (PyMaxflow) ---------------------------------------------------------
    background_vesselness: float = 0.0009
    """Vesselness below this with HU below the intensity midpoint: fixed background (LKEB)."""
    vessel_vesselness: float = 0.8
    """Vesselness above this with HU above the intensity midpoint: fixed vessel (LKEB)."""
    intensity_weight: float = 0.6
    """Weight of the intensity likelihood against the vesselness likelihood in the data term (LKEB)."""
    thin_vessel_contrast_sd: float = 1.0
    """Sub-resolution vessels: a vesselness ridge whose HU exceeds the parenchyma by this many noise SDs
    counts as vessel although partial volume keeps it below the half-contrast HU."""
    thin_vessel_max_sigma_mm: float = 1.0
    """...judged by the vesselness of the fine scales only (sigma up to this): on the flank of a thick
    vessel the fine-scale Hessian is not tube-like, so the channel cannot widen thick vessels."""
    thin_vessel_ridge_slack: float = 0.8
    """...and only on the tube's ridge: a voxel whose finest-scale ridge strength -(l2 + l3), averaged along the
    tube axis, is at least this fraction of every neighbour's across the tube (non-maximum suppression: a vessel
    thinner than the blur is segmented about one voxel thick, not as wide as the blur; 1 = strictly the maximum)."""
    thin_vessel_min_radius_mm: float | None = None
    """Optional growth of faint thin vessels (e.g. 0.25): ridge voxels that touch the segmentation are grown into it
    (hysteresis) when their line HU exceeds the median ridge by half the contrast a vessel of this radius keeps after
    the scan's blur (measured on thick-vessel edges), if that half is at least ``thin_vessel_contrast_sd`` robust SDs
    of the ridges (else such vessels are not visible in the scan). Off by default: it finds more thin vessels in
    noisy scans, but adds volume at the lowest doses, which would bias dose comparisons (PhantomQA)."""
    smoothness_weight: float = 0.5
    """Weight of the boundary term exp(-|dI| / kappa) / distance between 6-neighbours."""
    smoothness_contrast_sd: float = 2.0
    """kappa of the boundary term in units of the parenchyma noise SD."""
    prune_probability: float = 0.35
    """Uncertain voxels with a data-term vessel probability below this are fixed background (graph size;
    flipping them would need a boundary gain above ln(0.65/0.35); on the phantoms the result was identical)."""
    probability_floor: float = 0.01
    """Likelihoods are clipped to [floor, 1 - floor] before taking -log."""
    min_component_mm3: float = 0.5
    """Connected vessel pieces smaller than this are removed (noise specks)."""
    min_component_vesselness: float = 0.3
    """Connected pieces whose highest vesselness is below this hold no tube and are removed (plates, blobs)."""

    # --- centreline and radius ---------------------------------------------------------
    subvoxel_radius: bool = True
    """Refine each centreline radius from the partial-volume area of its cross-section."""
    profile_margin_mm: float = 1.5
    """Cross-section disc = distance-transform radius + this margin (covers the blur of the edge)."""
    background_ring_mm: float = 1.5
    """Width of the ring beyond the disc whose median HU is the local background."""
    vessel_hu: float | None = None
    """Full-contrast vessel HU; None estimates it per scan from the cores of thick vessels."""

    # --- quantification ----------------------------------------------------------------
    radius_bin_mm: float = 0.25
    """Default radius bin width (bins centred on multiples of it)."""
    radius_bins_mm: tuple[float, ...] | None = None
    """The user's design radii: each vessel voxel is counted at the nearest one (overrides the bins)."""
    fit_min_radius_mm: float | None = None
    """Smallest radius bin of the log-linear fit; None starts at the most populated bin (resolution limit)."""
    fit_min_count: int = 5
    """Radius bins with fewer centreline points than this are left out of the fit."""
    small_vessel_area_mm2: float = 5.0
    """Small-vessel volume counts vessels whose cross-section area is below this (pi r^2 < 5 mm^2)."""

    def validate(self) -> "VesselQuantParameters":
        """Raise :class:`RadiologyAIError` naming the first impossible value; return self."""
        if not self.vesselness_sigmas_mm or any(not (s > 0) for s in self.vesselness_sigmas_mm):
            raise RadiologyAIError(f"vesselness_sigmas_mm must be positive, got {self.vesselness_sigmas_mm}")
        if not (0 <= self.background_vesselness < self.vessel_vesselness <= 1):
            raise RadiologyAIError(
                "need 0 <= background_vesselness < vessel_vesselness <= 1, got "
                f"{self.background_vesselness} and {self.vessel_vesselness}"
            )
        if not (0 <= self.intensity_weight <= 1):
            raise RadiologyAIError(f"intensity_weight must be in [0, 1], got {self.intensity_weight}")
        if not (0 <= self.prune_probability < 0.5):
            raise RadiologyAIError(f"prune_probability must be in [0, 0.5), got {self.prune_probability}")
        if not (0 < self.probability_floor < 0.5):
            raise RadiologyAIError(f"probability_floor must be in (0, 0.5), got {self.probability_floor}")
        if not (0 < self.thin_vessel_ridge_slack <= 1):
            raise RadiologyAIError(f"thin_vessel_ridge_slack must be in (0, 1], got {self.thin_vessel_ridge_slack}")
        if self.thin_vessel_min_radius_mm is not None and not (self.thin_vessel_min_radius_mm > 0):
            raise RadiologyAIError(f"thin_vessel_min_radius_mm must be positive or None, got {self.thin_vessel_min_radius_mm}")
        if not (self.radius_bin_mm > 0):
            raise RadiologyAIError(f"radius_bin_mm must be positive, got {self.radius_bin_mm}")
        if self.radius_bins_mm is not None:
            bins = tuple(float(r) for r in self.radius_bins_mm)
            if not bins or any(not (r > 0) for r in bins) or len(set(bins)) != len(bins):
                raise RadiologyAIError(f"radius bins must be distinct positive radii in mm, got {self.radius_bins_mm}")
            self.radius_bins_mm = tuple(sorted(bins))
        for name in ("smoothness_weight", "min_component_mm3", "profile_margin_mm", "background_ring_mm"):
            if not (getattr(self, name) >= 0):
                raise RadiologyAIError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.min_lung_volume_ml <= 0 or self.small_vessel_area_mm2 <= 0:
            raise RadiologyAIError("min_lung_volume_ml and small_vessel_area_mm2 must be positive")
        return self

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict) -> "VesselQuantParameters":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RadiologyAIError(f"unknown VesselQuant parameter(s): {', '.join(unknown)}")
        converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**converted).validate()


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


__all__ = ["VesselQuantParameters"]
