"""Reconstruction models emulated by the acquisition simulator; their constants come from a JSON file.

The three reconstructions are named by what they emulate, not by any vendor's product:

``fbp``  filtered back-projection with a sharp (lung) kernel: FBP's ramp-shaped noise power
         spectrum (NPS) peaking at mid-high frequency; linear (the same blur at every dose and contrast).
``ir``   iterative-reconstruction-like: much lower noise whose texture is shifted to low
         frequencies ("blotchy"); an edge-preserving regulariser that smooths detail whose
         contrast is low against the noise, so small, faint vessels are lost at low dose.
``dlr``  deep-learning-reconstruction-like: low noise with an FBP-like texture (NPS peak kept
         near the FBP one); keeps edges down to a much lower contrast-to-noise ratio than IR.

Noise (fast simulator): Gaussian, stationary, with
``NPS(f_r, f_z) ∝ f_r^ramp_power · exp(-(f_r / nps_cutoff)^2) · exp(-(f_z / z_cutoff)^2)`` plus a
white fraction, scaled so that the noise SD is ``noise_sd_1mgy_hu / sqrt(CTDIvol / 1 mGy)``
(quantum noise: variance ∝ 1 / dose).

Signal: the object blurred by a Gaussian MTF of FWHM ``signal_fwhm_mm`` in-plane (the resolution
of high-contrast edges) and ``slice_fwhm_mm`` along z. Regularised reconstructions
(``edge_cnr`` > 0) add a *contrast- and dose-dependent* blur: detail is smoothed by a further
``regularisation_fwhm_mm`` where its local contrast C is low against the noise SD σ(d) at the
dose, and kept where it is high, with the weight ``w = C² / (C² + (edge_cnr · σ(d))²)``
(:mod:`.simulate`). A small ``edge_cnr`` keeps edges (DL-like), a large one smooths faint detail
(IR-like); since σ(d) ∝ 1/√d, the same detail is kept at high dose and lost at low dose.

The constants are read from ``Resources/recon_calibration.json`` (``version``, ``fitted_by``,
one entry per reconstruction with every field of :class:`ReconModel`, and the built-in phantoms'
fitted material texture, ``phantom_materials``, and the physical simulator's constants,
``physical``), written by
``Testing/benchmarks/bench_phantom_calibration.py --fit`` (PhantomQA/README.md, "Calibration").
A file that is not valid gives one :class:`RadiologyAIError` naming the entry.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

from RadiologyAICommonLib.errors import RadiologyAIError

CALIBRATION_FILE = Path(__file__).resolve().parents[1] / "Resources" / "recon_calibration.json"
CALIBRATION_FORMAT = "phantomqa-recon-calibration"


@dataclass(frozen=True)
class ReconModel:
    """One emulated reconstruction (constants of the fast simulator)."""

    name: str  # short key: fbp, ir, dlr
    label: str  # what it emulates, for tables and reports
    noise_sd_1mgy_hu: float  # image noise SD (HU) at CTDIvol = 1 mGy
    nps_cutoff_cyc_mm: float  # Gaussian roll-off of the in-plane NPS (peak at cutoff * sqrt(ramp_power / 2))
    ramp_power: float  # low-frequency slope of the in-plane NPS (1 = FBP ramp)
    white_fraction: float  # fraction of the noise variance that is white (uncorrelated)
    z_cutoff_cyc_mm: float  # Gaussian roll-off of the NPS along z
    signal_fwhm_mm: float  # in-plane FWHM of the Gaussian PSF of high-contrast edges
    slice_fwhm_mm: float  # slice-sensitivity FWHM along z
    regularisation_fwhm_mm: float = 0.0  # extra in-plane blur of low-contrast detail (regularised recons)
    edge_cnr: float = 0.0  # contrast-to-noise ratio at which detail is half kept (0 = linear recon)

    def is_regularised(self) -> bool:
        return self.edge_cnr > 0 and self.regularisation_fwhm_mm > 0

    def noise_sd_at(self, ctdivol_mgy: float) -> float:
        return float(self.noise_sd_1mgy_hu / math.sqrt(ctdivol_mgy))

    def with_overrides(self, **values) -> "ReconModel":
        return replace(self, **values)


# Valid ranges of the numeric fields (inclusive): a file outside them is refused.
FIELD_RANGES: dict[str, tuple[float, float]] = {
    "noise_sd_1mgy_hu": (0.01, 1000.0),
    "nps_cutoff_cyc_mm": (0.01, 5.0),
    "ramp_power": (0.0, 4.0),
    "white_fraction": (0.0, 1.0),
    "z_cutoff_cyc_mm": (0.01, 5.0),
    "signal_fwhm_mm": (0.0, 10.0),
    "slice_fwhm_mm": (0.0, 10.0),
    "regularisation_fwhm_mm": (0.0, 10.0),
    "edge_cnr": (0.0, 1000.0),
}


# The built-in phantoms' material constants fitted with the reconstructions (phantom.Materials).
MATERIAL_RANGES: dict[str, tuple[float, float]] = {
    "vessel_texture_sd_hu": (0.0, 200.0),
    "vessel_texture_fwhm_mm": (0.1, 10.0),
}
# The physical simulator's calibrated constants (physical.PhysicalParameters).
PHYSICAL_RANGES: dict[str, tuple[float, float]] = {
    "i0_1mgy": (1.0, 1e9),
    "system_fwhm_mm": (0.0, 10.0),
    "reference_noise_1mgy_hu": (0.1, 1000.0),
    "ir_tv_factor": (0.0, 100.0),
    "ir_post_fwhm_mm": (0.0, 10.0),
    "dl_tv_factor": (0.0, 100.0),
    "dl_post_fwhm_mm": (0.0, 10.0),
}


def _model_from_entry(name: str, entry, what: str) -> ReconModel:
    if not isinstance(entry, dict):
        raise RadiologyAIError(f"{what}: models.{name} must be an object")
    known = {f.name for f in fields(ReconModel)} - {"name"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise RadiologyAIError(f"{what}: models.{name}: unknown field(s) {', '.join(unknown)}")
    values = {"name": name}
    if not isinstance(entry.get("label"), str) or not entry["label"].strip():
        raise RadiologyAIError(f"{what}: models.{name}.label must be a text")
    values["label"] = entry["label"]
    for key, (low, high) in FIELD_RANGES.items():
        if key not in entry:
            raise RadiologyAIError(f"{what}: models.{name}: missing field {key}")
        value = entry[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not low <= value <= high
        ):
            raise RadiologyAIError(
                f"{what}: models.{name}.{key} must be a number in [{low:g}, {high:g}], got {value!r}"
            )
        values[key] = float(value)
    return ReconModel(**values)


def parse_calibration(data, what: str = "recon calibration") -> tuple[dict, dict]:
    """(models, metadata) from the calibration JSON document."""
    if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
        raise RadiologyAIError(f"{what}: not a PhantomQA reconstruction calibration (format '{CALIBRATION_FORMAT}')")
    if not isinstance(data.get("version"), int) or not isinstance(data.get("fitted_by"), str):
        raise RadiologyAIError(f"{what}: needs a whole-number 'version' and a 'fitted_by' text")
    models = data.get("models")
    if not isinstance(models, dict) or set(models) != {"fbp", "ir", "dlr"}:
        raise RadiologyAIError(f"{what}: 'models' must hold exactly fbp, ir and dlr")
    parsed = {name: _model_from_entry(name, models[name], what) for name in ("fbp", "ir", "dlr")}
    metadata = {k: v for k, v in data.items() if k != "models"}
    _check_block(data.get("phantom_materials", {}), "phantom_materials", MATERIAL_RANGES, what, required=False)
    _check_block(data.get("physical"), "physical", PHYSICAL_RANGES, what, required=True)
    return parsed, metadata


def _check_block(block, name: str, ranges: dict, what: str, required: bool) -> None:
    """A block of named numbers: only known keys (all of them when ``required``), each within its range."""
    if not isinstance(block, dict) or set(block) - set(ranges) or (required and set(block) != set(ranges)):
        raise RadiologyAIError(f"{what}: '{name}' must hold {'exactly' if required else 'only'} {', '.join(ranges)}")
    for key, value in block.items():
        low, high = ranges[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not low <= value <= high
        ):
            raise RadiologyAIError(f"{what}: {name}.{key} must be a number in [{low:g}, {high:g}], got {value!r}")


def load_calibration(path: str | Path | None = None) -> tuple[dict, dict]:
    path = Path(path) if path is not None else CALIBRATION_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RadiologyAIError(f"recon calibration {path}: cannot read it as JSON ({exc})") from None
    return parse_calibration(data, f"recon calibration {path.name}")


def calibration_document(
    models: dict,
    version: int,
    fitted_by: str,
    phantom_materials: dict | None = None,
    physical: dict | None = None,
    **metadata,
) -> dict:
    """The JSON document for ``models`` (what ``bench_phantom_calibration.py --fit`` writes).

    ``physical`` defaults to the current file's physical constants (the fast fit leaves them alone).
    """
    entries = {
        name: {f.name: getattr(m, f.name) for f in fields(ReconModel) if f.name != "name"} for name, m in models.items()
    }
    document = {"format": CALIBRATION_FORMAT, "version": int(version), "fitted_by": fitted_by, **metadata}
    if phantom_materials:
        document["phantom_materials"] = dict(phantom_materials)
    document["physical"] = dict(physical if physical is not None else CALIBRATION_METADATA["physical"])
    return {**document, "models": entries}


# The calibrated models (PhantomQA/README.md, "Calibration"), and where they came from.
RECON_MODELS, CALIBRATION_METADATA = load_calibration()

# Names accepted in manifests and on the command line (case-insensitive).
RECON_ALIASES: dict[str, str] = {
    "fbp": "fbp",
    "filtered back projection": "fbp",
    "filtered backprojection": "fbp",
    "ir": "ir",
    "iterative": "ir",
    "hir": "ir",
    "mbir": "ir",
    "dlr": "dlr",
    "dl": "dlr",
    "deep learning": "dlr",
    "dlir": "dlr",
}

# Keywords of DICOM ConvolutionKernel / SeriesDescription values that reveal the
# reconstruction family (checked in this order: DL first, since DL descriptions often
# also name the kernel).
DICOM_RECON_KEYWORDS: list[tuple[str, tuple[str, ...]]] = [
    ("dlr", ("aice", "truefidelity", "dlir", "dlr", "deep", "precise image", "clearinfinity")),
    ("ir", ("aidr", "idose", "imr", "asir", "veo", "safire", "admire", "iterative", " ir", "ir ", "hir", "mbir")),
    ("fbp", ("fbp", "filtered", "qds", "standard", "lung", "fc", "b70", "b60", "b50", "br", "yb", "yc")),
]


def recon_names() -> list[str]:
    return list(RECON_MODELS)


def normalise_recon(value: str, what: str = "recon") -> str:
    """The canonical recon key for a user-given name, or a clear error."""
    key = RECON_ALIASES.get(str(value).strip().lower())
    if key is None:
        raise RadiologyAIError(
            f"{what}: unknown reconstruction '{value}'; use one of {', '.join(RECON_MODELS)} "
            "(fbp = filtered back-projection, ir = iterative, dlr = deep-learning)"
        )
    return key


def get_model(name: str) -> ReconModel:
    return RECON_MODELS[normalise_recon(name)]


def recon_from_dicom(kernel: str, description: str) -> str | None:
    """Guess the reconstruction family from DICOM kernel and series description; None if unsure."""
    text = f" {kernel} {description} ".lower()
    for key, words in DICOM_RECON_KEYWORDS:
        if any(word in text for word in words):
            return key
    return None
