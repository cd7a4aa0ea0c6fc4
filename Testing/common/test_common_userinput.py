"""The shared helpers for what users type and for the files a run hands to the worker."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from RadiologyAICommonLib.atomic import json_ready, write_json
from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import image_from_array
from RadiologyAICommonLib.userinput import parse_names, parse_numbers, path_is_set
from RadiologyAICommonLib.workdir import make_work_dir, output_dir, remove_work_dir


def test_parse_numbers_reads_commas_and_spaces_and_names_the_field_in_errors():
    assert parse_numbers("0.5, 1  2,", "--doses") == [0.5, 1.0, 2.0]
    assert parse_numbers("-1 0 1", "--offsets", positive=False) == [-1.0, 0.0, 1.0]
    assert parse_numbers("1 1", "--spacing", unique=False) == [1.0, 1.0]
    for text, message in (
        ("1, x", "--doses: 'x' is not a number"),
        ("1 -2", "--doses: values must be positive"),
        ("1 nan", "--doses: values must be positive"),
        (" , ", "--doses: give at least one value"),
        ("1 1", "--doses: repeated value"),
    ):
        with pytest.raises(RadiologyAIError, match=message):
            parse_numbers(text, "--doses")


def test_parse_names_and_path_is_set():
    assert parse_names(" a, b ,,") == ["a", "b"]
    assert parse_names("") is None and parse_names(None) is None
    assert not path_is_set(Path()) and not path_is_set("") and not path_is_set(None) and not path_is_set("  ")
    assert path_is_set(Path("model")) and path_is_set("/tmp")


def test_json_ready_gives_strict_json(tmp_path):
    value = {
        1: np.float32(0.5),
        "a": (np.int64(3), np.array([1, 2])),
        "nan": float("nan"),
        "inf": np.float64("inf"),
        "path": Path("x/y"),
        "flag": np.bool_(True),
        "other": object(),
    }
    ready = json_ready(value, unknown=lambda v: "object")
    assert ready == {
        "1": 0.5,
        "a": [3, [1, 2]],
        "nan": None,
        "inf": None,
        "path": "x/y",
        "flag": True,
        "other": "object",
    }
    assert type(ready["a"][0]) is int and type(ready["flag"]) is bool
    written = write_json(tmp_path / "out.json", {"value": math.nan, "array": np.zeros(2)})
    assert json.loads(written.read_text()) == {"value": None, "array": [0.0, 0.0]}  # strict: no NaN token


def test_image_from_array_copies_the_geometry():
    reference = sitk.Image(4, 3, 2, sitk.sitkInt16)
    reference.SetSpacing((0.5, 0.6, 2.0))
    reference.SetOrigin((1.0, -2.0, 3.0))
    reference.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, -1))
    image = image_from_array(np.ones((2, 3, 4), np.uint8), reference)
    assert image.GetSize() == (4, 3, 2) and image.GetPixelID() == sitk.sitkUInt8
    assert image.GetSpacing() == reference.GetSpacing() and image.GetOrigin() == reference.GetOrigin()
    assert image.GetDirection() == reference.GetDirection()


def test_work_dir_is_new_each_time_and_removed_with_its_contents():
    first, second = make_work_dir("Module"), make_work_dir("Module")
    try:
        assert first != second and first.name.startswith("Module-") and not any(first.iterdir())
        assert output_dir(first) == first / "output"
        (first / "ct.nrrd").write_bytes(b"x")
    finally:
        remove_work_dir(first)
        remove_work_dir(second)
    assert not first.exists() and not second.exists()
    remove_work_dir(first)  # already gone: nothing happens
    remove_work_dir(None)
