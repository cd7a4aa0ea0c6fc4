"""Real chest CT slabs (pyradiomics-bhklab sdist, data/lung1_image.nrrd and lung2_image.nrrd).

Optional: ``pytest -m realdata Testing/vesselquant``. The sdist is found through the environment
variable ``RADIOLOGYAI_PYRADIOMICS_SDIST`` (the .tar.gz or its unpacked folder), a previous download
in ``~/.cache/radiologyai``, or fetched with ``pip download`` (source distribution, no build); the test
is skipped when none of these works.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

SDIST = "pyradiomics_bhklab-3.1.4"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "radiologyai"


def _data_folder_from(path: Path) -> Path | None:
    if path.is_dir():
        for candidate in (path / "data", path / SDIST / "data"):
            if (candidate / "lung1_image.nrrd").is_file():
                return candidate
        return None
    if path.is_file() and path.name.endswith(".tar.gz"):
        target = CACHE / "sdist"
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path) as archive:
            members = [m for m in archive.getmembers() if "/data/lung" in m.name and m.isfile()]
            archive.extractall(target, members=members, filter="data")
        return _data_folder_from(target)
    return None


def _pip_download() -> Path | None:
    download = CACHE / "download"
    download.mkdir(parents=True, exist_ok=True)
    for extra in ([], ["--no-build-isolation"]):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", *extra,
             "pyradiomics-bhklab==3.1.4", "-d", str(download)],
            capture_output=True, text=True, timeout=600,
        )
        found = sorted(download.glob(f"{SDIST}.tar.gz"))
        if found:
            return found[0]
    return None


@pytest.fixture(scope="module")
def lung_data() -> Path:
    for source in (os.environ.get("RADIOLOGYAI_PYRADIOMICS_SDIST"), str(CACHE / "sdist")):
        if source:
            folder = _data_folder_from(Path(source))
            if folder is not None:
                return folder
    try:
        archive = _pip_download()
    except (OSError, subprocess.SubprocessError):
        archive = None
    folder = _data_folder_from(archive) if archive else None
    if folder is None:
        pytest.skip("pyradiomics-bhklab 3.1.4 sdist not available (set RADIOLOGYAI_PYRADIOMICS_SDIST)")
    return folder


@pytest.mark.realdata
@pytest.mark.parametrize("case", ["lung1", "lung2"])
def test_real_chest_ct(lung_data, case):
    from VesselQuantLib.pipeline import run_vessel_quant

    ct = sitk.ReadImage(str(lung_data / f"{case}_image.nrrd"))
    result = run_vessel_quant(ct)
    summary = result.summary
    print(case, {k: summary[k] for k in ("lung_volume_ml", "total_volume_ml", "vessel_fraction", "fit_alpha", "fit_r2", "runtime_s")})
    lung = sitk.GetArrayFromImage(result.lung_mask).astype(bool)
    vessels = sitk.GetArrayFromImage(result.vessel_label).astype(bool)
    hu = sitk.GetArrayFromImage(ct)
    assert vessels.any() and not (vessels & ~lung).any()  # vessels only inside the lungs
    assert np.median(hu[lung & ~vessels]) < -700  # the lung mask holds lung, not soft tissue
    assert summary["lung_volume_ml"] > 500
    assert 0.01 <= summary["vessel_fraction"] < 0.20
    assert summary["fit_alpha"] < 0 and summary["fit_r2"] >= 0.8
