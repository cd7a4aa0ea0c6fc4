"""Shared, cached test data of the SalivarySeg tests: a tiny synthetic dataset and a tiny trained model.

Not a conftest.py on purpose: a second ``conftest`` module would shadow ``Testing/conftest.py``
for ``from conftest import ...`` in other folders. Built once per test process (lru_cache) in a
temporary folder removed at exit. Everything is small (2 mm voxels, 160 x 160 x 96 mm, one epoch):
the model is not accurate, it only exercises every step quickly.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

TINY_FOV = (160.0, 160.0, 96.0)


@functools.lru_cache(maxsize=None)
def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="salivary-tests-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def tiny_synth_params():
    from SalivarySegLib.synthetic import SyntheticParameters

    return SyntheticParameters(fov_mm=TINY_FOV, spacing_mm=(2.0, 2.0, 2.0))


@functools.lru_cache(maxsize=None)
def tiny_dataset() -> Path:
    from SalivarySegLib.synthetic import make_dataset

    folder = _root() / "dataset"
    make_dataset(folder, 6, seed=5, params=tiny_synth_params())
    return folder


TRAIN_ARGS = [
    "--epochs",
    "2",
    "--classifier-epochs",
    "1",
    "--patch-size",
    "32",
    "32",
    "32",
    "--batch-size",
    "2",
    "--samples-per-case",
    "1",
    "--classifier",
    "resnet18",
    "--threads",
    "2",
    "--seed",
    "3",
]


@functools.lru_cache(maxsize=None)
def tiny_model() -> Path:
    """A model folder trained through the CLI (``radiologyai salivary train``), once per test process."""
    from RadiologyAICommonLib.cli import main

    folder = _root() / "model"
    code = main(
        ["--progress", "none", "salivary", "train", str(tiny_dataset()), "--output-dir", str(folder), *TRAIN_ARGS]
    )
    assert code == 0, "tiny training failed"
    return folder


def tiny_case(index: int = 50, seed: int = 5, diagnosis: str | None = None):
    from SalivarySegLib.synthetic import make_case

    return make_case(index, seed, diagnosis, tiny_synth_params())
