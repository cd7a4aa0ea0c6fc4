"""The web server's input rules without a browser: data-folder containment, upload limits, result files, CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAIWeb.context import ResultStore
from RadiologyAIWeb.security import DataDir, safe_filename, save_uploads, uploaded_path

from web_helpers import ROOT, server_env


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    (root / "cases" / "a").mkdir(parents=True)
    (root / "cases" / "a" / "ct.nrrd").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("outside")
    return DataDir.from_option(root)


def test_paths_inside_the_data_folder_resolve(data):
    assert data.resolve("cases/a/ct.nrrd") == data.root / "cases" / "a" / "ct.nrrd"
    assert data.resolve("cases/./a/../a") == data.root / "cases" / "a"
    assert "cases/a/ct.nrrd" in data.listing()


@pytest.mark.parametrize("path", ["../secret.txt", "cases/../../secret.txt", "/etc/passwd", "", "nope.nrrd", "a\x00b"])
def test_paths_outside_or_missing_are_refused(data, path):
    with pytest.raises(RadiologyAIError):
        data.resolve(path)


def test_a_symlink_pointing_out_is_refused(data, tmp_path):
    os.symlink(tmp_path / "secret.txt", data.root / "link.txt")
    with pytest.raises(RadiologyAIError, match="outside the data folder"):
        data.resolve("link.txt")


def test_no_data_folder_reads_nothing(tmp_path):
    empty = DataDir.from_option(None)
    assert empty.listing() == []
    with pytest.raises(RadiologyAIError, match="without --data-dir"):
        empty.resolve("ct.nrrd")
    with pytest.raises(RadiologyAIError, match="not a folder"):
        DataDir.from_option(tmp_path / "missing")


def test_uploads_are_written_under_safe_names_in_a_new_folder(tmp_path):
    folder = save_uploads([{"name": "../../evil.nrrd", "size": 3, "content": b"abc"}], 10, parent=tmp_path)
    assert folder.parent == tmp_path
    assert [p.name for p in folder.iterdir()] == ["evil.nrrd"]
    assert uploaded_path(folder) == folder / "evil.nrrd"
    several = save_uploads(
        [{"name": "1.dcm", "content": b"a"}, {"name": "1.dcm", "content": [b"b", b"c"]}], 10, parent=tmp_path
    )
    assert uploaded_path(several) == several and len(list(several.iterdir())) == 2
    assert safe_filename("C:\\x\\.hidden name.nii.gz") == "hidden_name.nii.gz"


def test_uploads_over_the_limit_are_refused_before_and_after_receiving(tmp_path):
    with pytest.raises(RadiologyAIError, match="over this server's limit"):
        save_uploads([{"name": "a.nrrd", "size": 11, "content": b"x"}], 10, parent=tmp_path)
    with pytest.raises(RadiologyAIError, match="over this server's limit"):  # the declared size lied
        save_uploads([{"name": "a.nrrd", "size": 1, "content": b"x" * 11}], 10, parent=tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RadiologyAIError, match="choose a file"):
        save_uploads([], 10, parent=tmp_path)
    with pytest.raises(RadiologyAIError, match="no file content"):
        save_uploads([{"name": "a.nrrd"}], 10, parent=tmp_path)


def test_result_files_are_served_only_from_published_folders(tmp_path):
    store = ResultStore(tmp_path)
    folder = store.new_folder("run")
    (folder / "table.csv").write_text("a\n")
    (tmp_path / "other.txt").write_text("no")
    token = store.publish(folder)
    assert store.file(token, "table.csv") == (folder / "table.csv").resolve()
    assert store.url(token, "table.csv").endswith(f"/{token}/table.csv")
    for token_, name in ((token, "../other.txt"), (token, "missing.csv"), ("unknown", "table.csv"), (token, "")):
        assert store.file(token_, name) is None
    store.discard(folder)
    assert store.file(token, "table.csv") is None and not folder.exists()


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "RadiologyAICommonLib", *args],
        cwd=ROOT,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_help_and_clear_errors(tmp_path):
    done = _cli("web", "--help")
    assert done.returncode == 0 and "--data-dir" in done.stdout and "127.0.0.1" in done.stdout
    for args, message in (
        (["--data-dir", str(tmp_path / "missing")], "not a folder"),
        (["--port", "70000"], "not a port number"),
        (["--max-upload-mb", "0"], "must be positive"),
    ):
        done = _cli("web", *args)
        assert done.returncode == 2, args
        assert done.stderr.strip().splitlines() == [f"error: {done.stderr.strip()[7:]}"] and message in done.stderr


def test_web_listens_on_loopback_by_default():
    from RadiologyAICommonLib.cli import build_parser

    args = build_parser().parse_args(["web"])
    assert (args.host, args.port, args.data_dir) == ("127.0.0.1", 8080, None)
    assert build_parser().parse_args(["web", "--host", "0.0.0.0"]).host == "0.0.0.0"


def test_phantomqa_results_read_as_dict_or_dataclass():
    """PhantomQALogic.loadResults returns a dict today and a dataclass with the same names soon: both are read."""
    from dataclasses import dataclass

    pytest.importorskip("trame", reason="the PhantomQA panel needs trame (pip install 'radiologyai[web]')")
    from RadiologyAIWeb.panels.phantomqa import result_field, result_values

    @dataclass
    class Results:
        summaryTable: object = "summary"
        volumesTable: object = "volumes"

    for results in ({"summaryTable": "summary", "volumesTable": "volumes"}, Results()):
        assert result_field(results, "summaryTable") == "summary"
        assert result_field(results, "volumesTable") == "volumes"
        assert result_field(results, "missing") is None
        assert result_values(results) == ["summary", "volumes"]


def _mhd(folder, data_file: str):
    path = folder / "scan.mhd"
    path.write_text(
        f"ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nElementType = MET_UCHAR\nElementDataFile = {data_file}\n"
    )
    return path


def _nrrd(folder, data_file: str | None):
    path = folder / "scan.nrrd"
    line = f"data file: {data_file}\n" if data_file else ""
    path.write_bytes(f"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 2 2 2\nencoding: raw\n{line}\n".encode() + b"\0" * 8)
    return path


def test_headers_naming_data_files_outside_are_refused(tmp_path):
    from RadiologyAIWeb.security import check_data_files

    inside = tmp_path / "upload"
    inside.mkdir()
    (tmp_path / "secret.raw").write_bytes(b"\1" * 8)
    (inside / "voxels.raw").write_bytes(b"\1" * 8)
    for header in (
        _mhd(inside, str(tmp_path / "secret.raw")),
        _mhd(inside, "../secret.raw"),
        _nrrd(inside, str(tmp_path / "secret.raw")),
        _nrrd(inside, "../secret.raw"),
    ):
        with pytest.raises(RadiologyAIError, match="data file outside"):
            check_data_files(header, inside)
    for header in (_mhd(inside, "LIST"), _nrrd(inside, "slice%03d.raw 0 9 1")):
        with pytest.raises(RadiologyAIError, match="several files"):
            check_data_files(header, inside)
    for header in (_mhd(inside, "LOCAL"), _mhd(inside, "voxels.raw"), _nrrd(inside, "voxels.raw"), _nrrd(inside, None)):
        check_data_files(header, inside)  # accepted
    check_data_files(inside, inside)  # a folder: every file in it is inside
    os.symlink(tmp_path / "secret.raw", inside / "slice.dcm")
    with pytest.raises(RadiologyAIError, match="links to a file outside"):
        check_data_files(inside, inside)


def test_without_trame_the_command_says_what_to_install(monkeypatch, capsys):
    from RadiologyAICommonLib import cli

    for module in ("trame", "trame_slicer"):
        monkeypatch.setitem(sys.modules, module, None)  # "not installed"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0 and "web" in capsys.readouterr().out
    assert cli.main(["web", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'radiologyai[web]'" in err
