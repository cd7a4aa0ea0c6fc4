"""PyRadiomics extraction: params validation, equality with direct PyRadiomics, labels, geometry handling."""

import logging

import numpy as np
import pytest
import SimpleITK as sitk

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import image_from_array
from HipRadiomicsLib import radiomics_params
from HipRadiomicsLib.extraction import extract_features, prepare_mask
from HipRadiomicsLib.synthetic import SyntheticParameters, make_case

CFG = SyntheticParameters(size=32, radius_range=(9.0, 11.0))


@pytest.fixture(scope="module")
def case():
    return make_case(1, seed=42, config=CFG)


def test_default_params_are_valid_and_hashed():
    params = radiomics_params.load_params()
    assert params.params["setting"]["normalize"] is True and params.params["setting"]["binWidth"] == 5
    assert len(params.sha256) == 64
    again = radiomics_params.validate_params(params.as_dict())
    assert again.sha256 == params.sha256
    other = radiomics_params.load_params(radiomics_params.PARAMS_DIR / "mri_filters.yaml")
    assert other.sha256 != params.sha256 and "LoG" in other.params["imageType"]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("setting:\n  binWidht: 5\n", "binWidht"),
        ("settings:\n  binWidth: 5\n", "unknown section"),
        ("imageType:\n  Fancy: {}\n", "Fancy"),
        ("featureClass:\n  glcm: [NotAFeature]\n", "NotAFeature"),
        ("setting:\n  binWidth: -3\n", "binWidth"),
        ("setting: [1, 2\n", "not valid YAML"),
        ("!!python/object/apply:os.system ['echo hacked']\n", "not valid YAML"),
        ("- just\n- a list\n", "mapping"),
    ],
)
def test_bad_params_files_are_rejected(tmp_path, text, fragment):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(RadiologyAIError) as info:
        radiomics_params.load_params(path)
    assert fragment in str(info.value) and str(path) in str(info.value)


def test_features_equal_direct_pyradiomics(case):
    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    radiomics.setVerbosity(logging.ERROR)
    params = radiomics_params.load_params()
    ours = extract_features(case.image, case.mask, params)
    direct = RadiomicsFeatureExtractor(params.as_dict()).execute(case.image, sitk.Cast(case.mask, sitk.sitkUInt32))
    expected = {k: float(v) for k, v in direct.items() if not k.startswith("diagnostics_")}
    assert list(ours.features) == list(expected)
    assert len(expected) == 107  # shape 14, first order 18, glcm 24, glrlm 16, glszm 16, gldm 14, ngtdm 5
    for name, value in expected.items():
        assert ours.features[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert "diagnostics_Versions_PyRadiomics" in ours.diagnostics and not ours.mask_resampled


def test_mask_label_is_selectable(case):
    mask = sitk.GetArrayFromImage(case.mask).astype(np.uint8)
    half = mask.copy()
    half[:, :, : mask.shape[2] // 2][half[:, :, : mask.shape[2] // 2] == 1] = 2  # left half of the head: label 2
    two = image_from_array(half, case.mask)
    params = radiomics_params.load_params()
    f1 = extract_features(case.image, two, params, label=1)
    f2 = extract_features(case.image, two, params, label=2)
    assert f1.label == 1 and f2.label == 2
    assert f1.features["original_shape_VoxelVolume"] == pytest.approx((half == 1).sum())
    assert f2.features["original_shape_VoxelVolume"] == pytest.approx((half == 2).sum())
    # only label 7 present -> inferred
    seven = sitk.Cast(case.mask, sitk.sitkUInt8) * 7
    assert extract_features(case.image, seven, params).label == 7


def test_missing_label_and_empty_mask_are_errors(case):
    with pytest.raises(RadiologyAIError, match="label 3 does not exist.*labels present: \\[1\\]"):
        prepare_mask(case.image, case.mask, 3)
    empty = sitk.Image(case.mask.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(case.mask)
    with pytest.raises(RadiologyAIError, match="empty"):
        prepare_mask(case.image, empty)
    both = sitk.Cast(case.mask, sitk.sitkUInt8) + sitk.Cast(sitk.Equal(case.mask, 0), sitk.sitkUInt8) * 2
    with pytest.raises(RadiologyAIError, match="choose one"):
        prepare_mask(case.image, sitk.Cast(both, sitk.sitkUInt8) * 2)  # labels 2 and 4, neither the default 1


def test_mask_on_another_grid_is_resampled_when_it_overlaps(case):
    # the same sphere drawn on a grid with half the resolution and a shifted origin, covering the same space
    coarse = sitk.Resample(
        case.mask,
        [s // 2 for s in case.mask.GetSize()],
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        case.mask.GetOrigin(),
        [2 * s for s in case.mask.GetSpacing()],
        case.mask.GetDirection(),
        0,
        sitk.sitkUInt8,
    )
    mask, label, resampled = prepare_mask(case.image, coarse)
    assert resampled and label == 1 and mask.GetSize() == case.image.GetSize()
    overlap = np.logical_and(sitk.GetArrayFromImage(mask) > 0, sitk.GetArrayFromImage(case.mask) > 0).sum()
    assert overlap / (sitk.GetArrayFromImage(case.mask) > 0).sum() > 0.8
    result = extract_features(case.image, coarse)
    assert result.mask_resampled


def test_mask_outside_the_image_is_an_error(case):
    far = sitk.Image(case.mask)
    far.SetOrigin([o + 500.0 for o in case.mask.GetOrigin()])
    with pytest.raises(RadiologyAIError, match="does not overlap"):
        extract_features(case.image, far)


def test_fractional_mask_is_an_error(case):
    mask = sitk.Cast(case.mask, sitk.sitkFloat32) * 0.5
    with pytest.raises(RadiologyAIError, match="whole numbers"):
        prepare_mask(case.image, mask)
