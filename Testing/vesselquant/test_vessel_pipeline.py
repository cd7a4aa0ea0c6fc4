"""End-to-end tests of run_vessel_quant on a small phantom, determinism and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import image_from_array
from VesselQuantLib.evaluation import evaluate, evaluate_arrays, physical_to_index
from VesselQuantLib.pipeline import VesselQuantParameters, VesselQuantResult, run_vessel_quant

SUMMARY_KEYS = {
    "total_volume_ml",
    "lung_volume_ml",
    "vessel_fraction",
    "small_vessel_volume_ml",
    "fit_alpha",
    "fit_beta",
    "fit_r2",
    "runtime_s",
    "parameters",
}


def test_result_contract(small_phantom, small_result):
    r = small_result
    assert isinstance(r, VesselQuantResult)
    for image, pixel in [
        (r.lung_mask, sitk.sitkUInt8),
        (r.vessel_label, sitk.sitkUInt8),
        (r.vessel_radius, sitk.sitkFloat32),
    ]:
        assert image.GetPixelID() == pixel
        assert image.GetSize() == small_phantom.image.GetSize()
        assert np.allclose(image.GetDirection(), small_phantom.image.GetDirection())
        assert np.allclose(image.GetOrigin(), small_phantom.image.GetOrigin())
    label = sitk.GetArrayFromImage(r.vessel_label)
    radius = sitk.GetArrayFromImage(r.vessel_radius)
    lung = sitk.GetArrayFromImage(r.lung_mask)
    assert set(np.unique(label)) <= {0, 1} and set(np.unique(lung)) <= {0, 1}
    assert np.all(radius[label == 0] == 0) and np.all(radius[label == 1] > 0)
    assert not (label.astype(bool) & ~lung.astype(bool)).any()  # vessels only inside the lungs
    assert list(r.per_radius.columns) == ["radius_mm", "voxel_count", "volume_ml", "median_hu", "iqr_hu"]
    assert SUMMARY_KEYS <= set(r.summary)
    assert r.per_radius["voxel_count"].sum() == label.sum()
    voxel_ml = np.prod(small_phantom.image.GetSpacing()) / 1000
    assert r.summary["total_volume_ml"] == pytest.approx(label.sum() * voxel_ml)
    assert r.summary["vessel_fraction"] == pytest.approx(r.summary["total_volume_ml"] / r.summary["lung_volume_ml"])
    assert r.summary["graph_nodes"] < lung.sum() / 2  # the graph holds only the uncertain voxels


def test_accuracy_on_small_phantom(small_phantom, small_result):
    measures = evaluate(small_result, small_phantom)
    assert measures["dice"] > 0.9
    assert measures["detected_r_ge_0.75"] > 0.97
    assert measures["detected_r_le_0.5"] > 0.7
    assert measures["false_positive_ml"] < 0.05
    errors = measures["radius_errors"]
    big = errors[(errors.index >= 1.0) & (errors["points"] >= 5)]
    assert len(big) and big["median_error_mm"].abs().max() < 0.2
    # larger vessels have larger measured radii
    table = small_result.per_radius
    assert (
        table.loc[table["radius_mm"] >= 2, "median_hu"].median()
        > table.loc[table["radius_mm"] <= 0.5, "median_hu"].median()
    )


def test_thin_vessels_are_grown_at_low_dose_and_not_at_normal_dose():
    """The growth threshold is half the contrast of a 0.25 mm vessel after the measured blur: at three times the
    noise it finds more of the thin vessels at little cost; at normal dose it is far above the noise."""
    from VesselQuantLib.vessel_phantom import make_vessel_phantom

    measures = {}
    for noise in (30.0, 90.0):
        phantom = make_vessel_phantom(noise_sd_hu=noise, seed=6)
        for radius in (0.25, None):
            result = run_vessel_quant(
                phantom.image, phantom.lung_mask, VesselQuantParameters(thin_vessel_min_radius_mm=radius)
            )
            measures[noise, radius] = evaluate(result, phantom)
            if radius is None:
                assert result.summary["thin_vessel_growth"] is None
            else:  # the blur measured on the scan: PSF FWHM 0.8 / 1.0 mm (SD 0.34 / 0.42) and 0.5 mm smoothing
                assert 0.6 < result.summary["thin_vessel_growth"]["blur_sd_mm"] < 0.75
    low, low_off = measures[90.0, 0.25], measures[90.0, None]
    assert low["detected_r_le_0.5"] >= low_off["detected_r_le_0.5"] + 0.05
    assert low["false_positive_ml"] < 0.1 and low["dice"] > 0.94
    normal, normal_off = measures[30.0, 0.25], measures[30.0, None]
    assert normal["detected_r_le_0.5"] >= normal_off["detected_r_le_0.5"]
    assert normal["false_positive_ml"] <= normal_off["false_positive_ml"] + 0.002
    assert abs(normal["dice"] - normal_off["dice"]) < 0.003


def test_evaluation_shows_where_thin_vessels_are_lost(small_phantom):
    """A segmentation that stops half-way along every thin segment: detection by radius and along the segment say so."""
    truth = sitk.GetArrayFromImage(small_phantom.truth_label).astype(bool)
    perfect = evaluate_arrays(truth, None, small_phantom)
    assert (perfect["detection_by_radius"]["found"] == 1).all()
    assert np.allclose(perfect["thin_detection_along_segment"], 1)

    segments = small_phantom.segments
    position = small_phantom.point_position
    assert np.allclose(small_phantom.points_mm[position == 0], [s["start_physical_mm"] for s in segments])
    assert np.allclose(small_phantom.points_mm[position == 1], [s["end_physical_mm"] for s in segments])
    kept = (small_phantom.point_radius_mm > 0.5) | (position <= 0.5)
    index = np.rint(physical_to_index(small_phantom.image, small_phantom.points_mm[kept])).astype(int)
    label = np.zeros_like(truth)
    label[tuple(np.clip(index, 0, np.array(truth.shape) - 1).T)] = True  # the voxels the kept points lie in

    measured = evaluate_arrays(label, None, small_phantom)
    profile = measured["thin_detection_along_segment"]
    assert profile[0] == 1 and profile[1] == 1 and profile[-1] < 0.7
    by_radius = measured["detection_by_radius"]["found"]
    assert by_radius.loc[0.25] < 0.9 and (by_radius.loc[by_radius.index >= 0.75] == 1).all()


def test_same_input_same_output_and_user_mask(small_phantom, small_result):
    again = run_vessel_quant(small_phantom.image, small_phantom.lung_mask)
    other = run_vessel_quant(small_phantom.image, small_phantom.lung_mask)
    assert np.array_equal(sitk.GetArrayFromImage(again.vessel_label), sitk.GetArrayFromImage(other.vessel_label))
    assert np.array_equal(sitk.GetArrayFromImage(again.vessel_radius), sitk.GetArrayFromImage(other.vessel_radius))
    assert again.summary["lung_mask_source"] == "user"
    assert np.array_equal(sitk.GetArrayFromImage(again.lung_mask), sitk.GetArrayFromImage(small_phantom.lung_mask))
    dice = evaluate(again, small_phantom)["dice"]
    assert dice > 0.9


def test_design_radii(small_phantom):
    params = VesselQuantParameters(radius_bins_mm=(0.25, 0.5, 1.0, 2.5))
    result = run_vessel_quant(small_phantom.image, small_phantom.lung_mask, params)
    assert result.per_radius["radius_mm"].tolist() == [0.25, 0.5, 1.0, 2.5]


def _ct(array, spacing=(0.7, 0.7, 1.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    return image


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda ph: _ct(np.random.default_rng(0).integers(0, 1500, (20, 30, 30)).astype(np.int16)), "Hounsfield"),
        (lambda ph: sitk.GetImageFromArray(np.full((30, 30), -1000, np.int16)), "3D"),
        (lambda ph: sitk.Compose([ph.image, ph.image]), "scalar"),
        (lambda ph: sitk.JoinSeries([ph.image, ph.image]), "3D"),
        (lambda ph: _nan_image(ph), "NaN"),
        (lambda ph: _ct(np.full((20, 40, 40), 40, np.int16)), "Hounsfield"),
    ],
    ids=["mri-like", "2d", "vector", "4d", "nan", "water"],
)
def test_bad_images_raise(small_phantom, make, match):
    with pytest.raises(RadiologyAIError, match=match):
        run_vessel_quant(make(small_phantom))


def _nan_image(ph):
    array = sitk.GetArrayFromImage(ph.image).astype(np.float32)
    array[3, 4, 5] = np.nan
    image = image_from_array(array, ph.image)
    return image


def test_no_lungs_and_bad_masks_raise(small_phantom):
    body = np.full((20, 40, 40), 40, np.int16)
    body[:, :4, :] = -1000  # outside air only
    with pytest.raises(RadiologyAIError, match="no lung-like region"):
        run_vessel_quant(_ct(body))
    shifted = sitk.Image(small_phantom.lung_mask)
    shifted.SetOrigin(tuple(o + 5 for o in shifted.GetOrigin()))
    with pytest.raises(RadiologyAIError, match="geometry"):
        run_vessel_quant(small_phantom.image, shifted)
    empty = sitk.Image(small_phantom.lung_mask.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(small_phantom.lung_mask)
    with pytest.raises(RadiologyAIError, match="empty"):
        run_vessel_quant(small_phantom.image, empty)
    with pytest.raises(RadiologyAIError):
        run_vessel_quant(small_phantom.image, parameters=VesselQuantParameters(intensity_weight=2.0))


def test_lung_without_vessels_gives_empty_result():
    z, y, x = np.mgrid[:24, :60, :60]
    hu = np.where(np.hypot(y - 29.5, x - 29.5) < 26, -850.0, 40.0)
    hu[np.hypot(y - 29.5, x - 29.5) >= 28] = -1000.0
    hu += np.random.default_rng(1).normal(0, 20, hu.shape)
    result = run_vessel_quant(_ct(hu.astype(np.int16)))
    assert result.summary["total_volume_ml"] < 0.05
    assert result.summary["lung_volume_ml"] == pytest.approx(np.pi * (26 * 0.7) ** 2 * 24 / 1000, rel=0.1)


def test_a_nodule_is_reported_and_not_counted_as_vessel(small_phantom, small_result, nodule_phantom):
    image, ball = nodule_phantom
    result = run_vessel_quant(image)
    vessel = sitk.GetArrayFromImage(result.vessel_label).astype(bool)
    nodule = sitk.GetArrayFromImage(result.nodule_label).astype(bool)
    assert result.summary["nodule_like_count"] == 1
    assert (vessel & ball).sum() <= 0.1 * ball.sum() and (nodule & ball).sum() >= 0.8 * ball.sum()
    record = result.summary["nodule_like"][0]
    assert record["volume_ml"] == pytest.approx(result.summary["nodule_like_volume_ml"])
    centre = physical_to_index(image, np.asarray([record["centre_mm"]]))[0]
    assert ball[tuple(np.rint(centre).astype(int))]
    # the vessels around it are what they were without the nodule
    assert evaluate(result, small_phantom)["dice"] == pytest.approx(
        evaluate(small_result, small_phantom)["dice"], abs=0.01
    )
    assert small_result.summary["nodule_like_count"] == 0
