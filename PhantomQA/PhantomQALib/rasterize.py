"""Put a phantom design on a scan's voxel grid.

A design is either analytic (:class:`~.study_phantom.PhantomDesign`: capsules + holder) or given
as maps (label + design-radius images, e.g. from a surface model). Both become a
:class:`GridDesign` on the scan grid, through an optional rigid transform from the scan
frame to the design frame (from :mod:`.registration`):

- ``occupancy``: vessel partial-volume fraction per voxel (0..1). For the analytic design
  it is computed by super-sampling each boundary voxel (more sub-samples for thin vessels,
  so a 0.1 mm vessel keeps its true cross-section);
- ``radius``: the design radius (mm) of the vessel that owns the voxel, 0 elsewhere;
- ``axis_distance``: distance (mm) from the voxel centre to the owning vessel's centreline;
- ``lung_mask``: the holder interior (the "lung" region passed to VesselQuant);
- ``holder``: PMMA partial-volume fraction (analytic design only);
- ``centrelines``: (N, 5) array x, y, z (scan frame, mm), design radius, segment index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from RadiologyAICommonLib.imageio import image_from_array

from .study_phantom import Materials, PhantomDesign

LABEL_BACKGROUND, LABEL_VESSEL, LABEL_LUNG, LABEL_HOLDER = 0, 1, 2, 3


@dataclass
class RigidMap:
    """x_design = matrix @ x_scan + offset (both in mm, LPS)."""

    matrix: np.ndarray
    offset: np.ndarray

    @classmethod
    def identity(cls) -> "RigidMap":
        return cls(np.eye(3), np.zeros(3))

    @classmethod
    def from_sitk(cls, transform: sitk.Transform | None) -> "RigidMap":
        """From a SimpleITK rigid (or affine, or composite of those) transform mapping scan points to design points."""
        if transform is None:
            return cls.identity()
        offset = np.array(transform.TransformPoint((0.0, 0.0, 0.0)), float)
        columns = [np.array(transform.TransformPoint(tuple(e)), float) - offset for e in np.eye(3)]
        return cls(np.stack(columns, axis=1), offset)

    def to_sitk(self) -> sitk.AffineTransform:
        transform = sitk.AffineTransform(3)
        transform.SetMatrix(tuple(self.matrix.ravel()))
        transform.SetTranslation(tuple(self.offset))
        return transform

    def to_design(self, points: np.ndarray) -> np.ndarray:
        return points @ self.matrix.T + self.offset

    def to_scan(self, points: np.ndarray) -> np.ndarray:
        return (points - self.offset) @ np.linalg.inv(self.matrix).T

    def is_identity(self, tol: float = 1e-6) -> bool:
        return bool(np.allclose(self.matrix, np.eye(3), atol=tol) and np.allclose(self.offset, 0, atol=tol))


@dataclass
class GridDesign:
    """A design sampled on one scan grid (arrays in SimpleITK's z, y, x order)."""

    reference: sitk.Image  # geometry only
    occupancy: np.ndarray  # float32, vessel fraction
    radius: np.ndarray  # float32, design radius (mm) of the owning vessel, 0 outside
    lung_mask: np.ndarray  # uint8, holder interior
    holder: np.ndarray | None  # float32 PMMA fraction, or None
    centrelines: np.ndarray  # (N, 5): x, y, z (scan frame), radius_mm, segment
    materials: Materials
    axis_distance: np.ndarray | None = None  # float32, distance (mm) to the owning vessel's centreline

    @property
    def design_radii_mm(self) -> list[float]:
        return sorted({round(float(r), 4) for r in self.centrelines[:, 3]}, reverse=True)

    def vessel_label(self) -> np.ndarray:
        return (self.occupancy >= 0.5).astype(np.uint8)

    def ideal_hu(self) -> np.ndarray:
        """Noise-free, infinitely sharp image (HU) of the design on this grid (with the material's texture)."""
        m = self.materials
        vessel = np.clip(self.occupancy, 0, 1)
        holder = np.zeros_like(vessel) if self.holder is None else np.clip(self.holder, 0, 1 - vessel)
        image = m.background_hu + vessel * (m.vessel_hu - m.background_hu) + holder * (m.holder_hu - m.background_hu)
        if m.vessel_texture_sd_hu > 0:
            spacing_zyx = self.reference.GetSpacing()[::-1]
            image = image + vessel * material_texture(
                vessel.shape, spacing_zyx, m.vessel_texture_sd_hu, m.vessel_texture_fwhm_mm
            )
        return image.astype(np.float32)

    def image(self, array: np.ndarray, pixel_type=None) -> sitk.Image:
        img = image_from_array(array, self.reference)
        return img if pixel_type is None else sitk.Cast(img, pixel_type)


def material_texture(shape: tuple, spacing_zyx: tuple, sd_hu: float, fwhm_mm: float, seed: int = 20240) -> np.ndarray:
    """A stationary Gaussian random field (float32): white noise smoothed to ``fwhm_mm``, scaled to SD ``sd_hu``.

    Seeded: the texture belongs to the object, the same in every acquisition of it.
    """
    from scipy import ndimage

    field = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    field = ndimage.gaussian_filter(field, [fwhm_mm / 2.3548 / s for s in spacing_zyx])
    return (field * np.float32(sd_hu / max(float(field.std()), 1e-12))).astype(np.float32)


def voxel_matrix(reference: sitk.Image) -> np.ndarray:
    """3x3 matrix taking continuous (x, y, z) index to a physical offset from the origin."""
    return np.array(reference.GetDirection(), float).reshape(3, 3) @ np.diag(reference.GetSpacing())


def physical_points(reference: sitk.Image, kji: np.ndarray) -> np.ndarray:
    """Physical coordinates of (k, j, i) voxel indices (array (N, 3), may be fractional)."""
    ijk = np.asarray(kji, float)[:, ::-1]
    return ijk @ voxel_matrix(reference).T + np.array(reference.GetOrigin(), float)


def continuous_index(reference: sitk.Image, points: np.ndarray) -> np.ndarray:
    """(k, j, i) continuous indices of physical points (array (N, 3))."""
    inv = np.linalg.inv(voxel_matrix(reference))
    ijk = (np.asarray(points, float) - np.array(reference.GetOrigin(), float)) @ inv.T
    return ijk[:, ::-1]


def _distance_to_segment(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = b - a
    denom = float(d @ d) or 1e-12
    t = np.clip((points - a) @ d / denom, 0.0, 1.0)
    return np.linalg.norm(points - (a[None, :] + t[:, None] * d[None, :]), axis=1)


def _subsample_offsets(n: int) -> np.ndarray:
    g = (np.arange(n) + 0.5) / n - 0.5
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)


def _rasterise_segments(design: PhantomDesign, reference: sitk.Image, rigid: RigidMap):
    shape = reference.GetSize()[::-1]
    occupancy = np.zeros(shape, np.float32)
    owner_score = np.full(shape, np.inf, np.float32)  # (distance - radius) of the owning segment
    radius = np.zeros(shape, np.float32)
    axis_distance = np.full(shape, np.inf, np.float32)
    spacing = np.array(reference.GetSpacing(), float)
    half_diag = 0.5 * float(np.linalg.norm(spacing))
    for s in design.segments:
        a, b = rigid.to_scan(np.array([s.start, s.end], float))
        r = s.radius_mm
        reach = r + half_diag + 1e-6
        corners = continuous_index(reference, np.array([a, b]))
        pad = reach / spacing[::-1]
        lo = np.maximum(np.floor(corners.min(0) - pad).astype(int), 0)
        hi = np.minimum(np.ceil(corners.max(0) + pad).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        kk, jj, ii = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij")
        kji = np.stack([kk.ravel(), jj.ravel(), ii.ravel()], axis=1)
        pts = physical_points(reference, kji)
        dist = _distance_to_segment(pts, a, b)
        frac = np.where(dist <= r - half_diag, 1.0, 0.0)
        boundary = np.flatnonzero(np.abs(dist - r) < half_diag)
        if boundary.size:
            # Sub-samples per axis: enough that the vessel cross-section spans several of them.
            n_sub = int(np.clip(np.ceil(2.5 * spacing.max() / r), 4, 14))
            offsets = _subsample_offsets(n_sub)  # (S, 3) in index units (k, j, i)
            frac_b = np.empty(boundary.size)
            chunk = max(1, 400000 // len(offsets))
            for start in range(0, boundary.size, chunk):
                sel = boundary[start : start + chunk]
                sub = (kji[sel][:, None, :] + offsets[None, :, :]).reshape(-1, 3)
                inside = _distance_to_segment(physical_points(reference, sub), a, b) <= r
                frac_b[start : start + chunk] = inside.reshape(len(sel), -1).mean(axis=1)
            frac[boundary] = frac_b
        keep = frac > 0
        if not keep.any():
            continue
        k, j, i = kji[keep].T
        f = frac[keep].astype(np.float32)
        score = (dist[keep] - r).astype(np.float32)
        occupancy[k, j, i] = np.maximum(occupancy[k, j, i], f)
        better = score < owner_score[k, j, i]
        owner_score[k[better], j[better], i[better]] = score[better]
        radius[k[better], j[better], i[better]] = r
        axis_distance[k[better], j[better], i[better]] = dist[keep][better]
    return occupancy, radius, axis_distance


def _ramp(x: np.ndarray, width: float) -> np.ndarray:
    """Partial-volume fraction of a planar boundary at signed distance ``x`` (inside > 0)."""
    return np.clip(x / width + 0.5, 0.0, 1.0)


def rasterise_design(
    design: PhantomDesign, reference: sitk.Image, rigid: RigidMap | None = None, centreline_step_mm: float = 0.5
) -> GridDesign:
    """The analytic phantom on ``reference``'s grid (through ``rigid`` = scan -> design)."""
    rigid = rigid or RigidMap.identity()
    shape = reference.GetSize()[::-1]
    occupancy, radius, axis_distance = _rasterise_segments(design, reference, rigid)
    # Holder: PMMA tube around the z axis of the design frame; evaluated slice by slice.
    p = design.parameters
    inner, outer, half = p.holder_inner_radius_mm, p.holder_inner_radius_mm + p.holder_wall_mm, p.slab_height_mm / 2
    width = float(np.mean(reference.GetSpacing()))
    holder = np.zeros(shape, np.float32)
    lung = np.zeros(shape, np.uint8)
    jj, ii = np.meshgrid(np.arange(shape[1]), np.arange(shape[2]), indexing="ij")
    for k in range(shape[0]):
        kji = np.stack([np.full(jj.size, k), jj.ravel(), ii.ravel()], axis=1)
        q = rigid.to_design(physical_points(reference, kji))
        rho = np.hypot(q[:, 0], q[:, 1])
        zfrac = _ramp(half - np.abs(q[:, 2]), width)
        holder[k] = (_ramp(rho - inner, width) * _ramp(outer - rho, width) * zfrac).reshape(shape[1:])
        lung[k] = ((rho < inner - width) & (np.abs(q[:, 2]) < half - width)).reshape(shape[1:])
    centres = design.centreline_points(centreline_step_mm)
    centres[:, :3] = rigid.to_scan(centres[:, :3])
    return GridDesign(
        reference_geometry(reference), occupancy, radius, lung, holder, centres, design.materials, axis_distance
    )


def reference_geometry(reference: sitk.Image) -> sitk.Image:
    """A 1-byte-per-voxel image with ``reference``'s geometry (keeps GridDesign light)."""
    geometry = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    geometry.CopyInformation(reference)
    return geometry


def render_design_image(
    design: PhantomDesign, spacing_mm: float, margin_mm: float = 4.0
) -> tuple[sitk.Image, sitk.Image]:
    """The analytic design on its own isotropic grid: (label image, design-radius image).

    Labels: 1 vessel, 2 holder interior (lung region), 3 holder wall, 0 outside.
    """
    lo, hi = design.bounds_mm()
    lo, hi = lo - margin_mm, hi + margin_mm
    size = [int(np.ceil((b - a) / spacing_mm)) for a, b in zip(lo, hi)]
    ref = sitk.Image(size, sitk.sitkUInt8)
    ref.SetSpacing([spacing_mm] * 3)
    ref.SetOrigin([float(v) + spacing_mm / 2 for v in lo])
    grid = rasterise_design(design, ref)
    label = np.zeros(grid.occupancy.shape, np.uint8)
    label[grid.lung_mask > 0] = LABEL_LUNG
    label[grid.holder >= 0.5] = LABEL_HOLDER
    label[grid.occupancy >= 0.5] = LABEL_VESSEL
    radius = np.where(label == LABEL_VESSEL, grid.radius, 0).astype(np.float32)
    return grid.image(label), grid.image(radius)
