"""``radiologyai salivary synth | train | predict | evaluate`` end to end on tiny data, and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from RadiologyAICommonLib.checksums import write_checksums
from RadiologyAICommonLib.cli import main
from salivary_helpers import tiny_dataset, tiny_model


def run(capsys, *args):
    code = main(["--progress", "none", "salivary", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error(code, err, *fragments):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_synth_writes_a_valid_balanced_dataset(tmp_path, capsys):
    code, out, _ = run(
        capsys,
        "synth",
        "--output-dir",
        tmp_path / "d",
        "--cases",
        2,
        "--seed",
        9,
        "--spacing",
        2,
        2,
        2,
        "--fov",
        160,
        160,
        96,
    )
    assert code == 0 and json.loads(out)["cases"] == 2
    table = pd.read_csv(tmp_path / "d" / "cases.csv")
    assert sorted(table["diagnosis"]) == ["benign", "malignant"]
    image = sitk.ReadImage(str(tmp_path / "d" / "images" / "case_000.nrrd"))
    label = sitk.ReadImage(str(tmp_path / "d" / "labels" / "case_000.nrrd"))
    assert image.GetSize() == (80, 80, 48) and label.GetSize() == image.GetSize()
    assert sitk.GetArrayViewFromImage(label).any()
    from SalivarySegLib.dataset import load_dataset

    assert len(load_dataset(tmp_path / "d")) == 2
    # Same seed, same data.
    run(
        capsys,
        "synth",
        "--output-dir",
        tmp_path / "e",
        "--cases",
        1,
        "--seed",
        9,
        "--spacing",
        2,
        2,
        2,
        "--fov",
        160,
        160,
        96,
    )
    again = sitk.ReadImage(str(tmp_path / "e" / "images" / "case_000.nrrd"))
    assert np.array_equal(sitk.GetArrayViewFromImage(again), sitk.GetArrayViewFromImage(image))


def test_train_predict_evaluate_end_to_end(tmp_path, capsys):
    model = tiny_model()  # radiologyai salivary train (tiny settings)
    for name in (
        "model.pt",
        "config.json",
        "metrics.json",
        "history.csv",
        "history.png",
        "test_cases.csv",
        "validation_predictions.csv",
        "splits.csv",
    ):
        assert (model / name).is_file(), name
    history = pd.read_csv(model / "history.csv")
    assert list(history["stage"]) == ["segmentation", "segmentation", "classification"]
    assert {"train_loss", "val_loss", "val_dice", "val_accuracy", "best"} <= set(history.columns)
    assert list((model / "validation_masks").glob("epoch_001/*.nrrd"))
    metrics = json.loads((model / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["evaluated_on"] == "val" and metrics["n_cases"] == 2  # 6 cases: too few for a test split
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    assert config["preprocessing"]["spacing_mm"] == [2.0, 2.0, 2.0]
    assert config["preprocessing"]["hu_min"] == -400 and config["preprocessing"]["hu_max"] == 400
    assert config["class_names"] == ["benign", "malignant"]
    assert config["classification"]["network"]["architecture"] == "resnet18"  # --classifier resnet18 (speed)

    # An unseen case with a different voxel size than the training data.
    code, _, _ = run(
        capsys,
        "synth",
        "--output-dir",
        tmp_path / "new",
        "--cases",
        2,
        "--seed",
        5,
        "--first-index",
        40,
        "--spacing",
        1.6,
        1.6,
        2.5,
        "--fov",
        160,
        160,
        96,
    )
    assert code == 0
    image_path = tmp_path / "new" / "images" / "case_040.nrrd"
    code, out, _ = run(capsys, "predict", image_path, "--model", model, "--output-dir", tmp_path / "pred")
    assert code == 0
    result = json.loads(out)
    written = json.loads((tmp_path / "pred" / "prediction.json").read_text(encoding="utf-8"))
    assert set(written) >= {"class", "probability", "probabilities", "lesion_volume_ml"}
    assert written["class"] in (None, "benign", "malignant")
    if written["class"] is not None:
        assert 0.5 <= written["probability"] <= 1.0
        assert sum(written["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert result["class"] == written["class"]
    label = sitk.ReadImage(str(tmp_path / "pred" / "tumour_label.nrrd"))
    source = sitk.ReadImage(str(image_path))
    assert label.GetSize() == source.GetSize() and np.allclose(label.GetSpacing(), source.GetSpacing())
    assert np.allclose(label.GetOrigin(), source.GetOrigin())

    code, out, _ = run(
        capsys,
        "evaluate",
        "--pred",
        tmp_path / "pred" / "tumour_label.nrrd",
        "--truth",
        tmp_path / "new" / "labels" / "case_040.nrrd",
    )
    assert code == 0
    scores = json.loads(out)
    assert set(scores) >= {"dice", "hd95_mm", "asd_mm"} and 0.0 <= scores["dice"] <= 1.0

    # Whole dataset: per-case folders, then a per-case evaluation table.
    code, _, _ = run(capsys, "predict", tmp_path / "new", "--model", model, "--output-dir", tmp_path / "all")
    assert code == 0 and (tmp_path / "all" / "case_041" / "tumour_label.nrrd").is_file()
    assert len(pd.read_csv(tmp_path / "all" / "predictions.csv")) == 2
    code, out, _ = run(
        capsys, "evaluate", "--pred", tmp_path / "all", "--truth", tmp_path / "new", "--output-dir", tmp_path / "eval"
    )
    assert code == 0
    table = pd.read_csv(tmp_path / "eval" / "evaluation.csv")
    assert list(table["case_id"]) == ["case_040", "case_041"]
    assert {"dice", "hd95_mm", "asd_mm", "diagnosis", "predicted_class"} <= set(table.columns)
    summary = json.loads(out)["summary"]
    assert summary["n_cases"] == 2 and "accuracy" in summary["classification"]


def _write(path, array, spacing=(1.0, 1.0, 1.0)):
    image = sitk.GetImageFromArray(array)
    if image.GetDimension() == 3:
        image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def test_predict_refuses_bad_images_and_writes_nothing(tmp_path, capsys):
    model = tiny_model()
    flat = _write(tmp_path / "slice.nrrd", np.full((40, 40), -1000, np.int16))
    code, _, err = run(capsys, "predict", flat, "--model", model, "--output-dir", tmp_path / "out")
    assert_user_error(code, err, "3D")
    mri = _write(tmp_path / "mri.nrrd", np.random.default_rng(0).integers(0, 1200, (20, 40, 40)).astype(np.int16))
    code, _, err = run(capsys, "predict", mri, "--model", model, "--output-dir", tmp_path / "out")
    assert_user_error(code, err, "does not look like a CT")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_predict_refuses_broken_model_folders(tmp_path, capsys):
    model = tiny_model()
    ct = tiny_dataset() / "images" / "case_000.nrrd"
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(model / "config.json", broken / "config.json")
    code, _, err = run(capsys, "predict", ct, "--model", broken, "--output-dir", tmp_path / "out")
    assert_user_error(code, err, "checksums.json is missing")
    shutil.copy(model / "checksums.json", broken / "checksums.json")
    code, _, err = run(capsys, "predict", ct, "--model", broken, "--output-dir", tmp_path / "out")
    assert_user_error(code, err, "missing model.pt")
    (broken / "model.pt").write_bytes(b"\x00garbage" * 100)
    code, _, err = run(capsys, "predict", ct, "--model", broken, "--output-dir", tmp_path / "out")
    assert_user_error(code, err, "checksum")
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    config["format_version"] = 99
    (broken / "config.json").write_text(json.dumps(config))
    write_checksums(broken, ["config.json", "model.pt"])  # an edit made on purpose: the version check still holds
    code, _, err = run(capsys, "predict", ct, "--model", broken, "--output-dir", tmp_path / "out")
    assert_user_error(code, err, "format version 99")
    assert not (tmp_path / "out").exists()


def test_train_refuses_mismatched_dataset_and_writes_nothing(tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset(), data)
    (data / "labels" / "case_002.nrrd").unlink()
    code, _, err = run(capsys, "train", data, "--output-dir", tmp_path / "model", "--epochs", 1)
    assert_user_error(code, err, "case 'case_002' has no label")
    assert not (tmp_path / "model").exists()
    code, _, err = run(capsys, "train", tiny_dataset(), "--output-dir", tmp_path / "model", "--patch-size", 40, 40, 40)
    assert_user_error(code, err, "multiples of 16")
    assert not (tmp_path / "model").exists()


def test_synth_and_evaluate_bad_arguments(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    code, _, err = run(capsys, "synth", "--output-dir", tmp_path / "full", "--cases", 1)
    assert_user_error(code, err, "not empty")
    a = _write(tmp_path / "a.nrrd", np.zeros((10, 10, 10), np.uint8))
    b = _write(tmp_path / "b.nrrd", np.zeros((10, 10, 12), np.uint8))
    code, _, err = run(capsys, "evaluate", "--pred", a, "--truth", b)
    assert_user_error(code, err, "same grid")
    code, _, err = run(capsys, "evaluate", "--pred", a, "--truth", tmp_path)
    assert_user_error(code, err, "both be files or both be folders")


def test_installed_entry_point_prints_one_error_line(tmp_path):
    script = Path(sys.executable).with_name("radiologyai")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "RadiologyAICommonLib"]
    flat = _write(tmp_path / "slice.nrrd", np.full((40, 40), -1000, np.int16))
    process = subprocess.run(
        [
            *command,
            "salivary",
            "predict",
            str(flat),
            "--model",
            str(tmp_path / "none"),
            "--output-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 2
    assert process.stderr.strip().count("\n") == 0 and process.stderr.startswith("error: "), process.stderr
    assert "no such folder" in process.stderr
    assert not (tmp_path / "out").exists()


def test_predict_into_its_own_dataset_is_refused(tmp_path, capsys):
    """``predict DATASET --output-dir DATASET`` wrote case folders into the dataset (a case named 'labels' wiped it)."""
    dataset = tmp_path / "data"
    shutil.copytree(tiny_dataset(), dataset)
    before = sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("*"))
    for output in (dataset, dataset / "predictions"):
        code, _, err = run(capsys, "predict", dataset, "--model", tiny_model(), "--output-dir", output, "--overwrite")
        assert_user_error(code, err, "inside the input folder")
    assert sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("*")) == before
