"""The temporary folder of one worker run.

A logic class writes the run's inputs (its nodes, exported as NRRD; a parameters file) into the
folder and returns the ``radiologyai`` arguments that read them and write the results into
:func:`output_dir`; the front-end (Slicer widget, web app) starts the worker with those
arguments, loads the results through the logic, and removes the folder. One folder per run, in
the system's temporary directory, never inside the user's data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def make_work_dir(module: str) -> Path:
    """A new, empty folder for one run of ``module`` (named ``<module>-<random>``)."""
    return Path(tempfile.mkdtemp(prefix=f"{module}-"))


def output_dir(work_dir: str | os.PathLike) -> Path:
    """Where the worker writes its results inside ``work_dir`` (created by the command itself)."""
    return Path(work_dir) / "output"


def remove_work_dir(work_dir: str | os.PathLike | None) -> None:
    """Remove a run's folder and everything in it; nothing happens for None or a folder already gone."""
    if work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
