"""The two networks of the study, built only from a whitelisted description in the model config.

Segmentation: V-Net (Milletari et al. 2016), as in Ugga, Cuocolo et al. (IEEE JBHI 2021), who
used a *modified* V-Net. Two architectures are offered:

``"vnet"``
    MONAI's :class:`monai.networks.nets.VNet`, unchanged (16 base channels, 5x5x5 kernels,
    about 45 M parameters). Meant for a GPU.

``"vnet_lite"`` (default)
    The same V-Net topology -- input stage with the residual "repeat input" shortcut, four
    down stages of 2x2x2 strided convolution followed by 1/2/3/2 residual conv blocks, four
    up stages of 2x2x2 transposed convolution with skip concatenation and 2/2/1/1 residual
    conv blocks, output stage, batch norm, dropout in the deepest stages -- assembled from
    MONAI's ``Convolution`` block with two documented changes that make it practical on a CPU:
    ``base_channels`` (default 8 instead of 16) and ``kernel_size`` (default 3 instead of 5).
    That is roughly 1/20th of the computation of the original, so a whole 2 mm head CT runs in
    seconds on two CPU cores. It still needs input sizes divisible by 16 (four 2x down-samplings).

Classification: ResNet-50 on 2D slices, MONAI's :func:`monai.networks.nets.resnet50` with
``spatial_dims=2`` (torchvision is not used). Pretrained weights come only from a local file
the user gives (:func:`load_pretrained_classifier`), read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from RadiologyAICommonLib.errors import RadiologyAIError

SEGMENTATION_ARCHITECTURES = ("vnet_lite", "vnet")
CLASSIFICATION_ARCHITECTURES = ("resnet50", "resnet34", "resnet18")  # resnet50 as published; lighter options


@dataclass
class SegmentationNetworkParameters:
    """Segmentation network description, stored in the model config."""

    architecture: str = "vnet_lite"  # "vnet_lite" (CPU-friendly modified V-Net) or "vnet" (MONAI VNet as is)
    base_channels: int = 8  # vnet_lite only: channels of the first stage (V-Net: 16)
    kernel_size: int = 3  # vnet_lite only: convolution kernel (V-Net: 5)
    dropout: float = 0.2  # dropout in the two deepest stages (V-Net: 0.5)
    out_channels: int = 2  # background + tumour

    @classmethod
    def from_dict(cls, data: dict) -> "SegmentationNetworkParameters":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClassificationNetworkParameters:
    """Slice classifier description, stored in the model config."""

    architecture: str = "resnet50"  # as published; "resnet34"/"resnet18" are lighter options
    in_channels: int = 3  # (CT slice, CT slice inside the lesion mask, lesion mask)
    conv1_stride: int = 2  # first convolution stride (2 as in the original ResNet; MONAI's default is 1)
    num_classes: int = 2  # benign, malignant
    class_names: list[str] = field(default_factory=lambda: ["benign", "malignant"])

    @classmethod
    def from_dict(cls, data: dict) -> "ClassificationNetworkParameters":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        return asdict(self)


class _ResidualConvs(nn.Module):
    """``n`` conv-BN-activation blocks; V-Net's "LUConv" chain, with a configurable kernel."""

    def __init__(self, channels: int, n: int, kernel_size: int):
        super().__init__()
        from monai.networks.blocks import Convolution

        self.blocks = nn.Sequential(
            *[
                Convolution(3, channels, channels, kernel_size=kernel_size, act="prelu", norm="batch", bias=False)
                for _ in range(n)
            ]
        )

    def forward(self, x):
        return self.blocks(x)


class _Down(nn.Module):
    def __init__(self, in_channels: int, nconvs: int, kernel_size: int, dropout: float | None):
        super().__init__()
        out_channels = 2 * in_channels
        self.down = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, kernel_size=2, stride=2, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.PReLU(out_channels),
        )
        self.dropout = nn.Dropout3d(dropout) if dropout else nn.Identity()
        self.convs = _ResidualConvs(out_channels, nconvs, kernel_size)
        self.act = nn.PReLU(out_channels)

    def forward(self, x):
        down = self.down(x)
        return self.act(self.convs(self.dropout(down)) + down)


