"""Phantom designs on disk, and designs given as maps or surface models.

A design folder (what ``radiologyai phantom simulate`` writes) holds:

- ``design.json``: the analytic parametric phantom (segments, holder, materials), when there is one;
- ``design_label.nrrd``: labels 1 vessel, 2 holder interior (the lung region), 3 holder wall;
- ``design_radius.nrrd``: design radius (mm) of every vessel voxel, 0 elsewhere;
- ``centrelines.csv``: ``x_mm, y_mm, z_mm, radius_mm, segment`` samples of the design centrelines.

Users with a real phantom give instead a label map (1 = vessel; optionally 2 = holder
interior) with a radius map, or a surface model of the printed tree (STL, OBJ, VTK/VTP),
which is rasterised with VTK (``vtkPolyDataToImageStencil``); its radius map is the local
thickness (distance to the wall at the nearest centreline voxel, from a 3D skeleton), and can
be snapped to the nominal design radii.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from RadiologyAICommonLib.atomic import write_csv, write_text
from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import image_from_array, read_volume, write_image

from .study_phantom import Materials, PhantomDesign
from .rasterize import (
    LABEL_HOLDER,
    LABEL_LUNG,
    LABEL_VESSEL,
    GridDesign,
    RigidMap,
    continuous_index,
    physical_points,
    rasterise_design,
    reference_geometry,
    render_design_image,
)

SURFACE_SUFFIXES = (".stl", ".obj", ".vtk", ".vtp", ".ply")
CENTRELINE_COLUMNS = ("x_mm", "y_mm", "z_mm", "radius_mm", "segment")


@dataclass
class MapDesign:
    """A design given as images: label (1 vessel, 2 lung region, 3 holder) + design radius (mm)."""

    label: sitk.Image
    radius: sitk.Image
    centrelines: np.ndarray | None = None  # (N, 5) in the design frame
    materials: Materials = field(default_factory=Materials)
    lung_margin_mm: float = 10.0  # lung region = vessels dilated by this much, if the label has no 2
    name: str = "design"

    def validate(self) -> "MapDesign":
        if not np.any(sitk.GetArrayViewFromImage(self.label) == LABEL_VESSEL):
            raise RadiologyAIError(f"{self.name}: the design label map has no vessel voxels (label {LABEL_VESSEL})")
        if self.radius.GetSize() != self.label.GetSize():
            raise RadiologyAIError(f"{self.name}: the radius map and the label map differ in size")
        if self.centrelines is None:
            self.centrelines = skeleton_centrelines(self.label, self.radius)
        if len(self.centrelines) == 0:
            raise RadiologyAIError(f"{self.name}: no centreline could be derived from the design label map")
        return self

    @property
    def design_radii_mm(self) -> list[float]:
        return sorted({round(float(r), 4) for r in self.centrelines[:, 3]}, reverse=True)


def design_on_grid(design, reference: sitk.Image, rigid: RigidMap | None = None) -> GridDesign:
    """Any design (analytic or maps) on a scan grid, through ``rigid`` (scan -> design)."""
    if isinstance(design, PhantomDesign):
        return rasterise_design(design, reference, rigid)
    return _maps_on_grid(design, reference, rigid or RigidMap.identity())


def _maps_on_grid(design: MapDesign, reference: sitk.Image, rigid: RigidMap) -> GridDesign:
    transform = rigid.to_sitk()
    label = design.label
    vessel = sitk.Cast(label == LABEL_VESSEL, sitk.sitkFloat32)
    # Partial volume: smooth the (finer) binary design to the scan voxel size before sampling.
    scan_spacing = np.array(reference.GetSpacing())
    design_spacing = np.array(label.GetSpacing())
    sigma = np.sqrt(np.maximum((scan_spacing / 2.3548) ** 2 - (design_spacing / 2.3548) ** 2, 0.0))
    if np.any(sigma > 0):
        vessel = sitk.SmoothingRecursiveGaussian(vessel, [max(float(s), 1e-3) for s in sigma])
    occupancy = sitk.GetArrayFromImage(sitk.Resample(vessel, reference, transform, sitk.sitkLinear, 0.0))
    radius = sitk.GetArrayFromImage(sitk.Resample(design.radius, reference, transform, sitk.sitkNearestNeighbor, 0.0))
    occupancy = np.clip(occupancy, 0, 1).astype(np.float32)
    radius = radius.astype(np.float32)
    owned = occupancy > 0.02
    if np.any(owned & (radius <= 0)) and np.any(radius > 0):
        _, nearest = ndimage.distance_transform_edt(
            radius <= 0, sampling=reference.GetSpacing()[::-1], return_indices=True
        )
        filled = radius[tuple(nearest)]
        radius = np.where(owned & (radius <= 0), filled, radius)
    radius = np.where(owned, radius, 0).astype(np.float32)
    labels = sitk.GetArrayFromImage(sitk.Resample(label, reference, transform, sitk.sitkNearestNeighbor, 0))
    holder = (
        (labels == LABEL_HOLDER).astype(np.float32)
        if np.any(sitk.GetArrayViewFromImage(label) == LABEL_HOLDER)
        else None
    )
    if np.any(sitk.GetArrayViewFromImage(label) == LABEL_LUNG):
        lung = np.isin(labels, (LABEL_LUNG, LABEL_VESSEL)).astype(np.uint8)
    else:
        distance = ndimage.distance_transform_edt(occupancy < 0.5, sampling=reference.GetSpacing()[::-1])
        lung = (distance <= design.lung_margin_mm).astype(np.uint8)
    centres = design.centrelines.copy()
    centres[:, :3] = rigid.to_scan(centres[:, :3])
    # distance to the nearest centreline sample (the centreline voxels, on this grid)
    kji = np.rint(continuous_index(reference, centres[:, :3])).astype(int)
    kji = kji[np.all((kji >= 0) & (kji < np.array(occupancy.shape)), axis=1)]
    on_axis = np.zeros(occupancy.shape, bool)
    on_axis[tuple(kji.T)] = True
    axis_distance = (
        ndimage.distance_transform_edt(~on_axis, sampling=reference.GetSpacing()[::-1]).astype(np.float32)
        if on_axis.any()
        else None
    )
    return GridDesign(
        reference_geometry(reference), occupancy, radius, lung, holder, centres, design.materials, axis_distance
    )


def centre_voxels(vessel: np.ndarray, spacing_zyx) -> np.ndarray:
    """The 3D skeleton of a vessel mask (``skimage.morphology.skeletonize``).

    Thinning can erase a perfectly symmetric even-width tube entirely; any vessel piece left
    without a skeleton voxel gets its distance-transform ridge (local maxima) instead.
    """
    from skimage.morphology import skeletonize

    skeleton = skeletonize(vessel)
    pieces, count = ndimage.label(vessel, structure=np.ones((3, 3, 3)))
    covered = set(np.unique(pieces[skeleton])) - {0}
    if len(covered) < count:
        inside = ndimage.distance_transform_edt(vessel, sampling=spacing_zyx)
        ridge = vessel & (inside >= ndimage.maximum_filter(inside, size=3))
        missing = np.isin(pieces, [i for i in range(1, count + 1) if i not in covered])
        skeleton = skeleton | (ridge & missing)
    return skeleton


def skeleton_centrelines(label: sitk.Image, radius: sitk.Image) -> np.ndarray:
    """Centreline samples of a vessel label map: its 3D skeleton, with the radius map's values."""
    vessel = sitk.GetArrayFromImage(label) == LABEL_VESSEL
    skeleton = centre_voxels(vessel, label.GetSpacing()[::-1])
    kji = np.argwhere(skeleton)
    if kji.size == 0:
        return np.zeros((0, 5))
    radii = sitk.GetArrayViewFromImage(radius)[tuple(kji.T)]
    points = physical_points(label, kji)
    components, _ = ndimage.label(skeleton, structure=np.ones((3, 3, 3)))
    segment = components[tuple(kji.T)]
    keep = radii > 0
    return np.column_stack([points[keep], radii[keep], segment[keep]]).astype(float)


