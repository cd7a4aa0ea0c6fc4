"""2D classifier inputs: axial slices through the lesion region, and patient-level aggregation.

As in the study, the ResNet-50 sees 2D axial slices through the (given or segmented) lesion.
Each slice with at least ``min_area_voxels`` lesion voxels becomes one sample: the square
in-plane box around the whole lesion plus ``margin_mm``, resized to ``size`` x ``size``, with
three channels -- the preprocessed CT, the CT inside the lesion mask, and the mask itself (so the
shape of the outline, circumscribed or infiltrative, is visible to the network). Patient-level
probabilities are the lesion-area-weighted mean of the slice probabilities.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class SliceParameters:
    size: int = 64  # classifier input side (pixels)
    margin_mm: float = 10.0  # context around the lesion box
    min_area_voxels: int = 4  # slices with fewer lesion voxels (2 mm grid) are skipped
    max_slices: int = 48  # at most this many slices per case (the largest ones)

    @classmethod
    def from_dict(cls, data: dict) -> "SliceParameters":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        return asdict(self)


def lesion_slices(image: torch.Tensor, mask: torch.Tensor, spacing_mm: float, params: SliceParameters):
    """Slices through the lesion of a preprocessed case.

    ``image`` and ``mask`` are (1, x, y, z) tensors on the 2 mm grid. Returns ``(slices, weights)``:
    a float tensor (n, 3, size, size) and the lesion area of each slice; n = 0 when the mask is empty.
    """
    img = torch.as_tensor(image)[0].float()
    msk = (torch.as_tensor(mask)[0] > 0.5).float()
    areas = msk.sum(dim=(0, 1))
    keep = torch.nonzero(areas >= params.min_area_voxels).flatten()
    if keep.numel() == 0 and areas.sum() > 0:
        keep = torch.nonzero(areas > 0).flatten()
    if keep.numel() == 0:
        return torch.zeros((0, 3, params.size, params.size)), torch.zeros(0)
    if keep.numel() > params.max_slices:
        order = torch.argsort(areas[keep], descending=True)[: params.max_slices]
        keep = torch.sort(keep[order]).values
    xs = torch.nonzero(msk.sum(dim=(1, 2)) > 0).flatten()
    ys = torch.nonzero(msk.sum(dim=(0, 2)) > 0).flatten()
    margin = int(round(params.margin_mm / spacing_mm))
    cx = 0.5 * (int(xs.min()) + int(xs.max()))
    cy = 0.5 * (int(ys.min()) + int(ys.max()))
    half = int(np.ceil(0.5 * max(int(xs.max()) - int(xs.min()), int(ys.max()) - int(ys.min())) + 1 + margin))
    x0, y0 = int(round(cx)) - half, int(round(cy)) - half
    side = 2 * half + 1
    stacked = torch.stack([img, img * msk, msk])[..., keep]  # (3, x, y, n)
    # Pad so the square box is always inside the array (zeros: clipped air/fat, no lesion).
    pad = [max(0, -y0), max(0, y0 + side - img.shape[1]), max(0, -x0), max(0, x0 + side - img.shape[0])]
    stacked = F.pad(stacked.permute(3, 0, 1, 2), pad)  # (n, 3, x, y)
    x0 += pad[2]
    y0 += pad[0]
    crops = stacked[:, :, x0 : x0 + side, y0 : y0 + side]
    crops = F.interpolate(crops, size=(params.size, params.size), mode="bilinear", align_corners=False)
    return crops.contiguous(), areas[keep].float()


def aggregate(slice_probabilities: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
    """Patient-level class probabilities: lesion-area-weighted mean of the slice probabilities."""
    if slice_probabilities.shape[0] == 0:
        return np.full(slice_probabilities.shape[1], np.nan)
    w = weights.float() / weights.float().sum()
    return (slice_probabilities.float() * w[:, None]).sum(dim=0).cpu().numpy()