class _Up(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, nconvs: int, kernel_size: int, dropout: float | None):
        super().__init__()
        self.dropout = nn.Dropout3d(dropout) if dropout else nn.Identity()
        self.up = nn.Sequential(
            nn.ConvTranspose3d(in_channels, out_channels // 2, kernel_size=2, stride=2, bias=False),
            nn.BatchNorm3d(out_channels // 2),
            nn.PReLU(out_channels // 2),
        )
        self.convs = _ResidualConvs(out_channels, nconvs, kernel_size)
        self.act = nn.PReLU(out_channels)

    def forward(self, x, skip):
        merged = torch.cat((self.up(self.dropout(x)), skip), dim=1)
        return self.act(self.convs(merged) + merged)


class LiteVNet(nn.Module):
    """V-Net topology with configurable width and kernel (see the module docstring)."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        base_channels: int = 8,
        kernel_size: int = 3,
        dropout: float = 0.2,
    ):
        super().__init__()
        from monai.networks.blocks import Convolution

        b = base_channels
        self.base_channels = b
        self.in_conv = Convolution(3, in_channels, b, kernel_size=kernel_size, act=None, norm="batch", bias=False)
        self.in_act = nn.PReLU(b)
        self.down1 = _Down(b, 1, kernel_size, None)
        self.down2 = _Down(2 * b, 2, kernel_size, None)
        self.down3 = _Down(4 * b, 3, kernel_size, dropout)
        self.down4 = _Down(8 * b, 2, kernel_size, dropout)
        self.up4 = _Up(16 * b, 16 * b, 2, kernel_size, dropout)
        self.up3 = _Up(16 * b, 8 * b, 2, kernel_size, dropout)
        self.up2 = _Up(8 * b, 4 * b, 1, kernel_size, None)
        self.up1 = _Up(4 * b, 2 * b, 1, kernel_size, None)
        self.out = nn.Sequential(
            Convolution(3, 2 * b, out_channels, kernel_size=kernel_size, act="prelu", norm="batch", bias=False),
            nn.Conv3d(out_channels, out_channels, kernel_size=1),
        )

    def forward(self, x):
        # V-Net's input stage: the input repeated over the channels is added to the first convolution.
        s1 = self.in_act(self.in_conv(x) + x.repeat(1, self.base_channels // x.shape[1], 1, 1, 1))
        s2 = self.down1(s1)
        s3 = self.down2(s2)
        s4 = self.down3(s3)
        s5 = self.down4(s4)
        x = self.up4(s5, s4)
        x = self.up3(x, s3)
        x = self.up2(x, s2)
        x = self.up1(x, s1)
        return self.out(x)


def build_segmentation_network(params: SegmentationNetworkParameters) -> nn.Module:
    """The segmentation network a config describes (only whitelisted architectures)."""
    if params.architecture == "vnet_lite":
        if params.base_channels < 1 or params.kernel_size not in (3, 5):
            raise RadiologyAIError(
                f"segmentation network: base_channels must be >= 1 and kernel_size 3 or 5 "
                f"(got {params.base_channels}, {params.kernel_size})"
            )
        return LiteVNet(1, params.out_channels, params.base_channels, params.kernel_size, params.dropout)
    if params.architecture == "vnet":
        from monai.networks.nets import VNet

        return VNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=params.out_channels,
            dropout_prob_down=params.dropout,
            dropout_prob_up=(params.dropout, params.dropout),
        )
    raise RadiologyAIError(
        f"unknown segmentation architecture '{params.architecture}'; "
        f"expected one of {', '.join(SEGMENTATION_ARCHITECTURES)}"
    )


def build_classifier(params: ClassificationNetworkParameters) -> nn.Module:
    """MONAI ResNet-50 (or a lighter ResNet) for 2D slices (not torchvision)."""
    if params.architecture not in CLASSIFICATION_ARCHITECTURES:
        raise RadiologyAIError(
            f"unknown classification architecture '{params.architecture}'; expected one of "
            f"{', '.join(CLASSIFICATION_ARCHITECTURES)}"
        )
    if len(params.class_names) != params.num_classes:
        raise RadiologyAIError(f"classifier: {params.num_classes} classes but class names {params.class_names}")
    from monai.networks.nets import resnet18, resnet34, resnet50

    factory = {"resnet50": resnet50, "resnet34": resnet34, "resnet18": resnet18}[params.architecture]
    return factory(
        pretrained=False,
        spatial_dims=2,
        n_input_channels=params.in_channels,
        num_classes=params.num_classes,
        conv1_t_stride=params.conv1_stride,
    )


def read_state_dict(path: str | Path, what: str) -> dict:
    """``torch.load(weights_only=True)`` of a file holding tensors; any failure is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise RadiologyAIError(f"{what} {path}: no such file")
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with code, truncated download...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RadiologyAIError(f"{what} {path}: not a readable PyTorch weights file ({first[:200]})") from None
    if not isinstance(data, dict):
        raise RadiologyAIError(
            f"{what} {path}: expected a dictionary of tensors (a state dict), got {type(data).__name__}"
        )
    return data


def load_pretrained_classifier(model: nn.Module, path: str | Path) -> dict:
    """Initialise ``model`` from a local weights file; return what was loaded and skipped.

    Accepts a plain state dict, or one nested under ``state_dict``/``model``, with or without a
    ``module.`` prefix (DataParallel). Tensors whose name and shape match are copied (so
    ImageNet ResNet-50 weights with torchvision-style names initialise every layer but the
    first convolution when the channel count differs, and the final layer when the class count
    differs); at least half of the network must match or the file is rejected.
    """
    data = read_state_dict(path, "pretrained weights")
    for key in ("state_dict", "model", "classification"):
        if key in data and isinstance(data[key], dict):
            data = data[key]
            break
    own = model.state_dict()
    loaded, skipped = [], []
    update = {}
    for name, tensor in data.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        name = name.removeprefix("module.")
        if name in own and own[name].shape == tensor.shape:
            update[name] = tensor.to(own[name].dtype)
            loaded.append(name)
        else:
            skipped.append(name)
    weights = [n for n, t in own.items() if t.dtype.is_floating_point]
    if len([n for n in loaded if n in weights]) < 0.5 * len(weights):
        raise RadiologyAIError(
            f"pretrained weights {path}: only {len(loaded)} of {len(own)} tensors match a 2D ResNet-50 "
            f"(names and shapes); is it a ResNet-50 state dict?"
        )
    own.update(update)
    model.load_state_dict(own)
    return {"loaded": len(loaded), "skipped": skipped, "total": len(own)}


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))