def local_thickness_radius(vessel: np.ndarray, spacing_zyx, nominal_radii: list[float] | None = None) -> np.ndarray:
    """Design radius of each vessel voxel: distance to the wall at its nearest skeleton voxel (mm)."""
    inside = ndimage.distance_transform_edt(vessel, sampling=spacing_zyx)
    skeleton = centre_voxels(vessel, spacing_zyx)
    if not skeleton.any():
        return np.zeros(vessel.shape, np.float32)
    _, nearest = ndimage.distance_transform_edt(~skeleton, sampling=spacing_zyx, return_indices=True)
    # the EDT of a voxelised tube under-estimates its radius by about half a voxel
    radius = inside[tuple(nearest)] + 0.5 * float(np.min(spacing_zyx))
    if nominal_radii:
        nominal = np.asarray(sorted(nominal_radii), float)
        radius = nominal[np.abs(radius[..., None] - nominal[None, None, None, :]).argmin(axis=-1)]
    return np.where(vessel, radius, 0).astype(np.float32)


def read_surface(path: str | os.PathLike):
    """Read an STL / OBJ / PLY / legacy VTK / VTP surface as vtkPolyData."""
    try:
        import vtk
    except ImportError:
        raise RadiologyAIError(
            "surface-model designs need the 'vtk' package: pip install vtk (Slicer ships it)"
        ) from None

    path = Path(path)
    suffix = path.suffix.lower()
    readers = {
        ".stl": vtk.vtkSTLReader,
        ".obj": vtk.vtkOBJReader,
        ".ply": vtk.vtkPLYReader,
        ".vtk": vtk.vtkPolyDataReader,
        ".vtp": vtk.vtkXMLPolyDataReader,
    }
    if suffix not in readers:
        raise RadiologyAIError(f"surface {path}: unsupported format (use {', '.join(SURFACE_SUFFIXES)})")
    if not path.is_file():
        raise RadiologyAIError(f"surface {path}: no such file")
    reader = readers[suffix]()
    reader.SetFileName(str(path))
    reader.Update()
    poly = reader.GetOutput()
    if poly is None or poly.GetNumberOfPoints() == 0 or poly.GetNumberOfCells() == 0:
        raise RadiologyAIError(f"surface {path}: no surface could be read from the file")
    return poly


