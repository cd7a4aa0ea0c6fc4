"""The README pictures of VesselQuant: a slice with the overlay and a vessel MIP, on the two phantom families it was
not tuned on (the independent one and PhantomQA's study phantom) and on the real thorax in
``../shared/data/chest-ct-2mm`` (when present).

    .venv/bin/python Testing/benchmarks/vessel_figures.py [--out Screenshots]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from RadiologyAICommonLib.imageio import read_volume
from RadiologyAICommonLib.report import new_figure, save_figure
from VesselQuantLib.pipeline import run_vessel_quant

from branching_phantom import make_branching_phantom  # beside this script
from study_phantom_family import make_study_family_phantom

ROOT = Path(__file__).resolve().parents[2]


def _panel(ct: sitk.Image, result, title: str, path: Path, window=(-1000, 200)) -> None:
    hu = sitk.GetArrayFromImage(ct).astype(np.float32)
    vessel = sitk.GetArrayFromImage(result.vessel_label).astype(bool)
    nodule = (
        sitk.GetArrayFromImage(result.nodule_label).astype(bool) if result.nodule_label is not None else vessel & False
    )
    lung = sitk.GetArrayFromImage(result.lung_mask).astype(bool)
    z = int(np.argmax((vessel | nodule).sum(axis=(1, 2)))) if (vessel | nodule).any() else hu.shape[0] // 2
    aspect = ct.GetSpacing()[1] / ct.GetSpacing()[0]
    figure = new_figure(figsize=(12, 4.4))
    axes = figure.subplots(1, 3)
    grey = np.clip((hu[z] - window[0]) / (window[1] - window[0]), 0, 1)
    overlay = np.dstack([grey] * 3)
    overlay[vessel[z]] = 0.6 * overlay[vessel[z]] + 0.4 * np.array([0.9, 0.15, 0.15])
    overlay[nodule[z]] = 0.5 * overlay[nodule[z]] + 0.5 * np.array([0.95, 0.8, 0.2])
    edge = lung[z] & ~ndi.binary_erosion(lung[z])
    overlay[edge] = [0.4, 0.7, 1.0]
    axes[0].imshow(grey, cmap="gray", aspect=aspect)
    axes[0].set_title(f"slice {z}")
    axes[1].imshow(overlay, aspect=aspect)
    axes[1].set_title("vessels (red), nodule-like (yellow), lung edge (blue)")
    mip = np.where(lung, hu, window[0]).max(axis=0)
    axes[2].imshow(np.clip((mip + 900) / 1000, 0, 1), cmap="gray", aspect=aspect)
    axes[2].set_title("MIP inside the lung mask")
    for axis in axes:
        axis.set_axis_off()
    figure.suptitle(title)
    save_figure(figure, path)
    print(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "Screenshots"))
    args = parser.parse_args()
    out = Path(args.out)
    phantom = make_branching_phantom(seed=0)
    result = run_vessel_quant(phantom.image)
    _panel(
        phantom.image,
        result,
        "Independent phantom (branching_phantom.py, seed 0, 30 HU), own lung mask: "
        f"{result.summary['nodule_like_count']} nodule-like blobs",
        out / "VesselQuant-independent-phantom.png",
    )
    phantom = make_study_family_phantom(seed=0, ctdivol_mgy=0.2)
    result = run_vessel_quant(phantom.image)
    _panel(
        phantom.image,
        result,
        "PhantomQA's study phantom (study_phantom_family.py), FBP at 0.2 mGy, own lung mask: "
        f"vessels {result.summary['total_volume_ml']:.2f} ml (design {phantom.design.vessel_volume_ml():.2f} ml)",
        out / "VesselQuant-study-phantom.png",
    )
    dicom = ROOT.parent / "shared" / "data" / "chest-ct-2mm" / "dicom"
    if dicom.is_dir():
        ct = read_volume(dicom, "CT", modality="CT")
        result = run_vessel_quant(ct)
        s = result.summary
        _panel(
            ct,
            result,
            f"Real thorax, 2 mm slices: lungs {s['lung_volume_ml'] / 1000:.2f} l, vessels "
            f"{s['total_volume_ml']:.0f} ml, R^2 {s['fit_r2']:.2f}",
            out / "VesselQuant-real-thorax.png",
        )


if __name__ == "__main__":
    main()
