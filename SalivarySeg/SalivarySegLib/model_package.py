"""The model package: a folder that holds a trained model without any code.

::

    model.pt        {"segmentation": state dict, "classification": state dict} -- tensors only,
                    written with torch.save(state_dict) and read with torch.load(weights_only=True)
    config.json     format + format_version, preprocessing, both architectures (whitelisted names
                    and numbers only), inference settings, class names, model.pt's SHA-256,
                    RadiologyAI / MONAI / torch versions, training summary
    metrics.json    test-set (or validation) metrics of the training run (informative)

Loading never imports or executes anything from the folder: the networks are built from the
config's architecture names by :mod:`.networks`, and ``model.pt`` is unpickled in PyTorch's
restricted weights-only mode after its checksum is verified. A package from an incompatible
format version is refused with a message saying which version wrote it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from RadiologyAICommonLib.atomic import atomic_path, read_json, write_json
from RadiologyAICommonLib.checksums import sha256_of, verify_checksums, write_checksums
from RadiologyAICommonLib.errors import RadiologyAIError

from .networks import (
    ClassificationNetworkParameters,
    SegmentationNetworkParameters,
    build_classifier,
    build_segmentation_network,
    read_state_dict,
)
from .preprocessing import PreprocessingParameters
from .slices import SliceParameters

FORMAT = "radiologyai.salivaryseg.model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
COMPONENT_RULES = ("most_confident", "largest", "all")
WEIGHTS_FILE = "model.pt"
METRICS_FILE = "metrics.json"


@dataclass
class InferenceParameters:
    """How the segmentation network is applied to a whole volume."""

    roi_size: tuple[int, int, int] = (
        192,
        192,
        192,
    )  # sliding-window size (multiple of 16; a 2 mm head CT fits one window)
    overlap: float = 0.25
    blend_mode: str = "gaussian"  # "gaussian" or "constant"
    threshold: float = 0.5  # tumour probability threshold
    component: str = "most_confident"  # keep one component: "most_confident" (highest mean probability),
    #                                     "largest" (the published largest-connected-component option) or "all"

    @classmethod
    def from_dict(cls, data: dict) -> "InferenceParameters":
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "roi_size" in values:
            values["roi_size"] = tuple(int(v) for v in values["roi_size"])
        if values.get("component", "most_confident") not in COMPONENT_RULES:
            raise ValueError(f"component must be one of {', '.join(COMPONENT_RULES)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return {
            "roi_size": list(self.roi_size),
            "overlap": self.overlap,
            "blend_mode": self.blend_mode,
            "threshold": self.threshold,
            "component": self.component,
        }


@dataclass
class ModelPackage:
    folder: Path
    config: dict
    preprocessing: PreprocessingParameters
    segmentation_params: SegmentationNetworkParameters
    classification_params: ClassificationNetworkParameters
    slice_params: SliceParameters
    inference: InferenceParameters
    segmentation_net: object = None  # torch.nn.Module, eval mode
    classifier: object = None  # torch.nn.Module, eval mode
    metrics: dict = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        return list(self.classification_params.class_names)


def make_config(
    preprocessing: PreprocessingParameters,
    segmentation: SegmentationNetworkParameters,
    classification: ClassificationNetworkParameters,
    slices: SliceParameters,
    inference: InferenceParameters,
    training: dict | None = None,
) -> dict:
    import monai
    import torch

    from RadiologyAICommonLib import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "radiologyai_version": __version__,
        "monai_version": monai.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "task": "salivary-gland tumour segmentation (V-Net) and benign/malignant classification (ResNet-50, 2D slices)",
        "modality": "CT (Hounsfield units), non-contrast head and neck",
        "preprocessing": preprocessing.to_dict(),
        "segmentation": {
            "network": segmentation.to_dict(),
            "inference": inference.to_dict(),
            "labels": {"0": "background", "1": "Tumour"},
        },
        "classification": {
            "network": classification.to_dict(),
            "slices": slices.to_dict(),
            "aggregation": "lesion-area-weighted mean of the slice probabilities",
        },
        "class_names": list(classification.class_names),
        "training": training or {},
    }


def save_model_package(
    folder: str | os.PathLike,
    config: dict,
    segmentation_state: dict,
    classification_state: dict,
    metrics: dict | None = None,
) -> Path:
    """Write ``model.pt`` (state dicts only), ``config.json``, metrics and ``checksums.json`` (config and weights)."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {
        "segmentation": {k: v.detach().cpu().clone() for k, v in segmentation_state.items()},
        "classification": {k: v.detach().cpu().clone() for k, v in classification_state.items()},
    }
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        torch.save(weights, tmp)
    config = dict(config)
    config["weights"] = {"file": WEIGHTS_FILE, "sha256": sha256_of(folder / WEIGHTS_FILE)}
    write_json(folder / CONFIG_FILE, config)
    if metrics is not None:
        write_json(folder / METRICS_FILE, metrics)
    write_checksums(folder, [CONFIG_FILE, WEIGHTS_FILE])
    return folder


