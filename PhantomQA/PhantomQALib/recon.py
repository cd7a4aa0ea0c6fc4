"""Reconstruction models emulated by the acquisition simulator, with their calibrated constants.

The three reconstructions are named by what they emulate, not by any vendor's product:

``fbp``  filtered back-projection with a sharp (lung) kernel: FBP's ramp-shaped noise power
         spectrum (NPS) peaking at mid-high frequency, full spatial resolution.
``ir``   iterative-reconstruction-like: much lower noise whose texture is shifted to low
         frequencies ("blotchy"), the object signal only mildly smoothed (the noise is
         suppressed more than edges: the edge-preserving behaviour of statistical IR).
``dlr``  deep-learning-reconstruction-like: low noise with an FBP-like texture (NPS peak kept
         near the FBP one), edges preserved.

Noise model (fast simulator): noise is Gaussian, stationary, with
``NPS(f_r, f_z) ∝ f_r^ramp_power · exp(-(f_r / nps_cutoff)^2) · exp(-(f_z / z_cutoff)^2)`` plus a
white fraction, scaled so that the image noise SD is ``noise_sd_1mgy_hu / sqrt(CTDIvol / 1 mGy)``
(quantum noise: variance ∝ 1 / dose). The signal is blurred by a Gaussian MTF of FWHM
``signal_fwhm_mm`` in-plane (plus, for IR and DLR, a dose-dependent regularisation blur,
:meth:`ReconModel.signal_fwhm_at`) and ``slice_fwhm_mm`` along z.

Calibration: ``noise_sd_1mgy_hu`` and ``signal_fwhm_mm`` of each model were fitted by
``Testing/benchmarks/bench_phantom_calibration.py --fit`` so that the 3 mm IQR that the
VesselQuant pipeline measures on the simulated phantom matches the published figures
(:mod:`.published`) at every dose; the script prints the simulated-vs-published table that
PhantomQA/README.md reproduces. The NPS shapes are set from typical published NPS of
such reconstructions (peak frequency ~0.45 cycles/mm for a sharp FBP lung kernel, roughly
halved for IR, kept for DLR), not fitted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from RadiologyAICommonLib.errors import RadiologyAIError


@dataclass(frozen=True)
class ReconModel:
    """One emulated reconstruction (constants of the fast simulator)."""

    name: str  # short key: fbp, ir, dlr
    label: str  # what it emulates, for tables and reports
    noise_sd_1mgy_hu: float  # image noise SD (HU) at CTDIvol = 1 mGy (calibrated)
    nps_cutoff_cyc_mm: float  # Gaussian roll-off of the in-plane NPS (peak at cutoff * sqrt(ramp_power / 2))
    ramp_power: float  # low-frequency slope of the in-plane NPS (1 = FBP ramp)
    white_fraction: float  # fraction of the noise variance that is white (uncorrelated)
    z_cutoff_cyc_mm: float  # Gaussian roll-off of the NPS along z
    signal_fwhm_mm: float  # in-plane FWHM of the Gaussian PSF applied to the object (calibrated)
    slice_fwhm_mm: float  # slice-sensitivity FWHM along z
    regularisation_fwhm_1mgy_mm: float = 0.0  # dose-dependent extra blur of non-linear recons (see below)

    def signal_fwhm_at(self, ctdivol_mgy: float) -> float:
        """In-plane signal FWHM at a dose: sqrt(fwhm^2 + reg_1mGy^2 / dose).

        Regularised (IR) and learned (DL) reconstructions smooth more when the data are
        noisier, so their resolution of low-contrast detail falls with dose; the extra blur
        variance is taken proportional to the noise variance (1 / dose). FBP is linear: 0.
        """
        return float((self.signal_fwhm_mm**2 + self.regularisation_fwhm_1mgy_mm**2 / ctdivol_mgy) ** 0.5)

    def with_overrides(self, **values) -> "ReconModel":
        return replace(self, **values)


# Calibrated constants (see the module docstring and PhantomQA/README.md, "Calibration").
RECON_MODELS: dict[str, ReconModel] = {
    "fbp": ReconModel(
        name="fbp",
        label="FBP-like (sharp lung kernel)",
        noise_sd_1mgy_hu=39.02,
        nps_cutoff_cyc_mm=0.62,
        ramp_power=1.0,
        white_fraction=0.05,
        z_cutoff_cyc_mm=0.55,
        signal_fwhm_mm=1.45,
        slice_fwhm_mm=1.0,
    ),
    "ir": ReconModel(
        name="ir",
        label="IR-like (iterative, low-frequency noise texture)",
        noise_sd_1mgy_hu=14.08,
        nps_cutoff_cyc_mm=0.30,
        ramp_power=0.6,
        white_fraction=0.02,
        z_cutoff_cyc_mm=0.45,
        signal_fwhm_mm=1.373,
        slice_fwhm_mm=1.0,
        regularisation_fwhm_1mgy_mm=0.45,
    ),
    "dlr": ReconModel(
        name="dlr",
        label="DL-like (deep-learning denoised, FBP-like texture)",
        noise_sd_1mgy_hu=13.44,
        nps_cutoff_cyc_mm=0.55,
        ramp_power=1.0,
        white_fraction=0.05,
        z_cutoff_cyc_mm=0.55,
        signal_fwhm_mm=1.523,
        slice_fwhm_mm=1.0,
        regularisation_fwhm_1mgy_mm=0.35,
    ),
}

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
