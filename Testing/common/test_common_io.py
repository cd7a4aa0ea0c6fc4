"""Image input, validation and atomic outputs on real files (NRRD, NIfTI, DICOM series)."""

import os

import numpy as np
import pytest
import SimpleITK as sitk

from imagetestdata import make_image, oblique_direction
from RadiologyAICommonLib import RadiologyAIError
from RadiologyAICommonLib.atomic import write_json
from RadiologyAICommonLib.outputs import staged_output_dir
from RadiologyAICommonLib.imageio import (
    list_dicom_series,
    read_image,
    read_volume,
    same_geometry,
    validate_scalar_volume,
    write_image,
)


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".mha"])
def test_write_read_round_trip(tmp_path, suffix):
    image = make_image(direction=oblique_direction())
    path = write_image(image, tmp_path / f"ct{suffix}")
    back = read_volume(path)
    assert same_geometry(back, image)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert [p.name for p in tmp_path.iterdir()] == [f"ct{suffix}"]  # no temporary left


def _write_dicom_series(folder, image, ctdivol, kernel, description, series_uid):
    """A real CT DICOM series (one file per slice) with dose and kernel tags, via SimpleITK/GDCM."""
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    for k in range(image.GetDepth()):
        slice_ = image[:, :, k]
        tags = {
            "0008|0060": "CT",
            "0008|103e": description,
            "0018|1210": kernel,
            "0018|9345": f"{ctdivol}",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": series_uid,
            "0020|0037": "\\".join(
                f"{v}" for v in (direction[0], direction[3], direction[6], direction[1], direction[4], direction[7])
            ),
            "0020|0032": "\\".join(f"{v}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
            "0020|0013": str(k + 1),
        }
        for key, value in tags.items():
            slice_.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(slice_)


def test_dicom_series_with_tags(tmp_path):
    import locale

    array = np.random.default_rng(1).integers(-1000, 1000, size=(6, 16, 18)).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.7, 1.25))
    image.SetOrigin((-20.0, -30.0, 40.0))
    _write_dicom_series(tmp_path / "study" / "a", image, 2.1, "FC13", "Lung 2.1 mGy", "1.2.826.0.1.3680043.2.1125.2")
    _write_dicom_series(tmp_path / "study" / "b", image, 0.5, "FC52", "Lung 0.5 mGy", "1.2.826.0.1.3680043.2.1125.3")
    locale.setlocale(locale.LC_ALL, "")  # the writer (GDCM) left the C locale behind
    encoding = locale.getpreferredencoding(False)
    found = sorted(list_dicom_series(tmp_path / "study"), key=lambda s: s.ctdivol_mgy)
    assert [(s.ctdivol_mgy, s.kernel, s.description, s.modality) for s in found] == [
        (0.5, "FC52", "Lung 0.5 mGy", "CT"),
        (2.1, "FC13", "Lung 2.1 mGy", "CT"),
    ]
    back = read_volume(tmp_path / "study" / "a")
    assert locale.getpreferredencoding(False) == encoding, "reading DICOM must not change the locale"
    assert back.GetSize() == image.GetSize()
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), array)
    with pytest.raises(RadiologyAIError, match="2 DICOM series .*1.2.826.0.1.3680043.2.1125.2 .*choose one by its UID"):
        read_image(tmp_path / "study")
    chosen = read_volume(tmp_path / "study", series="1.2.826.0.1.3680043.2.1125.3")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(chosen), array)
    with pytest.raises(RadiologyAIError, match="no DICOM series 1.2.3 in the folder; it holds 1.2.826"):
        read_image(tmp_path / "study", series="1.2.3")


