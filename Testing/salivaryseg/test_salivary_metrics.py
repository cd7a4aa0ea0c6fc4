"""Metrics against analytic values on spheres with anisotropic voxels (Dice to 0.01, distances in mm)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from RadiologyAICommonLib.errors import RadiologyAIError
from SalivarySegLib.metrics import classification_metrics, segmentation_metrics, summarise

SPACING = (0.5, 0.7, 1.5)  # x, y, z (mm): strongly anisotropic
SIZE = (120, 100, 50)


def sphere(radius_mm, centre_mm=(0.0, 0.0, 0.0), spacing=SPACING, size=SIZE):
    axes = [(np.arange(size[i]) - (size[i] - 1) / 2) * spacing[i] for i in range(3)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    inside = (x - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2 + (z - centre_mm[2]) ** 2 <= radius_mm**2
    image = sitk.GetImageFromArray(inside.astype(np.uint8))
    image.SetSpacing(spacing)
    return image


def test_dice_of_concentric_spheres_matches_volume_ratio():
    result = segmentation_metrics(sphere(15.0), sphere(20.0))
    expected = 2 * 15.0**3 / (15.0**3 + 20.0**3)  # 0.593
    assert result["dice"] == pytest.approx(expected, abs=0.01)
    assert result["volume_truth_ml"] == pytest.approx(4 / 3 * math.pi * 20.0**3 / 1000, rel=0.02)


def test_dice_of_shifted_spheres_matches_lens_volume():
    r, d = 18.0, 4.0
    result = segmentation_metrics(sphere(r, (d, 0.0, 0.0)), sphere(r))
    lens = math.pi * (4 * r + d) * (2 * r - d) ** 2 / 12  # intersection of two spheres
    assert result["dice"] == pytest.approx(lens / (4 / 3 * math.pi * r**3), abs=0.01)


def test_surface_distances_are_in_millimetres():
    # Concentric spheres 15 and 20 mm: every surface point is 5 mm from the other surface.
    # In voxels this would be 10 (x), 7.1 (y) or 3.3 (z): only millimetres give 5 everywhere.
    result = segmentation_metrics(sphere(15.0), sphere(20.0))
    tolerance = 0.5 * max(SPACING)  # discretisation of the two surfaces
    assert result["hd95_mm"] == pytest.approx(5.0, abs=tolerance)
    assert result["asd_mm"] == pytest.approx(5.0, abs=tolerance)
    assert result["asd_mm"] <= result["hd95_mm"] + 1e-6


def test_distances_scale_with_spacing():
    # The same voxel masks with every spacing doubled: distances double, Dice does not change.
    a, b = sphere(15.0), sphere(20.0)
    base = segmentation_metrics(a, b)
    for image in (a, b):
        image.SetSpacing(tuple(2 * s for s in SPACING))
    doubled = segmentation_metrics(a, b)
    assert doubled["dice"] == pytest.approx(base["dice"], abs=1e-9)
    assert doubled["hd95_mm"] == pytest.approx(2 * base["hd95_mm"], rel=1e-6)
    assert doubled["asd_mm"] == pytest.approx(2 * base["asd_mm"], rel=1e-6)


def test_identical_masks_and_empty_masks():
    same = segmentation_metrics(sphere(10.0), sphere(10.0))
    assert same["dice"] == pytest.approx(1.0) and same["hd95_mm"] == 0.0 and same["asd_mm"] == 0.0
    empty = sphere(0.0)
    both_empty = segmentation_metrics(empty, empty)
    assert both_empty["dice"] == 1.0 and both_empty["hd95_mm"] is None
    one_empty = segmentation_metrics(empty, sphere(10.0))
    assert one_empty["dice"] == 0.0 and one_empty["hd95_mm"] is None and one_empty["asd_mm"] is None


def test_grids_must_match():
    other = sphere(10.0, spacing=(0.6, 0.7, 1.5))
    with pytest.raises(RadiologyAIError, match="same grid"):
        segmentation_metrics(other, sphere(10.0))


def test_classification_metrics_known_values():
    truth = ["malignant"] * 4 + ["benign"] * 6
    predicted = ["malignant", "malignant", "malignant", "benign"] + ["benign"] * 4 + ["malignant"] * 2
    result = classification_metrics(truth, predicted)
    assert (result["tp"], result["fn"], result["tn"], result["fp"]) == (3, 1, 4, 2)
    assert result["accuracy"] == pytest.approx(0.7)
    assert result["precision"] == pytest.approx(3 / 5)
    assert result["recall"] == pytest.approx(3 / 4)
    assert result["specificity"] == pytest.approx(4 / 6)
    assert result["f1"] == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))
    assert classification_metrics([], [])["accuracy"] is None


def test_summarise_ignores_undefined_values():
    summary = summarise([1.0, None, 3.0, float("nan")])
    assert summary["mean"] == 2.0 and summary["n"] == 2
