"""The parametric branching lung-vessel phantom.

The phantom imitates the 3D-printed lung-vessel phantom of the seed study: a branching
tree of cylindrical vessels whose design radii run from 4.25 mm down to 0.1 mm, printed in
a material near +100 HU, held in air inside a PMMA cylinder (the "thorax holder").

The tree is built as a list of capsules (cylinders with hemispherical ends, so joints are
smooth): the root (largest radius) bifurcates symmetrically for ``bifurcation_generations``
generations, then every end continues as a chain of tapering segments down to the
smallest radius. Branch directions rotate by ``branch_angle_deg`` about the parent axis, in
a plane that turns 90 degrees every generation (like a real pulmonary tree); a seeded random
twist is added and a branch that would leave the holder or touch another branch is redrawn
(rejection sampling), so the same parameters and seed always give the same phantom.

All coordinates are physical millimetres in the design frame (LPS, like SimpleITK); the
holder axis is the z axis through ``(0, 0)``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from RadiologyAICommonLib.errors import RadiologyAIError

# The design radii (mm) of the seed study's phantom span 0.1-4.25 mm; this ladder is ours.
DEFAULT_RADII_MM = (4.25, 3.0, 2.0, 1.5, 1.0, 0.75, 0.5, 0.35, 0.2, 0.1)
# Segment length (mm) per radius: long enough for stable per-radius statistics on the
# large vessels, short for the fine ones so the tree fits the field of view.
DEFAULT_LENGTHS_MM = (17.0, 18.0, 13.0, 11.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0)

# Built-in phantoms. "printed" (the default) is at the printed phantom's scale: two trees in a
# 92 mm holder, 225 segments (2 of 4.25 mm, 4 of 3 mm, 35-36 each of 0.1-0.35 mm), 8.2 ml designed -
# more than the largest published detected volume (7.42 ml), so absolute volumes compare. "small" is the
# earlier one-tree phantom (146 segments, 4.3 ml) for fast tests.
PHANTOM_PRESETS: dict[str, dict] = {
    "printed": {},
    "small": {
        "trees": 1,
        "lengths_mm": (17.0, 20.0, 13.0, 11.0, 8.0, 7.0, 6.0, 5.0, 4.0, 4.0),
        "holder_inner_radius_mm": 38.0,
        "slab_height_mm": 76.0,
    },
}
# The scan grid (voxels x, y, z at 0.7 x 0.7 x 1.0 mm) that holds each built-in phantom's holder.
PRESET_SCAN_SIZES: dict[str, tuple] = {"printed": (144, 144, 96), "small": (128, 128, 80)}


@dataclass
class Materials:
    """CT numbers (HU) of the phantom's materials at the simulated tube voltage."""

    vessel_hu: float = 100.0  # printed vessel material (seed: "near 100 HU")
    background_hu: float = -1000.0  # air around the printed tree, inside and outside the holder
    holder_hu: float = 120.0  # PMMA (about +120 HU at 120 kV)
    # The printed material is not perfectly uniform (print layers, micro-voids): a stationary
    # Gaussian texture of this SD and correlation FWHM inside the vessels (0 = uniform). The
    # built-in phantoms take the calibrated values (Resources/recon_calibration.json, "phantom_materials").
    vessel_texture_sd_hu: float = 0.0
    vessel_texture_fwhm_mm: float = 1.0


@dataclass
class PhantomParameters:
    """Geometry of the parametric phantom (all lengths in mm)."""

    radii_mm: tuple = DEFAULT_RADII_MM  # design radii, largest first (root) to smallest (tips)
    lengths_mm: tuple = DEFAULT_LENGTHS_MM  # segment length per radius
    bifurcation_generations: int = 3  # symmetric bifurcations before the tapering chains
    branch_angle_deg: float = 32.0  # angle between a child and its parent's axis at a bifurcation
    chain_angle_deg: float = 18.0  # bend between consecutive segments of a tapering chain
    side_branch_step: int = 2  # side branches are this many radii down the ladder (0 = none)
    side_branch_segments: int = 2  # segments per side branch (tapering)
    side_branch_angle_deg: float = 65.0  # angle between a side branch and its parent
    holder_inner_radius_mm: float = 46.0  # PMMA cylinder: inner radius
    holder_wall_mm: float = 4.0  # PMMA wall thickness
    slab_height_mm: float = 92.0  # height of the imaged slab along the holder axis (z)
    clearance_mm: float = 1.5  # minimum gap between non-adjacent branches and to the holder
    materials: Materials = field(default_factory=Materials)
    seed: int = 7  # the random twists of the branching planes
    trees: int = 2  # independent trees, their roots spread around the holder axis

    def validate(self) -> "PhantomParameters":
        radii = [float(r) for r in self.radii_mm]
        if len(radii) < 2 or any(r <= 0 for r in radii) or radii != sorted(radii, reverse=True):
            raise RadiologyAIError(f"phantom radii must be positive and decreasing, got {self.radii_mm}")
        if len(self.lengths_mm) != len(radii) or any(float(v) <= 0 for v in self.lengths_mm):
            raise RadiologyAIError("phantom lengths_mm must give one positive length per radius")
        if not 0 <= self.bifurcation_generations < len(radii):
            raise RadiologyAIError(f"bifurcation_generations must be in [0, {len(radii) - 1}]")
        if not 1 <= int(self.trees) <= 6:
            raise RadiologyAIError(f"phantom trees must be 1-6, got {self.trees}")
        if (
            self.holder_inner_radius_mm <= 2 * radii[0]
            or self.holder_wall_mm <= 0
            or self.slab_height_mm <= 4 * radii[0]
        ):
            raise RadiologyAIError("the phantom holder is too small for the vessel tree")
        return self


