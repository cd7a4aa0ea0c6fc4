"""Fast image-domain acquisition simulator.

One acquisition = the design's ideal image on the scan grid, blurred by the
reconstruction's MTF (dose-dependent for IR and DLR), plus stationary Gaussian noise with the reconstruction's noise power
spectrum, whose SD is ``noise_sd_1mgy_hu / sqrt(CTDIvol)`` (:mod:`.recon`). Both happen in
one FFT round trip, so an acquisition of two million voxels takes a fraction of a second.

Randomness: each acquisition's noise comes from ``numpy.random.default_rng`` seeded by
(study seed, recon, dose, repetition), so a study is reproducible and acquisitions are
independent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from RadiologyAICommonLib.errors import RadiologyAIError

from .recon import ReconModel


@dataclass
class ScanGeometry:
    """The simulated scan grid (the design frame: holder axis = z through the origin)."""

    size: tuple = (128, 128, 80)  # voxels (x, y, z)
    spacing_mm: tuple = (0.7, 0.7, 1.0)  # chest-CT-like in-plane pixel, 1 mm slices

    def reference(self) -> sitk.Image:
        if any(int(n) < 8 for n in self.size) or any(float(s) <= 0 for s in self.spacing_mm):
            raise RadiologyAIError(f"scan grid: size {self.size} / spacing {self.spacing_mm} is not usable")
        ref = sitk.Image([int(n) for n in self.size], sitk.sitkUInt8)
        ref.SetSpacing([float(s) for s in self.spacing_mm])
        # centred on the design origin
        ref.SetOrigin([-(n - 1) * s / 2 for n, s in zip(self.size, self.spacing_mm)])
        return ref


def acquisition_seed(seed: int, recon: str, ctdivol_mgy: float, repetition: int) -> int:
    """A stable 63-bit seed per acquisition (independent of Python's hash randomisation)."""
    text = f"{int(seed)}|{recon}|{float(ctdivol_mgy):.6g}|{int(repetition)}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def _frequency_grids(shape: tuple, spacing_zyx: tuple):
    """Radial in-plane and axial frequencies (cycles/mm) on the rfftn grid of ``shape``."""
    nz, ny, nx = shape
    fz = np.fft.fftfreq(nz, spacing_zyx[0])[:, None, None]
    fy = np.fft.fftfreq(ny, spacing_zyx[1])[None, :, None]
    fx = np.fft.rfftfreq(nx, spacing_zyx[2])[None, None, :]
    fr = np.sqrt(fy**2 + fx**2)
    return fr, np.abs(fz)


def _gaussian_mtf(f: np.ndarray, fwhm_mm: float) -> np.ndarray:
    """MTF of a Gaussian PSF with the given FWHM (mm) at frequency f (cycles/mm)."""
    if fwhm_mm <= 0:
        return np.ones_like(f)
    sigma = fwhm_mm / 2.3548
    return np.exp(-2.0 * (np.pi * sigma * f) ** 2)


def _rfft_weights(nx: int) -> np.ndarray:
    """How many full-spectrum bins each rfft bin along x stands for (for Parseval sums)."""
    w = np.full(nx // 2 + 1, 2.0)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    return w


def noise_filter(model: ReconModel, shape: tuple, spacing_zyx: tuple) -> np.ndarray:
    """|H(f)| on the rfftn grid, scaled so filtered unit white noise has unit variance."""
    fr, fz = _frequency_grids(shape, spacing_zyx)
    shaped = fr**model.ramp_power * np.exp(-((fr / model.nps_cutoff_cyc_mm) ** 2)) * np.exp(-((fz / model.z_cutoff_cyc_mm) ** 2))
    # normalise the coloured part to unit mean power, then mix in the white part
    weights = np.broadcast_to(_rfft_weights(shape[2])[None, None, :], shaped.shape)
    mean_power = float((shaped * weights).sum() / weights.sum())  # Parseval: mean over the full spectrum
    nps = (1.0 - model.white_fraction) * shaped / mean_power + model.white_fraction
    return np.sqrt(nps).astype(np.float32)


def signal_filter(model: ReconModel, shape: tuple, spacing_zyx: tuple, ctdivol_mgy: float = 1.0) -> np.ndarray:
    fr, fz = _frequency_grids(shape, spacing_zyx)
    return (_gaussian_mtf(fr, model.signal_fwhm_at(ctdivol_mgy)) * _gaussian_mtf(fz, model.slice_fwhm_mm)).astype(np.float32)


class FastSimulator:
    """Simulates acquisitions of one ideal image (caches its spectrum and the filters)."""

    def __init__(self, ideal_hu: np.ndarray, spacing_xyz: tuple):
        self.ideal = np.asarray(ideal_hu, np.float32)
        self.spacing_zyx = tuple(float(s) for s in spacing_xyz[::-1])
        self._spectrum = None
        self._filters: dict = {}

    def _filters_for(self, model: ReconModel, ctdivol_mgy: float):
        key = (model, float(ctdivol_mgy) if model.regularisation_fwhm_1mgy_mm > 0 else None)
        if key not in self._filters:
            if len(self._filters) > 32:
                self._filters.clear()
            self._filters[key] = (
                signal_filter(model, self.ideal.shape, self.spacing_zyx, ctdivol_mgy),
                noise_filter(model, self.ideal.shape, self.spacing_zyx),
            )
        return self._filters[key]

    def noise_sd(self, model: ReconModel, ctdivol_mgy: float) -> float:
        if not np.isfinite(ctdivol_mgy) or ctdivol_mgy <= 0:
            raise RadiologyAIError(f"CTDIvol must be a positive number of mGy, got {ctdivol_mgy}")
        return model.noise_sd_1mgy_hu / np.sqrt(ctdivol_mgy)

    def acquire(self, model: ReconModel, ctdivol_mgy: float, seed: int, noise: bool = True) -> np.ndarray:
        """One reconstructed image (float32 HU)."""
        if self._spectrum is None:
            self._spectrum = np.fft.rfftn(self.ideal)
        if not np.isfinite(ctdivol_mgy) or ctdivol_mgy <= 0:
            raise RadiologyAIError(f"CTDIvol must be a positive number of mGy, got {ctdivol_mgy}")
        mtf, nps = self._filters_for(model, ctdivol_mgy)
        spectrum = self._spectrum * mtf
        if noise:
            rng = np.random.default_rng(seed)
            white = rng.standard_normal(self.ideal.shape, dtype=np.float32)
            spectrum = spectrum + np.fft.rfftn(white) * (nps * np.float32(self.noise_sd(model, ctdivol_mgy)))
        return np.fft.irfftn(spectrum, s=self.ideal.shape).astype(np.float32)


def to_ct_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """Round to int16 HU (a scanner's output) with the reference geometry."""
    # No -1024 floor: like scanners with an extended HU range, air noise is kept symmetric.
    image = sitk.GetImageFromArray(np.clip(np.rint(array), -3024, 3071).astype(np.int16))
    image.CopyInformation(reference)
    return image
