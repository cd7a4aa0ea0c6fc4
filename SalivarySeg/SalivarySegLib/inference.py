"""Apply a model package to one CT: tumour mask on the input's grid, benign/malignant probability.

1. Published preprocessing (:mod:`.preprocessing`): 2 mm, HU [-400, 400] -> [0, 1], body crop,
   sizes padded to multiples of 16.
2. V-Net tumour probability with MONAI ``sliding_window_inference`` (Gaussian blending).
3. The probability map is resampled (linearly) from the 2 mm grid back onto the input's own
   grid and thresholded; one connected component is kept (one lesion per patient): by default the most
   confident one (highest mean tumour probability), or -- the published option -- the largest (MONAI
   ``KeepLargestConnectedComponent``); ``"all"`` keeps every component.
4. ResNet-50 on the axial 2 mm slices through the segmented lesion, slice probabilities
   aggregated per patient (:mod:`.slices`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from RadiologyAICommonLib.imageio import image_from_array
from RadiologyAICommonLib.progress import ProgressCallback, no_progress

from .model_package import ModelPackage
from .preprocessing import array_to_image, check_ct, preprocess, resample_to_reference
from .slices import aggregate, lesion_slices


@dataclass
class Prediction:
    label: sitk.Image  # uint8 on the input grid, 1 = tumour
    class_name: str | None  # None when no lesion was found
    probability: float | None  # probability of class_name
    probabilities: dict = field(default_factory=dict)  # class -> probability
    lesion_volume_ml: float = 0.0
    slices_used: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {
            "class": self.class_name,
            "probability": self.probability,
            "probabilities": self.probabilities,
            "lesion_found": self.class_name is not None,
            "lesion_volume_ml": round(self.lesion_volume_ml, 3),
            "slices_classified": self.slices_used,
            "seconds": round(self.seconds, 2),
        }


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """Largest 26-connected component of a boolean array (MONAI ``KeepLargestConnectedComponent``)."""
    import torch
    from monai.transforms import KeepLargestConnectedComponent

    if not mask.any():
        return mask
    transform = KeepLargestConnectedComponent(applied_labels=[1], is_onehot=False, connectivity=None)
    return transform(torch.from_numpy(mask.astype(np.uint8))[None]).numpy()[0] > 0


def keep_most_confident_component(mask: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """The 26-connected component with the highest mean tumour probability (one lesion per patient)."""
    from scipy import ndimage

    if not mask.any():
        return mask
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    means = ndimage.mean(probability, labels, index=np.arange(1, count + 1))
    return labels == (int(np.argmax(means)) + 1)


def keep_one_component(mask: np.ndarray, probability: np.ndarray, rule: str) -> np.ndarray:
    """Post-processing: ``"largest"`` component, ``"most_confident"`` component, or ``"all"``."""
    if rule == "largest":
        return keep_largest_component(mask)
    if rule == "most_confident":
        return keep_most_confident_component(mask, probability)
    return mask


def segment_probability(package: ModelPackage, image_tensor, device: str = "cpu"):
    """Tumour probability (x, y, z) numpy array on the preprocessed grid."""
    import torch
    from monai.inferers import sliding_window_inference

    net = package.segmentation_net
    params = package.inference
    with torch.inference_mode():
        inputs = torch.as_tensor(image_tensor)[None].float().to(device)
        # Never pad a small (already 16-divisible) volume up to the window size.
        roi = tuple(min(int(r), int(s)) for r, s in zip(params.roi_size, inputs.shape[2:]))
        logits = sliding_window_inference(
            inputs, roi_size=roi, sw_batch_size=1, predictor=net, overlap=params.overlap, mode=params.blend_mode
        )
        probability = torch.softmax(torch.as_tensor(logits).float(), dim=1)[0, 1]
    return probability.cpu().numpy()


def classify(package: ModelPackage, image_tensor, mask_xyz: np.ndarray, device: str = "cpu"):
    """(patient probabilities per class, number of slices) from the lesion slices."""
    import torch

    slices, weights = lesion_slices(
        image_tensor,
        torch.from_numpy(mask_xyz.astype(np.float32))[None],
        float(package.preprocessing.spacing_mm[0]),
        package.slice_params,
    )
    if slices.shape[0] == 0:
        return None, 0
    with torch.inference_mode():
        logits = package.classifier(slices.to(device))
        probabilities = torch.softmax(logits.float(), dim=1).cpu()
    return aggregate(probabilities, weights), int(slices.shape[0])


def predict(
    image: sitk.Image,
    package: ModelPackage,
    device: str = "cpu",
    component: str | None = None,
    progress: ProgressCallback | None = None,
    what: str = "image",
    ct_check: bool = True,
) -> Prediction:
    """Segment and classify one CT volume with a loaded :class:`ModelPackage`."""
    progress = progress or no_progress
    start = time.perf_counter()
    if ct_check:
        check_ct(image, what)
    rule = package.inference.component if component is None else component
    progress(0.05, "preprocessing")
    data = preprocess(image, None, package.preprocessing, what, ct_check=False)
    tensor = data["image"]
    affine = np.asarray(tensor.affine)
    progress(0.15, "segmenting (V-Net)")
    probability = segment_probability(package, tensor, device)
    progress(0.75, "post-processing")
    threshold = package.inference.threshold
    mask_2mm = probability >= threshold
    mask_2mm = keep_one_component(mask_2mm, probability, rule)
    # Tumour probability back on the input grid, outside the kept component set to zero.
    kept = np.where(_dilate(mask_2mm), probability, 0.0).astype(np.float32)
    prob_image = array_to_image(kept, affine)
    reference = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    reference.CopyInformation(image)
    native = sitk.GetArrayFromImage(resample_to_reference(prob_image, reference, sitk.sitkLinear, 0.0))
    mask = keep_one_component(native >= threshold, native, rule)
    label = image_from_array(mask.astype(np.uint8), image)
    progress(0.85, "classifying (ResNet-50)")
    probabilities, n_slices = classify(package, tensor, mask_2mm, device)
    names = package.class_names
    result = Prediction(label, None, None, {}, float(mask.sum() * np.prod(image.GetSpacing()) / 1000.0), n_slices)
    if probabilities is not None:
        best = int(np.argmax(probabilities))
        result.class_name = names[best]
        result.probability = float(probabilities[best])
        result.probabilities = {name: float(p) for name, p in zip(names, probabilities)}
    result.seconds = time.perf_counter() - start
    progress(1.0, "done")
    return result


def _dilate(mask: np.ndarray) -> np.ndarray:
    """One-voxel dilation so linear interpolation near the kept component's edge is not cut off."""
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=1) if mask.any() else mask