def test_several_series_in_one_folder_are_told_apart_by_uid_on_the_command_line(tmp_path, capsys):
    """Two series in one folder (a thin lung kernel beside a soft-tissue one, as PACS exports do): the CLI names them
    and reads the one --series chooses."""
    from RadiologyAICommonLib.cli import main

    array = np.full((6, 16, 18), -900, np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.7, 1.25))
    _write_dicom_series(tmp_path / "a", image, 1.0, "FC13", "Lung", "1.2.826.0.1.3680043.2.1125.21")
    _write_dicom_series(tmp_path / "b", image, 1.0, "FC03", "Soft", "1.2.826.0.1.3680043.2.1125.22")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for sub in ("a", "b"):
        for f in (tmp_path / sub).iterdir():
            f.rename(mixed / f"{sub}_{f.name}")
    out = tmp_path / "out"
    assert main(["vessels", str(mixed), "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "1.2.826.0.1.3680043.2.1125.21 (Lung" in err[0]
    assert "--series UID" in err[0] and not out.exists()
    # the chosen series is read: this one has no lungs, which is the next error, not the series one
    assert main(["vessels", str(mixed), "--series", "1.2.826.0.1.3680043.2.1125.22", "--output-dir", str(out)]) == 2
    assert "DICOM series" not in capsys.readouterr().err and not out.exists()


def _ct_series(folder, depth=8):
    array = np.random.default_rng(2).integers(-1000, 1000, size=(depth, 12, 12)).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.7, 1.25))
    _write_dicom_series(folder, image, 1.0, "FC13", "Lung", "1.2.826.0.1.3680043.2.1125.9")
    return folder


def test_dicom_series_with_a_missing_slice_or_a_damaged_file_is_refused(tmp_path):
    """Finding 7 of the robustness sweep: the spacing was averaged over a gap, a damaged file silently skipped."""
    folder = _ct_series(tmp_path / "gap")
    (folder / "slice004.dcm").unlink()
    with pytest.raises(
        RadiologyAIError,
        match="not evenly spaced: 2.5 mm between slice003.dcm and slice005.dcm "
        r"where the series has 1.25 mm \(a missing slice\?\)",
    ):
        read_volume(folder)
    folder = _ct_series(tmp_path / "damaged")
    data = (folder / "slice000.dcm").read_bytes()
    (folder / "slice000.dcm").write_bytes(data[:300])  # DICOM preamble, then cut off
    with pytest.raises(RadiologyAIError, match="slice000.dcm: a DICOM file that cannot be read"):
        read_volume(folder)
    (folder / "slice000.dcm").write_bytes(data)
    (folder / "notes.txt").write_text("not DICOM, and not mistaken for it")
    assert read_volume(folder, modality="CT").GetSize() == (12, 12, 8)
    with pytest.raises(RadiologyAIError, match="the DICOM series is CT, this command needs MR"):
        read_volume(folder, modality="MR")


def test_direction_and_origin_must_be_sound():
    from RadiologyAICommonLib.imageio import validate_geometry

    image = make_image(direction=oblique_direction())
    assert validate_geometry(image) is image
    sheared = sitk.Image(image)
    sheared.SetDirection((1.0, 0.3, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    with pytest.raises(RadiologyAIError, match="not orthonormal"):
        validate_scalar_volume(sheared)
    with pytest.raises(RadiologyAIError, match="at least 4 voxels along each axis"):
        validate_scalar_volume(image[:, :, :2], min_voxels_per_axis=4)


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(RadiologyAIError, match="no such file"):
        read_image(tmp_path / "nothing.nrrd")
    (tmp_path / "junk.nrrd").write_text("not an image")
    with pytest.raises(RadiologyAIError, match="junk.nrrd"):
        read_image(tmp_path / "junk.nrrd")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RadiologyAIError, match="no DICOM series"):
        read_image(tmp_path / "empty")


def test_validation_rejects_bad_volumes():
    with pytest.raises(RadiologyAIError, match="3D"):
        validate_scalar_volume(sitk.Image(8, 8, sitk.sitkFloat32))
    with pytest.raises(RadiologyAIError, match="3D"):
        validate_scalar_volume(sitk.Image([4, 4, 4, 3], sitk.sitkFloat32))
    with pytest.raises(RadiologyAIError, match="scalar"):
        validate_scalar_volume(sitk.Image([4, 4, 4], sitk.sitkVectorFloat32, 3))
    array = np.zeros((4, 4, 4), np.float32)
    array[1, 2, 3] = np.nan
    with pytest.raises(RadiologyAIError, match="1 voxels are NaN"):
        validate_scalar_volume(sitk.GetImageFromArray(array))
    assert validate_scalar_volume(make_image()) is not None


def test_outputs_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        with staged_output_dir(tmp_path / "new", command="test") as stage:
            write_json(stage / "a.json", {})
        write_image(make_image(), tmp_path / "ct.nrrd")
    finally:
        os.umask(previous)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "new" / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "ct.nrrd").stat().st_mode & 0o777 == 0o644


def test_read_json_gives_a_clear_error(tmp_path):
    from RadiologyAICommonLib.atomic import read_json

    write_json(tmp_path / "ok.json", {"format": "x", "values": [1, 2]})
    assert read_json(tmp_path / "ok.json") == {"format": "x", "values": [1, 2]}
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(RadiologyAIError, match=r"bad\.json: not valid JSON"):
        read_json(tmp_path / "bad.json")
    with pytest.raises(RadiologyAIError, match=r"missing\.json: not valid JSON"):
        read_json(tmp_path / "missing.json")


def test_memory_is_checked_before_reading_or_computing(tmp_path, monkeypatch):
    """A 4096^3 header, or a typo that makes a volume huge, is refused with a message, not killed by the kernel."""
    import RadiologyAICommonLib.memory as memory

    path = write_image(make_image(), tmp_path / "ct.nrrd")
    assert read_image(path).GetSize() == make_image().GetSize()
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 1000)
    with pytest.raises(RadiologyAIError, match=r"ct.nrrd \(.* voxels\) needs about .* GiB of memory"):
        read_image(path)
    header = tmp_path / "huge.nhdr"
    header.write_text(
        "NRRD0004\ntype: short\ndimension: 3\nsizes: 4096 4096 4096\n"
        "encoding: raw\nendian: little\ndata file: huge.raw\n"
    )
    (tmp_path / "huge.raw").write_bytes(b"")  # the header promises 128 GiB; nothing is read before the check
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 24 * 2**30)
    with pytest.raises(RadiologyAIError, match="needs about 128.0 GiB"):
        read_image(header)