def rasterise_surface(
    path: str | os.PathLike,
    spacing_mm: float = 0.25,
    nominal_radii: list[float] | None = None,
    ras: bool = False,
    margin_mm: float = 3.0,
) -> MapDesign:
    """A closed surface model of the vessel tree as a MapDesign on an isotropic grid."""
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    poly = read_surface(path)
    if ras:  # Slicer's legacy RAS models: flip x and y to LPS
        flip = vtk.vtkTransform()
        flip.Scale(-1, -1, 1)
        tf = vtk.vtkTransformPolyDataFilter()
        tf.SetInputData(poly)
        tf.SetTransform(flip)
        tf.Update()
        poly = tf.GetOutput()
    x0, x1, y0, y1, z0, z1 = poly.GetBounds()
    lo = np.array([x0, y0, z0]) - margin_mm
    size = np.ceil((np.array([x1, y1, z1]) + margin_mm - lo) / spacing_mm).astype(int) + 1
    if np.prod(size) > 300e6:
        raise RadiologyAIError(
            f"surface {path}: {tuple(size)} voxels at {spacing_mm} mm is too large; use a coarser --surface-spacing"
        )
    white = vtk.vtkImageData()
    white.SetSpacing(spacing_mm, spacing_mm, spacing_mm)
    white.SetOrigin(*lo)
    white.SetDimensions(*[int(v) for v in size])
    white.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    white.GetPointData().GetScalars().Fill(1)
    stencil = vtk.vtkPolyDataToImageStencil()
    stencil.SetInputData(poly)
    stencil.SetOutputOrigin(*lo)
    stencil.SetOutputSpacing(spacing_mm, spacing_mm, spacing_mm)
    stencil.SetOutputWholeExtent(white.GetExtent())
    stencil.Update()
    cut = vtk.vtkImageStencil()
    cut.SetInputData(white)
    cut.SetStencilConnection(stencil.GetOutputPort())
    cut.ReverseStencilOff()
    cut.SetBackgroundValue(0)
    cut.Update()
    array = vtk_to_numpy(cut.GetOutput().GetPointData().GetScalars()).reshape(size[::-1]).astype(bool)
    if not array.any():
        raise RadiologyAIError(f"surface {path}: the surface encloses no voxel at {spacing_mm} mm (is it closed?)")
    spacing = (spacing_mm,) * 3
    radius = local_thickness_radius(array, spacing, nominal_radii)
    label_img = sitk.GetImageFromArray(array.astype(np.uint8) * LABEL_VESSEL)
    label_img.SetSpacing(spacing)
    label_img.SetOrigin(tuple(float(v) for v in lo))
    radius_img = image_from_array(radius, label_img)
    return MapDesign(label_img, radius_img, name=f"surface {path}").validate()


def read_centrelines(path: Path) -> np.ndarray:
    table = pd.read_csv(path)
    missing = [c for c in CENTRELINE_COLUMNS[:4] if c not in table.columns]
    if missing:
        raise RadiologyAIError(f"centrelines {path}: missing column(s) {', '.join(missing)}")
    if "segment" not in table.columns:
        table["segment"] = -1
    values = table[list(CENTRELINE_COLUMNS)].to_numpy(float)
    if not np.isfinite(values).all():
        raise RadiologyAIError(f"centrelines {path}: non-numeric values")
    return values


