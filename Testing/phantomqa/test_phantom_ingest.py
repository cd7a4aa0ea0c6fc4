"""Manifest CSV and DICOM-folder ingestion (real DICOM files written with pydicom)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from phantomqa_helpers import write_ct_series

from PhantomQALib.acquisitions import load_acquisitions, read_dicom_folder, read_manifest
from RadiologyAICommonLib.errors import RadiologyAIError


def _image(tmp_path, name="scan.nrrd"):
    image = sitk.Image([8, 8, 4], sitk.sitkInt16) - 1000
    path = tmp_path / name
    sitk.WriteImage(image, str(path))
    return path


def _manifest(tmp_path, rows, header="path,recon,ctdivol_mgy,repetition"):
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_manifest_is_read_with_relative_paths_and_aliases(tmp_path):
    for name in ("a.nrrd", "b.nrrd", "c.nrrd", "d.nrrd"):
        _image(tmp_path, name)
    path = _manifest(
        tmp_path, ["a.nrrd,FBP,0.2,1", "b.nrrd,fbp,0.2,2", "c.nrrd,Iterative,4,1", f"{tmp_path / 'd.nrrd'},ir,4.0,2"]
    )
    acquisitions = read_manifest(path)
    assert [(a.recon, a.ctdivol_mgy, a.repetition) for a in acquisitions] == [
        ("fbp", 0.2, 1),
        ("fbp", 0.2, 2),
        ("ir", 4.0, 1),
        ("ir", 4.0, 2),
    ]
    assert acquisitions[0].path == str(tmp_path / "a.nrrd")
    assert load_acquisitions(path)[3].path == str(tmp_path / "d.nrrd")


@pytest.mark.parametrize(
    "rows, message",
    [
        (["missing.nrrd,fbp,0.2,1", "a.nrrd,fbp,0.2,2"], r"row 1 \(line 2\): file .*missing.nrrd does not exist"),
        (["a.nrrd,fbp,0.2,1", "a.nrrd,sirt,0.2,2"], r"row 2 \(line 3\): unknown reconstruction 'sirt'"),
        (["a.nrrd,fbp,low,1", "a.nrrd,fbp,0.2,2"], r"row 1 \(line 2\): ctdivol_mgy 'low' is not a number"),
        (["a.nrrd,fbp,0,1", "a.nrrd,fbp,0,2"], r"row 1 \(line 2\): ctdivol_mgy must be a positive dose"),
        (["a.nrrd,fbp,-1,1", "a.nrrd,fbp,-1,2"], r"row 1 \(line 2\): ctdivol_mgy must be a positive"),
        (
            ["a.nrrd,fbp,0.2,1", "a.nrrd,fbp,0.2,2", "a.nrrd,ir,0.2,1"],
            r"ir at 0.2 mGy has 1 repetition\(s\) \(manifest manifest.csv row 3",
        ),
        (["a.nrrd,fbp,0.2,1", "a.nrrd,fbp,0.2,1"], r"row 2 \(line 3\): repeats fbp at 0.2 mGy repetition 1"),
        # issue 14: doses that are not distinct dose levels, every clash named with its rows
        (
            ["a.nrrd,fbp,1.0,1", "a.nrrd,fbp,1.02,2", "a.nrrd,ir,4,1", "a.nrrd,ir,4.4,2"],
            r"doses cannot be grouped into a dose series: 1 and 1.02 mGy \(manifest manifest.csv row 1 \(line 2\); "
            r"manifest manifest.csv row 2 \(line 3\)\); "
            r"4 and 4.4 mGy \(.*row 3.*row 4 \(line 5\)\) are within 20 %",
        ),
        # every reconstruction whose series lacks repetitions is named, not only the first
        (
            ["a.nrrd,fbp,0.2,1", "a.nrrd,dlr,0.2,1", "a.nrrd,ir,0.2,1", "a.nrrd,ir,0.2,2"],
            r"dlr at 0.2 mGy has 1 repetition\(s\) \(manifest manifest.csv row 2 \(line 3\)\); "
            r"fbp at 0.2 mGy has 1 repetition\(s\) \(manifest manifest.csv row 1",
        ),
        (["a.nrrd,fbp,0.2,one", "a.nrrd,fbp,0.2,2"], r"row 1 \(line 2\): repetition 'one' is not a whole number"),
    ],
)
def test_bad_manifests_name_the_row(tmp_path, rows, message):
    _image(tmp_path, "a.nrrd")
    with pytest.raises(RadiologyAIError, match=message):
        read_manifest(_manifest(tmp_path, rows))


def test_manifest_structure_errors(tmp_path):
    _image(tmp_path, "a.nrrd")
    with pytest.raises(RadiologyAIError, match="missing column"):
        read_manifest(_manifest(tmp_path, ["a.nrrd,fbp,0.2"], header="path,recon,dose"))
    with pytest.raises(RadiologyAIError, match="no acquisitions"):
        read_manifest(_manifest(tmp_path, []))
    with pytest.raises(RadiologyAIError, match="no such manifest"):
        load_acquisitions(tmp_path / "nope.csv")


def _volume(value=-1000):
    image = sitk.GetImageFromArray(np.full((3, 12, 12), value, np.int16))
    image.SetSpacing((0.8, 0.8, 1.0))
    image.SetOrigin((-4.4, -4.4, 0.0))
    return image


def test_dicom_folder_gives_dose_kernel_and_repetitions(tmp_path):
    series = [
        ("s1", 0.21, "FC52", "Lung FBP 0.2 mGy"),
        ("s2", 0.20, "FC52", "Lung FBP 0.2 mGy"),
        ("s3", 0.20, "FC52", "AIDR 3D 0.2 mGy"),
        ("s4", 0.19, "FC52", "AIDR 3D 0.2 mGy"),
        ("s5", 4.0, "Lung", "AiCE Lung 4 mGy"),
        ("s6", 4.1, "Lung", "AiCE Lung 4 mGy"),
    ]
    for number, (name, dose, kernel, description) in enumerate(series, start=1):
        write_ct_series(_volume(), tmp_path / "dicom" / name, dose, kernel, description, series_number=number)
    acquisitions = read_dicom_folder(tmp_path / "dicom")
    found = sorted((a.recon, a.ctdivol_mgy, a.repetition, a.kernel) for a in acquisitions)
    assert [(r, d, k) for r, d, k, _ in found] == [
        ("dlr", 4.0, 1),
        ("dlr", 4.0, 2),
        ("fbp", 0.2, 1),
        ("fbp", 0.2, 2),
        ("ir", 0.2, 1),
        ("ir", 0.2, 2),
    ]
    assert {a.measured_ctdivol_mgy for a in acquisitions} == {0.21, 0.2, 0.19, 4.0, 4.1}
    assert all(len(a.dicom_files) == 3 for a in acquisitions)
    assert {a.kernel for a in acquisitions} == {"FC52", "Lung"}


def test_dicom_errors_name_the_series(tmp_path):
    write_ct_series(_volume(), tmp_path / "a" / "s1", None, "FC52", "no dose", 1)
    with pytest.raises(RadiologyAIError, match=r"DICOM series 'no dose'.*no CTDIvol \(0018,9345\)"):
        read_dicom_folder(tmp_path / "a")
    write_ct_series(_volume(), tmp_path / "b" / "s1", 1.0, "XYZ", "mystery", 1)
    write_ct_series(_volume(), tmp_path / "b" / "s2", 1.0, "XYZ", "mystery", 2)
    with pytest.raises(RadiologyAIError, match="cannot tell the reconstruction from kernel 'XYZ'"):
        read_dicom_folder(tmp_path / "b")
    # the user can map an unknown kernel
    acquisitions = read_dicom_folder(tmp_path / "b", {"XYZ": "ir"})
    assert [a.recon for a in acquisitions] == ["ir", "ir"]
    write_ct_series(_volume(), tmp_path / "c" / "s1", 1.0, "FC52", "FBP", 1)
    with pytest.raises(RadiologyAIError, match=r"fbp at 1 mGy has 1 repetition"):
        read_dicom_folder(tmp_path / "c")
    (tmp_path / "d").mkdir()
    with pytest.raises(RadiologyAIError, match="no CT DICOM series"):
        read_dicom_folder(tmp_path / "d")
