"""Training-time sampling and the published augmentation, as MONAI dictionary transforms.

Ugga, Cuocolo et al. augmented with small and large rotations, translation, flipping, scaling
and elastic deformation. Here, for each training volume (already preprocessed to 2 mm):

1. patches are drawn (``RandCropByLabelClassesd``) centred on tumour, on other body voxels, and on the
   mirror image of the tumour in the opposite gland -- salivary glands are paired, so the normal
   contralateral gland is the hardest negative -- from the volume padded by half a patch of air (so scan
   ends look as they do at inference);
2. small rotations (about all three axes), translation and scaling: one ``RandAffined``;
3. large rotations (in the axial plane): a second ``RandAffined``;
4. left-right flipping: ``RandFlipd``;
5. elastic deformation: ``Rand3DElasticd``.

Images are interpolated linearly, labels with nearest neighbour (``mode=("bilinear", "nearest")``).
Every parameter is in :class:`AugmentationParameters`; randomness comes from the seeded Compose.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class AugmentationParameters:
    """Probabilities and ranges of the augmentation (angles in degrees, shifts in voxels of 2 mm)."""

    small_rotation_deg: float = 10.0  # about each axis
    small_rotation_prob: float = 0.5
    large_rotation_deg: float = 90.0  # about the cranio-caudal axis
    large_rotation_prob: float = 0.2
    translation_voxels: float = 6.0  # 12 mm
    scaling: float = 0.1  # +/- 10 %
    flip_prob: float = 0.5  # left-right
    elastic_prob: float = 0.2
    elastic_sigma: tuple[float, float] = (5.0, 7.0)  # smoothing of the displacement field (voxels)
    elastic_magnitude: tuple[float, float] = (40.0, 100.0)

    @classmethod
    def from_dict(cls, data: dict) -> "AugmentationParameters":
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("elastic_sigma", "elastic_magnitude"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


def sampling_map(image, label, body_threshold: float = 0.05):
    """Crop-centre classes of a preprocessed case: 1 tumour, 2 the mirror image of the tumour across the
    body's mid-sagittal plane (the contralateral, normal gland: the most tumour-like normal tissue of a
    paired organ), 0 any other body voxel. Arrays are (1, x, y, z); x is left-right."""
    import numpy as np
    import torch

    tumour = np.asarray(label)[0] > 0.5
    body = np.asarray(image)[0] > body_threshold
    classes = np.zeros(tumour.shape, dtype=np.float32)
    columns = np.nonzero(body.any(axis=(1, 2)))[0]
    if columns.size:
        twice_centre = int(columns.min() + columns.max())
        source = twice_centre - np.arange(tumour.shape[0])
        valid = (source >= 0) & (source < tumour.shape[0])
        mirror = np.zeros_like(tumour)
        mirror[valid] = tumour[source[valid]]
        classes[mirror & body & ~tumour] = 2.0
    classes[tumour] = 1.0
    result = torch.as_tensor(classes)[None]
    if hasattr(label, "affine"):
        from monai.data import MetaTensor

        result = MetaTensor(result, affine=label.affine)
    return result


def training_transforms(
    patch_size,
    samples_per_case: int,
    pos: float,
    neg: float,
    params: AugmentationParameters,
    augment: bool = True,
    mirror: float = 0.0,
):
    """Random patch sampling followed by the published augmentation (dictionary transforms).

    Patch centres: tumour (share ``pos``), other body voxels (``neg``) and, when ``mirror`` > 0 and the
    input has a ``sampling`` map (:func:`sampling_map`), the contralateral mirror of the tumour.
    """
    from monai.transforms import (
        BorderPadd,
        Compose,
        DeleteItemsd,
        EnsureTyped,
        Rand3DElasticd,
        RandAffined,
        RandCropByLabelClassesd,
        RandCropByPosNegLabeld,
        RandFlipd,
        SpatialPadd,
    )

    keys = ["image", "label"]
    modes = ("bilinear", "nearest")
    patch_size = tuple(int(s) for s in patch_size)
    pad_keys = keys + (["sampling"] if mirror > 0 else [])
    transforms = [
        # Half a patch of zeros (air after scaling) around the volume, so patches near the scan's ends also
        # show what whole-volume inference sees there: the body cut off, then padding.
        BorderPadd(keys=pad_keys, spatial_border=[s // 2 for s in patch_size], mode="constant"),
        SpatialPadd(keys=pad_keys, spatial_size=patch_size),
    ]
    if mirror > 0:
        transforms += [
            RandCropByLabelClassesd(
                keys=keys,
                label_key="sampling",
                spatial_size=patch_size,
                ratios=[neg, pos, mirror],
                num_classes=3,
                num_samples=samples_per_case,
                image_key="image",
                image_threshold=0.05,
                warn=False,
            ),
            DeleteItemsd(keys="sampling"),
        ]
    else:
        transforms.append(
            RandCropByPosNegLabeld(
                keys=keys,
                label_key="label",
                spatial_size=patch_size,
                pos=pos,
                neg=neg,
                num_samples=samples_per_case,
                image_key="image",
                image_threshold=0.05,
            )
        )
    if augment:
        small = math.radians(params.small_rotation_deg)
        large = math.radians(params.large_rotation_deg)
        t = params.translation_voxels
        transforms += [
            RandAffined(
                keys=keys,
                prob=params.small_rotation_prob,
                rotate_range=(small, small, small),
                translate_range=(t, t, t / 2),
                scale_range=(params.scaling,) * 3,
                mode=modes,
                padding_mode="zeros",
                spatial_size=patch_size,
            ),
            RandAffined(
                keys=keys,
                prob=params.large_rotation_prob,
                rotate_range=(0.0, 0.0, large),
                mode=modes,
                padding_mode="zeros",
                spatial_size=patch_size,
            ),
            RandFlipd(keys=keys, prob=params.flip_prob, spatial_axis=0),
            Rand3DElasticd(
                keys=keys,
                prob=params.elastic_prob,
                sigma_range=params.elastic_sigma,
                magnitude_range=params.elastic_magnitude,
                mode=modes,
                padding_mode="zeros",
                spatial_size=patch_size,
            ),
        ]
    transforms.append(EnsureTyped(keys=keys, dtype="float32", track_meta=False))
    return Compose(transforms)


def slice_transforms(params: AugmentationParameters, augment: bool = True):
    """2D augmentation of classifier slices (same family: rotations small and large, shift, scale, flip)."""
    from monai.transforms import Compose, RandAffine, RandFlip, RandRotate90

    if not augment:
        return Compose([])
    small = math.radians(params.small_rotation_deg)
    return Compose(
        [
            RandAffine(
                prob=0.7,
                rotate_range=small,
                translate_range=(4, 4),
                scale_range=(params.scaling,) * 2,
                padding_mode="zeros",
            ),
            RandRotate90(prob=params.large_rotation_prob, max_k=3),
            RandFlip(prob=params.flip_prob, spatial_axis=0),
        ]
    )