def load_design(
    path: str | os.PathLike | None,
    radius_path: str | os.PathLike | None = None,
    nominal_radii=None,
    surface_spacing_mm: float = 0.25,
    surface_ras: bool = False,
):
    """A design from a folder, a design.json, a surface model, or a label map (+ radius map)."""
    if path is None:
        from .study_phantom import make_study_phantom

        return make_study_phantom()
    path = Path(path)
    if not path.exists():
        raise RadiologyAIError(f"design {path}: no such file or folder")
    if path.is_dir():
        if (path / "design.json").is_file():
            return load_design(path / "design.json")
        label, radius = path / "design_label.nrrd", path / "design_radius.nrrd"
        if not label.is_file() or not radius.is_file():
            raise RadiologyAIError(
                f"design {path}: the folder has neither design.json nor design_label.nrrd + design_radius.nrrd"
            )
        design = MapDesign(
            read_volume(label, "design label map"), read_volume(radius, "design radius map"), name=f"design {path}"
        )
        if (path / "centrelines.csv").is_file():
            design.centrelines = read_centrelines(path / "centrelines.csv")
        return design.validate()
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RadiologyAIError(f"design {path}: not a JSON file ({exc})") from None
        return PhantomDesign.from_dict(data, f"design {path}")
    if suffix in SURFACE_SUFFIXES:
        return rasterise_surface(path, surface_spacing_mm, nominal_radii, surface_ras)
    label = read_volume(path, "design label map")
    if radius_path is None:
        vessel = sitk.GetArrayFromImage(label) == LABEL_VESSEL
        radius_arr = local_thickness_radius(vessel, label.GetSpacing()[::-1], nominal_radii)
        radius = image_from_array(radius_arr, label)
    else:
        radius = read_volume(radius_path, "design radius map")
    label = sitk.Cast(label, sitk.sitkUInt8)
    return MapDesign(label, sitk.Cast(radius, sitk.sitkFloat32), name=f"design {path}").validate()


def save_design(design, folder: str | os.PathLike, spacing_mm: float = 0.5) -> Path:
    """Write design.json (analytic designs), design_label/radius.nrrd and centrelines.csv."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(design, PhantomDesign):
        write_text(folder / "design.json", design.to_json() + "\n")
        label, radius = render_design_image(design, spacing_mm)
        centres = design.centreline_points()
    else:
        label, radius, centres = design.label, design.radius, design.centrelines
    write_image(label, folder / "design_label.nrrd")
    write_image(radius, folder / "design_radius.nrrd")
    table = pd.DataFrame(centres, columns=list(CENTRELINE_COLUMNS))
    table["segment"] = table["segment"].astype(int)
    write_csv(folder / "centrelines.csv", table.round(4))
    return folder


def design_hu_image(design, spacing_mm: float = 1.0) -> sitk.Image:
    """The design as an ideal CT image (HU) on its own grid: the moving image for registration."""
    if isinstance(design, PhantomDesign):
        lo, hi = design.bounds_mm()
        lo, hi = lo - 6.0, hi + 6.0
        size = [int(np.ceil((b - a) / spacing_mm)) for a, b in zip(lo, hi)]
        ref = sitk.Image(size, sitk.sitkUInt8)
        ref.SetSpacing([spacing_mm] * 3)
        ref.SetOrigin([float(v) for v in lo])
        grid = rasterise_design(design, ref)
        return grid.image(grid.ideal_hu())
    m = design.materials
    labels = sitk.GetArrayFromImage(design.label)
    hu = np.full(labels.shape, m.background_hu, np.float32)
    hu[labels == LABEL_VESSEL] = m.vessel_hu
    hu[labels == LABEL_HOLDER] = m.holder_hu
    image = image_from_array(hu, design.label)
    factor = max(1, int(round(spacing_mm / max(design.label.GetSpacing()))))
    return sitk.BinShrink(image, [factor] * 3) if factor > 1 else image


def design_extent_mm(design) -> tuple[np.ndarray, np.ndarray]:
    """Physical bounding box of the design's vessels (design frame)."""
    pts = design.centrelines if isinstance(design, MapDesign) else design.centreline_points()
    r = pts[:, 3].max()
    return pts[:, :3].min(0) - r, pts[:, :3].max(0) + r


__all__ = [
    "MapDesign",
    "design_on_grid",
    "load_design",
    "save_design",
    "rasterise_surface",
    "design_hu_image",
]
