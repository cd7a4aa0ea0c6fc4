"""Multi-scale Frangi vesselness in physical units, evaluated only inside a mask.

Frangi, Niessen, Vincken & Viergever, "Multiscale vessel enhancement filtering", MICCAI 1998.
For each scale sigma (mm) the image is smoothed with SimpleITK's recursive Gaussian, which
takes the per-axis voxel spacing into account, so anisotropic scans get isotropic scales.
The Hessian is then taken by central differences on a grid subsampled to at most
``max_subsampling_ratio x sigma`` per axis (the smoothed image has no detail finer than
that), which makes the coarse scales cheap; its eigenvalues are computed in closed form
only at the mask voxels (hand-written below because numpy's ``eigvalsh`` on millions of
3x3 matrices is several times slower and needs 9 floats per voxel).

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

from RadiologyAICommonLib.progress import ProgressCallback, no_progress

from .parameters import VesselQuantParameters

_CHUNK = 1 << 20


def symmetric_eigenvalues(hxx, hyy, hzz, hxy, hxz, hyz):
    """Eigenvalues of many symmetric 3x3 matrices (closed form, Smith 1961), sorted by |value|.

    Arguments are 1-D arrays of the six distinct entries; returns (l1, l2, l3) with
    |l1| <= |l2| <= |l3|, in float64.
    """
    a11, a22, a33 = (np.asarray(v, np.float64) for v in (hxx, hyy, hzz))
    a12, a13, a23 = (np.asarray(v, np.float64) for v in (hxy, hxz, hyz))
    q = (a11 + a22 + a33) / 3.0
    p1 = a12 * a12 + a13 * a13 + a23 * a23
    b11, b22, b33 = a11 - q, a22 - q, a33 - q
    p2 = b11 * b11 + b22 * b22 + b33 * b33 + 2.0 * p1
    p = np.sqrt(p2 / 6.0)
    safe = np.where(p > 0, p, 1.0)
    det = (
        b11 * (b22 * b33 - a23 * a23) - a12 * (a12 * b33 - a23 * a13) + a13 * (a12 * a23 - b22 * a13)
    ) / (safe * safe * safe)
    r = np.clip(det / 2.0, -1.0, 1.0)
    phi = np.arccos(r) / 3.0
    e1 = q + 2.0 * p * np.cos(phi)
    e3 = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    e2 = 3.0 * q - e1 - e3
    eig = np.stack([e1, e2, e3], axis=1)
    order = np.argsort(np.abs(eig), axis=1)
    eig = np.take_along_axis(eig, order, axis=1)
    return eig[:, 0], eig[:, 1], eig[:, 2]


def _hessian_at(padded: np.ndarray, flat: np.ndarray, steps: tuple[float, float, float]):
    """Central-difference Hessian of a padded (z, y, x) array at flat indices; returns xx, yy, zz, xy, xz, yz."""
    a = padded.ravel()
    sz, sy, sx = padded.strides[0] // padded.itemsize, padded.strides[1] // padded.itemsize, 1
    hz, hy, hx = steps
    c = a[flat].astype(np.float64)

    def second(stride, h):
        return (a[flat + stride] + a[flat - stride] - 2.0 * c) / (h * h)

    def mixed(s1, s2, h1, h2):
        return (a[flat + s1 + s2] - a[flat + s1 - s2] - a[flat - s1 + s2] + a[flat - s1 - s2]) / (4.0 * h1 * h2)

    return (
        second(sx, hx),
        second(sy, hy),
        second(sz, hz),
        mixed(sx, sy, hx, hy),
        mixed(sx, sz, hx, hz),
        mixed(sy, sz, hy, hz),
    )


def axis_direction(h, l1) -> np.ndarray:
    """Unit eigenvector (x, y, z) of the Hessian for eigenvalue ``l1`` (the tube axis when |l1| is smallest).

    Closed form: the cross product of two rows of (H - l1 I), the pair with the largest cross product.
    """
    hxx, hyy, hzz, hxy, hxz, hyz = (np.asarray(v, np.float64) for v in h)
    r0 = np.stack([hxx - l1, hxy, hxz], 1)
    r1 = np.stack([hxy, hyy - l1, hyz], 1)
    r2 = np.stack([hxz, hyz, hzz - l1], 1)
    crosses = np.stack([np.cross(r0, r1), np.cross(r0, r2), np.cross(r1, r2)], 0)
    norms = np.linalg.norm(crosses, axis=2)
    pick = np.argmax(norms, axis=0)
    vec = crosses[pick, np.arange(len(pick))]
    length = norms[pick, np.arange(len(pick))]
    vec = np.where(length[:, None] > 0, vec / np.maximum(length, 1e-30)[:, None], np.array([[0.0, 0.0, 1.0]]))
    return vec


def frangi_from_eigenvalues(l1, l2, l3, alpha: float, beta: float, c: float) -> np.ndarray:
    """Frangi's vesselness for bright tubes from eigenvalues sorted by magnitude."""
    a2, a3 = np.abs(l2), np.abs(l3)
    with np.errstate(divide="ignore", invalid="ignore"):
        ra = np.where(a3 > 0, a2 / a3, 0.0)
        rb = np.where(a2 * a3 > 0, np.abs(l1) / np.sqrt(a2 * a3), 0.0)
    s2 = l1 * l1 + l2 * l2 + l3 * l3
    v = (1.0 - np.exp(-(ra * ra) / (2 * alpha * alpha))) * np.exp(-(rb * rb) / (2 * beta * beta))
    v *= 1.0 - np.exp(-s2 / (2 * c * c))
    v[(l2 >= 0) | (l3 >= 0)] = 0.0
    return v


