"""The radiologyai entry point: help, error contract, progress modes, report and dependency helpers."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from RadiologyAICommonLib import RadiologyAIError, cli
from RadiologyAICommonLib.dependencies import missing_requirements, read_requirements
from RadiologyAICommonLib.report import HtmlReport, new_figure

ROOT = Path(__file__).resolve().parents[2]
SUBCOMMANDS = ["vessels", "phantom", "salivary", "hip"]


def test_top_level_help_lists_all_modules(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    assert f"radiologyai {name}" in capsys.readouterr().out


def test_usage_error_is_one_error_line(capsys):
    assert cli.main(["no-such-command"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_console_script_from_venv():
    exe = Path(sys.executable).with_name("radiologyai")
    if not exe.exists():
        pytest.skip("radiologyai console script not installed in this environment")
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "phantom" in done.stdout
    done = subprocess.run([str(exe), "hip", "--bogus-option"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: ") and "Traceback" not in done.stderr


def test_unavailable_module_gives_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "extra", ("NoSuchLib.cli", "a module that is not installed"))
    assert cli.main(["extra"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 'radiologyai extra' is not available") and err.count("\n") == 1


def test_require_names_the_extra():
    with pytest.raises(RadiologyAIError, match=r"radiologyai\[salivary\]"):
        cli.require("no_such_package_xyz", "salivary")


def test_progress_lines_mode(capsys):
    progress = cli._Progress("lines")
    progress(0.5, "half")
    assert capsys.readouterr().err == "PROGRESS 0.5000 half\n"


def test_html_report_embeds_tables_and_figures(tmp_path):
    figure = new_figure(figsize=(3, 2))
    figure.add_subplot().plot([0, 1], [1, 0])
    report = HtmlReport("Study <1>").paragraph("IQR & MPV").table(pd.DataFrame({"dose": [0.2], "iqr": [120.5]}), "t")
    report.figure(figure, "IQR vs dose")
    path = report.write(tmp_path / "report.html")
    text = path.read_text(encoding="utf-8")
    assert "Study &lt;1&gt;" in text and "IQR &amp; MPV" in text
    assert "<td>120</td>" in text or "<td>120.5</td>" in text or "<td>1.2e+02</td>" in text
    assert text.count("data:image/png;base64,") == 1


def test_requirements_files_are_readable_and_checked():
    for requirements in ROOT.glob("*/Resources/requirements.txt"):
        lines = read_requirements(requirements)
        assert all(line and not line.startswith("#") for line in lines)
    assert missing_requirements(["numpy", "definitely-not-installed-pkg==1.0"]) == ["definitely-not-installed-pkg==1.0"]
    assert missing_requirements(["pandas==0.0.1"]) == ["pandas==0.0.1"]


def test_scheduler_addresses_are_checked_before_a_client_exists():
    """'foo://' hung 40 s at exit in a half-made dask client, then printed a traceback."""
    from RadiologyAICommonLib.cluster import check_scheduler_address

    assert check_scheduler_address("tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    assert check_scheduler_address("scheduler:8786") == "scheduler:8786"
    for bad, fragment in (
        ("foo://bar", "unknown address scheme 'foo://'"),
        ("tcp://", "no host"),
        (":8786", "no host"),
    ):
        with pytest.raises(RadiologyAIError, match=fragment):
            check_scheduler_address(bad)
