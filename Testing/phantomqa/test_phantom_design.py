"""The parametric phantom, its rasterisation and the design files (no vessel tool involved)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from PhantomQALib.designio import MapDesign, design_on_grid, load_design, rasterise_surface, save_design
from PhantomQALib.study_phantom import DEFAULT_RADII_MM, PhantomParameters, make_study_phantom, preset_parameters
from PhantomQALib.rasterize import LABEL_VESSEL, RigidMap, rasterise_design
from PhantomQALib.simulate import ScanGeometry
from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import image_from_array


@pytest.fixture(scope="module")
def design():
    return make_study_phantom(preset_parameters("small"))


def test_phantom_is_deterministic_and_has_every_design_radius(design):
    again = make_study_phantom(preset_parameters("small"))
    assert again.to_json() == design.to_json()
    assert design.design_radii_mm == sorted(DEFAULT_RADII_MM, reverse=True)
    other = make_study_phantom(preset_parameters("small", seed=8))
    assert other.to_json() != design.to_json()
    p = design.parameters
    for s in design.segments:  # the whole tree lies inside the holder
        for point in (s.start, s.end):
            assert np.hypot(point[0], point[1]) + s.radius_mm < p.holder_inner_radius_mm
            assert abs(point[2]) + s.radius_mm < p.slab_height_mm / 2


def test_the_default_phantom_is_at_the_printed_phantoms_scale():
    """Issue 14: radii 0.1-4.25 mm, many more small than large vessels, >= 7.5 ml designed, inside its scan grid."""
    from collections import Counter

    from PhantomQALib.study_phantom import PRESET_SCAN_SIZES

    printed = make_study_phantom()
    assert printed.design_radii_mm[0] == 4.25 and printed.design_radii_mm[-1] == 0.1
    counts = Counter(s.radius_mm for s in printed.segments)
    assert min(counts[r] for r in (0.1, 0.2, 0.35)) >= 8 * max(counts[r] for r in (4.25, 3.0))
    assert printed.vessel_volume_ml() >= 7.5
    ref = ScanGeometry(size=PRESET_SCAN_SIZES["printed"]).reference()
    grid = rasterise_design(printed, ref)
    assert grid.occupancy.sum() * np.prod(ref.GetSpacing()) / 1000 >= 7.5  # on the grid too (joints counted once)
    assert (
        grid.holder.max() == pytest.approx(1.0) and grid.lung_mask[:, 0, :].sum() == 0
    )  # the holder lies inside the field of view
    with pytest.raises(RadiologyAIError, match="unknown built-in phantom 'huge'"):
        preset_parameters("huge")


def test_material_texture_is_the_objects_seeded_and_of_the_given_sd():
    from dataclasses import replace

    from PhantomQALib.study_phantom import Materials
    from PhantomQALib.recon import CALIBRATION_METADATA

    design = make_study_phantom(preset_parameters("small"))
    assert design.materials == Materials(
        **CALIBRATION_METADATA.get("phantom_materials", {})
    )  # the built-ins take the fitted texture
    ref = ScanGeometry(size=(96, 96, 80), spacing_mm=(0.9, 0.9, 1.0)).reference()
    grid = rasterise_design(design, ref)
    core = grid.occupancy >= 1.0
    uniform = replace(grid, materials=replace(grid.materials, vessel_texture_sd_hu=0.0)).ideal_hu()
    assert np.all(uniform[core] == pytest.approx(100.0))
    textured = replace(grid, materials=replace(grid.materials, vessel_texture_sd_hu=20.0, vessel_texture_fwhm_mm=1.0))
    first, again = textured.ideal_hu(), textured.ideal_hu()
    assert np.array_equal(first, again)  # the same object in every acquisition
    assert float(first[core].std()) == pytest.approx(20.0, rel=0.1) and float(np.median(first[core])) == pytest.approx(
        100.0, abs=2.0
    )
    assert np.array_equal(first[~(grid.occupancy > 0)], uniform[~(grid.occupancy > 0)])  # only inside the vessels


def test_rasterised_volume_per_radius_matches_the_analytic_cylinders(design):
    ref = ScanGeometry().reference()
    grid = rasterise_design(design, ref)
    voxel_mm3 = float(np.prod(ref.GetSpacing()))
    for radius in (3.0, 1.0, 0.5, 0.2, 0.1):
        cylinders = sum(
            np.pi * s.radius_mm**2 * np.linalg.norm(np.subtract(s.end, s.start))
            for s in design.segments
            if s.radius_mm == radius
        )
        measured = grid.occupancy[np.isclose(grid.radius, radius)].sum() * voxel_mm3
        # joints add a little (spherical caps), junction voxels go to the larger vessel
        assert measured == pytest.approx(cylinders, rel=0.15), radius
    assert grid.lung_mask.sum() > 0 and grid.holder.max() == pytest.approx(1.0)
    # centreline samples sit on voxels owned by their own radius
    kji = np.rint(
        np.array([ref.TransformPhysicalPointToContinuousIndex(tuple(p)) for p in grid.centrelines[:200, :3]])[:, ::-1]
    ).astype(int)
    owned = grid.radius[tuple(kji.T)]
    assert np.mean(np.isclose(owned, grid.centrelines[:200, 3])) > 0.9


def test_rigid_map_moves_the_design_with_the_scan(design):
    ref = ScanGeometry().reference()
    transform = sitk.Euler3DTransform((0, 0, 0), 0.0, 0.0, 0.2, (3.0, -2.0, 1.0))
    rigid = RigidMap.from_sitk(transform)
    moved = rasterise_design(design, ref, rigid)
    base = rasterise_design(design, ref)
    assert moved.occupancy.sum() == pytest.approx(base.occupancy.sum(), rel=0.02)
    assert not np.allclose(moved.occupancy, base.occupancy)
    pts = np.random.default_rng(0).normal(size=(5, 3))
    assert np.allclose(rigid.to_scan(rigid.to_design(pts)), pts)


def test_design_files_round_trip(tmp_path, design):
    save_design(design, tmp_path / "design")
    for name in ("design.json", "design_label.nrrd", "design_radius.nrrd", "centrelines.csv"):
        assert (tmp_path / "design" / name).is_file()
    assert load_design(tmp_path / "design").to_json() == design.to_json()
    # the same folder without design.json is a map design (label + radius + centrelines)
    (tmp_path / "design" / "design.json").unlink()
    maps = load_design(tmp_path / "design")
    assert isinstance(maps, MapDesign)
    assert maps.design_radii_mm == design.design_radii_mm
    grid = design_on_grid(maps, ScanGeometry().reference())
    analytic = rasterise_design(design, ScanGeometry().reference())
    assert grid.occupancy.sum() == pytest.approx(analytic.occupancy.sum(), rel=0.1)
    big = analytic.vessel_label() & (analytic.radius >= 2.0)
    assert np.mean(np.isclose(grid.radius[big > 0], analytic.radius[big > 0])) > 0.9


def _write_tube_surface(path, radius, length, suffix):
    import vtk

    cylinder = vtk.vtkCylinderSource()
    cylinder.SetRadius(radius)
    cylinder.SetHeight(length)
    cylinder.SetResolution(48)
    cylinder.CappingOn()
    triangles = vtk.vtkTriangleFilter()
    triangles.SetInputConnection(cylinder.GetOutputPort())
    writer = {".stl": vtk.vtkSTLWriter, ".vtk": vtk.vtkPolyDataWriter}[suffix]()
    writer.SetInputConnection(triangles.GetOutputPort())
    writer.SetFileName(str(path))
    writer.Write()


@pytest.mark.parametrize("suffix", [".stl", ".vtk"])
def test_surface_model_is_rasterised_with_its_radius(tmp_path, suffix):
    path = tmp_path / f"tube{suffix}"
    _write_tube_surface(path, 2.0, 20.0, suffix)
    design = rasterise_surface(path, spacing_mm=0.25)
    label = sitk.GetArrayFromImage(design.label) == LABEL_VESSEL
    volume = label.sum() * 0.25**3
    assert volume == pytest.approx(np.pi * 4.0 * 20.0, rel=0.08)
    radii = sitk.GetArrayFromImage(design.radius)[label]
    assert np.median(radii) == pytest.approx(2.0, abs=0.25)
    snapped = rasterise_surface(path, spacing_mm=0.25, nominal_radii=[1.0, 2.0, 3.0])
    assert set(np.unique(sitk.GetArrayFromImage(snapped.radius))) <= {0.0, 1.0, 2.0, 3.0}


def test_label_and_radius_map_design(tmp_path):
    """A user's design as a label map (1 = vessel) + radius map: a straight 1.5 mm tube."""
    zz, yy, xx = np.mgrid[:60, :40, :40]
    spacing = 0.5
    tube = ((yy - 19.5) ** 2 + (xx - 19.5) ** 2) * spacing**2 <= 1.5**2
    tube &= (zz > 5) & (zz < 54)
    label = sitk.GetImageFromArray(tube.astype(np.uint8))
    label.SetSpacing((spacing,) * 3)
    radius = image_from_array(np.where(tube, 1.5, 0).astype(np.float32), label)
    sitk.WriteImage(label, str(tmp_path / "label.nrrd"))
    sitk.WriteImage(radius, str(tmp_path / "radius.nrrd"))
    design = load_design(tmp_path / "label.nrrd", tmp_path / "radius.nrrd")
    assert design.design_radii_mm == [1.5] and len(design.centrelines) > 20
    # on a coarser scan grid: partial-volume occupancy keeps the volume, lung region around the tube
    ref = sitk.Image([20, 20, 30], sitk.sitkUInt8)
    ref.SetSpacing((1.0, 1.0, 1.0))
    grid = design_on_grid(design, ref)
    assert grid.occupancy.sum() == pytest.approx(tube.sum() * spacing**3, rel=0.1)
    assert grid.lung_mask.sum() > grid.vessel_label().sum() and set(np.unique(grid.radius)) == {0.0, 1.5}


def test_bad_designs_are_named(tmp_path):
    with pytest.raises(RadiologyAIError, match="no such file"):
        load_design(tmp_path / "missing.stl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RadiologyAIError, match="neither design.json"):
        load_design(tmp_path / "empty")
    (tmp_path / "bad.json").write_text("{\"kind\": 1}")
    with pytest.raises(RadiologyAIError, match="not a PhantomQA design"):
        load_design(tmp_path / "bad.json")
    blank = sitk.Image([10, 10, 10], sitk.sitkUInt8)
    sitk.WriteImage(blank, str(tmp_path / "blank.nrrd"))
    with pytest.raises(RadiologyAIError, match="no vessel voxels"):
        load_design(tmp_path / "blank.nrrd")
    with pytest.raises(RadiologyAIError, match="radii"):
        make_study_phantom(PhantomParameters(radii_mm=(1.0, 2.0)))