def preset_parameters(name: str = "printed", **overrides) -> PhantomParameters:
    """The parameters of a built-in phantom ("printed" or "small"), with overrides."""
    if name not in PHANTOM_PRESETS:
        raise RadiologyAIError(f"unknown built-in phantom '{name}'; use one of {', '.join(PHANTOM_PRESETS)}")
    from .recon import CALIBRATION_METADATA

    materials = Materials(**CALIBRATION_METADATA.get("phantom_materials", {}))
    return PhantomParameters(**{**PHANTOM_PRESETS[name], "materials": materials, **overrides})


@dataclass
class Segment:
    """One capsule of the tree: from ``start`` to ``end`` (mm), radius ``radius_mm``."""

    index: int
    parent: int  # -1 for the root
    start: tuple
    end: tuple
    radius_mm: float
    generation: int


@dataclass
class PhantomDesign:
    """An analytic phantom: the segments, the holder and the materials."""

    segments: list
    parameters: PhantomParameters

    @property
    def materials(self) -> Materials:
        return self.parameters.materials

    @property
    def design_radii_mm(self) -> list[float]:
        return sorted({round(s.radius_mm, 4) for s in self.segments}, reverse=True)

    def bounds_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Physical bounding box (min, max) of the holder slab."""
        p = self.parameters
        outer = p.holder_inner_radius_mm + p.holder_wall_mm
        half = p.slab_height_mm / 2
        return np.array([-outer, -outer, -half]), np.array([outer, outer, half])

    def vessel_volume_ml(self) -> float:
        """Design vessel volume (sum of cylinders; joints counted once, approximately)."""
        total = 0.0
        for s in self.segments:
            length = float(np.linalg.norm(np.subtract(s.end, s.start)))
            total += np.pi * s.radius_mm**2 * length
        return total / 1000.0

    def centreline_points(self, step_mm: float = 0.5) -> np.ndarray:
        """Centreline samples: array (N, 5) = x, y, z, design radius, segment index.

        The samples skip each segment's first ``parent radius`` mm (inside the parent's
        lumen at a joint), so every point belongs unambiguously to its own radius.
        """
        rows = []
        radius_of = {s.index: s.radius_mm for s in self.segments}
        for s in self.segments:
            a, b = np.asarray(s.start, float), np.asarray(s.end, float)
            length = float(np.linalg.norm(b - a))
            skip = radius_of.get(s.parent, 0.0)
            n = max(int(np.floor((length - skip) / step_mm)), 1)
            for t in (skip + (np.arange(n) + 0.5) * (length - skip) / n) / length:
                p = a + t * (b - a)
                rows.append((p[0], p[1], p[2], s.radius_mm, s.index))
        return np.array(rows, dtype=float).reshape(-1, 5)

    def to_dict(self) -> dict:
        return {
            "kind": "parametric-lung-vessel-phantom",
            "parameters": asdict(self.parameters),
            "segments": [asdict(s) for s in self.segments],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict, what: str = "design") -> "PhantomDesign":
        try:
            params = dict(data["parameters"])
            params["materials"] = Materials(**params.get("materials", {}))
            for key in ("radii_mm", "lengths_mm"):
                params[key] = tuple(params[key])
            parameters = PhantomParameters(**params)
            segments = [
                Segment(
                    index=int(s["index"]),
                    parent=int(s["parent"]),
                    start=tuple(float(v) for v in s["start"]),
                    end=tuple(float(v) for v in s["end"]),
                    radius_mm=float(s["radius_mm"]),
                    generation=int(s["generation"]),
                )
                for s in data["segments"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise RadiologyAIError(f"{what}: not a PhantomQA design file ({type(exc).__name__}: {exc})") from None
        if not segments:
            raise RadiologyAIError(f"{what}: the design has no vessel segments")
        return cls(segments=segments, parameters=parameters)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation of ``v`` about the unit ``axis``."""
    axis = _unit(axis)
    return v * np.cos(angle) + np.cross(axis, v) * np.sin(angle) + axis * np.dot(axis, v) * (1 - np.cos(angle))


