"""``radiologyai phantom simulate | study | demo`` end to end, and the bad-input contract."""

from __future__ import annotations

import json

import numpy as np

import pandas as pd
import pytest
import SimpleITK as sitk
from phantomqa_helpers import SMALL_SIZE, SMALL_SPACING, write_ct_series

from PhantomQALib.aggregate import SUMMARY_COLUMNS, VOLUME_COLUMNS
from RadiologyAICommonLib.cli import main

GRID = ["--phantom", "small", "--size", ",".join(map(str, SMALL_SIZE)), "--spacing", ",".join(map(str, SMALL_SPACING))]


def run(args, capsys):
    code = main(["--progress", "none", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom") / "sim"
    code = main(
        [
            "--progress",
            "none",
            "phantom",
            "simulate",
            "--output-dir",
            str(folder),
            "--doses",
            "0.5,4",
            "--recons",
            "fbp,dlr",
            "--repetitions",
            "2",
            "--workers",
            "1",
            *GRID,
        ]
    )
    assert code == 0
    return folder


def test_simulate_writes_scans_manifest_and_design(simulated):
    manifest = pd.read_csv(simulated / "manifest.csv")
    assert list(manifest.columns) == ["path", "recon", "ctdivol_mgy", "repetition"]
    assert len(manifest) == 8 and set(manifest["recon"]) == {"fbp", "dlr"}
    image = sitk.ReadImage(str(simulated / manifest["path"][0]))
    assert image.GetSize() == SMALL_SIZE and image.GetSpacing() == pytest.approx(SMALL_SPACING)
    assert image.GetPixelID() == sitk.sitkInt16
    for name in ("design.json", "design_label.nrrd", "design_radius.nrrd", "centrelines.csv"):
        assert (simulated / "design" / name).is_file()
    # noisier at the lower dose
    low = sitk.GetArrayFromImage(sitk.ReadImage(str(simulated / "acquisitions/fbp_0.5mGy_rep1.nrrd"))).astype(float)
    high = sitk.GetArrayFromImage(sitk.ReadImage(str(simulated / "acquisitions/fbp_4mGy_rep1.nrrd"))).astype(float)
    assert low[40, 5:20, 30:50].std() > 2 * high[40, 5:20, 30:50].std()


def test_study_on_a_manifest_writes_the_tables_and_report(simulated, tmp_path, capsys):
    out_dir = tmp_path / "study"
    code, out, err = run(
        ["phantom", "study", str(simulated / "manifest.csv"), "--output-dir", str(out_dir), "--workers", "2"], capsys
    )
    assert code == 0, err
    summary = pd.read_csv(out_dir / "summary.csv")
    volumes = pd.read_csv(out_dir / "volumes.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert list(volumes.columns) == VOLUME_COLUMNS
    assert len(summary) == 2 * 2 * 10 and len(volumes) == 4
    three = summary[summary["radius_mm"] == 3.0].set_index(["recon", "ctdivol_mgy"])
    assert three.loc[("fbp", 0.5), "iqr_mean_hu"] > three.loc[("fbp", 4.0), "iqr_mean_hu"]  # IQR falls with dose
    assert three.loc[("dlr", 0.5), "iqr_mean_hu"] < three.loc[("fbp", 0.5), "iqr_mean_hu"]
    assert three["iqr_sd_hu"].notna().all() and (three["detection_mean"] > 0.9).all()
    report = (out_dir / "report.html").read_text(encoding="utf-8")
    assert report.count("<img") >= 2 and "Acquisitions" in report  # MPV/IQR/volume vs dose, detection vs radius
    assert "Not available from the study" in report and "interpolated" not in report
    assert "Vessels of design radius 3 mm" in out and "FBP" in out
    assert json.loads(out[out.index("{") :])["acquisitions"] == 8
    acquisitions = pd.read_csv(out_dir / "acquisitions.csv")
    assert (acquisitions["alignment"] == "identity").all()  # the scans are in the design's frame


def test_study_on_a_dicom_folder(simulated, tmp_path, capsys):
    manifest = pd.read_csv(simulated / "manifest.csv")
    chosen = manifest[manifest["ctdivol_mgy"] == 4.0]
    for number, row in enumerate(chosen.itertuples(), start=1):
        image = sitk.ReadImage(str(simulated / row.path))
        kernel, description = ("FC52", "Lung FBP") if row.recon == "fbp" else ("FC52", "AiCE Lung")
        write_ct_series(image, tmp_path / "dicom" / f"series{number}", 4.0 + 0.05 * number, kernel, description, number)
    out_dir = tmp_path / "dicom_study"
    code, out, err = run(
        [
            "phantom",
            "study",
            str(tmp_path / "dicom"),
            "--output-dir",
            str(out_dir),
            "--design",
            str(simulated / "design"),
            "--workers",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    acquisitions = pd.read_csv(out_dir / "acquisitions.csv")
    assert sorted(acquisitions["recon"]) == ["dlr", "dlr", "fbp", "fbp"]
    assert set(acquisitions["kernel"]) == {"FC52"}
    # CTDIvol as recorded per series, grouped to one nominal dose
    assert sorted(acquisitions["measured_ctdivol_mgy"]) == pytest.approx([4.05, 4.1, 4.15, 4.2])
    assert set(acquisitions["ctdivol_mgy"]) == {4.1}
    volumes = pd.read_csv(out_dir / "volumes.csv")
    assert (volumes["volume_mean_ml"] > 1.0).all()


def _assert_refused(code, err, out_dir, *fragments):
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0]
    assert not out_dir.exists()
    assert not list(out_dir.parent.glob(f".{out_dir.name}*"))  # no staging left behind


def test_bad_manifests_are_refused_and_nothing_is_written(simulated, tmp_path, capsys):
    manifest = pd.read_csv(simulated / "manifest.csv")
    manifest["path"] = [str(simulated / p) for p in manifest["path"]]
    cases = {
        "missing": (
            lambda m: m.assign(path=m["path"].where(m.index != 2, str(tmp_path / "gone.nrrd"))),
            ["row 3", "gone.nrrd does not exist"],
        ),
        "recon": (
            lambda m: m.assign(recon=m["recon"].where(m.index != 1, "sirt")),
            ["row 2", "unknown reconstruction 'sirt'"],
        ),
        "dose": (
            lambda m: m.assign(ctdivol_mgy=m["ctdivol_mgy"].astype(str).where(m.index != 0, "abc")),
            ["row 1", "'abc' is not a number"],
        ),
        "negative": (lambda m: m.assign(ctdivol_mgy=m["ctdivol_mgy"].where(m.index != 0, -1.0)), ["row 1", "positive"]),
        "single": (lambda m: m.drop(index=[1]), ["1 repetition(s)", "at least 2"]),
        "series": (
            lambda m: m.assign(ctdivol_mgy=m["ctdivol_mgy"].where(m.index != 1, 0.52)),
            ["cannot be grouped into a dose series", "0.5 and 0.52 mGy", "row 2 (line 3)"],
        ),
    }
    for name, (edit, fragments) in cases.items():
        path = tmp_path / f"{name}.csv"
        edit(manifest.copy()).to_csv(path, index=False)
        out_dir = tmp_path / f"out_{name}"
        code, _, err = run(
            ["phantom", "study", str(path), "--output-dir", str(out_dir), "--design", str(simulated / "design")], capsys
        )
        _assert_refused(code, err, out_dir, *fragments)


def test_design_not_overlapping_the_scan_is_refused(simulated, tmp_path, capsys):
    manifest = pd.read_csv(simulated / "manifest.csv").iloc[:2].copy()
    for i, row in manifest.iterrows():
        image = sitk.ReadImage(str(simulated / row["path"]))
        image.SetOrigin((400.0, 400.0, 400.0))
        sitk.WriteImage(image, str(tmp_path / f"far{i}.nrrd"))
        manifest.loc[i, "path"] = f"far{i}.nrrd"
    manifest.to_csv(tmp_path / "far.csv", index=False)
    out_dir = tmp_path / "out_far"
    code, _, err = run(
        [
            "phantom",
            "study",
            str(tmp_path / "far.csv"),
            "--output-dir",
            str(out_dir),
            "--design",
            str(simulated / "design"),
            "--registration",
            "never",
            "--workers",
            "1",
        ],
        capsys,
    )
    _assert_refused(code, err, out_dir, "far.csv row 1", "far0.nrrd", "does not overlap the scan")


def test_bad_simulation_arguments(tmp_path, capsys):
    out_dir = tmp_path / "out"
    for args, fragment in (
        (["--repetitions", "1"], "--repetitions must be at least 2"),
        (["--doses", "0.2,-1"], "--doses: values must be positive"),
        (["--recons", "fbp,magic"], "unknown reconstruction 'magic'"),
        (["--size", "40,40,40"], "does not hold the phantom"),
    ):
        code, _, err = run(["phantom", "simulate", "--output-dir", str(out_dir), *args], capsys)
        _assert_refused(code, err, out_dir, fragment)


def test_demo_runs_the_whole_chain_in_a_process_pool(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    code, out, err = run(
        [
            "phantom",
            "demo",
            "--output-dir",
            str(out_dir),
            "--doses",
            "0.2,4",
            "--recons",
            "fbp,ir",
            "--repetitions",
            "2",
            "--workers",
            "2",
            *GRID,
        ],
        capsys,
    )
    assert code == 0, err
    for name in ("summary.csv", "volumes.csv", "report.html", "manifest.csv", "study.json", "design/design.json"):
        assert (out_dir / name).is_file(), name
    assert len(list((out_dir / "acquisitions").glob("*.nrrd"))) == 8
    result = json.loads(out[out.index("{") :])
    assert result["trends"].keys() >= {"iqr_3mm_spearman_fbp", "volume_spearman_ir"}


def test_simulate_with_the_physical_option(tmp_path, capsys):
    out_dir = tmp_path / "physical"
    code, out, err = run(
        [
            "phantom",
            "simulate",
            "--output-dir",
            str(out_dir),
            "--method",
            "physical",
            "--doses",
            "1",
            "--recons",
            "fbp",
            "--repetitions",
            "2",
            "--phantom",
            "small",
            "--size",
            "52,52,38",
            "--spacing",
            "1.5,1.5,2.0",
            "--workers",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    first = sitk.GetArrayFromImage(sitk.ReadImage(str(out_dir / "acquisitions/fbp_1mGy_rep1.nrrd"))).astype(float)
    second = sitk.GetArrayFromImage(sitk.ReadImage(str(out_dir / "acquisitions/fbp_1mGy_rep2.nrrd"))).astype(float)
    assert first.shape == (38, 52, 52)
    assert 5 < (first - second)[19, 20:32, 20:32].std() < 200  # independent Poisson noise per repetition
    assert np.median(first) < -500  # mostly air, as the phantom is


def test_simulate_keeps_the_users_scans(tmp_path, capsys):
    """The first wave's staging deleted an existing acquisitions/ folder whole, with the user's scans in it."""
    (tmp_path / "acquisitions").mkdir()
    (tmp_path / "acquisitions" / "real.nrrd").write_text("the user's scan")
    args = [
        "phantom",
        "simulate",
        "--output-dir",
        str(tmp_path),
        "--doses",
        "4",
        "--recons",
        "fbp",
        "--repetitions",
        "2",
        "--workers",
        "1",
        *GRID,
    ]
    code, _, err = run(args, capsys)
    assert code == 2 and "is not empty" in err and len(err.strip().splitlines()) == 1
    code, _, err = run([*args, "--overwrite"], capsys)
    assert code == 0, err
    assert (tmp_path / "acquisitions" / "real.nrrd").read_text() == "the user's scan"
    assert (tmp_path / "acquisitions" / "fbp_4mGy_rep1.nrrd").is_file() and (tmp_path / "manifest.csv").is_file()
