"""Physical acquisition option: projection, Poisson noise, reconstruction (scikit-image).

Per axial slice of the design's ideal image (after the slice-profile blur and the in-plane
system blur of focal spot and detector aperture):

1. HU -> linear attenuation ``mu = mu_water (1 + HU / 1000)`` (per mm);
2. parallel-beam forward projection (``skimage.transform.radon``), line integrals in mm;
3. expected counts ``I0 * (CTDIvol / 1 mGy) * exp(-p)`` per detector bin and view, drawn from a
   Poisson law (seeded), log-transformed back to line integrals;
4. reconstruction:

   - ``fbp``: filtered back-projection (``iradon``, ramp filter): FBP;
   - ``ir``: an iterative reconstruction with an edge-preserving penalty: from the FBP image,
     alternate SART updates (``iradon_sart``, data consistency) and total-variation steps
     (``denoise_tv_chambolle``), the ASD-POCS scheme of Sidky & Pan (2008), then an optional
     mild Gaussian post-filter;
   - ``dlr``: FBP followed by an edge-preserving total-variation denoiser and a mild
     Gaussian post-filter - a classical stand-in for a deep-learning denoiser (no trained
     network is shipped); it is named DL-like for its role in the study only.

The TV strengths follow the expected noise level (see :class:`PhysicalParameters`).

Calibration (``Testing/benchmarks/bench_phantom_calibration.py --fit-physical``): the residuals
of the fast models' proxy stage (3 mm MPV against the published range and IQR where published,
at 0.2, 1.0 and 4 mGy), ``scipy.optimize.least_squares``: ``i0_1mgy`` and ``system_fwhm_mm``
(scanner properties) on FBP, then the TV factor and post-filter of IR and of DLR. The calibrated
values live in ``Resources/recon_calibration.json`` ("physical"), beside the fast models', and
are the defaults of :class:`PhysicalParameters`. Noise follows dose through the Poisson
statistics, not by construction (FBP: SD ∝ 1/sqrt(dose); the TV steps are non-linear).

It is slow (seconds per slice): use it for a few acquisitions, not the 60-scan demo.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.progress import ProgressCallback, no_progress

from .recon import CALIBRATION_METADATA, normalise_recon


def _calibrated(name: str):
    """The default of a calibrated field: its value in recon_calibration.json ("physical")."""
    return field(default_factory=lambda: float(CALIBRATION_METADATA["physical"][name]))


@dataclass
class PhysicalParameters:
    """Scanner and reconstruction constants of the physical option (calibrated ones marked)."""

    n_angles: int = 180  # views over 180 degrees
    mu_water_per_mm: float = 0.0192  # water at ~70 keV effective energy
    i0_1mgy: float = _calibrated("i0_1mgy")  # photons per detector bin and view at CTDIvol 1 mGy (calibrated on FBP)
    system_fwhm_mm: float = _calibrated(
        "system_fwhm_mm"
    )  # in-plane blur of focal spot + detector aperture (calibrated on FBP)
    slice_fwhm_mm: float = 1.0
    fbp_filter: str = "ramp"
    # Denoising strengths follow the noise level, as statistical IR weights its penalty by the data
    # statistics and a DL denoiser is trained for the noise it sees: TV weight = factor x the
    # expected FBP noise SD at the dose (reference_noise_1mgy_hu / sqrt(dose)).
    reference_noise_1mgy_hu: float = _calibrated("reference_noise_1mgy_hu")
    ir_iterations: int = 2  # IR-like: FBP start, then (SART update + TV step) x ir_iterations
    ir_relaxation: float = 0.1
    ir_tv_factor: float = _calibrated("ir_tv_factor")
    ir_post_fwhm_mm: float = _calibrated("ir_post_fwhm_mm")  # IR-like: Gaussian post-filter
    dl_tv_factor: float = _calibrated("dl_tv_factor")  # DL-like: TV step strength
    dl_post_fwhm_mm: float = _calibrated("dl_post_fwhm_mm")  # DL-like: Gaussian post-filter

    def tv_weight(self, factor: float, ctdivol_mgy: float) -> float:
        return factor * self.reference_noise_1mgy_hu / np.sqrt(ctdivol_mgy) / 1000.0 * self.mu_water_per_mm


def _square_pad(slice_: np.ndarray) -> tuple[np.ndarray, tuple]:
    ny, nx = slice_.shape
    n = max(ny, nx)
    out = np.zeros((n, n), slice_.dtype)
    oy, ox = (n - ny) // 2, (n - nx) // 2
    out[oy : oy + ny, ox : ox + nx] = slice_
    return out, (oy, ox, ny, nx)


def reconstruct_slice(
    hu: np.ndarray, recon: str, ctdivol_mgy: float, pixel_mm: float, rng: np.random.Generator, p: PhysicalParameters
) -> np.ndarray:
    """One noisy reconstructed slice (HU)."""
    from scipy import ndimage
    from skimage.restoration import denoise_tv_chambolle
    from skimage.transform import iradon, iradon_sart, radon

    mu = np.clip(p.mu_water_per_mm * (1.0 + hu / 1000.0), 0.0, None)
    square, (oy, ox, ny, nx) = _square_pad(mu.astype(np.float64))
    # outside the inscribed circle must be empty for radon(circle=True)
    n = square.shape[0]
    yy, xx = np.ogrid[:n, :n]  # skimage's own definition of the reconstruction circle
    square[((yy - n // 2) ** 2 + (xx - n // 2) ** 2) > (n // 2) ** 2] = 0.0
    theta = np.linspace(0.0, 180.0, p.n_angles, endpoint=False)
    line_integrals = radon(square, theta=theta, circle=True) * pixel_mm
    expected = p.i0_1mgy * ctdivol_mgy * np.exp(-line_integrals)
    counts = rng.poisson(expected)
    noisy = -np.log(np.maximum(counts, 0.5) / (p.i0_1mgy * ctdivol_mgy)) / pixel_mm
    if recon == "fbp":
        image = iradon(noisy, theta=theta, filter_name=p.fbp_filter, circle=True)
    elif recon == "ir":
        image = iradon(noisy, theta=theta, filter_name=p.fbp_filter, circle=True)
        for _ in range(p.ir_iterations):
            image = iradon_sart(noisy, theta=theta, image=image, relaxation=p.ir_relaxation)
            image = denoise_tv_chambolle(image, weight=p.tv_weight(p.ir_tv_factor, ctdivol_mgy))
        if p.ir_post_fwhm_mm > 0:
            image = ndimage.gaussian_filter(image, p.ir_post_fwhm_mm / 2.3548 / pixel_mm)
    elif recon == "dlr":
        image = iradon(noisy, theta=theta, filter_name=p.fbp_filter, circle=True)
        image = denoise_tv_chambolle(image, weight=p.tv_weight(p.dl_tv_factor, ctdivol_mgy))
        if p.dl_post_fwhm_mm > 0:
            image = ndimage.gaussian_filter(image, p.dl_post_fwhm_mm / 2.3548 / pixel_mm)
    else:  # pragma: no cover - normalise_recon guards this
        raise RadiologyAIError(f"unknown reconstruction {recon}")
    out = (image[oy : oy + ny, ox : ox + nx] / p.mu_water_per_mm - 1.0) * 1000.0
    return out.astype(np.float32)


def simulate_physical(
    ideal_hu: np.ndarray,
    spacing_xyz: tuple,
    recon: str,
    ctdivol_mgy: float,
    seed: int,
    parameters: PhysicalParameters | None = None,
    progress: ProgressCallback | None = None,
    slices: list | None = None,
) -> np.ndarray:
    """A whole volume, slice by slice (float32 HU); only ``slices`` (z indices) when given."""
    from scipy import ndimage

    p = parameters or PhysicalParameters()
    recon = normalise_recon(recon)
    if not np.isfinite(ctdivol_mgy) or ctdivol_mgy <= 0:
        raise RadiologyAIError(f"CTDIvol must be a positive number of mGy, got {ctdivol_mgy}")
    if abs(spacing_xyz[0] - spacing_xyz[1]) > 1e-6:
        raise RadiologyAIError("the physical simulator needs square in-plane pixels")
    progress = progress or no_progress
    sigma = [
        p.slice_fwhm_mm / 2.3548 / spacing_xyz[2],
        p.system_fwhm_mm / 2.3548 / spacing_xyz[1],
        p.system_fwhm_mm / 2.3548 / spacing_xyz[0],
    ]
    volume = (
        ndimage.gaussian_filter(np.asarray(ideal_hu, np.float32), sigma)
        if max(sigma) > 0
        else np.asarray(ideal_hu, np.float32)
    )
    rng = np.random.default_rng(seed)
    indices = list(range(volume.shape[0])) if slices is None else [int(k) for k in slices]
    out = np.empty((len(indices),) + volume.shape[1:], np.float32)
    for n, k in enumerate(indices):
        out[n] = reconstruct_slice(volume[k], recon, ctdivol_mgy, float(spacing_xyz[0]), rng, p)
        progress((n + 1) / len(indices), f"projecting and reconstructing slice {n + 1}/{len(indices)}")
    return out
