"""Shared, cached test data for the HipRadiomics tests: a small synthetic cohort, its features, a trained model.

Built once per test process (the expensive parts: extraction and training) in a temporary
folder removed at exit. Small on purpose: 32^3 volumes, 36 cases, Boruta with 10 iterations.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from RadiologyAICommonLib.cli import main as cli_main

N_CASES = 36
SIZE = 32


@functools.lru_cache(maxsize=None)
def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="hip_tests_"))
    atexit.register(shutil.rmtree, path, True)
    return path


def run(*args: str) -> int:
    return cli_main(["--progress", "none", *args])


@functools.lru_cache(maxsize=None)
def cohort() -> Path:
    """cohort.csv of a 36-case synthetic cohort (32^3 volumes)."""
    out = workdir() / "cohort"
    assert (
        run("hip", "synth", "--output-dir", str(out), "--cases", str(N_CASES), "--size", str(SIZE), "--seed", "3") == 0
    )
    return out / "cohort.csv"


@functools.lru_cache(maxsize=None)
def features() -> Path:
    out = workdir() / "features.csv"
    assert run("hip", "extract", str(cohort()), "--output", str(out), "--workers", "2") == 0
    return out


@functools.lru_cache(maxsize=None)
def model() -> Path:
    out = workdir() / "model"
    assert run("hip", "train", str(features()), "--output-dir", str(out), "--boruta-max-iter", "12", "--seed", "1") == 0
    return out
