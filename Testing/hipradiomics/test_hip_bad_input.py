"""Bad input: one `error:` line naming the row / file, exit code 2, nothing (half-)written."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

import hip_testdata as data

ROOT = Path(__file__).resolve().parents[2]


def _fails(capsys, *args, fragment: str) -> str:
    capsys.readouterr()
    code = data.run("hip", *args)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert fragment in lines[0], lines[0]
    assert captured.out == ""
    return lines[0]


@pytest.fixture()
def cohort_copy(tmp_path):
    """A 4-row copy of the cached cohort CSV with absolute paths, to edit."""
    table = pd.read_csv(data.cohort()).head(4)
    base = data.cohort().parent
    table["image"] = [str(base / p) for p in table["image"]]
    table["mask"] = [str(base / p) for p in table["mask"]]
    return table


def _write(table, path):
    table.to_csv(path, index=False)
    return str(path)


def test_cohort_with_missing_file_names_the_row(tmp_path, capsys, cohort_copy):
    cohort_copy.loc[2, "mask"] = str(tmp_path / "nowhere.nrrd")
    out = tmp_path / "out" / "features.csv"
    message = _fails(capsys, "extract", _write(cohort_copy, tmp_path / "c.csv"), "--output", str(out), fragment="row 4")
    assert "nowhere.nrrd" in message
    assert not (tmp_path / "out").exists()


def test_cohort_with_missing_label_names_the_row(tmp_path, capsys, cohort_copy):
    cohort_copy["label"] = cohort_copy["label"].astype(object)
    cohort_copy.loc[1, "label"] = ""
    _fails(
        capsys,
        "extract",
        _write(cohort_copy, tmp_path / "c.csv"),
        "--output",
        str(tmp_path / "f.csv"),
        fragment="row 3",
    )
    assert not (tmp_path / "f.csv").exists()


def test_cohort_with_unknown_column(tmp_path, capsys, cohort_copy):
    cohort_copy["age"] = 50
    _fails(
        capsys,
        "extract",
        _write(cohort_copy, tmp_path / "c.csv"),
        "--output",
        str(tmp_path / "f.csv"),
        fragment="'age'",
    )


def test_params_with_unknown_key(tmp_path, capsys, cohort_copy):
    params = tmp_path / "p.yaml"
    params.write_text("setting:\n  binWidth: 5\n  normalise: true\n")
    _fails(
        capsys,
        "extract",
        _write(cohort_copy, tmp_path / "c.csv"),
        "--output",
        str(tmp_path / "f.csv"),
        "--params",
        str(params),
        fragment="normalise",
    )
    assert not (tmp_path / "f.csv").exists()


def _bad_masks(tmp_path, cohort_copy):
    """Row 3: an empty mask; row 4: a mask outside the image."""
    empty = sitk.ReadImage(cohort_copy.loc[1, "mask"]) * 0
    sitk.WriteImage(empty, str(tmp_path / "empty.nrrd"))
    far = sitk.ReadImage(cohort_copy.loc[2, "mask"])
    far.SetOrigin([o + 400 for o in far.GetOrigin()])
    sitk.WriteImage(far, str(tmp_path / "far.nrrd"))
    cohort_copy.loc[1, "mask"] = str(tmp_path / "empty.nrrd")
    cohort_copy.loc[2, "mask"] = str(tmp_path / "far.nrrd")
    return _write(cohort_copy, tmp_path / "c.csv")


def test_failed_cases_are_logged_or_fatal_with_strict(tmp_path, capsys, cohort_copy):
    csv = _bad_masks(tmp_path, cohort_copy)
    _fails(
        capsys, "extract", csv, "--output", str(tmp_path / "strict.csv"), "--strict", "--workers", "1", fragment="row 3"
    )
    assert not list(tmp_path.glob("strict.csv*"))
    capsys.readouterr()
    assert data.run("hip", "extract", csv, "--output", str(tmp_path / "f.csv"), "--workers", "2") == 0
    captured = capsys.readouterr()
    assert "warning: 2 of 4 cases failed" in captured.err
    assert len(pd.read_csv(tmp_path / "f.csv")) == 2
    failed = pd.read_csv(tmp_path / "f.csv.failed.csv")
    assert list(failed["row"]) == [3, 4]
    assert "empty" in failed["error"][0] and "does not overlap" in failed["error"][1]


def test_predict_errors(tmp_path, capsys):
    cohort = pd.read_csv(data.cohort())
    base = data.cohort().parent
    image, mask = str(base / cohort["image"][0]), str(base / cohort["mask"][0])
    model = str(data.model())
    _fails(capsys, "predict", image, mask, "--model", model, "--mask-label", "2", fragment="label 2 does not exist")
    empty = sitk.ReadImage(mask) * 0
    sitk.WriteImage(empty, str(tmp_path / "empty.nrrd"))
    _fails(capsys, "predict", image, str(tmp_path / "empty.nrrd"), "--model", model, fragment="empty")
    far = sitk.ReadImage(mask)
    far.SetOrigin([o + 400 for o in far.GetOrigin()])
    sitk.WriteImage(far, str(tmp_path / "far.nrrd"))
    _fails(capsys, "predict", image, str(tmp_path / "far.nrrd"), "--model", model, fragment="does not overlap")


@pytest.mark.parametrize(
    "damage, fragment",
    [
        ("delete_model", "model.json is missing"),
        ("bad_json", "not valid JSON"),
        ("edit_model", "checksum does not match"),
        ("wrong_format", "not a HipRadiomics pipeline"),
        ("fewer_features", "expects"),
        ("swap_classes", "pipeline.json: checksum does not match"),
        ("delete_checksums", "checksums.json is missing"),
        ("checksum_dropped", "does not cover model.json"),
    ],
)
def test_corrupt_model_folder(tmp_path, capsys, damage, fragment):
    """An edited folder is an error (finding 5); content checks still hold when the checksums were redone on purpose."""
    from RadiologyAICommonLib.checksums import CHECKSUMS_FILE, write_checksums

    folder = tmp_path / "model"
    shutil.copytree(data.model(), folder)
    record = json.loads((folder / "pipeline.json").read_text(encoding="utf-8"))
    if damage == "swap_classes":
        record["class_names"] = record["class_names"][::-1]
        (folder / "pipeline.json").write_text(json.dumps(record))
    elif damage == "delete_checksums":
        (folder / CHECKSUMS_FILE).unlink()
    elif damage == "checksum_dropped":
        write_checksums(folder, ["pipeline.json"])
    elif damage == "delete_model":
        (folder / "model.json").unlink()
    elif damage == "bad_json":
        (folder / "pipeline.json").write_text("{not json")
        write_checksums(folder, ["pipeline.json", "model.json"])
    elif damage == "edit_model":
        (folder / "model.json").write_text((folder / "model.json").read_text(encoding="utf-8")[:-50])
    elif damage == "wrong_format":
        record["format"] = "something else"
        (folder / "pipeline.json").write_text(json.dumps(record))
        write_checksums(folder, ["pipeline.json", "model.json"])
    elif damage == "fewer_features":
        record["selected_features"] = record["selected_features"] + ["original_extra_Feature"]
        (folder / "pipeline.json").write_text(json.dumps(record))
        write_checksums(folder, ["pipeline.json", "model.json"])
    cohort = pd.read_csv(data.cohort())
    base = data.cohort().parent
    _fails(
        capsys,
        "predict",
        str(base / cohort["image"][0]),
        str(base / cohort["mask"][0]),
        "--model",
        str(folder),
        fragment=fragment,
    )


def _table(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "case_id": [f"c{i}" for i in range(n)],
            "label": np.r_[np.ones(n // 2), np.zeros(n - n // 2)].astype(int),
            "f1": rng.normal(size=n),
            "f2": rng.normal(size=n),
        }
    )


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda t: t.assign(label=1), "only one class"),
        (lambda t: t.iloc[[0, 1, 2, 3, 15, 16, 17, 18]], "too few cases"),
        (lambda t: t.assign(f2=["x"] + list(t["f2"][1:])), "column 'f2' is not numeric (row 2"),
        (lambda t: t.assign(label=[None] + list(t["label"][1:])), "missing label in row(s) [2]"),
        (lambda t: t.assign(label=list(range(len(t)))), "classes"),
        (lambda t: t.drop(columns=["label"]), "no 'label' column"),
        (lambda t: t.iloc[:0], "no rows"),
        (
            lambda t: t.assign(f1=t["f1"] * 1e300),
            "beyond the +/-3.4e+38 XGBoost can use",
        ),  # was a 13-line XGBoost trace
    ],
)
def test_bad_feature_tables(tmp_path, capsys, edit, fragment):
    path = tmp_path / "features.csv"
    edit(_table()).to_csv(path, index=False)
    _fails(
        capsys, "train", str(path), "--output-dir", str(tmp_path / "model"), "--boruta-max-iter", "5", fragment=fragment
    )
    assert not (tmp_path / "model").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["features.csv"]  # no staging folder left behind


def test_bad_arguments(tmp_path, capsys):
    path = tmp_path / "features.csv"
    _table().to_csv(path, index=False)
    _fails(
        capsys, "train", str(path), "--output-dir", str(tmp_path / "m"), "--threshold", "high", fragment="--threshold"
    )
    _fails(
        capsys,
        "train",
        str(path),
        "--output-dir",
        str(tmp_path / "m"),
        "--selector",
        "lasso",
        fragment="invalid choice",
    )
    _fails(capsys, "train", str(tmp_path / "none.csv"), "--output-dir", str(tmp_path / "m"), fragment="no such file")
    assert not (tmp_path / "m").exists()


def test_installed_entry_point_reports_one_error_line(tmp_path):
    exe = Path(sys.executable).with_name("radiologyai")
    if not exe.exists():
        pytest.skip("radiologyai entry point not installed")
    done = subprocess.run(
        [str(exe), "hip", "train", str(tmp_path / "missing.csv"), "--output-dir", str(tmp_path / "m")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error: ")


def test_outputs_never_replace_inputs(tmp_path, capsys, cohort_copy):
    """``--output`` or ``--failed-log`` naming the cohort or one of its images is refused before extraction."""
    cohort = _write(cohort_copy, tmp_path / "c.csv")
    image = cohort_copy["image"][0]
    before = (Path(cohort).read_bytes(), Path(image).read_bytes())
    _fails(capsys, "extract", cohort, "--output", cohort, "--overwrite", fragment="is an input of this command")
    _fails(
        capsys,
        "extract",
        cohort,
        "--output",
        str(tmp_path / "f.csv"),
        "--failed-log",
        image,
        "--overwrite",
        fragment="is an input of this command",
    )
    assert (Path(cohort).read_bytes(), Path(image).read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv"]


def test_synth_keeps_the_users_files(tmp_path, capsys):
    """The first wave's staging deleted existing sub-folders whole (the user's images and masks)."""
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "mine.nrrd").write_text("the user's image")
    _fails(capsys, "synth", "--output-dir", str(tmp_path), "--cases", "4", "--size", "24", fragment="is not empty")
    assert data.run("hip", "synth", "--output-dir", str(tmp_path), "--cases", "4", "--size", "24", "--overwrite") == 0
    assert (tmp_path / "images" / "mine.nrrd").read_text() == "the user's image"
    assert len(list((tmp_path / "images").iterdir())) == 5
