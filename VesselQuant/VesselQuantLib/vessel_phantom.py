"""Synthetic chest-CT phantom with a known vessel tree, for tests and benchmarks.

A body (soft tissue) with two lungs (parenchyma, touching the first and last slice like a
chest slab), a trachea with main bronchi (air, to be removed by the lung mask), and in each
lung a branching vessel tree grown from the hilum: cylinders with spherical ends, radii
drawn from design radii between 0.25 and 4.25 mm (a major child about 0.8 x the parent, a
minor child 0.45-0.8 x, lengths 4-8 radii), branches kept apart from each other. The scan is simulated by

* exact partial volume (each boundary voxel supersampled 4 x 4 x 4),
* a Gaussian point-spread function (FWHM per axis, in mm),
* correlated Gaussian noise of a given SD (white noise smoothed, rescaled),
* anisotropic voxels and a non-identity direction matrix (the geometry is defined in the
  scanner frame; all truth points are returned in physical LPS coordinates).

Truth: the vessel fraction per voxel, the label (fraction >= 0.5, plus the voxels the
centreline passes through so that sub-voxel vessels stay connected), the lung mask, and
centreline points every 0.25 mm with their radius.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

DESIGN_RADII_MM = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.25)


@dataclass
class VesselPhantomParameters:
    size_xyz: tuple[int, int, int] = (160, 160, 100)
    spacing_xyz: tuple[float, float, float] = (0.7, 0.7, 1.0)
    euler_angles: tuple[float, float, float] = (0.15, -0.1, 0.25)
    """Rotation (radians) of the direction matrix; (0, 0, 0) gives the identity."""
    origin_xyz: tuple[float, float, float] = (-60.0, -40.0, 100.0)
    noise_sd_hu: float = 30.0
    noise_correlation_mm: float = 0.4
    psf_fwhm_mm: tuple[float, float, float] = (0.8, 0.8, 1.0)
    parenchyma_hu: float = -850.0
    vessel_hu: float = 40.0
    tissue_hu: float = 40.0
    air_hu: float = -1000.0
    root_radius_mm: float = 4.25
    design_radii_mm: tuple[float, ...] = DESIGN_RADII_MM
    max_segments_per_lung: int | None = None
    """Default: proportional to the lung volume (about 1 segment per 1.5 ml, 30 to 1500)."""
    trees_per_lung: int | None = None
    """Vessel trees per lung: one from the hilum plus extra roots inside the lung. Default: about one per
    400 ml of lung (1 for the small default phantom; dozens for a whole-chest-sized volume)."""
    trachea: bool = True
    seed: int = 0


@dataclass
class VesselPhantom:
    image: sitk.Image  # HU, int16
    truth_label: sitk.Image  # uint8
    vessel_fraction: sitk.Image  # float32, partial volume of vessel per voxel
    lung_mask: sitk.Image  # uint8
    points_mm: np.ndarray  # (N, 3) physical LPS centreline points
    point_radius_mm: np.ndarray  # (N,)
    point_isolated: np.ndarray  # (N,) bool: no other vessel within its own radius (fit for radius checks)
    point_position: (
        np.ndarray
    )  # (N,) where the point lies along its segment: 0 at the start (parent's end), 1 at the end
    segments: list[dict] = field(default_factory=list)  # start_mm, end_mm (scanner frame), radius_mm
    spec: VesselPhantomParameters = field(default_factory=VesselPhantomParameters)


# ---------------------------------------------------------------------------------------------- geometry
def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[..., None] * ab), axis=-1)


class _Anatomy:
    """Body, lungs and airways in the scanner frame (mm from the first voxel centre)."""

    def __init__(self, spec: VesselPhantomParameters):
        self.extent = np.asarray(spec.size_xyz, float) * np.asarray(spec.spacing_xyz, float)
        ex, ey, ez = self.extent
        self.centre = np.array([ex / 2, ey / 2, ez / 2])
        self.body_axes = np.array([0.47 * ex, 0.43 * ey])
        self.lung_centres = [np.array([ex / 2 - 0.21 * ex, ey / 2]), np.array([ex / 2 + 0.21 * ex, ey / 2])]
        self.lung_axes = np.array([0.17 * ex, 0.30 * ey])
        self.trachea = spec.trachea
        self.trachea_radius = max(0.035 * ex, 3.0)
        self.carina = np.array([ex / 2, ey / 2 - 0.12 * ey, 0.55 * ez])
        self.bronchi = [
            (
                self.carina,
                np.array([c[0] + np.sign(c[0] - ex / 2) * -0.35 * self.lung_axes[0], ey / 2 - 0.12 * ey, 0.45 * ez]),
            )
            for c in self.lung_centres
        ]

    def lung_scale(self, z):
        return 1.0 - 0.15 * ((np.asarray(z) - self.extent[2] / 2) / self.extent[2]) ** 2 * 4

    def lung_level(self, pts: np.ndarray) -> np.ndarray:
        """< 1 inside a lung (elliptic level), per point; min over both lungs."""
        scale = self.lung_scale(pts[..., 2])
        levels = []
        for c in self.lung_centres:
            dx = (pts[..., 0] - c[0]) / (self.lung_axes[0] * scale)
            dy = (pts[..., 1] - c[1]) / (self.lung_axes[1] * scale)
            levels.append(np.sqrt(dx * dx + dy * dy))
        return np.minimum(*levels)

    def inside_lung_with_margin(self, pts: np.ndarray, margin_mm: float) -> np.ndarray:
        """Inside a lung, ``margin_mm`` from its wall and from the first and last slice."""
        axes_min = float(self.lung_axes.min()) * 0.85
        z = pts[..., 2]
        in_volume = (z >= margin_mm) & (z <= self.extent[2] - margin_mm)
        return (self.lung_level(pts) < 1.0 - margin_mm / axes_min) & in_volume

    def airway_distance(self, pts: np.ndarray) -> np.ndarray:
        if not self.trachea:
            return np.full(pts.shape[:-1], np.inf)
        top = np.array([self.carina[0], self.carina[1], self.extent[2] + 5.0])
        d = _segment_distance(pts, self.carina, top) - self.trachea_radius
        for a, b in self.bronchi:
            d = np.minimum(d, _segment_distance(pts, a, b) - 0.7 * self.trachea_radius)
        return d


# ---------------------------------------------------------------------------------------------- tree growth
def _rotate_towards(direction: np.ndarray, angle: float, rng: np.random.Generator) -> np.ndarray:
    helper = rng.normal(size=3)
    perp = helper - (helper @ direction) * direction
    perp /= np.linalg.norm(perp)
    new = np.cos(angle) * direction + np.sin(angle) * perp
    return new / np.linalg.norm(new)


def _quantise_radius(r: float, design: tuple[float, ...]) -> float:
    below = [d for d in design if d <= r + 1e-9]
    return below[-1] if below else design[0]


class _SegmentIndex:
    """Growing arrays of segments for vectorised clash checks."""

    def __init__(self):
        self.a = np.zeros((0, 3))
        self.b = np.zeros((0, 3))
        self.r = np.zeros(0)
        self.items: list[dict] = []

    def add(self, seg: dict) -> None:
        self.a = np.vstack([self.a, seg["start_mm"]])
        self.b = np.vstack([self.b, seg["end_mm"]])
        self.r = np.append(self.r, seg["radius_mm"])
        self.items.append(seg)

    def clashes(self, start, end, r, parent, probe_from) -> bool:
        """True if the candidate (from ``probe_from`` to ``end``) comes within r + r_other + 1 mm of a
        segment other than its parent and siblings (which share its start point)."""
        if not self.items:
            return False
        mid = 0.5 * (probe_from + end)
        half = 0.5 * np.linalg.norm(end - probe_from)
        other_mid = 0.5 * (self.a + self.b)
        other_half = 0.5 * np.linalg.norm(self.b - self.a, axis=1)
        near = np.linalg.norm(other_mid - mid, axis=1) < half + other_half + r + self.r + 1.0
        near &= ~np.all(np.isclose(self.a, start), axis=1)  # siblings
        if parent is not None:
            near &= np.array([item is not parent for item in self.items])
        idx = np.flatnonzero(near)
        if idx.size == 0:
            return False
        ts = np.linspace(0, 1, 12)[:, None]
        pts = probe_from + ts * (end - probe_from)  # (12, 3)
        a, b = self.a[idx], self.b[idx]
        ab = b - a
        t = np.clip(
            np.einsum("pnk,nk->pn", pts[:, None, :] - a[None], ab) / np.maximum(np.sum(ab * ab, 1), 1e-12), 0, 1
        )
        closest = a[None] + t[..., None] * ab[None]
        gap = np.linalg.norm(pts[:, None, :] - closest, axis=2).min(axis=0)
        return bool(np.any(gap < r + self.r[idx] + 1.0))


def _grow_tree(
    anatomy: _Anatomy, root: np.ndarray, direction: np.ndarray, spec: VesselPhantomParameters, rng, max_segments, index
):
    design = tuple(sorted(spec.design_radii_mm))
    queue = [(root, direction, _quantise_radius(spec.root_radius_mm, design), None)]
    segments = []
    while queue and len(segments) < max_segments:
        start, d, r, parent = queue.pop(0)
        for _attempt in range(12):
            direction_try = d if _attempt == 0 else _rotate_towards(d, rng.uniform(0.2, 0.7), rng)
            length = float(np.clip(rng.uniform(4.0, 8.0) * r, 3.0, 20.0))
            ts = np.linspace(0, 1, 24)[:, None]
            path = start + ts * direction_try * length
            ok = anatomy.inside_lung_with_margin(path, r + 1.5) & (anatomy.airway_distance(path) > r + 1.5)
            if not ok.all():
                bad = np.flatnonzero(~ok)
                length *= max(0.0, (bad[0] - 1) / 23.0)
            if length < max(2.0, 2.0 * r):
                continue
            end = start + direction_try * length
            probe = start + direction_try * min(length, r + 1.0)  # the branch point itself touches the parent
            if index.clashes(start, end, r, parent, probe):
                continue
            seg = {"start_mm": start, "end_mm": end, "radius_mm": r}
            segments.append(seg)
            index.add(seg)
            if r > design[0] + 1e-9:
                major = _quantise_radius(r * rng.uniform(0.75, 0.9), design)
                if major >= r:
                    major = design[max(0, design.index(r) - 1)]
                minor = _quantise_radius(r * rng.uniform(0.45, 0.8), design)
                queue.append((end, _rotate_towards(direction_try, rng.uniform(0.25, 0.45), rng), major, seg))
                queue.append((end, _rotate_towards(direction_try, rng.uniform(0.6, 1.0), rng), minor, seg))
            break
    return segments


# ---------------------------------------------------------------------------------------------- rendering
def _render_fraction(shape_zyx, spacing_xyz, segments, supersample: int = 4) -> np.ndarray:
    spacing = np.asarray(spacing_xyz, float)
    dmin = np.full(shape_zyx, np.inf, np.float32)
    half_diag = 0.5 * float(np.linalg.norm(spacing))
    boxes = []
    for seg in segments:
        a, b, r = seg["start_mm"], seg["end_mm"], seg["radius_mm"]
        lo = np.floor((np.minimum(a, b) - r - 2 * half_diag) / spacing).astype(int)
        hi = np.ceil((np.maximum(a, b) + r + 2 * half_diag) / spacing).astype(int) + 1
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, np.asarray(shape_zyx[::-1]))
        if np.any(hi <= lo):
            boxes.append(None)
            continue
        boxes.append((lo, hi))
        xs, ys, zs = (np.arange(lo[i], hi[i]) * spacing[i] for i in range(3))
        pts = np.stack(np.meshgrid(zs, ys, xs, indexing="ij")[::-1], axis=-1)
        d = (_segment_distance(pts, a, b) - r).astype(np.float32)
        view = dmin[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]]
        np.minimum(view, d, out=view)
    fraction = (dmin < -half_diag).astype(np.float32)
    boundary = np.abs(dmin) <= half_diag
    bidx = np.argwhere(boundary)  # (n, 3) z, y, x
    if len(bidx):
        sub = (np.arange(supersample) + 0.5) / supersample - 0.5
        offs = np.stack(np.meshgrid(sub, sub, sub, indexing="ij"), axis=-1).reshape(-1, 3) * spacing  # x, y, z
        inside = np.zeros((len(bidx), len(offs)), bool)
        centres = bidx[:, ::-1] * spacing
        bflat = np.ravel_multi_index(tuple(bidx.T), shape_zyx)  # sorted (argwhere is in C order)
        for seg, box in zip(segments, boxes):
            if box is None:
                continue
            lo, hi = box
            local = np.argwhere(boundary[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]]) + lo[::-1]
            if local.size == 0:
                continue
            sel = np.searchsorted(bflat, np.ravel_multi_index(tuple(local.T), shape_zyx))
            pts = centres[sel, None, :] + offs[None, :, :]
            inside[sel] |= _segment_distance(pts, seg["start_mm"], seg["end_mm"]) <= seg["radius_mm"]
        fraction[tuple(bidx.T)] = inside.mean(axis=1)
    return fraction


def make_vessel_phantom(spec: VesselPhantomParameters | None = None, **overrides) -> VesselPhantom:
    """Build a phantom (see the module docstring); ``overrides`` replace fields of ``spec``."""
    spec = spec or VesselPhantomParameters()
    if overrides:
        spec = VesselPhantomParameters(**{**spec.__dict__, **overrides})
    rng = np.random.default_rng(spec.seed)  # drawn from in this order: the trees, then the noise
    anatomy = _Anatomy(spec)
    nx, ny, nz = spec.size_xyz
    spacing = np.asarray(spec.spacing_xyz, float)
    shape = (nz, ny, nx)

    segments = _vessel_trees(anatomy, spec, rng)
    fraction = _render_fraction(shape, spec.spacing_xyz, segments)
    hu, lung = _anatomy_hu(anatomy, spec, shape, spacing)
    hu = np.where(lung, hu * (1.0 - fraction) + spec.vessel_hu * fraction, hu).astype(np.float32)
    ct = _scan(hu, spec, spacing, rng)
    points, radii, positions, isolated = _centreline_truth(segments)
    label = fraction >= 0.5
    if len(points):  # every centreline voxel is vessel, however thin
        idx = np.rint(points / spacing).astype(int)[:, ::-1]
        for a in range(3):
            idx[:, a] = np.clip(idx[:, a], 0, shape[a] - 1)
        label[tuple(idx.T)] = True
    label &= lung

    direction = sitk.Euler3DTransform()
    direction.SetRotation(*spec.euler_angles)
    matrix = np.asarray(direction.GetMatrix(), float).reshape(3, 3)
    origin = np.asarray(spec.origin_xyz, float)

    def geometry(img: sitk.Image) -> sitk.Image:
        img.SetSpacing(tuple(float(s) for s in spacing))
        img.SetOrigin(tuple(origin))
        img.SetDirection(tuple(matrix.ravel()))
        return img

    physical = origin + points @ matrix.T
    for seg in segments:
        seg["start_physical_mm"] = origin + matrix @ seg["start_mm"]
        seg["end_physical_mm"] = origin + matrix @ seg["end_mm"]
    return VesselPhantom(
        image=geometry(sitk.GetImageFromArray(ct)),
        truth_label=geometry(sitk.GetImageFromArray(label.astype(np.uint8))),
        vessel_fraction=geometry(sitk.GetImageFromArray(fraction)),
        lung_mask=geometry(sitk.GetImageFromArray(lung.astype(np.uint8))),
        points_mm=physical,
        point_radius_mm=radii,
        point_isolated=isolated,
        point_position=positions,
        segments=segments,
        spec=spec,
    )


def _vessel_trees(anatomy: _Anatomy, spec: VesselPhantomParameters, rng) -> list[dict]:
    """One tree per lung rooted at the hilum and heading outwards, plus ``trees_per_lung - 1`` more per lung."""
    lung_ml = np.pi * anatomy.lung_axes.prod() * anatomy.extent[2] / 1000.0
    max_segments = spec.max_segments_per_lung or int(np.clip(lung_ml / 1.5, 30, 1500))
    segments: list[dict] = []
    index = _SegmentIndex()
    for c in anatomy.lung_centres:
        side = np.sign(c[0] - anatomy.extent[0] / 2)
        root = np.array(
            [c[0] - side * 0.45 * anatomy.lung_axes[0], c[1] - 0.1 * anatomy.lung_axes[1], anatomy.extent[2] * 0.3]
        )
        direction = np.array([side * 0.3, 0.5, 0.8])
        direction /= np.linalg.norm(direction)
        segments += _grow_tree(anatomy, root, direction, spec, rng, max_segments, index)
    trees = spec.trees_per_lung or max(1, int(round(lung_ml / 400.0)))
    for _ in range(trees - 1):
        for c in anatomy.lung_centres:
            for _try in range(20):
                point = np.array(
                    [
                        c[0] + rng.uniform(-0.8, 0.8) * anatomy.lung_axes[0],
                        c[1] + rng.uniform(-0.8, 0.8) * anatomy.lung_axes[1],
                        rng.uniform(0.05, 0.95) * anatomy.extent[2],
                    ]
                )
                if anatomy.inside_lung_with_margin(point[None], 6.0)[0]:
                    break
            else:
                continue
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            sub = VesselPhantomParameters(
                **{**spec.__dict__, "root_radius_mm": float(rng.choice([2.0, 2.5, 3.0, 3.5]))}
            )
            segments += _grow_tree(anatomy, point, direction, sub, rng, max_segments, index)
    return segments


def _anatomy_hu(anatomy: _Anatomy, spec: VesselPhantomParameters, shape, spacing) -> tuple[np.ndarray, np.ndarray]:
    """HU of body, lungs and airways at the voxel centres (no vessels yet), and the lung mask."""
    nz = shape[0]
    zs, ys, xs = (np.arange(n) * s for n, s in zip(shape, spacing[::-1]))
    hu = np.full(shape, spec.air_hu, np.float32)
    lung = np.zeros(shape, bool)
    for k in range(nz):
        pts = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None], np.full((1, 1), zs[k])), axis=-1)
        body = ((pts[..., 0] - anatomy.centre[0]) / anatomy.body_axes[0]) ** 2 + (
            (pts[..., 1] - anatomy.centre[1]) / anatomy.body_axes[1]
        ) ** 2 < 1.0
        in_lung = (anatomy.lung_level(pts) < 1.0) & body
        airway = anatomy.airway_distance(pts) < 0
        hu[k][body] = spec.tissue_hu
        hu[k][in_lung] = spec.parenchyma_hu
        hu[k][airway & body] = spec.air_hu
        lung[k] = in_lung  # intrapulmonary bronchi belong to the lung; the trachea lies outside it
    return hu, lung


def _scan(hu: np.ndarray, spec: VesselPhantomParameters, spacing, rng) -> np.ndarray:
    """The scanner: point-spread function, then correlated noise; int16 HU."""
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(tuple(float(s) for s in spacing))
    sigma = [f / 2.3548 for f in spec.psf_fwhm_mm]
    blurred = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, sigma))
    if spec.noise_sd_hu > 0:
        noise = sitk.GetImageFromArray(rng.standard_normal(hu.shape, dtype=np.float32))
        noise.SetSpacing(tuple(float(s) for s in spacing))
        if spec.noise_correlation_mm > 0:
            noise = sitk.SmoothingRecursiveGaussian(noise, spec.noise_correlation_mm)
        n = sitk.GetArrayFromImage(noise)
        blurred += n * (spec.noise_sd_hu / float(n.std()))
    return np.clip(np.rint(blurred), -1024, 3071).astype(np.int16)


def _centreline_truth(segments: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centreline points every 0.25 mm (scanner frame): points, design radius, position along the segment (0-1),
    and whether no other segment comes within the point's radius (isolated)."""
    points, radii, owner, positions = [], [], [], []
    for i, seg in enumerate(segments):
        length = np.linalg.norm(seg["end_mm"] - seg["start_mm"])
        ts = np.linspace(0, 1, max(2, int(length / 0.25) + 1))[:, None]
        pts = seg["start_mm"] + ts * (seg["end_mm"] - seg["start_mm"])
        points.append(pts)
        radii.append(np.full(len(pts), seg["radius_mm"]))
        owner.append(np.full(len(pts), i))
        positions.append(ts[:, 0])
    points = np.concatenate(points) if points else np.zeros((0, 3))
    positions = np.concatenate(positions) if positions else np.zeros(0)
    radii = np.concatenate(radii) if radii else np.zeros(0)
    owner = np.concatenate(owner) if owner else np.zeros(0, int)
    isolated = np.ones(len(points), bool)
    for j, seg in enumerate(segments):
        other = owner != j
        d = _segment_distance(points[other], seg["start_mm"], seg["end_mm"]) - seg["radius_mm"]
        isolated[np.flatnonzero(other)[d < radii[other]]] = False
    return points, radii, positions, isolated