@dataclass
class VesselnessMaps:
    vesselness: np.ndarray  # float32, max over scales, 0 outside the mask
    scale_index: np.ndarray  # uint8, index of the winning scale (sorted sigmas)
    fine: np.ndarray  # float32, max over the fine scales (sigma <= thin_vessel_max_sigma_mm)
    axis_flat: np.ndarray  # flat indices (into hu) where the finest scale sees a tube
    axis_vectors: np.ndarray  # (n, 3) float32 unit tube axes there, (z, y, x) mm space
    smoothed_finest: np.ndarray  # float32 HU smoothed at the finest scale

    def __iter__(self):  # unpacks as (vesselness, scale_index, fine, (axis_flat, axis_vectors))
        return iter((self.vesselness, self.scale_index, self.fine, (self.axis_flat, self.axis_vectors)))


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
    p = parameters or VesselQuantParameters()
    progress = progress or no_progress
    spacing_zyx = tuple(float(s) for s in spacing_zyx)
    image = sitk.GetImageFromArray(np.ascontiguousarray(hu, dtype=np.float32))
    image.SetSpacing(spacing_zyx[::-1])
    best = np.zeros(hu.shape, np.float32)
    best_scale = np.zeros(hu.shape, np.uint8)
    fine = np.zeros(hu.shape, np.float32)
    rng = np.random.default_rng(0)
    sigmas = sorted(p.vesselness_sigmas_mm)
    axis_flat, axis_vectors = [], []
    for k, sigma in enumerate(sigmas):
        progress(k / len(sigmas), f"vesselness: scale {sigma:g} mm")
        smoothed = sitk.SmoothingRecursiveGaussian(image, float(sigma))
        if k == 0:
            smoothed_finest = sitk.GetArrayFromImage(smoothed)
        factors = tuple(max(1, int(p.max_subsampling_ratio * sigma / s)) for s in spacing_zyx)
        coarse = sitk.GetArrayViewFromImage(smoothed)[:: factors[0], :: factors[1], :: factors[2]]
        coarse_mask = mask[:: factors[0], :: factors[1], :: factors[2]]
        if factors != (1, 1, 1):
            coarse_mask = ndi.binary_dilation(coarse_mask)
        padded = np.pad(np.asarray(coarse, np.float32), 1, mode="edge")
        del smoothed
        padded_mask = np.pad(coarse_mask, 1)
        flat = np.flatnonzero(padded_mask)
        if flat.size == 0:
            continue
        steps = tuple(f * s for f, s in zip(factors, spacing_zyx))
        scale2 = sigma * sigma  # scale normalisation of second derivatives (gamma = 2)

        # Frangi's c from the noise: median Hessian norm on a random sample of the mask.
        sample = flat if flat.size <= 200_000 else rng.choice(flat, 200_000, replace=False)
        h = [v * scale2 for v in _hessian_at(padded, sample, steps)]
        norm = np.sqrt(h[0] ** 2 + h[1] ** 2 + h[2] ** 2 + 2 * (h[3] ** 2 + h[4] ** 2 + h[5] ** 2))
        c = max(p.structureness_noise_factor * float(np.median(norm)), 1e-6)

        # A bright tube's centre is brighter than the parenchyma at every scale: evaluate only there.
        if p.vesselness_min_contrast_sd is not None:
            values_sample = padded.ravel()[sample].astype(np.float64)
            level = float(np.median(values_sample))
            spread = 1.4826 * float(np.median(np.abs(values_sample - level)))
            flat = flat[padded.ravel()[flat] > level + p.vesselness_min_contrast_sd * spread]

        values = np.zeros(padded.shape, np.float32)
        flat_values = values.ravel()
        for start in range(0, flat.size, _CHUNK):
            idx = flat[start : start + _CHUNK]
            h = [v * scale2 for v in _hessian_at(padded, idx, steps)]
            l1, l2, l3 = symmetric_eigenvalues(*h)
            v = frangi_from_eigenvalues(l1, l2, l3, p.frangi_alpha, p.frangi_beta, c)
            flat_values[idx] = v
            if k == 0 and factors == (1, 1, 1):
                tube = v > 0.01
                if tube.any():
                    vec = axis_direction([x[tube] for x in h], l1[tube])
                    zyx = np.stack(np.unravel_index(idx[tube], padded.shape), 1) - 1
                    axis_flat.append(np.ravel_multi_index(tuple(zyx.T), hu.shape))
                    axis_vectors.append(vec[:, ::-1].astype(np.float32))
        values = values[1:-1, 1:-1, 1:-1]
        if factors != (1, 1, 1):
            values = _upsample(values, factors, hu.shape)
        better = values > best
        best[better] = values[better]
        best_scale[better] = k
        if sigma <= p.thin_vessel_max_sigma_mm:
            np.maximum(fine, values, out=fine)
    best[~mask] = 0.0
    fine[~mask] = 0.0
    progress(1.0, "vesselness: done")
    return VesselnessMaps(
        best,
        best_scale,
        fine,
        np.concatenate(axis_flat) if axis_flat else np.zeros(0, np.int64),
        np.concatenate(axis_vectors) if axis_vectors else np.zeros((0, 3), np.float32),
        smoothed_finest,
    )


def _upsample(values: np.ndarray, factors: tuple[int, int, int], shape: tuple[int, int, int]) -> np.ndarray:
    """Linear interpolation of a grid sampled at every ``factors``-th voxel back onto the full grid."""
    coarse = sitk.GetImageFromArray(values)
    coarse.SetSpacing(tuple(float(f) for f in factors[::-1]))
    reference = sitk.Image([int(s) for s in shape[::-1]], sitk.sitkFloat32)
    out = sitk.Resample(coarse, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32, True)
    return sitk.GetArrayFromImage(out)
