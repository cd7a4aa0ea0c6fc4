"""Preprocessing exactly as published, as MONAI dictionary transforms.

Ugga, Cuocolo et al. (IEEE JBHI 2021): resample to 2 x 2 x 2 mm, clip Hounsfield units to
[-400, 400] and min-max scale them to [0, 1]. V-Net halves the grid four times, so every
volume is then cropped to the body (voxels above the lower HU bound plus a margin) and padded
so each side is a multiple of 16 -- one ``CropForegroundd(k_divisible=16)``.

SimpleITK images become MONAI ``MetaTensor`` s whose affine is the image's index-to-physical
(LPS) matrix, with the array in (x, y, z) order so affine column *i* belongs to array axis *i*.
MONAI keeps that affine up to date through resampling, cropping and padding, which is how a
prediction made on the 2 mm grid is put back on the input's own grid (:func:`metatensor_to_image`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import image_from_array, validate_geometry


@dataclass
class PreprocessingParameters:
    """Published preprocessing (defaults) plus the crop that V-Net needs."""

    spacing_mm: tuple[float, float, float] = (2.0, 2.0, 2.0)  # isotropic 2 mm (published)
    hu_min: float = -400.0  # HU clip window (published)
    hu_max: float = 400.0
    divisible_by: int = 16  # V-Net: four 2x down-samplings
    body_threshold: float = 0.05  # scaled intensity above which a voxel is "body" (-360 HU)
    body_margin_voxels: int = 4  # margin kept around the body when cropping

    @classmethod
    def from_dict(cls, data: dict) -> "PreprocessingParameters":
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "spacing_mm" in values:
            values["spacing_mm"] = tuple(float(s) for s in values["spacing_mm"])
        return cls(**values)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["spacing_mm"] = list(self.spacing_mm)
        return data

    def validate(self) -> "PreprocessingParameters":
        if len(self.spacing_mm) != 3 or any(s <= 0 for s in self.spacing_mm):
            raise RadiologyAIError(f"preprocessing: spacing_mm must be three positive numbers, got {self.spacing_mm}")
        if not self.hu_min < self.hu_max:
            raise RadiologyAIError(f"preprocessing: hu_min ({self.hu_min}) must be below hu_max ({self.hu_max})")
        if self.divisible_by < 1:
            raise RadiologyAIError("preprocessing: divisible_by must be >= 1")
        return self


def check_ct(image: sitk.Image, what: str = "image") -> None:
    """Reject volumes that are not CT in Hounsfield units (an MRI, a mask, a [0, 1] image...).

    A head-and-neck CT always contains air around the head (about -1000 HU) and soft tissue
    (around 0-100 HU); an image without both is not something this model can read.
    """
    if image.GetDimension() != 3:
        raise RadiologyAIError(f"{what}: expected a 3D CT volume, got a {image.GetDimension()}D image")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise RadiologyAIError(f"{what}: expected a grey-level CT volume, got a multi-component (colour/vector) image")
    validate_geometry(image, what)
    array = sitk.GetArrayViewFromImage(image)
    step = max(1, array.size // 2_000_000)
    sample = np.asarray(array).ravel()[::step].astype(np.float32)
    low, high = np.percentile(sample, [0.5, 99.5])
    if low > -500 or high < -100 or high > 5000 or low < -3100:
        raise RadiologyAIError(
            f"{what}: does not look like a CT in Hounsfield units (0.5-99.5 percentile {low:.0f} to {high:.0f}; "
            "a head-and-neck CT has air near -1000 HU and soft tissue near 0-100 HU)"
        )


def image_affine(image: sitk.Image) -> np.ndarray:
    """4 x 4 index (x, y, z) -> physical (LPS, mm) matrix of a SimpleITK image."""
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    return affine


def image_to_metatensor(image: sitk.Image, dtype=np.float32):
    """SimpleITK image -> channel-first MONAI MetaTensor (1, x, y, z) carrying the affine."""
    from monai.data import MetaTensor

    array = sitk.GetArrayFromImage(image).astype(dtype, copy=False).transpose(2, 1, 0)
    return MetaTensor(np.ascontiguousarray(array)[None], affine=image_affine(image))


def geometry_from_affine(affine, shape) -> sitk.Image:
    """An empty SimpleITK image (uint8) on the grid that ``affine`` and spatial ``shape`` (x, y, z) describe."""
    affine = np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = affine[:3, :3] / spacing
    reference = sitk.Image([int(s) for s in shape], sitk.sitkUInt8)
    reference.SetSpacing([float(s) for s in spacing])
    reference.SetDirection([float(d) for d in direction.ravel()])
    reference.SetOrigin([float(o) for o in affine[:3, 3]])
    return reference


def array_to_image(array_xyz: np.ndarray, affine, pixel_type=None) -> sitk.Image:
    """A (x, y, z) numpy array on the grid of ``affine`` -> SimpleITK image."""
    reference = geometry_from_affine(affine, array_xyz.shape)
    image = image_from_array(np.ascontiguousarray(np.asarray(array_xyz).transpose(2, 1, 0)), reference)
    return sitk.Cast(image, pixel_type) if pixel_type is not None else image


def metatensor_to_image(tensor, pixel_type=None) -> sitk.Image:
    """Channel-first (1, x, y, z) MetaTensor -> SimpleITK image with its current affine."""
    array = tensor.detach().cpu().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)
    return array_to_image(array[0], np.asarray(tensor.affine), pixel_type)


def _is_body(params: PreprocessingParameters):
    threshold = float(params.body_threshold)

    def select(x):
        return x > threshold

    return select


def preprocessing_transforms(params: PreprocessingParameters, with_label: bool):
    """MONAI dictionary transforms: 2 mm resampling, HU clip + [0, 1] scaling, body crop / pad to 16."""
    from monai.transforms import Compose, CropForegroundd, EnsureTyped, ScaleIntensityRanged, Spacingd

    params.validate()
    keys = ["image", "label"] if with_label else ["image"]
    modes = ["bilinear", "nearest"] if with_label else ["bilinear"]
    return Compose(
        [
            Spacingd(keys=keys, pixdim=params.spacing_mm, mode=modes, padding_mode="border"),
            ScaleIntensityRanged(
                keys="image", a_min=params.hu_min, a_max=params.hu_max, b_min=0.0, b_max=1.0, clip=True
            ),
            CropForegroundd(
                keys=keys,
                source_key="image",
                select_fn=_is_body(params),
                margin=params.body_margin_voxels,
                k_divisible=params.divisible_by,
                allow_smaller=False,
            ),
            EnsureTyped(keys=keys, dtype="float32", track_meta=True),
        ]
    )


def preprocess(
    image: sitk.Image,
    label: sitk.Image | None = None,
    params: PreprocessingParameters | None = None,
    what: str = "image",
    ct_check: bool = True,
) -> dict:
    """Preprocess one CT (and its label): returns ``{"image": MetaTensor, "label": MetaTensor}`` on the 2 mm grid."""
    params = params or PreprocessingParameters()
    if ct_check:
        check_ct(image, what)
    data = {"image": image_to_metatensor(image)}
    if label is not None:
        data["label"] = image_to_metatensor(label)
    result = preprocessing_transforms(params, label is not None)(data)
    if label is not None:
        result["label"] = (result["label"] > 0.5).float()
    return result


def resample_to_reference(
    image: sitk.Image, reference: sitk.Image, interpolator=sitk.sitkLinear, default: float = 0.0
) -> sitk.Image:
    """Resample ``image`` onto the grid of ``reference`` (physical coordinates)."""
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, default, image.GetPixelID())
