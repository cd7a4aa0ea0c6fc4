"""Shared fixtures of the VesselQuant tests: small synthetic chest phantoms with known vessels."""

from __future__ import annotations

import pytest
import SimpleITK as sitk

from VesselQuantLib.phantom import make_vessel_phantom


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
