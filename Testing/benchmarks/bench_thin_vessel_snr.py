"""How visible are the thinnest phantom vessels? The signal-to-noise ratio of an ideal line detector.

For each phantom (the same generator as bench_vessels_accuracy.py) it renders the same vessel tree
twice, with and without noise, smooths both at the finest vesselness scale, and for every segment of
the smallest design radius (0.25 mm: terminal twigs) averages the image along the TRUE centreline,
from 0.7 mm past the parent's end (clear of the parent's blur) to the tip:

* signal: that line average on the noise-free image minus the parenchyma (median of the lung);
* noise: the SD of the same line average (same length and sampling) of the pure noise image
  (noisy minus noise-free) at random lung points in random directions.

Their ratio is what a detector that already knows where each twig lies and where it points could
reach; any real method must also search positions and directions. The table gives the share of twigs
such an oracle would find when it accepts a false line with probability alpha per test
(one-sided Gaussian test).

    .venv/bin/python Testing/benchmarks/bench_thin_vessel_snr.py [--seeds 0 1 2] [--noise 30 90]
        [--size 160 160 100] [--spacing 0.7 0.7 1.0] [--psf 0.8 0.8 1.0] [--sigma 0.5]
"""

from __future__ import annotations

import argparse

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from scipy.stats import norm

from VesselQuantLib.evaluation import physical_to_index
from VesselQuantLib.vessel_phantom import make_vessel_phantom

from vessel_phantom_args import add_phantom_arguments, phantom_geometry  # beside this script

STEP_MM = 0.35
START_MM = 0.7
ALPHAS = (0.05, 0.01, 0.001)


def smoothed(image: sitk.Image, sigma_mm: float) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), sigma_mm))


def line_mean(array: np.ndarray, index_zyx: np.ndarray) -> float:
    return float(ndi.map_coordinates(array, index_zyx.T, order=1).mean())


def twig_snr(seed: int, noise_hu: float, args) -> tuple[np.ndarray, float]:
    common = dict(seed=seed, **phantom_geometry(args))
    noisy = make_vessel_phantom(noise_sd_hu=noise_hu, **common)
    clean = make_vessel_phantom(noise_sd_hu=0.0, **common)
    assert len(noisy.segments) == len(clean.segments), "the noise must not change the vessel tree"
    image, truth = smoothed(noisy.image, args.sigma), smoothed(clean.image, args.sigma)
    noise = image - truth
    lung = sitk.GetArrayFromImage(clean.lung_mask).astype(bool)
    parenchyma = float(np.median(truth[lung]))
    thinnest = min(seg["radius_mm"] for seg in clean.segments)

    signals, lengths = [], []
    for seg in clean.segments:
        if seg["radius_mm"] != thinnest:
            continue
        start, end = seg["start_physical_mm"], seg["end_physical_mm"]
        length = float(np.linalg.norm(end - start))
        offsets = np.arange(START_MM, length + 1e-9, STEP_MM)
        if offsets.size < 2:
            continue
        points = start + offsets[:, None] * (end - start) / length
        signals.append(line_mean(truth, physical_to_index(clean.image, points)) - parenchyma)
        lengths.append(offsets.size)

    # noise of a line average of the typical twig length, at random lung points and directions
    rng = np.random.default_rng(seed)
    samples = int(np.median(lengths)) if lengths else 2
    spacing_zyx = np.asarray(clean.image.GetSpacing()[::-1], float)
    lung_index = np.argwhere(lung)
    starts = lung_index[rng.choice(len(lung_index), 5000)].astype(float)
    directions = rng.normal(size=starts.shape)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    steps = np.arange(samples) * STEP_MM
    means = [line_mean(noise, s + steps[:, None] * d / spacing_zyx) for s, d in zip(starts, directions)]
    noise_sd = 1.4826 * float(np.median(np.abs(np.asarray(means) - np.median(means))))
    return np.asarray(signals), noise_sd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_phantom_arguments(parser)
    parser.add_argument("--sigma", type=float, default=0.5, help="smoothing in mm (VesselQuant's finest scale)")
    args = parser.parse_args()

    header = "noise HU  twigs  contrast HU (median)  line noise SD HU  SNR (median)  " + "  ".join(
        f"oracle finds @ alpha {a:g}" for a in ALPHAS
    )
    print(header)
    for noise_hu in args.noise:
        snrs, contrasts, sds = [], [], []
        for seed in args.seeds:
            signals, noise_sd = twig_snr(seed, noise_hu, args)
            snrs.append(signals / noise_sd)
            contrasts.append(signals)
            sds.append(noise_sd)
        snr = np.concatenate(snrs)
        found = [float(np.mean(norm.sf(norm.isf(a) - snr))) for a in ALPHAS]
        print(
            f"{noise_hu:8g}  {snr.size:5d}  {np.median(np.concatenate(contrasts)):20.1f}  {np.mean(sds):16.1f}  "
            f"{np.median(snr):12.2f}  " + "  ".join(f"{f:23.1%}" for f in found)
        )


if __name__ == "__main__":
    main()
