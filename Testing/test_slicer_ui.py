"""Every module's .ui loads with Qt's QUiLoader and binds to the widget code and the parameter node.

See ``slicer_ui.py``; each module is checked in its own interpreter (the module file is
imported there with the Qt-bound parts of Slicer's API stood in for).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from slicer_python import MODULES, ROOT

pytest.importorskip("PySide6.QtUiTools", reason="PySide6 (the test extra) loads the .ui files")
SCRIPT = ROOT / "Testing" / "slicer_ui.py"


def _check(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT / "Testing",
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )


@pytest.mark.parametrize("module", MODULES)
def test_ui_binds_like_slicer(module):
    result = _check(module)
    assert result.returncode == 0, f"{module}.ui:\n{result.stdout}{result.stderr[-2000:]}"
    assert f"{module}: ui ok" in result.stdout


def test_ui_check_finds_a_wrong_name_and_a_wrong_widget(tmp_path):
    """A misspelt SlicerParameterName, a slider bound to a bool and a widget the code needs but the file lacks."""
    text = (ROOT / "VesselQuant" / "Resources" / "UI" / "VesselQuant.ui").read_text(encoding="utf-8")
    text = text.replace("<string>inputVolume</string>", "<string>inputVolumes</string>", 1)
    text = text.replace("<string>smoothnessWeight</string>", "<string>growThinVessels</string>", 1)
    text = text.replace('name="cancelButton"', 'name="stopButton"', 1)
    broken = tmp_path / "VesselQuant.ui"
    broken.write_text(text, encoding="utf-8")
    result = _check("VesselQuant", broken)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any("'inputVolumes' is not a field of VesselQuantParameterNode" in line for line in lines), lines
    assert any("smoothnessWeightSlider (ctkSliderWidget) cannot represent growThinVessels" in line for line in lines), (
        lines
    )
    assert any("uses self.ui.cancelButton" in line for line in lines), lines
