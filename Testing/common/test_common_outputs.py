"""The output contract (RadiologyAICommonLib.outputs): all or nothing, and never a file RadiologyAI did not write."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.outputs import (
    MANIFEST,
    STAGING_PREFIX,
    check_output_dir,
    staged_output_dir,
    staged_output_files,
)


def _write(stage, name, text="new"):
    path = stage / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_new_folder_all_or_nothing(tmp_path):
    out = tmp_path / "results"
    with pytest.raises(RuntimeError):
        with staged_output_dir(out, command="t") as stage:
            _write(stage, "a.txt")
            raise RuntimeError("crash half-way")
    assert os.listdir(tmp_path) == []
    with staged_output_dir(out, command="t") as stage:
        _write(stage, "a.txt")
        _write(stage, "sub/b.txt")
    assert sorted(os.listdir(out)) == [MANIFEST, "a.txt", "sub"]
    assert json.loads((out / MANIFEST).read_text())["files"] == {"a.txt": "t", "sub/b.txt": "t"}


def test_non_empty_folder_needs_overwrite_and_is_left_alone(tmp_path):
    (tmp_path / "acquisitions").mkdir()
    (tmp_path / "acquisitions" / "real.nrrd").write_text("the user's scan")
    before = _snapshot(tmp_path)
    with pytest.raises(RadiologyAIError, match="not empty.*--overwrite"):
        with staged_output_dir(tmp_path, command="t"):
            pytest.fail("entered")
    assert _snapshot(tmp_path) == before
    # --overwrite writes beside the user's files and never deletes their folder
    with staged_output_dir(tmp_path, command="t", overwrite=True) as stage:
        _write(stage, "acquisitions/sim.nrrd")
    assert (tmp_path / "acquisitions" / "real.nrrd").read_text() == "the user's scan"
    assert (tmp_path / "acquisitions" / "sim.nrrd").read_text() == "new"


def test_overwrite_never_replaces_a_file_radiologyai_did_not_write(tmp_path):
    (tmp_path / "summary.json").write_text("the user's")
    (tmp_path / "notes").write_text("a file where an output folder would go")
    before = _snapshot(tmp_path)
    for name in ("summary.json", "notes/x.txt"):
        with pytest.raises(RadiologyAIError, match="left alone"):
            with staged_output_dir(tmp_path, command="t", overwrite=True) as stage:
                _write(stage, "fine.txt")
                _write(stage, name)
        assert _snapshot(tmp_path) == before


def test_rerun_replaces_its_own_files_and_removes_its_stale_ones(tmp_path):
    out = tmp_path / "model"
    with staged_output_dir(out, command="train") as stage:
        _write(stage, "model.pt", "v1")
        _write(stage, "validation_masks/case_1.nrrd", "v1")
    with staged_output_dir(out, command="extract", overwrite=True) as stage:
        _write(stage, "features.csv", "other command")
    (out / "user.txt").write_text("keep")
    with pytest.raises(RadiologyAIError, match="not empty"):
        with staged_output_dir(out, command="train"):
            pass
    with staged_output_dir(out, command="train", overwrite=True) as stage:
        _write(stage, "model.pt", "v2")
    assert (out / "model.pt").read_text() == "v2"
    assert not (out / "validation_masks").exists()  # the previous training's, not written again
    assert (out / "features.csv").read_text() == "other command" and (out / "user.txt").read_text() == "keep"
    assert json.loads((out / MANIFEST).read_text())["files"] == {"features.csv": "extract", "model.pt": "train"}


def test_a_failed_move_puts_everything_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with staged_output_dir(out, command="t") as stage:
        for name in ("a.txt", "b.txt", "c.txt"):
            _write(stage, name, "old")
    before = _snapshot(out)
    real_replace, calls = os.replace, []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 5:  # after the old files were set aside and some new ones moved in
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(RadiologyAIError, match="disk is full"):
        with staged_output_dir(out, command="t", overwrite=True) as stage:
            for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
                _write(stage, name, "new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert _snapshot(out) == before
    assert not list(out.glob(f"{STAGING_PREFIX}*"))


def test_inputs_are_never_outputs(tmp_path):
    dataset = tmp_path / "dataset"
    (dataset / "labels").mkdir(parents=True)
    with pytest.raises(RadiologyAIError, match="inside the input folder"):
        with staged_output_dir(dataset, command="t", inputs=[dataset], overwrite=True):
            pass
    with pytest.raises(RadiologyAIError, match="inside the input folder"):
        with staged_output_dir(dataset / "preds", command="t", inputs=[dataset]):
            pass
    mask = tmp_path / "run" / "lung_mask.nrrd"
    mask.parent.mkdir()
    mask.write_text("the user's mask")
    with pytest.raises(RadiologyAIError, match="is an input"):
        with staged_output_dir(mask.parent, command="t", inputs=[mask], overwrite=True) as stage:
            _write(stage, "lung_mask.nrrd")
    assert mask.read_text() == "the user's mask"
    with pytest.raises(RadiologyAIError, match="is an input"):
        staged_output_files([tmp_path / "c.csv"], command="t", inputs=[tmp_path / "c.csv"])
    with pytest.raises(RadiologyAIError, match="empty"):
        staged_output_dir("", command="t").__enter__()


def test_files_into_a_shared_folder_go_in_together(tmp_path):
    (tmp_path / "cohort.csv").write_text("the user's cohort")
    paths = [tmp_path / "features.csv", tmp_path / "features.csv.meta.json"]
    with staged_output_files(paths, command="extract", inputs=[tmp_path / "cohort.csv"]) as stage:
        for p in paths:
            _write(stage, p.name, "v1")
    assert (tmp_path / "cohort.csv").read_text() == "the user's cohort"
    with pytest.raises(RadiologyAIError, match="add --overwrite"):
        with staged_output_files(paths, command="extract") as stage:
            for p in paths:
                _write(stage, p.name, "v2")
    with pytest.raises(RuntimeError):  # a failure leaves the pair as it was: never a new sidecar beside an old table
        with staged_output_files(paths, command="extract", overwrite=True) as stage:
            _write(stage, paths[1].name, "v2")
            raise RuntimeError("disk full while writing the table")
    assert [p.read_text() for p in paths] == ["v1", "v1"]
    with staged_output_files([tmp_path / "other.csv"], command="extract") as stage:
        _write(stage, "other.csv", "x")
    assert all(p.exists() for p in paths)  # another table in the same folder is not "stale"


def test_stale_staging_of_a_killed_run_is_removed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    litter = out / f"{STAGING_PREFIX}{dead.stdout.strip()}-abc"
    litter.mkdir()
    (litter / "half.nrrd").write_text("x")
    with staged_output_dir(out, command="t") as stage:  # only the litter: the folder counts as empty
        _write(stage, "a.txt")
    assert sorted(os.listdir(out)) == [MANIFEST, "a.txt"]


def test_output_through_a_symlink_stages_on_the_target_file_system(tmp_path):
    real = tmp_path / "mounted"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with staged_output_dir(tmp_path / "link", command="t") as stage:
        assert stage.parent == real
        _write(stage, "a.txt")
    assert (real / "a.txt").read_text() == "new"


def test_check_output_dir_refuses_before_computing(tmp_path):
    (tmp_path / "x.txt").write_text("user")
    with pytest.raises(RadiologyAIError, match="not empty"):
        check_output_dir(tmp_path)
    check_output_dir(tmp_path / "new" / "deeper")
    (tmp_path / "file").write_text("")
    with pytest.raises(RadiologyAIError, match="is a file"):
        check_output_dir(tmp_path / "file")
    assert sorted(os.listdir(tmp_path)) == ["file", "x.txt"]