def _perpendicular(v: np.ndarray) -> np.ndarray:
    helper = np.array([1.0, 0.0, 0.0]) if abs(v[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    return _unit(np.cross(v, helper))


def _segment_distance(p1, q1, p2, q2) -> float:
    """Minimum distance between segments p1-q1 and p2-q2 (sampled; exact enough for clearance)."""
    t = np.linspace(0.0, 1.0, 9)[:, None]
    a = p1 + t * (q1 - p1)
    b = p2 + t * (q2 - p2)

    # refine: distance from samples of one to the other segment, both ways
    def point_seg(points, p, q):
        d = q - p
        denom = float(np.dot(d, d)) or 1e-12
        s = np.clip((points - p) @ d / denom, 0, 1)[:, None]
        return np.linalg.norm(points - (p + s * d), axis=1).min()

    return min(point_seg(a, p2, q2), point_seg(b, p1, q1))


def make_study_phantom(parameters: PhantomParameters | None = None, max_tries: int = 400) -> PhantomDesign:
    """Grow the branching tree inside the holder (deterministic for given parameters and seed).

    Without parameters: the built-in printed-scale phantom with the calibrated materials.
    """
    p = (parameters or preset_parameters("printed")).validate()
    tree = _TreeGrower(p, max_tries)
    frontier = tree.roots()
    frontier, level, generation = tree.bifurcations(frontier)
    tree.chains(frontier, level, generation)
    tree.side_branches()
    present = {round(s.radius_mm, 4) for s in tree.segments}
    missing = [r for r in tree.radii if round(r, 4) not in present]
    if missing:
        raise RadiologyAIError(
            f"the phantom tree does not fit the holder: no room for radii {missing} mm; "
            "enlarge the holder or shorten the segments"
        )
    return PhantomDesign(segments=tree.segments, parameters=p)


class _TreeGrower:
    """The segments grown so far and the rules for placing the next one (one random stream, drawn in order:
    bifurcations, tapering chains, side branches)."""

    def __init__(self, p: PhantomParameters, max_tries: int) -> None:
        self.p = p
        self.max_tries = max_tries
        self.rng = np.random.default_rng(p.seed)
        self.radii = [float(r) for r in p.radii_mm]
        self.lengths = [float(v) for v in p.lengths_mm]
        self.inner = p.holder_inner_radius_mm
        self.half = p.slab_height_mm / 2
        self.segments: list[Segment] = []

    def inside(self, point: np.ndarray, radius: float) -> bool:
        margin = radius + self.p.clearance_mm + 1.0
        return bool(np.hypot(point[0], point[1]) <= self.inner - margin and abs(point[2]) <= self.half - margin)

    def clear_of_others(self, start, end, radius, parent_index) -> bool:
        related = {parent_index}
        if parent_index >= 0:
            related.add(self.segments[parent_index].parent)
            related.update(s.index for s in self.segments if s.parent == parent_index)  # siblings share the joint
        for s in self.segments:
            if s.index in related:
                continue
            gap = _segment_distance(np.asarray(s.start), np.asarray(s.end), start, end) - s.radius_mm - radius
            if gap < self.p.clearance_mm:
                return False
        return True

    def add(self, parent: int, start: np.ndarray, direction: np.ndarray, level: int, generation: int) -> int:
        end = start + self.lengths[level] * direction
        self.segments.append(
            Segment(
                len(self.segments),
                parent,
                tuple(map(float, start)),
                tuple(map(float, end)),
                self.radii[level],
                generation,
            )
        )
        return len(self.segments) - 1

    def try_child(self, parent: int, start, parent_dir, plane_normal, angle_deg, sign, level, generation) -> int | None:
        """Place one child; the branching plane twists at random until it fits."""
        rng, length, radius = self.rng, self.lengths[level], self.radii[level]
        for attempt in range(self.max_tries):
            twist = 0.0 if attempt == 0 else rng.uniform(-np.pi, np.pi) * min(1.0, attempt / 40)
            normal = _rotate(plane_normal, parent_dir, twist)
            if attempt < self.max_tries // 4:
                angle = np.deg2rad(angle_deg) * (1.0 + (0.0 if attempt == 0 else rng.uniform(-0.3, 0.3)))
            else:  # crowded: let the branch turn harder, as real vessels do near the pleura
                angle = np.deg2rad(rng.uniform(angle_deg, 100.0))
            direction = _unit(_rotate(parent_dir, normal, sign * angle))
            end = start + length * direction
            if (
                self.inside(end, radius)
                and self.inside(start + 0.5 * length * direction, radius)
                and self.clear_of_others(start, end, radius, parent)
            ):
                return self.add(parent, start, direction, level, generation)
        return None

    def _end_of(self, parent: int) -> tuple[np.ndarray, np.ndarray]:
        ps = self.segments[parent]
        return np.asarray(ps.end), _unit(np.asarray(ps.end) - np.asarray(ps.start))

    def roots(self) -> list:
        """Roots enter near one end of the slab and run along the holder axis, slightly tilted (one tree on the
        axis; several spread on a circle, alternating ends of the slab). Returns the frontier."""
        p, frontier = self.p, []
        for tree in range(int(p.trees)):
            angle = 2 * np.pi * tree / p.trees
            offset = 0.0 if p.trees == 1 else 0.45 * self.inner
            up = 1.0 if tree % 2 == 0 else -1.0
            root_dir = _unit(np.array([0.15 * np.cos(angle + 0.6), 0.15 * np.sin(angle + 0.6), up]))
            root_start = np.array(
                [
                    offset * np.cos(angle),
                    offset * np.sin(angle),
                    -up * (self.half - self.radii[0] - p.clearance_mm - 2.0),
                ]
            )
            root = self.add(-1, root_start, root_dir, 0, 0)
            frontier.append((root, _perpendicular(root_dir)))
        return frontier

    def bifurcations(self, frontier: list) -> tuple[list, int, int]:
        """Two children per end for ``bifurcation_generations``; each generation branches in the plane
        perpendicular to the last. Returns the frontier, the last level and the last generation."""
        level = generation = 0
        for generation in range(1, self.p.bifurcation_generations + 1):
            level = generation
            next_frontier = []
            for parent, plane_normal in frontier:
                start, pdir = self._end_of(parent)
                for sign in (+1, -1):
                    child = self.try_child(
                        parent, start, pdir, plane_normal, self.p.branch_angle_deg, sign, level, generation
                    )
                    if child is not None:
                        next_frontier.append((child, _unit(np.cross(pdir, plane_normal))))
            frontier = next_frontier
        return frontier, level, generation

    def chains(self, frontier: list, level: int, generation: int) -> None:
        """Tapering chains: one child per end, alternating bends, down to the smallest radius."""
        for step, chain_level in enumerate(range(level + 1, len(self.radii))):
            next_frontier = []
            for parent, plane_normal in frontier:
                start, pdir = self._end_of(parent)
                sign = +1 if step % 2 == 0 else -1
                child = self.try_child(
                    parent, start, pdir, plane_normal, self.p.chain_angle_deg, sign, chain_level, generation + step + 1
                )
                if child is not None:
                    next_frontier.append((child, plane_normal))
            frontier = next_frontier

    def side_branches(self) -> None:
        """Every segment below the root sprouts, at its middle, a short chain of vessels ``side_branch_step`` radii
        smaller (real trees have many more small vessels than large ones; the detection of these is what changes
        the tree volume with dose)."""
        p = self.p
        if p.side_branch_step <= 0:
            return
        for parent in [s for s in self.segments if s.parent >= 0]:
            level = self.radii.index(parent.radius_mm) + p.side_branch_step
            a, b = np.asarray(parent.start), np.asarray(parent.end)
            pdir = _unit(b - a)
            start = 0.5 * (a + b)
            previous, normal = parent.index, _rotate(_perpendicular(pdir), pdir, self.rng.uniform(0, 2 * np.pi))
            for depth in range(p.side_branch_segments):
                if level + depth >= len(self.radii):
                    break
                angle = p.side_branch_angle_deg if depth == 0 else p.chain_angle_deg
                child = self.try_child(
                    previous, start, pdir, normal, angle, +1, level + depth, parent.generation + depth + 1
                )
                if child is None:
                    break
                previous = child
                start = np.asarray(self.segments[child].end)
                pdir = _unit(start - np.asarray(self.segments[child].start))
