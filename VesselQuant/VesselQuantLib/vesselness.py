"""Multi-scale Frangi vesselness in physical units, evaluated only inside a mask.

Frangi, Niessen, Vincken & Viergever, "Multiscale vessel enhancement filtering", MICCAI 1998.
For each scale sigma (mm) the image is smoothed with a Gaussian in mm (:func:`gaussian_smoothed`), which
takes the per-axis voxel spacing into account, so anisotropic scans get isotropic scales.
The Hessian is then taken by central differences on a grid subsampled to at most
``max_subsampling_ratio x sigma`` per axis (the smoothed image has no detail finer than
that), which makes the coarse scales cheap. Such a scale is smoothed on that grid itself, from the last scale on
the full grid (Gaussians compose), when that scale's blur leaves no detail the coarse grid cannot hold. The
eigenvalues are computed in closed form only at the mask voxels, by the compiled kernels of :mod:`.kernels`.

Frangi's structureness constant ``c`` is set per scan and scale from the noise: a multiple
of the median Hessian norm inside the mask (the lung parenchyma), so a faint but
significant ridge (a sub-millimetre vessel) saturates the measure while noise does not.
The result is in [0, 1] (Frangi's own range) and is the maximum over the scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from RadiologyAICommonLib.imageio import voxels_of
from RadiologyAICommonLib.progress import ProgressCallback, no_progress

from .parameters import VesselQuantParameters


@dataclass
class VesselnessMaps:
    vesselness: np.ndarray  # float32, max over scales, 0 outside the mask
    scale_index: np.ndarray | None  # uint8, index of the winning scale (sorted sigmas); only for the thin-vessel growth
    fine: np.ndarray  # float32, max over the fine scales (sigma <= thin_vessel_max_sigma_mm)
    smoothed_finest: np.ndarray  # float32 HU smoothed at the finest scale
    ridge_finest: np.ndarray  # float32 ridge strength -(l2 + l3) of bright tubes at the finest scale (0 elsewhere)

    def release(self, *names: str) -> None:
        """Drop maps no longer needed (a chest CT's map is hundreds of MB); reading one afterwards is a bug."""
        for name in names:
            setattr(self, name, None)


def symmetric_eigenvalues(hxx, hyy, hzz, hxy, hxz, hyz):
    """Eigenvalues of many symmetric 3x3 matrices, sorted by |value|.

    Arguments are 1-D arrays of the six distinct entries; returns (l1, l2, l3) with
    |l1| <= |l2| <= |l3|, in float64.
    """
    from .kernels import eigenvalues_many

    args = [np.ascontiguousarray(v, np.float64).ravel() for v in (hxx, hyy, hzz, hxy, hxz, hyz)]
    out = np.empty((args[0].size, 3))
    eigenvalues_many(*args, out)
    return out[:, 0], out[:, 1], out[:, 2]


def multiscale_vesselness(
    hu: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    mask: np.ndarray,
    parameters: VesselQuantParameters | None = None,
    progress: ProgressCallback | None = None,
) -> VesselnessMaps:
    """Frangi vesselness and its by-products (see :class:`VesselnessMaps`).

    ``hu`` and ``mask`` are (z, y, x) arrays of the same shape with voxel spacing ``spacing_zyx`` in mm.
    """
    from .kernels import frangi_grid, hessian_norms, merge_scale

    p = parameters or VesselQuantParameters()
    progress = progress or no_progress
    spacing_zyx = tuple(float(s) for s in spacing_zyx)
    mask = np.ascontiguousarray(mask, bool)
    best = np.zeros(hu.shape, np.float32)
    # only the optional thin-vessel growth reads the winning scale (it measures the blur on thick vessels' edges)
    best_scale = np.zeros(hu.shape, np.uint8) if p.thin_vessel_min_radius_mm is not None else _NO_SCALES
    fine = np.zeros(hu.shape, np.float32)
    rng = np.random.default_rng(0)
    sigmas = sorted(p.vesselness_sigmas_mm)
    mask_count = int(np.count_nonzero(mask))
    smoothed_finest = None
    ridge_finest = None
    full_grid = None  # the last scale smoothed on the full grid: (its array, its sigma)
    for k, sigma in enumerate(sigmas):
        progress(k / len(sigmas), f"vesselness: scale {sigma:g} mm")
        factors = tuple(max(1, int(p.max_subsampling_ratio * sigma / s)) for s in spacing_zyx)
        steps = np.array([f * s for f, s in zip(factors, spacing_zyx)])
        every = tuple(slice(None, None, f) for f in factors)
        if factors != (1, 1, 1) and full_grid is not None and full_grid[1] >= steps.max():
            # Gaussians compose (variances add): the coarse grid samples the last full-grid scale, whose blur leaves
            # no detail that grid cannot hold (attenuation below 0.01 at its Nyquist frequency), and is smoothed
            # the rest of the way there, on a fraction of the voxels
            source, source_sigma = np.ascontiguousarray(full_grid[0][every]), full_grid[1]
            full_grid = None  # frees that scale's volume (a later coarse scale is smoothed from the CT): peak memory
            coarse = gaussian_smoothed(source, steps, float(np.sqrt(sigma**2 - source_sigma**2)))
            del source
        else:
            full_grid = None  # frees the last full-grid scale's volume before this one is made: peak memory
            full = gaussian_smoothed(hu, spacing_zyx, float(sigma))
            if k == 0:  # kept as a map
                smoothed_finest = full
            if factors == (1, 1, 1):
                full_grid = (full, float(sigma))
            coarse = full if factors == (1, 1, 1) else np.ascontiguousarray(full[every])
            del full
        if factors == (1, 1, 1):
            coarse_mask, count = mask, mask_count
        else:
            coarse_mask = ndi.binary_dilation(mask[every])
            count = int(np.count_nonzero(coarse_mask))
        if count == 0:
            continue
        scale2 = sigma * sigma  # scale normalisation of second derivatives (gamma = 2)

        # Frangi's c from the noise: median Hessian norm on a random sample of the mask.
        sample = sample_of_mask(coarse_mask, count, rng, 200_000)
        c = max(p.structureness_noise_factor * float(np.median(hessian_norms(coarse, sample, steps, scale2))), 1e-6)

        # A bright tube's centre is brighter than the parenchyma at every scale: evaluate only there.
        level = -np.inf
        if p.vesselness_min_contrast_sd is not None:
            values_sample = coarse.ravel()[sample].astype(np.float64)
            median = float(np.median(values_sample))
            spread = 1.4826 * float(np.median(np.abs(values_sample - median)))
            level = median + p.vesselness_min_contrast_sd * spread

        ridge = np.zeros(coarse.shape, np.float32) if k == 0 else _NO_MAP
        into_fine = sigma <= p.thin_vessel_max_sigma_mm
        args = (coarse, coarse_mask, level, steps, scale2, p.frangi_alpha, p.frangi_beta, c)
        if factors == (1, 1, 1):  # straight into the maxima over the scales
            frangi_grid(*args, best, ridge, k, best_scale, fine if into_fine else _NO_MAP)
        else:  # on the coarse grid, then interpolated onto the full one and merged
            values = np.zeros(coarse.shape, np.float32)
            frangi_grid(*args, values, ridge, k, _NO_SCALES, _NO_MAP)
        if k == 0:
            ridge_finest = (
                ridge if factors == (1, 1, 1) else sitk.GetArrayFromImage(_upsample(ridge, factors, hu.shape))
            )
        del ridge, coarse, args
        if factors != (1, 1, 1):
            upsampled = _upsample(values, factors, hu.shape)
            del values
            merge_scale(voxels_of(upsampled), k, mask, best, best_scale, fine, into_fine)
            upsampled = None
    full_grid = None
    if ridge_finest is None:  # the mask was empty at the finest scale
        ridge_finest = np.zeros(hu.shape, np.float32)
    progress(1.0, "vesselness: done")
    return VesselnessMaps(best, best_scale if best_scale.size else None, fine, smoothed_finest, ridge_finest)


# Empty volumes: what frangi_grid is given for the maps it should not keep.
_NO_MAP = np.zeros((0, 0, 0), np.float32)
_NO_SCALES = np.zeros((0, 0, 0), np.uint8)


def sample_of_mask(mask: np.ndarray, count: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """Flat indices of ``size`` voxels of ``mask`` drawn without replacement (all of them when it has fewer): the draw
    of ``rng.choice(np.flatnonzero(mask), size, replace=False)``, without that array (8 bytes a lung voxel)."""
    from .kernels import voxels_of_rank

    if count <= size:
        return np.flatnonzero(mask)
    ranks = rng.choice(count, size, replace=False)  # the k-th voxel of the mask in C order
    order = np.argsort(ranks)
    ranks = ranks[order]
    per_slice = np.cumsum(np.count_nonzero(mask.reshape(mask.shape[0], -1), axis=1))
    first = np.concatenate([[0], per_slice[:-1]])
    out = np.empty(size, np.int64)
    voxels_of_rank(
        mask.reshape(mask.shape[0], -1),
        ranks,
        order,
        first,
        np.searchsorted(ranks, first),
        np.searchsorted(ranks, per_slice),
        out,
    )
    return out


def gaussian_smoothed(values: np.ndarray, spacing_zyx, sigma_mm: float) -> np.ndarray:
    """``values`` (z, y, x; voxels of ``spacing_zyx`` mm) smoothed by a Gaussian of ``sigma_mm`` along every axis, as
    a new float32 array: scipy's ``gaussian_filter`` (sampled kernel to 4 sigma, edges read as the nearest voxel), one
    axis after the other, each axis's lines shared among SimpleITK's threads (scipy's filters release the GIL).

    Not SimpleITK's recursive Gaussian: it walks a volume's z-lines one voxel a slice apart and took 3.4 s on a
    512 x 512 x 400 CT against 1.0 s here (2 cores).
    """
    import functools
    from concurrent.futures import ThreadPoolExecutor

    out = np.empty(values.shape, np.float32)
    threads = max(1, sitk.ProcessObject.GetGlobalDefaultNumberOfThreads())

    def parts(axis: int) -> list[tuple]:  # slabs across another axis: each holds whole lines along ``axis``
        across = 1 if axis == 0 else 0
        bounds = np.linspace(0, values.shape[across], threads + 1).round().astype(int)
        return [
            tuple(slice(lo, hi) if a == across else slice(None) for a in range(values.ndim))
            for lo, hi in zip(bounds[:-1], bounds[1:])
            if hi > lo
        ]

    with ThreadPoolExecutor(threads) as pool:
        for axis in range(values.ndim):
            source, sigma = (values if axis == 0 else out), float(sigma_mm) / float(spacing_zyx[axis])
            list(pool.map(functools.partial(_smooth_lines, source, out, sigma, axis), parts(axis)))
    return out


def _smooth_lines(source: np.ndarray, out: np.ndarray, sigma: float, axis: int, part: tuple) -> None:
    """One slab of :func:`gaussian_smoothed`'s pass along ``axis`` (``sigma`` in voxels), ``source`` into ``out``."""
    ndi.gaussian_filter1d(source[part], sigma, axis=axis, output=out[part], mode="nearest", truncate=4.0)


def _upsample(values: np.ndarray, factors: tuple[int, int, int], shape: tuple[int, int, int]) -> sitk.Image:
    """Linear interpolation of a grid sampled at every ``factors``-th voxel back onto the full grid (float32 image)."""
    coarse = sitk.GetImageFromArray(values)
    coarse.SetSpacing(tuple(float(f) for f in factors[::-1]))
    # the output grid given by size, origin and spacing (a reference image would cost a full float volume)
    out = sitk.Resample(
        coarse,
        [int(s) for s in shape[::-1]],
        sitk.Transform(),
        sitk.sitkLinear,
        (0.0, 0.0, 0.0),
        (1.0, 1.0, 1.0),
        (1, 0, 0, 0, 1, 0, 0, 0, 1),
        0.0,
        sitk.sitkFloat32,
        True,
    )
    return out
