"""Dataset folder format, its validation, and the stratified train/validation/test split.

A dataset is a folder::

    images/<case_id>.<ext>     CT volumes in HU (any format SimpleITK reads: .nrrd, .nii.gz, .mha ...)
    labels/<case_id>.<ext>     tumour masks on the same grid (any non-zero voxel is tumour)
    cases.csv                  case_id, diagnosis (benign | malignant) [, split (train | val | test)]

Every row needs one image and one label, every image and label needs a row, labels must share
their image's geometry and contain tumour voxels. Problems are reported all at once (up to ten),
each naming the file or row, before any training starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from RadiologyAICommonLib.errors import RadiologyAIError

CLASS_NAMES = ("benign", "malignant")
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
_IMAGE_SUFFIXES = (
    ".nii.gz",
    ".nii",
    ".nrrd",
    ".nhdr",
    ".mha",
    ".mhd",
    ".hdr",
    ".img",
    ".tif",
    ".tiff",
    ".vtk",
    ".gipl",
    ".gipl.gz",
    ".mnc",
    ".dcm",
)


@dataclass
class CaseRecord:
    case_id: str
    image: Path
    label: Path | None
    diagnosis: str | None
    split: str | None = None


def case_id_of(path: Path) -> str | None:
    """Case id of an image file name (name without its image suffix), or None if not an image name."""
    name = path.name
    for suffix in _IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return None


def _index_folder(folder: Path, problems: list[str]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        case_id = case_id_of(path)
        if case_id is None:
            continue
        if path.suffix.lower() == ".raw":
            continue
        if case_id in files:
            problems.append(f"{folder}: two files for case '{case_id}' ({files[case_id].name}, {path.name})")
            continue
        files[case_id] = path
    return files


def _read_info(path: Path) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise RadiologyAIError(f"{path}: not an image SimpleITK can read") from None
    return reader


def read_cases_csv(path: Path) -> list[dict]:
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise RadiologyAIError(f"{path}: cannot read the CSV ({exc})") from None
    table.columns = [c.strip().lower() for c in table.columns]
    for column in ("case_id", "diagnosis"):
        if column not in table.columns:
            raise RadiologyAIError(f"{path}: missing column '{column}' (columns: {', '.join(table.columns)})")
    return table.to_dict("records")


def load_dataset(
    folder: str | os.PathLike, require_labels: bool = True, check_contents: bool = True
) -> list[CaseRecord]:
    """Read and validate a dataset folder; raise one :class:`RadiologyAIError` listing the problems."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RadiologyAIError(f"dataset {folder}: no such folder")
    csv_path = folder / "cases.csv"
    for needed in [folder / "images", csv_path] + ([folder / "labels"] if require_labels else []):
        if not needed.exists():
            raise RadiologyAIError(
                f"dataset {folder}: missing '{needed.name}' (a dataset has images/, labels/ and cases.csv)"
            )
    problems: list[str] = []
    images = _index_folder(folder / "images", problems)
    labels = _index_folder(folder / "labels", problems) if (folder / "labels").is_dir() else {}
    rows = read_cases_csv(csv_path)
    if not rows:
        raise RadiologyAIError(f"{csv_path}: no cases listed")
    records: list[CaseRecord] = []
    seen: set[str] = set()
    has_split = any(str(r.get("split", "")).strip() for r in rows)
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        case_id = str(row["case_id"]).strip()
        where = f"{csv_path.name} line {number}"
        if not case_id:
            problems.append(f"{where}: empty case_id")
            continue
        if case_id in seen:
            problems.append(f"{where}: case '{case_id}' is listed twice")
            continue
        seen.add(case_id)
        diagnosis = str(row["diagnosis"]).strip().lower()
        if diagnosis not in CLASS_NAMES:
            problems.append(
                f"{where}: unknown diagnosis '{row['diagnosis']}' for case '{case_id}' (expected benign or malignant)"
            )
        split = None
        if has_split:
            raw = str(row.get("split", "")).strip().lower()
            split = _SPLIT_ALIASES.get(raw)
            if split is None:
                problems.append(
                    f"{where}: unknown split '{row.get('split', '')}' for case '{case_id}' "
                    "(expected train, val or test)"
                )
        if case_id not in images:
            problems.append(f"{where}: case '{case_id}' has no image in images/")
        if require_labels and case_id not in labels:
            problems.append(f"{where}: case '{case_id}' has no label in labels/")
        records.append(CaseRecord(case_id, images.get(case_id, Path()), labels.get(case_id), diagnosis, split))
    for case_id, path in images.items():
        if case_id not in seen:
            problems.append(f"images/{path.name}: case '{case_id}' is not listed in cases.csv")
    for case_id, path in labels.items():
        if case_id not in seen:
            problems.append(f"labels/{path.name}: case '{case_id}' is not listed in cases.csv")
    if not problems and check_contents:
        for record in records:
            problems.extend(_check_pair(record, require_labels))
            if len(problems) >= 10:
                break
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise RadiologyAIError(f"dataset {folder}: " + "; ".join(problems[:10]) + more)
    return records


