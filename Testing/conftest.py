"""pytest fixtures: a real MRML scene from the slicer-core wheel, usable by ``slicer.util``.

slicer-core has Slicer's MRML, module logics and ``slicer/util.py`` but no Qt and no
application object; this fixture wires the pieces ``slicer.util`` needs (DESIGN.md).
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import SimpleITK as sitk


@pytest.fixture
def mrml_scene(monkeypatch):
    slicer = pytest.importorskip("slicer")
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("slicer-core is not installed")
    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    color_logic = slicer.vtkSlicerColorLogic()
    color_logic.SetMRMLApplicationLogic(app_logic)
    color_logic.SetMRMLScene(scene)  # adds the default colour tables
    app_logic.SetColorLogic(color_logic)
    segmentations_logic = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations_logic.SetMRMLApplicationLogic(app_logic)
    segmentations_logic.SetMRMLScene(scene)
    volumes_logic = slicer.vtkSlicerVolumesLogic()
    volumes_logic.SetMRMLApplicationLogic(app_logic)
    volumes_logic.SetMRMLScene(scene)
    modules = types.SimpleNamespace(
        segmentations=types.SimpleNamespace(logic=lambda: segmentations_logic),
        volumes=types.SimpleNamespace(logic=lambda: volumes_logic),
    )
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    monkeypatch.setattr(slicer, "modules", modules, raising=False)
    yield scene
    scene.Clear(True)


def make_image(shape=(12, 14, 16), spacing=(0.7, 0.8, 1.5), origin=(-10.0, 5.0, 30.0), direction=None, dtype=np.int16, seed=0):
    """A random 3D SimpleITK image (array shape z, y, x) with the given geometry."""
    rng = np.random.default_rng(seed)
    array = rng.integers(-1000, 1000, size=shape).astype(dtype)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    return image


def oblique_direction(angles=(0.3, -0.2, 0.5)):
    """A proper rotation matrix (row-major tuple of 9) from three Euler angles."""
    transform = sitk.Euler3DTransform()
    transform.SetRotation(*angles)
    return tuple(transform.GetMatrix())


@pytest.fixture
def image_factory():
    return make_image
