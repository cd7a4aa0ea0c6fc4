"""The real CT/MRI files of the pyradiomics-bhklab 3.1.4 source distribution, for the ``realdata`` tests.

Found, in order: ``$RADIOLOGYAI_PYRADIOMICS_SDIST`` (the .tar.gz or its unpacked folder), a previous
download in the cache folder, or ``pip download`` of the sdist. ``--no-binary :all:`` (what one would
type) makes pip build the sdist's metadata with numpy & co. from source, which can fail; then the sdist
alone is asked for with ``--no-binary pyradiomics-bhklab``. Returns None when nothing works (offline).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

VERSION = "3.1.4"
ROOT_NAME = f"pyradiomics_bhklab-{VERSION}"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "radiologyai" / "pyradiomics-sdist"


def _data_folder(path: Path) -> Path | None:
    for candidate in (path / "data", path / ROOT_NAME / "data"):
        if (candidate / "brain1_image.nrrd").is_file() and (candidate / "lung1_image.nrrd").is_file():
            return candidate
    return None


def _unpack(archive: Path) -> Path | None:
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/data/" in m.name and m.isfile()]
        try:
            tar.extractall(CACHE, members=members, filter="data")
        except TypeError:  # Python without tarfile extraction filters
            tar.extractall(CACHE, members=members)
    return _data_folder(CACHE)


def _download() -> Path | None:
    CACHE.mkdir(parents=True, exist_ok=True)
    for no_binary in (":all:", "pyradiomics-bhklab"):
        archive = next(CACHE.glob(f"{ROOT_NAME}.tar.gz"), None)
        if archive is not None:
            return archive
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                no_binary,
                f"pyradiomics-bhklab=={VERSION}",
                "-d",
                str(CACHE),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    return next(CACHE.glob(f"{ROOT_NAME}.tar.gz"), None)


def pyradiomics_data_folder() -> Path | None:
    """The sdist's ``data/`` folder (lung1/lung2 chest CT, brain1/brain2 MRI, baselines), or None."""
    given = os.environ.get("RADIOLOGYAI_PYRADIOMICS_SDIST")
    if given:
        path = Path(given)
        found = _unpack(path) if path.is_file() else _data_folder(path)
        if found is not None:
            return found
    found = _data_folder(CACHE)
    if found is not None:
        return found
    try:
        archive = _download()
        return _unpack(archive) if archive is not None else None
    except (OSError, subprocess.SubprocessError, tarfile.TarError):
        return None


def data_folder_or_skip() -> Path:
    folder = pyradiomics_data_folder()
    if folder is None:
        pytest.skip("pyradiomics-bhklab 3.1.4 sdist not available (offline; set RADIOLOGYAI_PYRADIOMICS_SDIST)")
    return folder
