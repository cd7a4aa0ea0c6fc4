"""The study runner's measurements against the known design (noise-free scans), and registration."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from phantomqa_helpers import small_geometry

from PhantomQALib.measure import measure_per_radius
from PhantomQALib.study_phantom import Materials, make_study_phantom, preset_parameters
from PhantomQALib.rasterize import RigidMap, rasterise_design
from PhantomQALib.recon import RECON_MODELS
from PhantomQALib.registration import RegistrationParameters
from PhantomQALib.simulate import FastSimulator, to_ct_image
from PhantomQALib.study import align_design, analyse_scan
from RadiologyAICommonLib.errors import RadiologyAIError


@pytest.fixture(scope="module")
def setup():
    # a uniform vessel material (no texture): the measurements have exact known answers
    design = make_study_phantom(preset_parameters("small", materials=Materials()))
    ref = small_geometry().reference()
    grid = rasterise_design(design, ref)
    return design, ref, grid


def test_measurements_with_the_design_as_segmentation_are_exact(setup):
    _, ref, grid = setup
    ideal = grid.ideal_hu()
    label = grid.vessel_label()
    table, summary = measure_per_radius(ideal, grid, label, grid.radius)
    big = table[table["radius_mm"] >= 1.0]
    assert np.allclose(big["mpv_hu"], 100.0, atol=1.0)
    assert np.allclose(big["iqr_hu"], 0.0, atol=1.0)
    assert np.allclose(big["detection_rate"], 1.0)
    assert np.allclose(big["radius_err_mm"], 0.0, atol=0.02)  # near joints the nearest voxel may be the parent's
    assert summary["false_positive_volume_ml"] == 0.0
    assert summary["detected_volume_ml"] == pytest.approx(summary["design_volume_ml"], rel=0.1)
    # nothing found: no detection, no statistics
    empty, summary0 = measure_per_radius(ideal, grid, np.zeros_like(label), None)
    assert (empty["detection_rate"] == 0).all() and empty["mpv_hu"].isna().all() and summary0["detected_volume_ml"] == 0


def test_runner_on_a_noise_free_acquisition_matches_the_design(setup):
    """Simulate without noise and with a near-ideal resolution, run VesselQuant, compare with the design."""
    _, ref, grid = setup
    model = RECON_MODELS["fbp"].with_overrides(signal_fwhm_mm=0.4, slice_fwhm_mm=0.4)
    scan = to_ct_image(FastSimulator(grid.ideal_hu(), ref.GetSpacing()).acquire(model, 1.0, 0, noise=False), ref)
    table, summary, _ = analyse_scan(scan, grid)
    table = table.set_index("radius_mm")
    for radius in (4.25, 3.0, 2.0, 1.5):
        assert table.loc[radius, "mpv_hu"] == pytest.approx(100.0, abs=12), radius  # the vessel material
        assert table.loc[radius, "iqr_hu"] < 30, radius
    for radius in (4.25, 3.0, 2.0, 1.5, 1.0, 0.75):
        assert table.loc[radius, "detection_rate"] >= 0.95, radius
        assert abs(table.loc[radius, "radius_err_mm"]) <= 0.45, radius  # VesselQuant's radius vs the design's
    assert summary["false_positive_volume_ml"] < 0.1 * summary["design_volume_ml"]
    assert summary["true_positive_volume_ml"] == pytest.approx(summary["design_volume_ml"], rel=0.35)
    # every design radius is reported, small ones included
    assert sorted(table.index) == sorted(grid.design_radii_mm)


def test_registration_recovers_a_moved_phantom(setup):
    design, ref, grid = setup
    truth = sitk.Euler3DTransform((0, 0, 0), 0.0, 0.0, np.deg2rad(8.0), (4.0, -3.0, 2.5))
    moved = rasterise_design(design, ref, RigidMap.from_sitk(truth))
    scan = to_ct_image(FastSimulator(moved.ideal_hu(), ref.GetSpacing()).acquire(RECON_MODELS["ir"], 2.0, 3), ref)
    aligned, how, _ = align_design(
        design, "moved", scan, RegistrationParameters(mode="auto", start_angles_deg=(0.0,)), "moved scan"
    )
    assert how == "registered"
    both = (aligned.occupancy >= 0.5) & (moved.occupancy >= 0.5)
    either = (aligned.occupancy >= 0.5) | (moved.occupancy >= 0.5)
    assert both.sum() / either.sum() > 0.6  # vessel overlap (Jaccard) after registration
    # an identical frame is kept as identity in auto mode
    same = to_ct_image(FastSimulator(grid.ideal_hu(), ref.GetSpacing()).acquire(RECON_MODELS["ir"], 2.0, 3), ref)
    _, how, corr = align_design(design, "same", same, RegistrationParameters(mode="auto"), "scan")
    assert how == "identity" and corr > 0.5


def test_design_outside_the_scan_is_refused(setup):
    design, ref, _ = setup
    far = sitk.Image(ref)
    far = sitk.Cast(far, sitk.sitkInt16) - 1000
    far.SetOrigin((500.0, 500.0, 500.0))
    with pytest.raises(RadiologyAIError, match="does not overlap the scan"):
        align_design(design, "far", far, RegistrationParameters(mode="never"), "far.nrrd")
    with pytest.raises(RadiologyAIError, match="far.nrrd: no phantom material"):
        align_design(design, "far", far, RegistrationParameters(mode="auto"), "far.nrrd")
