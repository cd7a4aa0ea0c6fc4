"""``radiologyai vessels`` end to end: outputs, progress, and the bad-input contract (exit 2, one error
line, nothing written)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from RadiologyAICommonLib.cli import main
from RadiologyAICommonLib.outputs import MANIFEST
from RadiologyAICommonLib.imageio import image_from_array
from VesselQuantLib.cli import OUTPUT_FILES


def test_cli_writes_exactly_the_named_outputs(tmp_path, phantom_files, small_phantom, capsys):
    ct, lung = phantom_files
    out = tmp_path / "out"
    code = main(
        [
            "--progress",
            "none",
            "vessels",
            str(ct),
            "--output-dir",
            str(out),
            "--lung-mask",
            str(lung),
            "--radius-bins",
            "0.25",
            "0.5",
            "1",
            "2",
            "2.5",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUT_FILES, MANIFEST])  # and the record of what it wrote
    printed = json.loads(capsys.readouterr().out)
    summary = json.loads((out / "summary.json").read_text())
    assert printed == summary
    for key in (
        "total_volume_ml",
        "lung_volume_ml",
        "vessel_fraction",
        "small_vessel_volume_ml",
        "fit_alpha",
        "fit_beta",
        "fit_r2",
        "runtime_s",
        "parameters",
    ):
        assert key in summary
    assert summary["parameters"]["radius_bins_mm"] == [0.25, 0.5, 1.0, 2.0, 2.5]
    table = pd.read_csv(out / "per_radius.csv")
    assert list(table.columns) == ["radius_mm", "voxel_count", "volume_ml", "median_hu", "iqr_hu"]
    assert table["radius_mm"].tolist() == [0.25, 0.5, 1.0, 2.0, 2.5]
    label = sitk.ReadImage(str(out / "vessel_label.nrrd"))
    radius = sitk.ReadImage(str(out / "vessel_radius.nrrd"))
    lung_out = sitk.ReadImage(str(out / "lung_mask.nrrd"))
    assert label.GetPixelID() == sitk.sitkUInt8 and radius.GetPixelID() == sitk.sitkFloat32
    for image in (label, radius, lung_out):
        assert image.GetSize() == small_phantom.image.GetSize()
        assert np.allclose(image.GetDirection(), small_phantom.image.GetDirection(), atol=1e-6)
        assert np.allclose(image.GetOrigin(), small_phantom.image.GetOrigin(), atol=1e-4)
    assert table["voxel_count"].sum() == sitk.GetArrayFromImage(label).sum()
    assert summary["total_volume_ml"] == pytest.approx(table["volume_ml"].sum(), rel=1e-6)


def test_cli_subprocess_progress_lines(tmp_path, phantom_files):
    ct, _ = phantom_files
    out = tmp_path / "o"
    exe = Path(sys.executable).with_name("radiologyai")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "RadiologyAICommonLib"]
    done = subprocess.run(
        command + ["--progress", "lines", "vessels", str(ct), "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("PROGRESS")]
    assert len(lines) > 5 and lines[-1].startswith("PROGRESS 1.0000")
    assert (out / "summary.json").is_file()


def _mri_like(path):
    image = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 1200, (16, 24, 24)).astype(np.int16))
    sitk.WriteImage(image, str(path))


def _four_d(path):
    image = sitk.JoinSeries([sitk.Image(8, 8, 8, sitk.sitkInt16)] * 2)
    sitk.WriteImage(image, str(path))


def _nan(path):
    array = np.full((10, 12, 12), -1000, np.float32)
    array[2, 2, 2] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))


def _two_d(path):
    sitk.WriteImage(sitk.GetImageFromArray(np.full((20, 20), -1000, np.int16)), str(path))


def _vector(path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((6, 8, 8, 3), np.int16), isVector=True), str(path))


def _garbage(path):
    path.write_bytes(b"this is not an image")


def _no_lungs(path):
    array = np.full((16, 40, 40), 40, np.int16)
    array[:, :3, :] = -1000
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))


def _lung_like(shape=(16, 40, 40)):
    array = np.full(shape, -850, np.int16)
    array[..., :2] = 40
    return array


def _sheared(path):
    """A converter's shear written into the direction matrix: volumes would be 12-41 % off (finding 6)."""
    image = sitk.GetImageFromArray(_lung_like())
    image.SetDirection((1.0, 0.3, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(image, str(path))


def _one_slice(path):
    """A single slice: ITK's 'less than 4 pixels' before; now the command says what it needs."""
    sitk.WriteImage(sitk.GetImageFromArray(_lung_like((1, 40, 40))), str(path))


@pytest.mark.parametrize(
    "writer",
    [None, _garbage, _two_d, _four_d, _vector, _nan, _mri_like, _no_lungs, _sheared, _one_slice],
    ids=["missing", "garbage", "2d", "4d", "vector", "nan", "mri", "no-lungs", "sheared", "one-slice"],
)
def test_cli_bad_ct(tmp_path, writer, capsys):
    path = tmp_path / "in.nrrd"
    if writer is not None:
        writer(path)
    out = tmp_path / "out"
    code = main(["--progress", "none", "vessels", str(path), "--output-dir", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ")
    if writer in (_sheared, _one_slice):
        assert ("not orthonormal" if writer is _sheared else "at least 4 voxels along each axis") in err[0], err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if writer is None else ["in.nrrd"])  # no staging left


def test_cli_bad_lung_mask_and_parameters(tmp_path, phantom_files, small_phantom, capsys):
    ct, lung = phantom_files
    shifted = sitk.Image(small_phantom.lung_mask)
    shifted.SetSpacing((1.0, 1.0, 1.0))
    bad_mask = tmp_path / "bad_mask.nrrd"
    sitk.WriteImage(shifted, str(bad_mask))
    body = image_from_array((sitk.GetArrayFromImage(small_phantom.image) > -300).astype("uint8"), small_phantom.image)
    soft_tissue_mask = tmp_path / "soft_tissue_mask.nrrd"  # holds no lung (issue 13's bad input)
    sitk.WriteImage(body, str(soft_tissue_mask))
    bad_json = tmp_path / "p.json"
    bad_json.write_text('{"no_such_parameter": 1}')
    cases = [
        ["--lung-mask", str(bad_mask)],
        ["--lung-mask", str(tmp_path / "missing.nrrd")],
        ["--lung-mask", str(soft_tissue_mask)],
        ["--radius-bins", "1", "-2"],
        ["--radius-bin-width", "0"],
        ["--parameters", str(bad_json)],
        ["--parameters", str(tmp_path / "missing.json")],
        # values, not only types: NaN / inf / absurd numbers changed results silently or exhausted memory
        ["--vessel-hu", "nan"],
        ["--vessel-hu", "inf"],
        ["--vessel-hu", "1e308"],
        ["--radius-bin-width", "1e-9"],
    ]
    for number, text in enumerate(
        [
            '{"frangi_beta": NaN}',
            '{"subvoxel_radius": "no"}',
            '{"radius_bin_mm": 1e-9}',
            '{"fit_min_count": 2.5}',
            '{"vesselness_sigmas_mm": [0.5, 1e308]}',
            '{"vessel_vesselness": "0.8"}',
        ]
    ):
        (tmp_path / f"bad{number}.json").write_text(text)
        cases.append(["--parameters", str(tmp_path / f"bad{number}.json")])
    for extra in cases:
        out = tmp_path / "out"
        code = main(["--progress", "none", "vessels", str(ct), "--output-dir", str(out), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, extra
        assert len(err) == 1 and err[0].startswith("error: "), (extra, err)
        assert not out.exists(), extra


def test_result_folder_round_trip(tmp_path, small_result):
    """What the Slicer widget reads back from the worker's output folder."""
    from VesselQuantLib.resultio import read_result, write_result

    write_result(small_result, tmp_path)
    back = read_result(tmp_path)
    assert np.array_equal(sitk.GetArrayFromImage(back.vessel_label), sitk.GetArrayFromImage(small_result.vessel_label))
    assert np.allclose(sitk.GetArrayFromImage(back.vessel_radius), sitk.GetArrayFromImage(small_result.vessel_radius))
    pd.testing.assert_frame_equal(back.per_radius, small_result.per_radius, check_dtype=False)
    assert back.summary["total_volume_ml"] == pytest.approx(small_result.summary["total_volume_ml"])
    from RadiologyAICommonLib.errors import RadiologyAIError

    with pytest.raises(RadiologyAIError, match="not a VesselQuant output folder"):
        read_result(tmp_path / "nothing")


def test_outputs_never_replace_the_users_files(tmp_path, phantom_files, capsys):
    """Results into the CT's own folder: refused without --overwrite; with it, the user's mask is not replaced."""
    ct, lung = phantom_files
    mask = tmp_path / "lung_mask.nrrd"  # the name VesselQuant gives its own lung mask output
    mask.write_bytes(lung.read_bytes())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    args = ["--progress", "none", "vessels", str(ct), "--lung-mask", str(mask), "--output-dir", str(tmp_path)]
    for extra, fragment in (([], "is not empty"), (["--overwrite"], "is an input of this command")):
        capsys.readouterr()
        assert main([*args, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
