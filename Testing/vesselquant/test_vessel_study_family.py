"""The third phantom family of the generality benchmark (PhantomQA's study phantom as a VesselPhantom): its truth
agrees with the design, and its noise is the reconstruction model's."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from VesselQuantLib.evaluation import physical_to_index

from benchmarks.study_phantom_family import background_noise_sd, make_study_family_phantom


@pytest.fixture(scope="module")
def phantom():
    return make_study_family_phantom(seed=0, ctdivol_mgy=0.2, recon="fbp", preset="small")


def test_truth_matches_the_design(phantom):
    ml = float(np.prod(phantom.image.GetSpacing())) / 1000.0
    truth = sitk.GetArrayFromImage(phantom.truth_label).astype(bool)
    lung = sitk.GetArrayFromImage(phantom.lung_mask).astype(bool)
    fraction = sitk.GetArrayFromImage(phantom.vessel_fraction)
    design_ml = phantom.design.vessel_volume_ml()
    assert truth.sum() * ml == pytest.approx(design_ml, rel=0.05)  # half-filled voxels + centreline voxels
    assert fraction.sum() * ml == pytest.approx(design_ml, rel=0.05)  # partial volume (joints counted once)
    assert not (truth & ~lung).any() and fraction[~lung].sum() == 0  # every vessel lies in the holder interior
    index = np.rint(physical_to_index(phantom.image, phantom.points_mm)).astype(int)
    assert truth[tuple(index.T)].all()  # every centreline point is in the label, the 0.1 mm vessels too
    assert set(np.round(phantom.point_radius_mm, 3)) == {round(s.radius_mm, 3) for s in phantom.design.segments}
    assert 0.2 < phantom.point_isolated.mean() < 0.95


def test_noise_is_the_reconstruction_models(phantom):
    assert phantom.image.GetPixelID() == sitk.sitkInt16
    sd = background_noise_sd(phantom)
    assert sd == pytest.approx(phantom.nominal_noise_sd_hu, rel=0.05)  # FBP-like at 0.2 mGy: about 75 HU


def test_an_automatic_lung_mask_finds_the_holder_interior(phantom):
    """The scan is cropped to the slices through the holder's interior (the holder is open at its ends), so
    VesselQuant's own lung mask can be measured on this family too."""
    from VesselQuantLib.lungmask import segment_lungs

    found = sitk.GetArrayFromImage(segment_lungs(phantom.image)).astype(bool)
    truth = sitk.GetArrayFromImage(phantom.lung_mask).astype(bool)
    assert truth[0].any() and truth[-1].any()
    assert 2 * (found & truth).sum() / (found.sum() + truth.sum()) > 0.97
