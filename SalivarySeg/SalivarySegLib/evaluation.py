"""Evaluate predicted tumour masks (and classes) against ground truth: one pair or whole folders."""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from RadiologyAICommonLib.atomic import read_json
from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import read_image
from RadiologyAICommonLib.progress import ProgressCallback, no_progress

from .dataset import case_id_of, read_cases_csv
from .metrics import segmentation_metrics
from .training import summarise_rows

PREDICTION_LABEL = "tumour_label.nrrd"
PREDICTION_JSON = "prediction.json"


def _read_mask(path: Path, what: str) -> sitk.Image:
    image = read_image(path, what)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise RadiologyAIError(f"{what} {path}: expected a 3D label volume")
    return sitk.Cast(sitk.NotEqual(image, 0), sitk.sitkUInt8)


def evaluate_pair(pred: str | Path, truth: str | Path) -> dict:
    """Dice, HD95 (mm), ASD (mm) and volumes of one predicted mask against its truth."""
    prediction = _read_mask(Path(pred), "prediction")
    reference = _read_mask(Path(truth), "truth")
    return segmentation_metrics(prediction, reference, f"prediction {pred}")


def _index_labels(folder: Path) -> dict[str, Path]:
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            case_id = case_id_of(path)
            if case_id is not None:
                files[case_id] = path
    return files


def _truth_cases(truth: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """(case -> label file, case -> diagnosis) of a dataset folder or a plain folder of labels."""
    if (truth / "labels").is_dir():
        labels = _index_labels(truth / "labels")
        diagnoses = {}
        if (truth / "cases.csv").is_file():
            for row in read_cases_csv(truth / "cases.csv"):
                diagnoses[str(row["case_id"]).strip()] = str(row["diagnosis"]).strip().lower()
        return labels, diagnoses
    return _index_labels(truth), {}


def _prediction_cases(pred: Path) -> dict[str, tuple[Path, Path | None]]:
    """case -> (label file, prediction.json or None): per-case sub-folders or label files named by case id."""
    cases = {}
    for path in sorted(pred.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir() and (path / PREDICTION_LABEL).is_file():
            json_path = path / PREDICTION_JSON
            cases[path.name] = (path / PREDICTION_LABEL, json_path if json_path.is_file() else None)
        elif path.is_file():
            case_id = case_id_of(path)
            if case_id is not None:
                cases[case_id] = (path, None)
    return cases


def evaluate_folders(pred: str | Path, truth: str | Path, progress: ProgressCallback | None = None):
    """Per-case rows and a summary for every predicted case; every prediction must have a truth."""
    progress = progress or no_progress
    pred, truth = Path(pred), Path(truth)
    truth_labels, diagnoses = _truth_cases(truth)
    predictions = _prediction_cases(pred)
    if not predictions:
        raise RadiologyAIError(
            f"--pred {pred}: no predictions found (expected <case>/{PREDICTION_LABEL} folders "
            "or label files named <case_id>.nrrd)"
        )
    if not truth_labels:
        raise RadiologyAIError(f"--truth {truth}: no label files found")
    unmatched = sorted(set(predictions) - set(truth_labels))
    if unmatched:
        raise RadiologyAIError(f"--pred {pred}: no ground truth in {truth} for case(s) {', '.join(unmatched[:10])}")
    missing = sorted(set(truth_labels) - set(predictions))
    rows = []
    for i, case_id in enumerate(sorted(predictions)):
        label_path, json_path = predictions[case_id]
        row = {"case_id": case_id, "diagnosis": diagnoses.get(case_id)}
        row.update(
            segmentation_metrics(
                _read_mask(label_path, f"case '{case_id}' prediction"),
                _read_mask(truth_labels[case_id], f"case '{case_id}' truth"),
                f"case '{case_id}'",
            )
        )
        predicted_class, probability = None, None
        if json_path is not None:
            data = read_json(json_path)
            predicted_class, probability = data.get("class"), data.get("probability")
        row.update({"predicted_class": predicted_class, "probability": probability})
        rows.append(row)
        progress((i + 1) / len(predictions), f"evaluating {i + 1}/{len(predictions)}")
    summary = summarise_rows(rows)
    summary["truth_cases_without_prediction"] = missing
    return rows, summary
