"""Dataset folder validation (clear errors naming the file/row) and the stratified split."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import image_from_array
from SalivarySegLib.dataset import CaseRecord, load_dataset, stratified_split


def _write_dataset(folder, n=4, shape=(8, 10, 12)):
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    rows = ["case_id,diagnosis"]
    for i in range(n):
        image = sitk.GetImageFromArray(np.full(shape, -1000, np.int16))
        image.SetSpacing((0.9, 0.9, 2.0))
        label_array = np.zeros(shape, np.uint8)
        label_array[2:4, 3:5, 4:6] = 1
        label = image_from_array(label_array, image)
        sitk.WriteImage(image, str(folder / "images" / f"p{i}.nrrd"))
        sitk.WriteImage(label, str(folder / "labels" / f"p{i}.nii.gz"))
        rows.append(f"p{i},{'benign' if i % 2 else 'malignant'}")
    (folder / "cases.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_valid_dataset_is_read(tmp_path):
    records = load_dataset(_write_dataset(tmp_path / "d"))
    assert [r.case_id for r in records] == ["p0", "p1", "p2", "p3"]
    assert records[0].diagnosis == "malignant" and records[0].label.name == "p0.nii.gz"


def test_missing_label_and_unlisted_image(tmp_path):
    folder = _write_dataset(tmp_path / "d")
    (folder / "labels" / "p1.nii.gz").unlink()
    shutil.copy(folder / "images" / "p0.nrrd", folder / "images" / "extra.nrrd")
    with pytest.raises(RadiologyAIError) as error:
        load_dataset(folder)
    message = str(error.value)
    assert "case 'p1' has no label" in message and "line 3" in message
    assert "images/extra.nrrd" in message and "not listed" in message


def test_unknown_diagnosis_and_duplicate_rows(tmp_path):
    folder = _write_dataset(tmp_path / "d")
    (folder / "cases.csv").write_text("case_id,diagnosis\np0,malignant\np1,tumour\np2,benign\np3,benign\np0,benign\n")
    with pytest.raises(RadiologyAIError, match=r"unknown diagnosis 'tumour'.*listed twice"):
        load_dataset(folder)


def test_geometry_mismatch(tmp_path):
    folder = _write_dataset(tmp_path / "d")
    label = sitk.ReadImage(str(folder / "labels" / "p2.nii.gz"))
    label.SetSpacing((1.0, 0.9, 2.0))
    sitk.WriteImage(label, str(folder / "labels" / "p2.nii.gz"))
    with pytest.raises(RadiologyAIError, match=r"labels/p2.nii.gz: geometry differs"):
        load_dataset(folder)


def test_empty_label(tmp_path):
    folder = _write_dataset(tmp_path / "d")
    label = sitk.ReadImage(str(folder / "labels" / "p3.nii.gz"))
    sitk.WriteImage(label * 0, str(folder / "labels" / "p3.nii.gz"))
    with pytest.raises(RadiologyAIError, match=r"p3.nii.gz: the label is empty"):
        load_dataset(folder)


def test_missing_parts(tmp_path):
    folder = _write_dataset(tmp_path / "d")
    (folder / "cases.csv").unlink()
    with pytest.raises(RadiologyAIError, match="missing 'cases.csv'"):
        load_dataset(folder)
    with pytest.raises(RadiologyAIError, match="no such folder"):
        load_dataset(tmp_path / "nowhere")
    (folder / "cases.csv").write_text("case,label\np0,benign\n")
    with pytest.raises(RadiologyAIError, match="missing column 'case_id'"):
        load_dataset(folder)


def test_unreadable_image(tmp_path):
    folder = _write_dataset(tmp_path / "d")
    (folder / "images" / "p0.nrrd").write_bytes(b"not an image")
    with pytest.raises(RadiologyAIError, match="p0.nrrd"):
        load_dataset(folder)


def _records(n_benign, n_malignant):
    return [CaseRecord(f"b{i}", None, None, "benign") for i in range(n_benign)] + [
        CaseRecord(f"m{i}", None, None, "malignant") for i in range(n_malignant)
    ]


def test_stratified_split_keeps_both_classes_everywhere_and_is_seeded():
    records = _records(10, 10)
    splits = stratified_split(records, 0.2, 0.2, seed=3)
    for split in ("train", "val", "test"):
        diagnoses = {r.diagnosis for r in records if splits[r.case_id] == split}
        assert diagnoses == {"benign", "malignant"}, split
    assert sum(v == "val" for v in splits.values()) == 4 and sum(v == "test" for v in splits.values()) == 4
    assert splits == stratified_split(records, 0.2, 0.2, seed=3)
    assert splits != stratified_split(records, 0.2, 0.2, seed=4)


def test_csv_split_is_used_and_checked():
    records = _records(2, 2)
    for r, s in zip(records, ["train", "val", "train", "test"]):
        r.split = s
    assert stratified_split(records) == {"b0": "train", "b1": "val", "m0": "train", "m1": "test"}
    for r in records:
        r.split = "train"
    with pytest.raises(RadiologyAIError, match="'val'"):
        stratified_split(records)


def test_too_few_cases_for_validation():
    with pytest.raises(RadiologyAIError, match="too few cases"):
        stratified_split(_records(1, 1))