def _resident_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


_GLIBC_ONLY = pytest.mark.skipif(
    not (hasattr(os, "confstr") and str(os.confstr("CS_GNU_LIBC_VERSION")).startswith("glibc")),
    reason="tunes glibc's allocator only",
)


@_GLIBC_ONLY
def test_freed_volumes_are_kept_for_reuse_inside_a_run_and_handed_back_after():
    """A freed volume-sized array stays with the process inside the block (the next one reuses its pages) and goes
    back to the system on leaving it, as it does outside (glibc's default)."""
    from RadiologyAICommonLib.memory import reusing_freed_memory

    size = 256 * 2**20

    def freed_volume_kept() -> int:
        before = _resident_bytes()
        np.ones(size, np.uint8)  # made, touched and freed at once
        return _resident_bytes() - before

    assert freed_volume_kept() < 0.1 * size
    with reusing_freed_memory():
        with reusing_freed_memory():  # nested: still on after the inner block ends
            assert freed_volume_kept() > 0.9 * size
        inside = _resident_bytes()
        assert freed_volume_kept() < 0.1 * size  # the kept pages are reused, not added to
    assert inside - _resident_bytes() > 0.9 * size
    assert freed_volume_kept() < 0.1 * size


@_GLIBC_ONLY
def test_the_pages_of_freed_volumes_go_back_at_a_stage_boundary_and_reuse_goes_on():
    """Inside the block a freed volume stays resident until ``return_free_pages``, which hands its pages back; the
    block still keeps what is freed after it."""
    from RadiologyAICommonLib.memory import return_free_pages, reusing_freed_memory

    size = 256 * 2**20
    with reusing_freed_memory():
        np.ones(size, np.uint8)
        kept = _resident_bytes()
        return_free_pages()
        assert kept - _resident_bytes() > 0.9 * size
        before = _resident_bytes()
        np.ones(size, np.uint8)
        assert _resident_bytes() - before > 0.9 * size  # kept again, for the next stage's reuse


def test_a_voxel_view_keeps_its_image_alive_and_is_read_only():
    import gc
    import weakref

    from RadiologyAICommonLib.imageio import voxels_of

    values = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    image = sitk.GetImageFromArray(values) * 2.0
    alive = weakref.ref(image)
    view = voxels_of(image)
    del image
    gc.collect()
    assert alive() is not None  # held by the view (SimpleITK's own view does not hold it)
    np.testing.assert_array_equal(view, 2.0 * values)
    assert not view.flags.writeable
    del view
    gc.collect()
    assert alive() is None  # and freed with it
