"""Fast image-domain acquisition simulator.

One acquisition = the reconstruction's *signal* image of the design (deterministic per
reconstruction and dose, computed once and cached) plus stationary Gaussian noise with the
reconstruction's noise power spectrum, whose SD is ``noise_sd_1mgy_hu / sqrt(CTDIvol)``
(:mod:`.recon`), so an acquisition of two million voxels takes a fraction of a second.

Signal (:func:`signal_image`): the ideal image blurred by the reconstruction's MTF, ``S``. A
regularised reconstruction (IR-like, DL-like) also forms ``B``, the ideal image blurred by a
further ``regularisation_fwhm_mm``, and keeps the detail ``D = S - B`` only where its local
contrast ``C`` (|D| smoothed over the resolution, the PSF of ``S``) stands out of the noise expected
at the dose::

    signal = B + w * D,    w = C^2 / (C^2 + (edge_cnr * sigma(dose))^2)

This is the behaviour of edge-preserving regularisation (and of a learned denoiser) reduced
to one rule: high-contrast edges (large vessels against air) are kept at every dose, faint
detail (thin vessels, whose blurred contrast is small) is smoothed, the more so the noisier
the data. ``edge_cnr`` sets where the rule bites: small for DL-like (keeps thin vessels), larger
for IR-like. FBP (``edge_cnr = 0``) is linear: ``signal = S``.

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
from RadiologyAICommonLib.imageio import image_from_array

from .recon import ReconModel


@dataclass
class ScanGeometry:
    """The simulated scan grid (the design frame: holder axis = z through the origin)."""

    size: tuple = (144, 144, 96)  # voxels (x, y, z): holds the built-in "printed" phantom
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
    shaped = (
        fr**model.ramp_power
        * np.exp(-((fr / model.nps_cutoff_cyc_mm) ** 2))
        * np.exp(-((fz / model.z_cutoff_cyc_mm) ** 2))
    )
    # normalise the coloured part to unit mean power, then mix in the white part
    weights = np.broadcast_to(_rfft_weights(shape[2])[None, None, :], shaped.shape)
    mean_power = float((shaped * weights).sum() / weights.sum())  # Parseval: mean over the full spectrum
    nps = (1.0 - model.white_fraction) * shaped / mean_power + model.white_fraction
    return np.sqrt(nps).astype(np.float32)


def signal_filter(model: ReconModel, shape: tuple, spacing_zyx: tuple, extra_fwhm_mm: float = 0.0) -> np.ndarray:
    """The MTF on the rfftn grid: in-plane signal FWHM (widened by ``extra_fwhm_mm`` in quadrature) and
    slice profile."""
    fr, fz = _frequency_grids(shape, spacing_zyx)
    in_plane = float(np.hypot(model.signal_fwhm_mm, extra_fwhm_mm))
    return (_gaussian_mtf(fr, in_plane) * _gaussian_mtf(fz, model.slice_fwhm_mm)).astype(np.float32)


def detail_weight(contrast_hu: np.ndarray, model: ReconModel, ctdivol_mgy: float) -> np.ndarray:
    """How much of the detail a regularised reconstruction keeps: C^2 / (C^2 + (edge_cnr * sigma)^2)."""
    threshold = np.float32(model.edge_cnr * model.noise_sd_at(ctdivol_mgy))
    c2 = np.square(contrast_hu, dtype=np.float32)
    return c2 / (c2 + threshold * threshold)


def signal_image(
    spectrum: np.ndarray, shape: tuple, spacing_zyx: tuple, model: ReconModel, ctdivol_mgy: float
) -> np.ndarray:
    """The noise-free reconstructed image (float32 HU) of the object whose rfftn is ``spectrum``."""
    sharp = np.fft.irfftn(spectrum * signal_filter(model, shape, spacing_zyx), s=shape).astype(np.float32)
    if not model.is_regularised():
        return sharp
    from scipy import ndimage

    smooth = np.fft.irfftn(
        spectrum * signal_filter(model, shape, spacing_zyx, model.regularisation_fwhm_mm), s=shape
    ).astype(np.float32)
    detail = sharp - smooth
    sigma_vox = [0.0] + [model.signal_fwhm_mm / 2.3548 / s for s in spacing_zyx[1:]]  # in-plane, over the resolution
    contrast = ndimage.gaussian_filter(np.abs(detail), sigma_vox)
    return smooth + detail_weight(contrast, model, ctdivol_mgy) * detail


class FastSimulator:
    """Simulates acquisitions of one ideal image (caches its spectrum, the signal images and the noise filters)."""

    def __init__(self, ideal_hu: np.ndarray, spacing_xyz: tuple):
        self.ideal = np.asarray(ideal_hu, np.float32)
        self.spacing_zyx = tuple(float(s) for s in spacing_xyz[::-1])
        self._spectrum = None
        self._signals: dict = {}
        self._noise_filters: dict = {}

    def signal(self, model: ReconModel, ctdivol_mgy: float) -> np.ndarray:
        """The noise-free image of this reconstruction at this dose (cached)."""
        key = (model, float(ctdivol_mgy) if model.is_regularised() else None)
        if key not in self._signals:
            if self._spectrum is None:
                self._spectrum = np.fft.rfftn(self.ideal)
            if len(self._signals) > 16:
                self._signals.clear()
            self._signals[key] = signal_image(self._spectrum, self.ideal.shape, self.spacing_zyx, model, ctdivol_mgy)
        return self._signals[key]

    def _noise_filter(self, model: ReconModel) -> np.ndarray:
        if model not in self._noise_filters:
            if len(self._noise_filters) > 16:
                self._noise_filters.clear()
            self._noise_filters[model] = noise_filter(model, self.ideal.shape, self.spacing_zyx)
        return self._noise_filters[model]

    def noise_sd(self, model: ReconModel, ctdivol_mgy: float) -> float:
        return model.noise_sd_at(self.check_dose(ctdivol_mgy))

    def acquire(self, model: ReconModel, ctdivol_mgy: float, seed: int, noise: bool = True) -> np.ndarray:
        """One reconstructed image (float32 HU)."""
        signal = self.signal(model, self.check_dose(ctdivol_mgy))
        if not noise:
            return signal.copy()
        return signal + self.noise(model, ctdivol_mgy, seed)

    def noise(self, model: ReconModel, ctdivol_mgy: float, seed: int) -> np.ndarray:
        """One noise realisation (float32 HU) with the reconstruction's NPS and SD at the dose."""
        rng = np.random.default_rng(seed)
        white = rng.standard_normal(self.ideal.shape, dtype=np.float32)
        spectrum = np.fft.rfftn(white) * (self._noise_filter(model) * np.float32(self.noise_sd(model, ctdivol_mgy)))
        return np.fft.irfftn(spectrum, s=self.ideal.shape).astype(np.float32)

    @staticmethod
    def check_dose(ctdivol_mgy: float) -> float:
        if not np.isfinite(ctdivol_mgy) or ctdivol_mgy <= 0:
            raise RadiologyAIError(f"CTDIvol must be a positive number of mGy, got {ctdivol_mgy}")
        return float(ctdivol_mgy)


def to_ct_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """Round to int16 HU (a scanner's output) with the reference geometry."""
    # No -1024 floor: like scanners with an extended HU range, air noise is kept symmetric.
    image = image_from_array(np.clip(np.rint(array), -3024, 3071).astype(np.int16), reference)
    return image
