"""A property-based sweep of user input (hypothesis): every command succeeds with complete outputs, or exits 2 with
exactly one ``error:`` line; never exit 1, never a traceback, never a byte of the user's files changed.

Inputs are what a careless user, a damaged file or a full disk produce: small images with any dtype, spacing
(0, negative, NaN, 10 mm) and direction (flipped, oblique, sheared), NaN and inf voxels, written as raw NRRD
headers so the file holds exactly those values; random VesselQuant parameter JSON; random feature tables; and
output folders that hold the user's files, contain the inputs, are files, or sit on a full file system.

CI runs a fixed seed and a small budget (profile "ci"); ``HYPOTHESIS_PROFILE=long`` is the longer sweep:
``HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest Testing/common/test_robustness_sweep.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from RadiologyAICommonLib.cli import main  # noqa: E402
from RadiologyAICommonLib.outputs import STAGING_PREFIX  # noqa: E402

settings.register_profile(
    "ci", max_examples=50, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
settings.register_profile(
    "long", max_examples=2000, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DTYPES = {
    "int8": "int8",
    "uint8": "uchar",
    "int16": "short",
    "uint16": "ushort",
    "int32": "int",
    "float32": "float",
    "float64": "double",
}
NUMBERS = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 10.0, 1e-9, 1e308, -1e308, math.nan, math.inf, -math.inf]),
    st.floats(-1e4, 1e4, allow_nan=False),
    st.integers(-10, 10),
)


def _write_nrrd(path: Path, array: np.ndarray, spacing, direction, origin=(0.0, 0.0, 0.0)) -> None:
    """A NRRD file written by hand, so spacing and direction are exactly what the example says (SimpleITK would
    refuse to build some of these images, and a user's converter would not)."""
    columns = np.asarray(direction, dtype=float).reshape(3, 3).T * np.asarray(spacing, dtype=float)  # one per axis
    vectors = " ".join("(" + ",".join(repr(float(v)) for v in column) + ")" for column in columns)
    header = (
        f"NRRD0004\ntype: {DTYPES[array.dtype.name]}\ndimension: 3\nspace: left-posterior-superior\n"
        f"sizes: {array.shape[2]} {array.shape[1]} {array.shape[0]}\nspace directions: {vectors}\n"
        f"space origin: ({','.join(repr(float(o)) for o in origin)})\nendian: little\nencoding: raw\n\n"
    )
    path.write_bytes(header.encode("ascii") + array.astype(array.dtype.newbyteorder("<")).tobytes())


@st.composite
def small_images(draw):
    shape = tuple(draw(st.integers(1, 12)) for _ in range(3))
    dtype = np.dtype(draw(st.sampled_from(sorted(DTYPES))))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    info = np.iinfo(dtype) if dtype.kind in "iu" else None
    kind = draw(st.sampled_from(["ct-like", "random", "constant"]))
    if kind == "ct-like":
        values = rng.choice([-1000.0, -850.0, 40.0], size=shape)
    elif kind == "random":
        values = rng.uniform(-2000, 2000, size=shape)
    else:
        values = np.full(shape, draw(st.sampled_from([-1000.0, 0.0, 1.0])))
    if info is not None:
        values = np.clip(values, info.min, info.max)
    array = values.astype(dtype)
    if dtype.kind == "f" and draw(st.booleans()):
        array.flat[draw(st.integers(0, array.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    spacing = tuple(draw(st.sampled_from([0.7, 1.0, 10.0, 0.0, -1.0, math.nan])) for _ in range(3))
    direction = draw(
        st.sampled_from(
            [
                np.eye(3),
                np.diag([1.0, -1.0, -1.0]),
                [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
                [[1.0, 0.3, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
                np.zeros((3, 3)),
            ]
        )
    )
    return array, spacing, direction


def _run(*args) -> tuple[int, list[str], str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(["--progress", "none", *map(str, args)])
    return code, [line for line in err.getvalue().splitlines() if line.strip()], out.getvalue()


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _check_contract(code, errors, folder: Path, before: dict, out: Path, outputs) -> None:
    assert code in (0, 2), (code, errors)
    if code == 2:
        assert len(errors) == 1 and errors[0].startswith("error: "), errors
        assert "internal error" not in errors[0] and "Traceback" not in errors[0], errors
    else:
        assert all((out / name).is_file() for name in outputs), sorted(os.listdir(out))
    after = {k: v for k, v in _snapshot(folder).items() if k in before}
    assert after == before, "a user's file changed"
    assert not list(folder.rglob(f"{STAGING_PREFIX}*")), "staging left behind"


@given(small_images())
def test_vessels_on_any_small_image(example):
    from VesselQuantLib.cli import OUTPUT_FILES

    array, spacing, direction = example
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_nrrd(folder / "ct.nrrd", array, spacing, direction)
        before = _snapshot(folder)
        code, errors, _ = _run("vessels", folder / "ct.nrrd", "--output-dir", folder / "out")
        _check_contract(code, errors, folder, before, folder / "out", OUTPUT_FILES)


@pytest.fixture(scope="module")
def small_ct(tmp_path_factory):
    import SimpleITK as sitk

    from VesselQuantLib.vessel_phantom import make_vessel_phantom

    path = tmp_path_factory.mktemp("sweep") / "ct.nrrd"
    sitk.WriteImage(make_vessel_phantom(size_xyz=(48, 48, 24), seed=1, root_radius_mm=1.5).image, str(path))
    return path


def _parameter_names():
    import dataclasses

    from VesselQuantLib.parameters import VesselQuantParameters

    return sorted(f.name for f in dataclasses.fields(VesselQuantParameters)) + ["no_such_parameter"]


@given(st.data())
def test_vessels_with_any_parameter_json(small_ct, data):
    from VesselQuantLib.cli import OUTPUT_FILES

    value = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=4), st.lists(NUMBERS, max_size=3))
    parameters = data.draw(st.dictionaries(st.sampled_from(_parameter_names()), value, max_size=3))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "p.json").write_text(json.dumps(parameters))  # NaN / Infinity as JSON writes them
        before = _snapshot(folder)
        code, errors, _ = _run("vessels", small_ct, "--parameters", folder / "p.json", "--output-dir", folder / "out")
        _check_contract(code, errors, folder, before, folder / "out", OUTPUT_FILES)


@given(st.data())
def test_hip_train_on_any_feature_table(data):
    import pandas as pd

    rows = data.draw(st.integers(0, 24))
    columns = data.draw(st.integers(0, 4))
    cell = st.one_of(NUMBERS, st.just("text"), st.just(""))
    table = {
        "case_id": [f"c{i}" for i in range(rows)],
        "label": data.draw(st.lists(st.sampled_from([0, 1, 2, "x"]), min_size=rows, max_size=rows)),
    }
    for j in range(columns):
        table[f"original_firstorder_F{j}"] = data.draw(st.lists(cell, min_size=rows, max_size=rows))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pd.DataFrame(table).to_csv(folder / "features.csv", index=False)
        before = _snapshot(folder)
        code, errors, _ = _run(
            "hip",
            "train",
            folder / "features.csv",
            "--output-dir",
            folder / "model",
            "--selector",
            "none",
            "--n-jobs",
            "1",
        )
        _check_contract(
            code, errors, folder, before, folder / "model", ["model.json", "pipeline.json", "checksums.json"]
        )


def _full_file_system(folder: Path):
    """A 64 KiB tmpfs at ``folder`` (root only); None where it cannot be mounted."""
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    return folder if done.returncode == 0 else None


@given(
    st.sampled_from(
        [
            "user-file",
            "same-name",
            "input-inside",
            "is-a-file",
            "empty-name",
            "nested-new",
            "full-disk",
            "overwrite-foreign",
        ]
    )
)
def test_output_folder_situations(situation):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out = folder / "cohort"
        extra = []
        mounted = None
        if situation in ("user-file", "overwrite-foreign"):
            out.mkdir()
            (out / "notes.txt").write_text("mine")
            extra = ["--overwrite"] if situation == "overwrite-foreign" else []
        elif situation == "same-name":
            out.mkdir()
            (out / "cohort.csv").write_text("my cohort")
            extra = ["--overwrite"]
        elif situation == "input-inside":
            out.mkdir()
            (out / "images").mkdir()
            (out / "images" / "mine.nrrd").write_text("the user's image")
            extra = ["--overwrite"]
        elif situation == "is-a-file":
            out.write_text("a file")
        elif situation == "empty-name":
            out = Path("")
        elif situation == "nested-new":
            out = folder / "a" / "b" / "cohort"
        elif situation == "full-disk":
            mounted = _full_file_system(folder / "small")
            if mounted is None:
                pytest.skip("cannot mount a tmpfs here (not root)")
            out = mounted / "cohort"
        before = _snapshot(folder)
        try:
            code, errors, _ = _run(
                "hip", "synth", "--output-dir", str(out) if str(out) else "", "--cases", 6, "--size", 24, *extra
            )
            _check_contract(code, errors, folder, before, out, ["cohort.csv", "truth.csv"])
            if situation in ("user-file", "is-a-file", "empty-name", "full-disk"):
                assert code == 2, situation
            if situation == "same-name":
                assert code == 2 and (out / "cohort.csv").read_text() == "my cohort"
        finally:
            if mounted is not None:
                subprocess.run(["umount", str(mounted)], capture_output=True)
