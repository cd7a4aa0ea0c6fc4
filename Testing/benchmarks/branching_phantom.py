"""A second vessel phantom family, written to other rules than ``VesselQuantLib/vessel_phantom.py``.

VesselQuant was tuned on ``vessel_phantom.py``; this family is for confirming, not tuning. What differs:

* **Anatomy**: a printed-phantom-like holder (a PMMA cylinder wall around foam parenchyma), not a
  body with lungs; every tree **enters through the wall** (its root starts 2 mm inside it).
* **Trees**: bifurcations by Murray's law (r0^3 = r1^3 + r2^3, random asymmetry) with Murray's
  optimal branching angles; **short segments** (length 4 r + 5 mm, +/-20 %) so junctions are dense;
  about a third of the bifurcations are laid **in the scanner's x-y plane** (vessels running in-plane).
* **Nodules**: solid spheres of 3-15 mm radius, half attached to a vessel, half to the wall (pleura).
* **Partial volume**: analytic, a linear ramp of the signed distance to each surface across one voxel
  (no supersampling).
* **Noise**: an FBP-like ramp noise power spectrum in-plane (|f| e^{-(|f|/0.55)^2}), mildly correlated
  along z, rescaled to the requested SD.
* **Geometry**: anisotropic 0.62 x 0.62 x 0.8 mm voxels and a flipped, rotated direction matrix.

Truth: the vessel label (vessel fraction >= 0.5 outside nodules, plus the voxels the centreline of a
sub-voxel vessel passes), the nodule label, the lung mask (the holder's interior), and centreline points
every 0.25 mm with their radius, whether the point is *isolated* (no other vessel within its own radius
+ 0.5 mm: radius checks use these; near junctions this leaves the short segments' middles) or *near a junction*
(not isolated, but outside every other vessel: the radius there is checked separately) and where it lies along
its segment. It returns a ``VesselPhantom`` so ``VesselQuantLib.evaluation`` reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from VesselQuantLib.vessel_phantom import VesselPhantom

RADII_MM = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
ROOT_RADIUS_MM = 4.25


@dataclass
class BranchingPhantomParameters:
    size_xyz: tuple[int, int, int] = (176, 176, 128)
    spacing_xyz: tuple[float, float, float] = (0.62, 0.62, 0.8)
    direction: tuple[float, ...] = ()  # default: flipped y and z, then rotated 0.2 rad about z
    noise_sd_hu: float = 30.0
    psf_fwhm_mm: tuple[float, float, float] = (0.7, 0.7, 0.9)
    trees: int = 3
    nodules: int = 4
    nodule_radii_mm: tuple[float, ...] = (3.0, 5.0, 8.0, 12.0, 15.0)
    wall_mm: float = 4.0
    parenchyma_hu: float = -860.0
    vessel_hu: float = 40.0
    nodule_hu: float = 30.0
    wall_hu: float = 120.0
    air_hu: float = -1000.0
    in_plane_share: float = 0.35
    seed: int = 0


@dataclass
class BranchingPhantom(VesselPhantom):
    point_near_junction: np.ndarray | None = None  # (N,) bool: another vessel within its radius + 0.5 mm, but the point
    # itself 0.5 mm outside every other vessel (the starts and ends of short segments, beside their siblings)
    nodule_label: sitk.Image | None = None
    nodules: list[dict] = field(default_factory=list)


def _default_direction() -> np.ndarray:
    c, s = math.cos(0.2), math.sin(0.2)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([1.0, -1.0, -1.0])


def _quantise(r: float) -> float:
    return min(RADII_MM, key=lambda d: abs(d - r))


def _distance_to_segment(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=1), t


class _Holder:
    def __init__(self, spec: BranchingPhantomParameters):
        self.extent = (np.asarray(spec.size_xyz) - 1) * np.asarray(spec.spacing_xyz)
        self.centre = self.extent / 2.0
        self.inner = 0.46 * min(self.extent[0], self.extent[1])
        self.wall = spec.wall_mm

    def radial(self, p: np.ndarray) -> np.ndarray:
        return np.linalg.norm(np.atleast_2d(p)[:, :2] - self.centre[:2], axis=1)

    def room(self, p: np.ndarray) -> np.ndarray:
        """Distance from ``p`` to the holder's inner wall (negative outside); z: up to the slab's ends."""
        p = np.atleast_2d(p)
        return np.minimum(self.inner - self.radial(p), np.minimum(p[:, 2] - 1.0, self.extent[2] - 1.0 - p[:, 2]))


def _murray_children(r0: float, rng) -> tuple[tuple[float, float], tuple[float, float]]:
    alpha = rng.uniform(0.55, 1.0)  # r2 / r1
    r1 = r0 / (1.0 + alpha**3) ** (1.0 / 3.0)
    r2 = alpha * r1
    cos1 = np.clip((r0**4 + r1**4 - r2**4) / (2 * r0**2 * r1**2), -1, 1)
    cos2 = np.clip((r0**4 + r2**4 - r1**4) / (2 * r0**2 * r2**2), -1, 1)
    return (r1, math.acos(cos1)), (r2, math.acos(cos2))


def _perpendicular(d: np.ndarray, rng, in_plane: bool) -> np.ndarray:
    if in_plane:  # the branching plane holds the parent's in-plane projection: children run in x-y
        n = np.array([0.0, 0.0, 1.0])
    else:
        n = rng.normal(size=3)
    n = n - (n @ d) * d
    if np.linalg.norm(n) < 1e-6:
        n = np.cross(d, [1.0, 0.0, 0.0])
    return n / np.linalg.norm(n)


def _grow(spec: BranchingPhantomParameters, holder: _Holder, rng) -> list[dict]:
    segments: list[dict] = []

    def clashes(a, b, r, parent):
        probe = a + np.linspace(0.15, 1.0, 8)[:, None] * (b - a)
        if (holder.room(probe) < r + 0.6).any():
            return True
        for index, other in enumerate(segments):
            if index == parent or other.get("parent") == parent and parent is not None:
                continue
            d, _ = _distance_to_segment(probe, other["a"], other["b"])
            if (d < r + other["r"] + 0.8).any():
                return True
        return False

    for tree in range(spec.trees):
        for _attempt in range(40):
            angle = rng.uniform(0, 2 * math.pi)
            z = rng.uniform(0.25, 0.75) * holder.extent[2]
            outward = np.array([math.cos(angle), math.sin(angle), 0.0])
            a = np.r_[holder.centre[:2] + (holder.inner + 2.0) * outward[:2], z]  # 2 mm inside the wall
            direction = -outward + rng.normal(scale=0.25, size=3)
            direction /= np.linalg.norm(direction)
            length = 4 * ROOT_RADIUS_MM + 5 + holder.wall
            b = a + length * direction
            if holder.room(b)[0] > ROOT_RADIUS_MM + 1 and not any(
                (_distance_to_segment(np.linspace(a, b, 8), s["a"], s["b"])[0] < ROOT_RADIUS_MM + s["r"] + 2).any()
                for s in segments
            ):
                break
        else:
            continue
        segments.append({"a": a, "b": b, "r": ROOT_RADIUS_MM, "parent": None, "tree": tree})
        queue = [len(segments) - 1]
        while queue:
            parent = queue.pop(0)
            p = segments[parent]
            if p["r"] <= RADII_MM[0] + 1e-9:
                continue
            d0 = (p["b"] - p["a"]) / np.linalg.norm(p["b"] - p["a"])
            in_plane = rng.random() < spec.in_plane_share
            base = np.r_[d0[:2], 0.0] / max(np.linalg.norm(d0[:2]), 1e-6) if in_plane else d0
            axis = _perpendicular(base, rng, in_plane)
            for (r_child, theta), side in zip(_murray_children(p["r"], rng), (1.0, -1.0)):
                r_child = _quantise(r_child)
                if r_child >= p["r"]:
                    r_child = max([x for x in RADII_MM if x < p["r"]] or [RADII_MM[0]])
                direction = math.cos(theta) * base + side * math.sin(theta) * axis
                direction /= np.linalg.norm(direction)
                length = (4 * r_child + 5.0) * rng.uniform(0.8, 1.2)
                a = p["b"]
                b = a + length * direction
                if clashes(a, b, r_child, parent):
                    continue
                segments.append({"a": a, "b": b, "r": r_child, "parent": parent, "tree": tree})
                queue.append(len(segments) - 1)
    return segments


def _place_nodules(spec: BranchingPhantomParameters, holder: _Holder, segments: list[dict], rng) -> list[dict]:
    nodules = []
    for k in range(spec.nodules):
        r = float(spec.nodule_radii_mm[k % len(spec.nodule_radii_mm)])
        for _attempt in range(200):
            if k % 2 == 0 and segments:  # on a vessel
                s = segments[int(rng.integers(len(segments)))]
                if s["parent"] is None:
                    continue
                d = (s["b"] - s["a"]) / np.linalg.norm(s["b"] - s["a"])
                side = _perpendicular(d, rng, False)
                centre = s["a"] + rng.uniform(0.3, 0.7) * (s["b"] - s["a"]) + (r + 0.3 * s["r"]) * side
                kind = "vessel"
            else:  # on the wall (juxta-pleural): the sphere cuts 20 % of its radius into the wall
                angle = rng.uniform(0, 2 * math.pi)
                z = rng.uniform(0.2, 0.8) * holder.extent[2]
                centre = np.r_[
                    holder.centre[:2] + (holder.inner - 0.8 * r) * np.array([math.cos(angle), math.sin(angle)]), z
                ]
                kind = "wall"
            if holder.room(centre)[0] < -0.25 * r or centre[2] < r + 2 or centre[2] > holder.extent[2] - r - 2:
                continue
            if any(np.linalg.norm(centre - n["centre"]) < r + n["r"] + 3 for n in nodules):
                continue
            nodules.append({"centre": centre, "r": r, "attached_to": kind})
            break
    return nodules


def _ramp_fraction(distance_inside: np.ndarray, width: float) -> np.ndarray:
    """Partial volume of a voxel whose centre lies ``distance_inside`` mm inside a surface (linear over a voxel)."""
    return np.clip(0.5 + distance_inside / width, 0.0, 1.0)


def _render(spec: BranchingPhantomParameters, holder: _Holder, segments, nodules):
    shape = spec.size_xyz[::-1]
    spacing = np.asarray(spec.spacing_xyz)
    width = float(np.mean(spacing))
    vessel = np.zeros(shape, np.float32)
    nodule = np.zeros(shape, np.float32)
    centreline = np.zeros(shape, bool)
    for s in segments:
        lo = np.floor((np.minimum(s["a"], s["b"]) - s["r"] - width) / spacing).astype(int)
        hi = np.ceil((np.maximum(s["a"], s["b"]) + s["r"] + width) / spacing).astype(int) + 1
        lo, hi = np.maximum(lo, 0), np.minimum(hi, spec.size_xyz)
        if (hi <= lo).any():
            continue
        grid = np.stack(np.meshgrid(*[np.arange(lo[i], hi[i]) * spacing[i] for i in range(3)], indexing="ij"), -1)
        d, _ = _distance_to_segment(grid.reshape(-1, 3), s["a"], s["b"])
        f = _ramp_fraction(s["r"] - d, width).reshape(grid.shape[:3]).transpose(2, 1, 0)
        box = tuple(slice(lo[i], hi[i]) for i in (2, 1, 0))
        vessel[box] = np.maximum(vessel[box], f)
        steps = max(2, int(np.linalg.norm(s["b"] - s["a"]) / (0.25 * spacing.min())))
        points = np.linspace(s["a"], s["b"], steps)
        index = np.clip(np.rint(points / spacing).astype(int), 0, np.asarray(spec.size_xyz) - 1)
        centreline[index[:, 2], index[:, 1], index[:, 0]] = True
    for n in nodules:
        lo = np.maximum(np.floor((n["centre"] - n["r"] - width) / spacing).astype(int), 0)
        hi = np.minimum(np.ceil((n["centre"] + n["r"] + width) / spacing).astype(int) + 1, spec.size_xyz)
        grid = np.stack(np.meshgrid(*[np.arange(lo[i], hi[i]) * spacing[i] for i in range(3)], indexing="ij"), -1)
        f = _ramp_fraction(n["r"] - np.linalg.norm(grid - n["centre"], axis=-1), width).transpose(2, 1, 0)
        box = tuple(slice(lo[i], hi[i]) for i in (2, 1, 0))
        nodule[box] = np.maximum(nodule[box], f)
    zz, yy, xx = np.meshgrid(*[np.arange(n) * spacing[::-1][i] for i, n in enumerate(shape)], indexing="ij")
    radial = np.hypot(xx - holder.centre[0], yy - holder.centre[1])
    interior = _ramp_fraction(holder.inner - radial, width)
    outer = _ramp_fraction(holder.inner + holder.wall - radial, width)
    wall = np.clip(outer - interior, 0.0, 1.0)
    hu = (
        spec.air_hu * (1 - outer)
        + spec.wall_hu * wall
        + interior
        * (
            spec.parenchyma_hu * (1 - np.maximum(vessel, nodule))
            + spec.vessel_hu * vessel * (vessel >= nodule)
            + spec.nodule_hu * nodule * (nodule > vessel)
        )
    )
    lung = interior >= 0.5
    return hu.astype(np.float32), vessel, nodule, centreline, lung


def _blur_and_noise(hu: np.ndarray, spec: BranchingPhantomParameters, rng) -> np.ndarray:
    spacing_zyx = np.asarray(spec.spacing_xyz[::-1])
    sigma_vox = np.asarray(spec.psf_fwhm_mm[::-1]) / 2.3548 / spacing_zyx
    blurred = ndi.gaussian_filter(hu, sigma_vox, mode="nearest")
    if spec.noise_sd_hu <= 0:
        return blurred
    white = rng.standard_normal(hu.shape).astype(np.float32)
    fz = np.fft.fftfreq(hu.shape[0], spacing_zyx[0])[:, None, None]
    fy = np.fft.fftfreq(hu.shape[1], spacing_zyx[1])[None, :, None]
    fx = np.fft.rfftfreq(hu.shape[2], spacing_zyx[2])[None, None, :]
    fr = np.sqrt(fx**2 + fy**2)
    nps = fr * np.exp(-((fr / 0.55) ** 2)) * np.exp(-((fz / 0.9) ** 2))  # ramp (FBP) with apodisation
    noise = np.fft.irfftn(np.fft.rfftn(white) * np.sqrt(nps), s=hu.shape, axes=(0, 1, 2)).astype(np.float32)
    noise *= spec.noise_sd_hu / max(float(noise.std()), 1e-6)
    return blurred + noise


def _truth_points(segments, nodules, image: sitk.Image):
    points, radii, isolated, clear, position = [], [], [], [], []
    for index, s in enumerate(segments):
        length = float(np.linalg.norm(s["b"] - s["a"]))
        t = np.arange(0.0, length + 1e-9, 0.25) / max(length, 1e-9)
        p = s["a"] + t[:, None] * (s["b"] - s["a"])
        alone = np.ones(len(p), bool)
        outside = np.ones(len(p), bool)
        for other_index, other in enumerate(segments):
            if other_index == index:
                continue
            d, _ = _distance_to_segment(p, other["a"], other["b"])
            alone &= d - other["r"] > s["r"] + 0.5
            outside &= d - other["r"] > 0.5
        for n in nodules:
            alone &= np.linalg.norm(p - n["centre"], axis=1) - n["r"] > s["r"] + 0.5
        points.append(p)
        radii.append(np.full(len(p), s["r"]))
        isolated.append(alone)
        clear.append(outside)
        position.append(t)
    scanner = np.concatenate(points)
    spacing = np.asarray(image.GetSpacing())
    physical = np.array([image.TransformContinuousIndexToPhysicalPoint(tuple(q / spacing)) for q in scanner])
    return physical, np.concatenate(radii), np.concatenate(isolated), np.concatenate(clear), np.concatenate(position)


def make_branching_phantom(spec: BranchingPhantomParameters | None = None, **overrides) -> BranchingPhantom:
    """Build one phantom of the independent family (see the module docstring)."""
    spec = spec or BranchingPhantomParameters()
    for key, value in overrides.items():
        setattr(spec, key, value)
    rng = np.random.default_rng(spec.seed)
    holder = _Holder(spec)
    segments = _grow(spec, holder, rng)
    nodules = _place_nodules(spec, holder, segments, rng)
    hu, vessel, nodule, centreline, lung = _render(spec, holder, segments, nodules)
    scan = _blur_and_noise(hu, spec, rng)

    direction = np.asarray(spec.direction, float).reshape(3, 3) if spec.direction else _default_direction()

    def image_of(array, pixel):
        image = sitk.GetImageFromArray(array.astype(pixel))
        image.SetSpacing(spec.spacing_xyz)
        image.SetDirection(tuple(direction.ravel()))
        image.SetOrigin((-40.0, 25.0, 180.0))
        return image

    nodule_label = nodule >= 0.5
    truth = ((vessel >= 0.5) | (centreline & (vessel > 0))) & ~nodule_label & lung
    image = image_of(np.clip(np.rint(scan), -1024, 3071), np.int16)
    points, radii, isolated, clear, position = _truth_points(segments, nodules, image)
    return BranchingPhantom(
        image=image,
        truth_label=image_of(truth, np.uint8),
        vessel_fraction=image_of(vessel * lung, np.float32),
        lung_mask=image_of(lung, np.uint8),
        points_mm=points,
        point_radius_mm=radii,
        point_isolated=isolated,
        point_near_junction=clear & ~isolated,
        point_position=position,
        segments=[{"start_mm": s["a"].tolist(), "end_mm": s["b"].tolist(), "radius_mm": s["r"]} for s in segments],
        nodule_label=image_of(nodule_label & lung, np.uint8),
        nodules=[
            {"centre_mm": n["centre"].tolist(), "radius_mm": n["r"], "attached_to": n["attached_to"]} for n in nodules
        ],
    )
