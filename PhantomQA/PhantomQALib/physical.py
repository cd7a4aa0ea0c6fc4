"""Physical acquisition option: projection, Poisson noise, reconstruction (scikit-image).

Per axial slice of the design's ideal image (after the slice-profile blur and the in-plane
system blur of focal spot and detector aperture):

1. HU -> linear attenuation ``mu = mu_water (1 + HU / 1000)`` (per mm);
2. parallel-beam forward projection (``skimage.transform.radon``), line integrals in mm;
3. expected counts ``I0 * (CTDIvol / 1 mGy) * exp(-p)`` per detector bin and view, drawn from a
   Poisson law (seeded), log-transformed back to line integrals;
4. reconstruction:

   - ``fbp``: filtered back-projection (``iradon``, ramp filter): FBP;
   - ``ir``: SART (``iradon_sart``), two early-stopped iterations from an empty image: an
     algebraic iterative reconstruction, lower noise with a low-frequency texture;
   - ``dlr``: FBP followed by an edge-preserving total-variation denoiser
     (``denoise_tv_chambolle``) - a classical stand-in for a deep-learning denoiser (no
     trained network is shipped); it is named DL-like for its role in the study only.

Calibration: ``i0_1mgy`` (photons per bin and view at 1 mGy) was set so that the FBP noise
SD in the holder interior equals the fast simulator's calibrated FBP noise at 1 mGy
(``Testing/benchmarks/bench_phantom_calibration.py --physical``); the SART and TV settings
were chosen so IR-like and DL-like noise sit near the fast models' ratios to FBP. Noise SD
follows 1/sqrt(dose) through the Poisson statistics, not by construction.

It is slow (seconds per slice): use it for a few acquisitions, not the 60-scan demo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.progress import ProgressCallback, no_progress

from .recon import normalise_recon


@dataclass
class PhysicalParameters:
    n_angles: int = 180  # views over 180 degrees
    mu_water_per_mm: float = 0.0192  # water at ~70 keV effective energy
    i0_1mgy: float = 1.0e4  # photons per detector bin and view at CTDIvol 1 mGy (calibrated to the fast FBP noise)
    fbp_filter: str = "ramp"
    sart_iterations: int = 2  # early-stopped SART: the stop acts as the regulariser
    sart_relaxation: float = 0.05
    sart_start_filter: str | None = None  # None: SART starts from an empty image; else FBP with this filter
    tv_weight: float = 0.02  # DL-like: TV denoiser weight (in units of mu_water)
    slice_fwhm_mm: float = 1.0
    system_fwhm_mm: float = 1.2  # in-plane blur of focal spot + detector aperture, applied to the object


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
        image = iradon(noisy, theta=theta, filter_name=p.sart_start_filter, circle=True) if p.sart_start_filter else None
        for _ in range(p.sart_iterations):
            image = iradon_sart(noisy, theta=theta, image=image, relaxation=p.sart_relaxation)
    elif recon == "dlr":
        image = iradon(noisy, theta=theta, filter_name=p.fbp_filter, circle=True)
        image = denoise_tv_chambolle(image, weight=p.tv_weight * p.mu_water_per_mm)
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
) -> np.ndarray:
    """A whole volume, slice by slice (float32 HU)."""
    from scipy import ndimage

    p = parameters or PhysicalParameters()
    recon = normalise_recon(recon)
    if not np.isfinite(ctdivol_mgy) or ctdivol_mgy <= 0:
        raise RadiologyAIError(f"CTDIvol must be a positive number of mGy, got {ctdivol_mgy}")
    if abs(spacing_xyz[0] - spacing_xyz[1]) > 1e-6:
        raise RadiologyAIError("the physical simulator needs square in-plane pixels")
    progress = progress or no_progress
    sigma = [p.slice_fwhm_mm / 2.3548 / spacing_xyz[2], p.system_fwhm_mm / 2.3548 / spacing_xyz[1], p.system_fwhm_mm / 2.3548 / spacing_xyz[0]]
    volume = ndimage.gaussian_filter(np.asarray(ideal_hu, np.float32), sigma) if max(sigma) > 0 else np.asarray(ideal_hu, np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty(volume.shape, np.float32)
    for k in range(volume.shape[0]):
        out[k] = reconstruct_slice(volume[k], recon, ctdivol_mgy, float(spacing_xyz[0]), rng, p)
        progress((k + 1) / volume.shape[0], f"projecting and reconstructing slice {k + 1}/{volume.shape[0]}")
    return out
