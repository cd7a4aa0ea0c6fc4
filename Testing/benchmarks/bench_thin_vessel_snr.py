"""How visible are the thinnest phantom vessels? The signal-to-noise ratio of an ideal line detector.

For each phantom it renders the same vessel tree twice, with and without noise, smooths both at the finest
vesselness scale, and for every segment of the radii studied averages the image along the TRUE centreline, from
0.7 mm past the segment's start (clear of the parent's blur) to its end:

* signal: that line average on the noise-free image minus the parenchyma (median of the lung);
* noise: the SD of the same line average (same length and sampling) of the pure noise image
  (noisy minus noise-free) at random lung points in random directions.

Their ratio is what a detector that already knows where each vessel lies and where it points could
reach; any real method must also search positions and directions. The table gives the share of segments
such an oracle would find when it accepts a false line with probability alpha per test
(one-sided Gaussian test).

``--family tuned`` (default): the phantoms of bench_vessels_accuracy.py at noise SDs ``--noise``, the smallest
design radius (0.25 mm: terminal twigs). ``--family study``: the study phantom acquired by PhantomQA's simulator
(``study_phantom_family.py``, reconstruction ``--recon``) at CTDIvol ``--dose``, every radius up to 0.5 mm (the
radii of the issue's r <= 0.5 mm detection goal).

    .venv/bin/python Testing/benchmarks/bench_thin_vessel_snr.py [--seeds 0 1 2] [--noise 30 90]
        [--size 160 160 100] [--spacing 0.7 0.7 1.0] [--psf 0.8 0.8 1.0] [--sigma 0.5]
    .venv/bin/python Testing/benchmarks/bench_thin_vessel_snr.py --family study [--seeds 0 1 2] [--dose 4 0.2]
        [--recon fbp]
"""

from __future__ import annotations

import argparse

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from scipy.stats import norm

from VesselQuantLib.evaluation import physical_to_index
from VesselQuantLib.vessel_phantom import make_vessel_phantom
from VesselQuantLib.vesselness import gaussian_smoothed

from vessel_phantom_args import add_phantom_arguments, phantom_geometry  # beside this script

STEP_MM = 0.35
START_MM = 0.7
ALPHAS = (0.05, 0.01, 0.001)
THIN_MM = 0.5  # the study family: every radius up to this


def smoothed(image: sitk.Image, sigma_mm: float) -> np.ndarray:
    """The image smoothed as VesselQuant smooths it at that scale."""
    return gaussian_smoothed(sitk.GetArrayViewFromImage(image), image.GetSpacing()[::-1], sigma_mm)


def line_mean(array: np.ndarray, index_zyx: np.ndarray) -> float:
    return float(ndi.map_coordinates(array, index_zyx.T, order=1).mean())


def _ends(segment: dict) -> tuple[np.ndarray, np.ndarray]:
    """A segment's ends in the scanner's physical frame (the tuned phantoms also keep their design frame)."""
    if "start_physical_mm" in segment:
        return np.asarray(segment["start_physical_mm"], float), np.asarray(segment["end_physical_mm"], float)
    return np.asarray(segment["start_mm"], float), np.asarray(segment["end_mm"], float)


def line_snr(noisy, clean, radii, sigma_mm: float, seed: int) -> dict:
    """Per radius of ``radii``: (signal of each segment of that radius in HU, noise SD of its line average in HU, each
    segment's length in mm)."""
    assert len(noisy.segments) == len(clean.segments), "the noise must not change the vessel tree"
    image, truth = smoothed(noisy.image, sigma_mm), smoothed(clean.image, sigma_mm)
    noise = image - truth
    lung = sitk.GetArrayFromImage(clean.lung_mask).astype(bool)
    parenchyma = float(np.median(truth[lung]))
    spacing_zyx = np.asarray(clean.image.GetSpacing()[::-1], float)
    lung_index = np.argwhere(lung)
    rng = np.random.default_rng(seed)
    out = {}
    for radius in radii:
        signals, lengths, mm = [], [], []
        for seg in clean.segments:
            if seg["radius_mm"] != radius:
                continue
            start, end = _ends(seg)
            length = float(np.linalg.norm(end - start))
            offsets = np.arange(START_MM, length + 1e-9, STEP_MM)
            if offsets.size < 2:
                continue
            points = start + offsets[:, None] * (end - start) / length
            signals.append(line_mean(truth, physical_to_index(clean.image, points)) - parenchyma)
            lengths.append(offsets.size)
            mm.append(length)
        # noise of a line average of the typical segment length, at random lung points and directions
        samples = int(np.median(lengths)) if lengths else 2
        starts = lung_index[rng.choice(len(lung_index), 5000)].astype(float)
        directions = rng.normal(size=starts.shape)
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        steps = np.arange(samples) * STEP_MM
        means = [line_mean(noise, s + steps[:, None] * d / spacing_zyx) for s, d in zip(starts, directions)]
        noise_sd = 1.4826 * float(np.median(np.abs(np.asarray(means) - np.median(means))))
        out[radius] = (np.asarray(signals), noise_sd, np.asarray(mm))
    return out