def _check_pair(record: CaseRecord, require_labels: bool) -> list[str]:
    try:
        image_info = _read_info(record.image)
    except RadiologyAIError as exc:
        return [str(exc)]
    if image_info.GetDimension() != 3 or image_info.GetNumberOfComponents() != 1:
        return [f"images/{record.image.name}: expected a 3D grey-level CT volume"]
    if record.label is None:
        return [] if not require_labels else [f"case '{record.case_id}': no label"]
    try:
        label_info = _read_info(record.label)
    except RadiologyAIError as exc:
        return [str(exc)]
    if (
        label_info.GetSize() != image_info.GetSize()
        or not np.allclose(label_info.GetSpacing(), image_info.GetSpacing(), atol=1e-3)
        or not np.allclose(label_info.GetOrigin(), image_info.GetOrigin(), atol=1e-2)
        or not np.allclose(label_info.GetDirection(), image_info.GetDirection(), atol=1e-4)
    ):
        return [
            f"labels/{record.label.name}: geometry differs from images/{record.image.name} "
            f"(size {label_info.GetSize()} vs {image_info.GetSize()}, spacing "
            f"{tuple(round(s, 3) for s in label_info.GetSpacing())} "
            f"vs {tuple(round(s, 3) for s in image_info.GetSpacing())})"
        ]
    label_image = sitk.ReadImage(str(record.label))  # keep a reference: the array below is a view of it
    if not np.any(sitk.GetArrayViewFromImage(label_image)):
        return [f"labels/{record.label.name}: the label is empty (no tumour voxels)"]
    return []


def stratified_split(
    records: list[CaseRecord], val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> dict[str, str]:
    """case_id -> split; the CSV's split when it has one, else a seeded split stratified by diagnosis.

    Each diagnosis is shuffled and divided in proportion, so both classes appear in validation
    (and test) whenever there are enough cases. At least one case of each class stays in training.
    """
    if any(r.split for r in records):
        splits = {r.case_id: r.split for r in records}
        if "train" not in splits.values() or "val" not in splits.values():
            raise RadiologyAIError("cases.csv split column: at least one 'train' and one 'val' case are needed")
        return splits
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise RadiologyAIError("validation and test fractions must be in [0, 1) and sum to less than 1")
    rng = np.random.default_rng(seed)
    splits: dict[str, str] = {}
    for diagnosis in CLASS_NAMES:
        ids = sorted(r.case_id for r in records if r.diagnosis == diagnosis)
        rng.shuffle(ids)
        n = len(ids)
        n_val = int(round(val_fraction * n))
        n_test = int(round(test_fraction * n))
        if val_fraction > 0 and n >= 3:
            n_val = max(n_val, 1)
        while n - n_val - n_test < 1 and (n_val + n_test) > 0:
            if n_test >= n_val and n_test > 0:
                n_test -= 1
            else:
                n_val -= 1
        for i, case_id in enumerate(ids):
            splits[case_id] = "val" if i < n_val else "test" if i < n_val + n_test else "train"
    if "val" not in splits.values():
        raise RadiologyAIError(
            f"too few cases ({len(records)}) for a validation set; give at least 3 cases per diagnosis "
            "or a split column in cases.csv"
        )
    return splits