def read_config(folder: str | os.PathLike) -> dict:
    """The validated ``config.json`` of a model folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RadiologyAIError(f"model folder {folder}: no such folder")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise RadiologyAIError(f"model folder {folder}: missing {CONFIG_FILE} (is this a SalivarySeg model folder?)")
    if (folder / WEIGHTS_FILE).is_file():
        verify_checksums(folder, [CONFIG_FILE, WEIGHTS_FILE])
    else:
        verify_checksums(folder, [CONFIG_FILE])
    config = read_json(path)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise RadiologyAIError(f"{path}: not a SalivarySeg model config (expected \"format\": \"{FORMAT}\")")
    version = config.get("format_version")
    if not isinstance(version, int) or version != FORMAT_VERSION:
        written = config.get("radiologyai_version", "an unknown version")
        hint = "update RadiologyAI" if isinstance(version, int) and version > FORMAT_VERSION else "retrain the model"
        raise RadiologyAIError(
            f"{path}: model format version {version!r} (written by RadiologyAI {written}) is not compatible with "
            f"this RadiologyAI, which reads format version {FORMAT_VERSION}; {hint}"
        )
    for section in ("preprocessing", "segmentation", "classification", "weights"):
        if not isinstance(config.get(section), dict):
            raise RadiologyAIError(f"{path}: the '{section}' section is missing or malformed")
    return config


def load_model_package(folder: str | os.PathLike, device: str = "cpu", load_weights: bool = True) -> ModelPackage:
    """Read and check a model folder; build both networks and load their weights (eval mode)."""
    folder = Path(folder)
    config = read_config(folder)
    try:
        preprocessing = PreprocessingParameters.from_dict(config["preprocessing"]).validate()
        seg = SegmentationNetworkParameters.from_dict(config["segmentation"].get("network", {}))
        cls = ClassificationNetworkParameters.from_dict(config["classification"].get("network", {}))
        slices = SliceParameters.from_dict(config["classification"].get("slices", {}))
        inference = InferenceParameters.from_dict(config["segmentation"].get("inference", {}))
    except (TypeError, ValueError) as exc:
        raise RadiologyAIError(f"{folder / CONFIG_FILE}: malformed settings ({exc})") from None
    metrics = {}
    if (folder / METRICS_FILE).is_file():
        try:
            metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            metrics = {}
    package = ModelPackage(folder, config, preprocessing, seg, cls, slices, inference, metrics=metrics)
    if not load_weights:
        return package
    weights_path = folder / str(config["weights"].get("file", WEIGHTS_FILE))
    if weights_path.name != WEIGHTS_FILE or not weights_path.is_file():
        raise RadiologyAIError(f"model folder {folder}: missing {WEIGHTS_FILE}")
    verify_checksums(
        folder, [CONFIG_FILE, WEIGHTS_FILE]
    )  # read_config checked them too; the weights may have changed since
    weights = read_state_dict(weights_path, "model weights")
    for part in ("segmentation", "classification"):
        if not isinstance(weights.get(part), dict):
            raise RadiologyAIError(f"{weights_path}: no '{part}' weights inside")
    import torch

    seg_net = build_segmentation_network(seg)
    classifier = build_classifier(cls)
    for name, net in (("segmentation", seg_net), ("classification", classifier)):
        try:
            net.load_state_dict(weights[name], strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise RadiologyAIError(
                f"{weights_path}: the {name} weights do not fit the architecture in config.json ({first[:200]})"
            ) from None
        net.to(torch.device(device)).eval()
    package.segmentation_net = seg_net
    package.classifier = classifier
    return package
