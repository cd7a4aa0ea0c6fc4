"""Segmentation metrics in millimetres and classification metrics, with per-case tables.

Dice, 95th-percentile Hausdorff distance and average symmetric surface distance come from
MONAI (``compute_dice``, ``compute_hausdorff_distance(percentile=95)``,
``compute_average_surface_distance(symmetric=True)``) called with ``spacing=`` the voxel size,
so distances are in mm on anisotropic grids. Accuracy, precision, recall (sensitivity),
specificity and F1 use MONAI's confusion-matrix metrics, malignant being the positive class.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import SimpleITK as sitk

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import same_geometry


def segmentation_metrics(prediction: sitk.Image, truth: sitk.Image, what: str = "prediction") -> dict:
    """Dice, HD95 (mm), ASD (mm) and volumes of two masks on the same grid (non-zero = tumour).

    Distances are ``None`` when either mask is empty (undefined); Dice is 1 when both are empty.
    """
    if prediction.GetDimension() != truth.GetDimension():
        raise RadiologyAIError(f"{what}: {prediction.GetDimension()}D prediction vs {truth.GetDimension()}D truth")
    if not same_geometry(prediction, truth, tolerance=1e-3):
        raise RadiologyAIError(
            f"{what}: prediction and truth are not on the same grid (size {prediction.GetSize()} vs {truth.GetSize()}, "
            f"spacing {tuple(round(s, 3) for s in prediction.GetSpacing())} vs "
            f"{tuple(round(s, 3) for s in truth.GetSpacing())}); resample the prediction onto the truth first"
        )
    pred = sitk.GetArrayViewFromImage(prediction) > 0
    true = sitk.GetArrayViewFromImage(truth) > 0
    spacing = tuple(float(s) for s in reversed(truth.GetSpacing()))  # array order (z, y, x)
    return mask_metrics(pred, true, spacing)


def mask_metrics(pred: np.ndarray, true: np.ndarray, spacing) -> dict:
    """Metrics of two boolean arrays with voxel ``spacing`` (same axis order as the arrays)."""
    import torch
    from monai.metrics import compute_average_surface_distance, compute_dice, compute_hausdorff_distance

    voxel_ml = float(np.prod(spacing)) / 1000.0
    result = {
        "dice": None,
        "hd95_mm": None,
        "asd_mm": None,
        "volume_pred_ml": float(pred.sum()) * voxel_ml,
        "volume_truth_ml": float(true.sum()) * voxel_ml,
    }
    if not pred.any() and not true.any():
        result["dice"] = 1.0
        return result
    # Restrict the work to the box around both masks (plus a margin): same values, much faster.
    both = pred | true
    box = tuple(slice(max(int(idx.min()) - 2, 0), int(idx.max()) + 3) for idx in np.nonzero(both))
    p = torch.from_numpy(np.ascontiguousarray(pred[box]))[None, None].float()
    t = torch.from_numpy(np.ascontiguousarray(true[box]))[None, None].float()
    p2 = torch.cat([1 - p, p], dim=1)
    t2 = torch.cat([1 - t, t], dim=1)
    result["dice"] = float(compute_dice(p2, t2, include_background=False, ignore_empty=False)[0, 0])
    if pred.any() and true.any():
        spacing = [float(s) for s in spacing]
        with warnings.catch_warnings():  # MONAI 1.5+ warns about one of its own internal arguments
            warnings.simplefilter("ignore", FutureWarning)
            hd = compute_hausdorff_distance(p2, t2, include_background=False, percentile=95, spacing=spacing)
            asd = compute_average_surface_distance(p2, t2, include_background=False, symmetric=True, spacing=spacing)
        result["hd95_mm"] = float(hd[0, 0])
        result["asd_mm"] = float(asd[0, 0])
    return result


def classification_metrics(truth: list[str], predicted: list[str], positive: str = "malignant") -> dict:
    """Accuracy, precision, recall (sensitivity), specificity and F1, malignant = positive."""
    import torch
    from monai.metrics import compute_confusion_matrix_metric, get_confusion_matrix

    if len(truth) != len(predicted):
        raise RadiologyAIError(f"{len(truth)} true labels but {len(predicted)} predictions")
    n = len(truth)
    result = {"n": n, "tp": 0, "fp": 0, "tn": 0, "fn": 0}
    names = ("accuracy", "precision", "recall", "specificity", "f1")
    if n == 0:
        return {**result, **{name: None for name in names}}
    y = torch.tensor([[1.0 if v == positive else 0.0] for v in truth])
    p = torch.tensor([[1.0 if v == positive else 0.0] for v in predicted])
    matrix = get_confusion_matrix(p, y, include_background=True)  # (n, 1, 4): tp, fp, tn, fn
    totals = matrix.sum(dim=0)
    tp, fp, tn, fn = (int(v) for v in totals[0])
    result.update({"tp": tp, "fp": fp, "tn": tn, "fn": fn})
    for name, monai_name in zip(names, ("accuracy", "precision", "sensitivity", "specificity", "f1 score")):
        value = float(compute_confusion_matrix_metric(monai_name, totals)[0])
        result[name] = None if math.isnan(value) else value
    return result


def summarise(values) -> dict:
    """Mean, SD, median, min and max of the defined values (None for none)."""
    numbers = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if numbers.size == 0:
        return {"mean": None, "sd": None, "median": None, "min": None, "max": None, "n": 0}
    return {
        "mean": float(numbers.mean()),
        "sd": float(numbers.std(ddof=1)) if numbers.size > 1 else 0.0,
        "median": float(np.median(numbers)),
        "min": float(numbers.min()),
        "max": float(numbers.max()),
        "n": int(numbers.size),
    }
