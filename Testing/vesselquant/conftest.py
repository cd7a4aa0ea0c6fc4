"""Shared fixtures of the VesselQuant tests: small synthetic chest phantoms with known vessels."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from RadiologyAICommonLib.imageio import image_from_array

from VesselQuantLib.vessel_phantom import make_vessel_phantom


@pytest.fixture(scope="session")
def small_phantom():
    """100 x 100 x 48 voxels (0.7 x 0.7 x 1 mm, oblique direction), trachea, two vessel trees, 30 HU noise."""
    return make_vessel_phantom(size_xyz=(100, 100, 48), seed=3, root_radius_mm=2.5)


@pytest.fixture(scope="session")
def small_result(small_phantom):
    from VesselQuantLib.pipeline import run_vessel_quant

    return run_vessel_quant(small_phantom.image)


@pytest.fixture
def phantom_files(tmp_path, small_phantom):
    ct = tmp_path / "ct.nrrd"
    lung = tmp_path / "lung.nrrd"
    sitk.WriteImage(small_phantom.image, str(ct))
    sitk.WriteImage(small_phantom.lung_mask, str(lung))
    return ct, lung


@pytest.fixture(scope="session")
def nodule_phantom(small_phantom):
    """The small phantom with a 5 mm solid nodule (40 HU) in the parenchyma: (image, nodule mask)."""
    from scipy import ndimage as ndi

    hu = sitk.GetArrayFromImage(small_phantom.image).astype(np.float32)
    lung = sitk.GetArrayFromImage(small_phantom.lung_mask).astype(bool)
    truth = sitk.GetArrayFromImage(small_phantom.truth_label).astype(bool)
    spacing = small_phantom.image.GetSpacing()[::-1]
    room = np.minimum(
        ndi.distance_transform_edt(lung, sampling=spacing), ndi.distance_transform_edt(~truth, sampling=spacing)
    )
    centre = np.unravel_index(np.argmax(room), room.shape)
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(hu.shape, spacing)], indexing="ij"), -1)
    ball = np.linalg.norm(grid - np.asarray(centre) * np.asarray(spacing), axis=-1) <= min(5.0, room.max() - 1.0)
    blurred = ndi.gaussian_filter(ball.astype(np.float32), 0.6)
    image = image_from_array(np.rint(hu + blurred * (40.0 + 850.0)).astype(np.int16), small_phantom.image)
    return image, ball
