"""Published preprocessing: 2 mm resampling, HU clip [-400, 400] -> [0, 1], sizes divisible by 16; augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import image_from_array
from SalivarySegLib.preprocessing import (
    PreprocessingParameters,
    check_ct,
    metatensor_to_image,
    preprocess,
    resample_to_reference,
)


def phantom_ct(spacing=(0.8, 0.9, 2.5), size=(200, 180, 40), direction=None):
    """Air around a water cylinder with a bone rod and a 'lesion' block (known HU)."""
    array = np.full(size[::-1], -1000, dtype=np.int16)
    z, y, x = np.indices(array.shape)
    cy, cx = size[1] / 2, size[0] / 2
    body = (x - cx) ** 2 * spacing[0] ** 2 + (y - cy) ** 2 * spacing[1] ** 2 < 45.0**2
    array[body] = 0
    array[body & ((x - cx) ** 2 * spacing[0] ** 2 + (y - cy + 20 / spacing[1]) ** 2 * spacing[1] ** 2 < 6.0**2)] = 1200
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((-60.0, -50.0, 10.0))
    if direction is not None:
        image.SetDirection(direction)
    label_array = np.zeros_like(array, dtype=np.uint8)
    label_array[15:25, 80:95, 90:110] = 1
    label = image_from_array(label_array, image)
    return image, label


def test_resampled_to_2mm_scaled_and_divisible_by_16():
    image, label = phantom_ct()
    data = preprocess(image, label)
    tensor = data["image"]
    spacing = np.linalg.norm(np.asarray(tensor.affine)[:3, :3], axis=0)
    assert np.allclose(spacing, 2.0)
    assert all(s % 16 == 0 for s in tensor.shape[1:])
    assert data["label"].shape == tensor.shape
    values = tensor.numpy()
    assert values.min() >= 0.0 and values.max() <= 1.0
    # Air (-1000) clips to 0, water (0 HU) maps to exactly 0.5, bone (1200) clips to 1.
    assert np.isclose(values, 0.5, atol=1e-3).mean() > 0.2
    assert values.max() == pytest.approx(1.0) and values.min() == pytest.approx(0.0)
    # The body crop removed most of the air: the 2 mm grid spans the 90 mm body plus margins.
    assert tensor.shape[1] * 2.0 < 200 * 0.8 and tensor.shape[2] * 2.0 < 180 * 0.9


def test_label_stays_binary_and_maps_back_onto_the_input_grid():
    image, label = phantom_ct()
    data = preprocess(image, label)
    assert set(np.unique(data["label"].numpy())) <= {0.0, 1.0}
    back = resample_to_reference(metatensor_to_image(data["label"]), label, sitk.sitkNearestNeighbor)
    a = sitk.GetArrayFromImage(back) > 0.5
    b = sitk.GetArrayFromImage(label) > 0
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.75  # block 16 x 13.5 x 25 mm through a 2 mm grid


def test_oblique_direction_is_preserved():
    rotation = sitk.Euler3DTransform()
    rotation.SetRotation(0.3, -0.2, 0.5)
    direction = tuple(rotation.GetMatrix())
    image, label = phantom_ct(direction=direction)
    data = preprocess(image, label)
    out = metatensor_to_image(data["label"])
    assert np.allclose(out.GetDirection(), direction, atol=1e-6)
    assert np.allclose(out.GetSpacing(), (2.0, 2.0, 2.0))

    # The label's centre of mass stays where it was in physical space.
    def centre(img):
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.Execute(sitk.Cast(img > 0.5, sitk.sitkUInt8))
        return np.array(stats.GetCentroid(1))

    assert np.linalg.norm(centre(out) - centre(label)) < 2.0


def test_custom_window_and_spacing():
    image, _ = phantom_ct()
    params = PreprocessingParameters(spacing_mm=(3.0, 3.0, 3.0), hu_min=-100, hu_max=100)
    tensor = preprocess(image, None, params)["image"]
    assert np.allclose(np.linalg.norm(np.asarray(tensor.affine)[:3, :3], axis=0), 3.0)
    assert np.isclose(tensor.numpy(), 0.5, atol=1e-3).mean() > 0.2  # water is still mid-window
    with pytest.raises(RadiologyAIError, match="hu_min"):
        preprocess(image, None, PreprocessingParameters(hu_min=10, hu_max=0))


@pytest.mark.parametrize("kind", ["mri", "unit", "mask"])
def test_non_ct_volumes_are_refused(kind):
    rng = np.random.default_rng(0)
    array = {
        "mri": rng.integers(0, 1500, (20, 30, 30)),
        "unit": rng.random((20, 30, 30)),
        "mask": (rng.random((20, 30, 30)) > 0.5),
    }[kind].astype(np.float32)
    with pytest.raises(RadiologyAIError, match="does not look like a CT"):
        check_ct(sitk.GetImageFromArray(array), "test volume")


def test_wrong_dimensionality_is_refused():
    with pytest.raises(RadiologyAIError, match="3D"):
        check_ct(sitk.GetImageFromArray(np.full((30, 30), -1000, np.int16)), "slice")


def test_augmentation_keeps_labels_binary_and_patches_sized():
    from SalivarySegLib.augmentation import AugmentationParameters, training_transforms

    image, label = phantom_ct()
    data = preprocess(image, label)
    params = AugmentationParameters(small_rotation_prob=1.0, large_rotation_prob=1.0, flip_prob=1.0, elastic_prob=1.0)
    transforms = training_transforms((32, 32, 32), 3, 0.7, 0.3, params)
    transforms.set_random_state(seed=1)
    samples = transforms({"image": data["image"], "label": data["label"]})
    assert len(samples) == 3
    for sample in samples:
        assert tuple(sample["image"].shape) == (1, 32, 32, 32) == tuple(sample["label"].shape)
        assert set(np.unique(np.asarray(sample["label"]))) <= {0.0, 1.0}  # nearest-neighbour labels
    # Seeded: the same seed gives the same patches.
    again = training_transforms((32, 32, 32), 3, 0.7, 0.3, params)
    again.set_random_state(seed=1)
    repeat = again({"image": data["image"], "label": data["label"]})
    assert all(np.allclose(np.asarray(a["image"]), np.asarray(b["image"])) for a, b in zip(samples, repeat))


def test_sampling_map_marks_the_contralateral_mirror_of_the_tumour():
    import torch

    from SalivarySegLib.augmentation import AugmentationParameters, sampling_map, training_transforms

    image = torch.zeros((1, 40, 20, 10))
    image[:, 5:35] = 0.5  # body spans x = 5..34: mid-plane at x = 19.5
    label = torch.zeros_like(image)
    label[:, 28:31, 8:11, 4:6] = 1  # tumour on the left
    classes = sampling_map(image, label)[0].numpy()
    assert (classes == 1).sum() == label.sum()
    mirror = np.argwhere(classes == 2)
    assert mirror[:, 0].min() == 39 - 30 and mirror[:, 0].max() == 39 - 28  # x -> 39 - x
    assert set(mirror[:, 1]) == {8, 9, 10} and set(mirror[:, 2]) == {4, 5}
    # Crops centred on each class, labels intact.
    transforms = training_transforms((16, 16, 16), 6, 0.5, 0.25, AugmentationParameters(), False, 0.25)
    transforms.set_random_state(seed=0)
    samples = transforms({"image": image, "label": label, "sampling": sampling_map(image, label)})
    assert len(samples) == 6 and all("sampling" not in s for s in samples)
    assert any(float(s["label"].sum()) == float(label.sum()) for s in samples)