def _cases(args):
    """(label, [make(seed) -> (noisy, clean)], radii(clean)) per operating point of the family."""
    if args.family == "tuned":
        for noise_hu in args.noise:

            def make(seed, noise_hu=noise_hu):
                common = dict(seed=seed, **phantom_geometry(args))
                return make_vessel_phantom(noise_sd_hu=noise_hu, **common), make_vessel_phantom(
                    noise_sd_hu=0.0, **common
                )

            yield f"{noise_hu:g} HU", make, lambda clean: [min(seg["radius_mm"] for seg in clean.segments)]
        return
    from study_phantom_family import make_study_family_phantom  # beside this script

    for dose in args.dose:

        def make(seed, dose=dose):
            return (
                make_study_family_phantom(seed, dose, args.recon),
                make_study_family_phantom(seed, dose, args.recon, noise=False),
            )

        yield (
            f"{args.recon} {dose:g} mGy",
            make,
            lambda clean: sorted({seg["radius_mm"] for seg in clean.segments if seg["radius_mm"] <= THIN_MM + 1e-9}),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_phantom_arguments(parser)
    parser.add_argument("--family", choices=("tuned", "study"), default="tuned")
    parser.add_argument("--dose", type=float, nargs="+", default=[4.0, 0.2], help="study: CTDIvol (mGy)")
    parser.add_argument("--recon", default="fbp", help="study: reconstruction model (fbp, ir, dlr)")
    parser.add_argument("--sigma", type=float, default=0.5, help="smoothing in mm (VesselQuant's finest scale)")
    args = parser.parse_args()

    header = (
        "operating point  radius mm  segments  length mm (median)  contrast HU (median)  line noise SD HU  "
        "SNR (median)  " + "  ".join(f"oracle finds @ alpha {a:g}" for a in ALPHAS)
    )
    print(header)
    for label, make, radii_of in _cases(args):
        per_radius: dict = {}
        for seed in args.seeds:
            noisy, clean = make(seed)
            for radius, run in line_snr(noisy, clean, radii_of(clean), args.sigma, seed).items():
                per_radius.setdefault(radius, []).append(run)
        found_all, length_all = [], []
        for radius, runs in sorted(per_radius.items()):
            snr = np.concatenate([signals / noise_sd for signals, noise_sd, _ in runs])
            contrast = np.concatenate([signals for signals, _, _ in runs])
            lengths = np.concatenate([mm for _, _, mm in runs])
            found = [norm.sf(norm.isf(a) - snr) for a in ALPHAS]
            found_all.append(found)
            length_all.append(lengths)
            print(
                f"{label:>15}  {radius:9g}  {snr.size:8d}  {np.median(lengths):18.1f}  {np.median(contrast):20.1f}  "
                f"{np.mean([sd for _, sd, _ in runs]):16.1f}  {np.median(snr):12.2f}  "
                + "  ".join(f"{float(np.mean(f)):23.1%}" for f in found)
            )
        if len(per_radius) > 1:  # the share of centreline points (segments weighted by length), as the goal counts
            weights = np.concatenate(length_all)
            shares = [float(np.average(np.concatenate([f[k] for f in found_all]), weights=weights)) for k in range(3)]
            print(
                f"{label:>15}  {'all':>9}  {weights.size:8d}  (points: segments weighted by length)"
                + " " * 45
                + "  ".join(f"{f:23.1%}" for f in shares)
            )


if __name__ == "__main__":
    main()
