"""Helpers of the browser tests: test ids, waiting for the server-rendered views, comparing their pixels."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

# The axial slice view is the first cell of trame-slicer's layout grid inside the app's viewer.
SLICE_VIEW = '[data-testid="viewer"] .layout-grid-item >> nth=0'


def server_env() -> dict:
    env = dict(os.environ)
    paths = [str(ROOT)] + [
        str(ROOT / m) for m in ("RadiologyAICommon", "VesselQuant", "PhantomQA", "SalivarySeg", "HipRadiomics")
    ]
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
    env["VTK_DEFAULT_OPENGL_WINDOW"] = "vtkEGLRenderWindow"
    return env


def tid(value: str) -> str:
    return f'[data-testid="{value}"]'


def view_pixels(page, selector: str = SLICE_VIEW) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(page.locator(selector).screenshot())).convert("RGB")).astype(np.int16)


def changed_fraction(a: np.ndarray, b: np.ndarray, threshold: int = 30) -> float:
    """Fraction of pixels whose colour changed by more than ``threshold`` (0-255) in any channel."""
    if a.shape != b.shape:
        return 1.0
    return float((np.abs(a - b).max(axis=-1) > threshold).mean())


def wait_for_view(page, condition, timeout_s: float = 60.0, selector: str = SLICE_VIEW) -> np.ndarray:
    """Screenshots of the view until ``condition(pixels)`` holds; the last one (or AssertionError on time-out)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pixels = view_pixels(page, selector)
        if condition(pixels):
            return pixels
        if time.monotonic() > deadline:
            raise AssertionError(f"the view did not show what was expected in {timeout_s:g} s")
        time.sleep(0.5)


def wait_for_stable_view(page, timeout_s: float = 60.0, selector: str = SLICE_VIEW) -> np.ndarray:
    """The view once it shows an image (not all dark) and two screenshots a second apart agree."""
    deadline = time.monotonic() + timeout_s
    previous = None
    while True:
        pixels = view_pixels(page, selector)
        if (
            previous is not None
            and (pixels > 60).any(axis=-1).mean() > 0.05
            and changed_fraction(previous, pixels) < 1e-3
        ):
            return pixels
        if time.monotonic() > deadline:
            bright = (pixels > 60).any(axis=-1).mean()
            raise AssertionError(f"the view did not settle on an image in {timeout_s:g} s ({bright:.1%} bright pixels)")
        previous = pixels
        time.sleep(1.0)


def write_dicom_series(folder, image) -> list:
    """``image`` (int16, HU) as a CT DICOM series, one file per slice (SimpleITK/GDCM); returns the file paths."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    d = image.GetDirection()
    files = []
    for k in range(image.GetDepth()):
        slice_ = image[:, :, k]
        for key, value in {
            "0008|0060": "CT",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.7",
            "0020|000e": "1.2.826.0.1.3680043.2.1125.7.1",
            "0020|0037": "\\".join(str(v) for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
            "0020|0032": "\\".join(str(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
            "0020|0013": str(k + 1),
        }.items():
            slice_.SetMetaData(key, value)
        files.append(folder / f"slice{k:03d}.dcm")
        writer.SetFileName(str(files[-1]))
        writer.Execute(slice_)
    return files


def click_and_wait_for_load(page, button: str, label: str, timeout_ms: int = 60_000) -> None:
    """Click ``button`` and wait until the panel's label ``label`` counts one more loaded volume (data-loads)."""
    before = page.get_attribute(tid(label), "data-loads")
    page.click(tid(button))
    page.wait_for_function(
        "([selector, before]) => document.querySelector(selector).getAttribute('data-loads') !== before",
        arg=[tid(label), before],
        timeout=timeout_ms,
    )
