"""Synthetic MRI-like cohort of femoral heads with a known two-class signal (tests, demo, benchmarks).

Each case is a 3D volume (default 48^3 voxels at 1 mm) holding a spherical "femoral head"
(the mask, label 1) inside a marrow-like background. The classes differ by construction:

- **texture scale**: the marrow texture inside the head is Gaussian-smoothed noise whose
  correlation length (the Gaussian sigma) is drawn per case from N(1.25, 0.3) mm for class 0
  ("transient osteoporosis": diffuse, fine oedema pattern) and N(1.85, 0.3) mm for class 1
  ("avascular necrosis": coarser, patchy pattern);
- **heterogeneity**: the texture amplitude is drawn from N(60, 12) for class 0 and N(72, 12)
  for class 1 (grey levels before gain);
- **intensity**: the mean head signal relative to the background is lower in class 1 by
  N(35, 25) grey levels (necrotic marrow), 0 +- 25 for class 0.

Every case also gets nuisance variation that carries no class information: scanner gain
U(0.7, 1.4), offset U(-150, 150), white noise SD U(8, 20) and head radius U(13, 19) voxels.
The class distributions overlap: an observer who knew the three latent parameters exactly would
reach the AUC of :func:`oracle_auc` (0.969 with the defaults, chosen a priori to resemble the hip
study's 0.94), and a classifier working from image features can only do worse.
Two simulated reader scores (1-5 Likert, from the same latent signal with more noise) allow
the reader comparison. Everything is seeded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from RadiologyAICommonLib.imageio import image_from_array, write_image
from RadiologyAICommonLib.progress import ProgressCallback, no_progress

CLASS_NAMES = {0: "transient osteoporosis", 1: "avascular necrosis"}


@dataclass
class SyntheticParameters:
    """Synthetic cohort settings (defaults: the benchmark cohort)."""

    n_cases: int = 100
    size: int = 48  # voxels per side
    spacing: float = 1.0  # mm, isotropic
    positive_fraction: float = 0.5
    texture_sigma_mm: tuple[float, float] = (1.25, 1.85)  # class 0, class 1 means
    texture_sigma_sd: float = 0.3
    texture_amplitude: tuple[float, float] = (60.0, 72.0)
    texture_amplitude_sd: float = 12.0
    intensity_drop: tuple[float, float] = (0.0, 35.0)  # head signal lowered by this, class 0 / class 1
    intensity_drop_sd: float = 25.0
    radius_range: tuple[float, float] = (13.0, 19.0)  # voxels
    gain_range: tuple[float, float] = (0.7, 1.4)
    offset_range: tuple[float, float] = (-150.0, 150.0)
    noise_range: tuple[float, float] = (8.0, 20.0)
    readers: int = 2
    seed: int = 0


@dataclass
class SynthCase:
    case_id: str
    label: int
    image: sitk.Image
    mask: sitk.Image
    truth: dict


def oracle_auc(config: SyntheticParameters | None = None) -> float:
    """AUC of the ideal observer that knows the three class-dependent latent parameters of every case.

    Independent Gaussian parameters with equal variance in both classes: the log-likelihood ratio
    is linear and the AUC is Phi(d / sqrt(2)) with d the Mahalanobis distance of the class means.
    (The clipping of sigma and amplitude at their floors is ignored; it is rare with the defaults.)
    """
    from scipy.stats import norm

    cfg = config or SyntheticParameters()
    d2 = ((cfg.texture_sigma_mm[1] - cfg.texture_sigma_mm[0]) / cfg.texture_sigma_sd) ** 2
    d2 += ((cfg.texture_amplitude[1] - cfg.texture_amplitude[0]) / cfg.texture_amplitude_sd) ** 2
    d2 += ((cfg.intensity_drop[1] - cfg.intensity_drop[0]) / cfg.intensity_drop_sd) ** 2
    return float(norm.cdf(np.sqrt(d2) / np.sqrt(2.0)))


def _smooth_noise(rng, shape, sigma_vox):
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=max(sigma_vox, 0.3), mode="reflect")
    sd = field.std()
    return field / sd if sd > 0 else field


def make_case(label: int, seed: int, config: SyntheticParameters | None = None, case_id: str = "case") -> SynthCase:
    """One synthetic case of class ``label`` (0 or 1), fully determined by ``seed``."""
    cfg = config or SyntheticParameters()
    rng = np.random.default_rng(seed)
    n = cfg.size
    shape = (n, n, n)
    sigma_mm = max(0.5, rng.normal(cfg.texture_sigma_mm[label], cfg.texture_sigma_sd))
    amplitude = max(10.0, rng.normal(cfg.texture_amplitude[label], cfg.texture_amplitude_sd))
    drop = rng.normal(cfg.intensity_drop[label], cfg.intensity_drop_sd)
    radius = rng.uniform(*cfg.radius_range)
    gain = rng.uniform(*cfg.gain_range)
    offset = rng.uniform(*cfg.offset_range)
    noise_sd = rng.uniform(*cfg.noise_range)
    centre = np.array(shape) / 2.0 - 0.5 + rng.uniform(-1.5, 1.5, size=3)

    zz, yy, xx = np.indices(shape, dtype=float)
    dist = np.sqrt((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2)
    head = dist <= radius
    # background: fat/muscle-like smooth field; cortex: a dark rim around the head
    background = 500.0 + 40.0 * _smooth_noise(rng, shape, 3.0 / cfg.spacing)
    rim = (dist > radius) & (dist <= radius + 2.0)
    marrow = 600.0 - drop + amplitude * _smooth_noise(rng, shape, sigma_mm / cfg.spacing)
    volume = np.where(head, marrow, background)
    volume = np.where(rim, 150.0 + 20.0 * rng.standard_normal(shape), volume)
    volume = gain * volume + offset + noise_sd * rng.standard_normal(shape)
    volume = np.clip(np.round(volume), -32768, 32767).astype(np.int16)

    image = sitk.GetImageFromArray(volume)
    image.SetSpacing((cfg.spacing,) * 3)
    image.SetOrigin((-n * cfg.spacing / 2.0, -n * cfg.spacing / 2.0, 0.0))
    mask = image_from_array(head.astype(np.uint8), image)
    truth = {
        "texture_sigma_mm": sigma_mm,
        "texture_amplitude": amplitude,
        "intensity_drop": drop,
        "radius_vox": radius,
        "gain": gain,
        "offset": offset,
        "noise_sd": noise_sd,
    }
    return SynthCase(case_id, int(label), image, mask, truth)


def _reader_scores(rng, cases: list[SynthCase], cfg: SyntheticParameters) -> list[list[int]]:
    """Likert 1-5 reader scores from the latent texture scale and intensity drop, plus reader noise."""
    scores = []
    for r in range(cfg.readers):
        noise_sd = 0.9 + 0.3 * r
        row = []
        for case in cases:
            t = case.truth
            latent = (
                (t["texture_sigma_mm"] - 1.55) / 0.4 + (t["intensity_drop"] - 15.0) / 40.0 + rng.normal(0, noise_sd)
            )
            row.append(int(np.clip(np.round(3 + latent), 1, 5)))
        scores.append(row)
    return scores


def make_cohort(
    output_dir: str | Path, config: SyntheticParameters | None = None, progress: ProgressCallback = no_progress
) -> Path:
    """Write ``images/``, ``masks/`` (NRRD), ``cohort.csv`` and ``truth.csv`` into ``output_dir``; return the CSV path.

    ``cohort.csv`` has ``case_id, image, mask, label, reader1, reader2`` (paths relative to the CSV).
    """
    cfg = config or SyntheticParameters()
    output_dir = Path(output_dir)
    (output_dir / "images").mkdir(parents=True, exist_ok=True)
    (output_dir / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    n_pos = int(round(cfg.n_cases * cfg.positive_fraction))
    labels = np.array([1] * n_pos + [0] * (cfg.n_cases - n_pos))
    rng.shuffle(labels)
    seeds = rng.integers(0, 2**31 - 1, size=cfg.n_cases)
    cases = []
    rows = []
    for i, (label, case_seed) in enumerate(zip(labels, seeds)):
        case_id = f"synth{i + 1:03d}"
        case = make_case(int(label), int(case_seed), cfg, case_id)
        image_rel, mask_rel = f"images/{case_id}.nrrd", f"masks/{case_id}_mask.nrrd"
        write_image(case.image, output_dir / image_rel)
        write_image(case.mask, output_dir / mask_rel)
        cases.append(case)
        rows.append({"case_id": case_id, "image": image_rel, "mask": mask_rel, "label": int(label)})
        progress((i + 1) / cfg.n_cases, f"synthetic case {i + 1}/{cfg.n_cases}")
    readers = _reader_scores(rng, cases, cfg)
    cohort = pd.DataFrame(rows)
    for r, scores in enumerate(readers):
        cohort[f"reader{r + 1}"] = scores
    truth = pd.DataFrame([{"case_id": c.case_id, "label": c.label, **c.truth} for c in cases])
    cohort.to_csv(output_dir / "cohort.csv", index=False)
    truth.to_csv(output_dir / "truth.csv", index=False)
    (output_dir / "synth_config.json").write_text(pd.Series(asdict(cfg)).to_json(indent=2) + "\n")
    return output_dir / "cohort.csv"
