"""Small images with known geometry for the common-engine tests (imported by name, not a conftest,
so the modules' own conftest files never shadow it)."""

import numpy as np
import SimpleITK as sitk


def make_image(
    shape=(12, 14, 16), spacing=(0.7, 0.8, 1.5), origin=(-10.0, 5.0, 30.0), direction=None, dtype=np.int16, seed=0
):
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
