"""All tunables of the VesselQuant pipeline in one dataclass with documented defaults.

Defaults follow the LUMC/LKEB graph-cut method (Zhai et al., Med Phys 2019) where the
paper gives a value (vesselness thresholds 0.0009 / 0.8, intensity weight 0.6, 0.25 mm
radius bins, small vessels < 5 mm^2 cross-section); the rest are documented choices of
this implementation. Every length is in millimetres, every intensity in HU.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from RadiologyAICommonLib.atomic import json_ready
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
    lung_closing_mm: float = 5.0
    """Bright voxels that lung surrounds within this distance (a morphological closing with a ball of this radius)
    join the lung: vessels up to this radius that run in-plane, lie against the chest wall or mediastinum, or enter
    them. 0 turns the step off."""
    lung_closing_min_depth_mm: float = 3.0
    """...but only those at least this deep inside the closed lung: the partial-volume band where the lung meets the
    diaphragm's dome, the heart or the wall obliquely stays out. A vessel's shallower end, where it enters the wall or
    the mediastinum, joins where lung encircles it across the vessel's axis."""
    juxta_pleural_max_radius_mm: float = 15.0
    """Soft-tissue blobs on the lung's surface up to this radius that a closing with a ball of twice it adds to the
    lung, and that pass the nodule shape tests (juxta-pleural nodules), join the lung; the nodule step then reports
    them. 0 turns the step off."""
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
    thin_vessel_contrast_sd: float = 0.0
    """Sub-resolution vessels, which partial volume keeps below the half-contrast HU: a vesselness ridge's HU, averaged
    along the tube, is judged against the parenchyma (the lung's median of that average, and its robust SD); its
    probability of being vessel is the fine-scale tube likelihood x a sigmoid of (HU - parenchyma) / SD - this
    margin. At 0, a ridge as bright as the parenchyma is even odds, and a brighter one likelier."""
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
    the scan's blur (measured on thick-vessel edges), if that half is at least one robust SD of the ridges (else such
    vessels are not visible in the scan). Off by default: it finds more thin vessels in
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
    nodule_scales_mm: tuple[float, ...] | None = (2.0, 2.5, 4.5, 7.0)
    """Nodule-like blobs are looked for at these ball radii (nodules.py); None: not looked for."""
    nodule_max_compactness: float = 2.5
    """...a piece left by the opening is compact when its volume is at most this many times its inscribed ball's..."""
    nodule_min_blobness: float = 0.6
    """...and ball-shaped when the Hessian at its centre curves alike in all directions: |l1| / |l3| at least this."""

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
        """Raise :class:`RadiologyAIError` naming the first impossible value; return self.

        Every value must have its type (a boolean is ``true``/``false``, never a string) and lie in
        its documented range (:data:`RANGES`, also in the README); then the rules between values.
        """
        for f in dataclasses.fields(self):
            setattr(self, f.name, RANGES[f.name].check(f.name, getattr(self, f.name)))
        if not (0 <= self.background_vesselness < self.vessel_vesselness <= 1):
            raise RadiologyAIError(
                "need 0 <= background_vesselness < vessel_vesselness <= 1, got "
                f"{self.background_vesselness} and {self.vessel_vesselness}"
            )
        if self.radius_bins_mm is not None:
            if len(set(self.radius_bins_mm)) != len(self.radius_bins_mm):
                raise RadiologyAIError(f"radius bins must be distinct radii in mm, got {list(self.radius_bins_mm)}")
            self.radius_bins_mm = tuple(sorted(self.radius_bins_mm))
        if self.airway_threshold_hu >= self.lung_threshold_hu:
            raise RadiologyAIError(
                f"airway_threshold_hu ({self.airway_threshold_hu}) must be below lung_threshold_hu "
                f"({self.lung_threshold_hu})"
            )
        return self

    def to_dict(self) -> dict:
        return json_ready({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def from_dict(cls, values: dict) -> "VesselQuantParameters":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RadiologyAIError(f"unknown VesselQuant parameter(s): {', '.join(unknown)}")
        converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**converted).validate()


@dataclass(frozen=True)
class Range:
    """The values a parameter may take: a number in [low, high] (each end open or closed), an integer, a tuple of
    such numbers, a boolean, or None where ``optional``. ``check`` returns the value as the dataclass stores it."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    kind: str = "number"  # number, integer, numbers (a tuple), boolean
    optional: bool = False
    max_items: int = 64

    def text(self) -> str:
        if self.kind == "boolean":
            return "true or false"
        interval = f"{'(' if self.low_open else '['}{_g(self.low)}, {_g(self.high)}{')' if self.high_open else ']'}"
        text = {
            "number": f"a number in {interval}",
            "integer": f"an integer in {interval}",
            "numbers": f"a list of 1-{self.max_items} numbers, each in {interval}",
        }[self.kind]
        return f"None or {text}" if self.optional else text

    def check(self, name: str, value):
        if value is None and self.optional:
            return None
        problem = f"{name} must be {self.text()}, got {value!r}"
        if self.kind == "boolean":
            if isinstance(value, (bool, np.bool_)):
                return bool(value)
            raise RadiologyAIError(problem)
        if self.kind == "numbers":
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, np.ndarray)):
                raise RadiologyAIError(problem)
            if not 1 <= len(value) <= self.max_items:
                raise RadiologyAIError(problem)
            return tuple(self._number(problem, v) for v in value)
        return self._number(problem, value)

    def _number(self, problem: str, value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise RadiologyAIError(problem)
        if self.kind == "integer":
            if not float(value).is_integer():
                raise RadiologyAIError(problem)
            value = int(value)
        else:
            value = float(value)
        if not math.isfinite(value):
            raise RadiologyAIError(problem)
        low_ok = value > self.low if self.low_open else value >= self.low
        high_ok = value < self.high if self.high_open else value <= self.high
        if not (low_ok and high_ok):
            raise RadiologyAIError(problem)
        return value


def _g(value: float) -> str:
    return f"{value:g}"


# One entry per parameter: what the pipeline can work with. The bounds keep a typo (1e-9 mm bins, a 1e308 HU)
# from reaching an allocation the machine cannot make or a numeric kernel it crashes.
RANGES: dict[str, Range] = {
    "lung_threshold_hu": Range(-1000, 0),
    "airway_threshold_hu": Range(-1024, -500),
    "lung_mask_shrink_above_voxels": Range(1, 1e10, kind="integer"),
    "max_vessel_hole_mm2": Range(0, 1e4),
    "lung_closing_mm": Range(0, 30),
    "lung_closing_min_depth_mm": Range(0, 30),
    "juxta_pleural_max_radius_mm": Range(0, 30),
    "min_lung_volume_ml": Range(0, 1e4, low_open=True),
    "vesselness_sigmas_mm": Range(0, 20, low_open=True, kind="numbers", max_items=12),
    "frangi_alpha": Range(0, 10, low_open=True),
    "frangi_beta": Range(0, 10, low_open=True),
    "structureness_noise_factor": Range(0, 100, low_open=True),
    "vesselness_min_contrast_sd": Range(0, 100, optional=True),
    "max_subsampling_ratio": Range(0, 2),
    "background_vesselness": Range(0, 1),
    "vessel_vesselness": Range(0, 1),
    "intensity_weight": Range(0, 1),
    "thin_vessel_contrast_sd": Range(0, 100),
    "thin_vessel_max_sigma_mm": Range(0, 20, low_open=True),
    "thin_vessel_ridge_slack": Range(0, 1, low_open=True),
    "thin_vessel_min_radius_mm": Range(0.05, 20, optional=True),
    "smoothness_weight": Range(0, 100),
    "smoothness_contrast_sd": Range(0, 100, low_open=True),
    "prune_probability": Range(0, 0.5, high_open=True),
    "probability_floor": Range(0, 0.5, low_open=True, high_open=True),
    "min_component_mm3": Range(0, 1e6),
    "min_component_vesselness": Range(0, 1),
    "nodule_scales_mm": Range(0, 30, low_open=True, kind="numbers", optional=True, max_items=8),
    "nodule_max_compactness": Range(1, 100),
    "nodule_min_blobness": Range(0, 1),
    "subvoxel_radius": Range(kind="boolean"),
    "profile_margin_mm": Range(0, 20),
    "background_ring_mm": Range(0, 20),
    "vessel_hu": Range(-500, 3000, optional=True),
    "radius_bin_mm": Range(0.05, 20),
    "radius_bins_mm": Range(0, 50, low_open=True, kind="numbers", optional=True, max_items=1000),
    "fit_min_radius_mm": Range(0, 50, low_open=True, optional=True),
    "fit_min_count": Range(1, 1e6, kind="integer"),
    "small_vessel_area_mm2": Range(0, 1e4, low_open=True),
}


__all__ = ["RANGES", "Range", "VesselQuantParameters"]
