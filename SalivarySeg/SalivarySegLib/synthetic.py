"""Synthetic head-and-neck CT with salivary-gland tumours of known kind, for tests and the demo.

Each case is a non-contrast neck CT in Hounsfield units (LPS: x to the patient's left, y
posterior, z superior) with a body outline, subcutaneous fat, muscle, cervical spine and canal,
pharyngeal airway, mandible, both parotid glands (fatty, about -10 HU) and both submandibular
glands, blurred like a CT point-spread function and with quantum-like noise. One gland carries
one lesion, whose mask is the label:

* ``benign`` -- well-circumscribed, homogeneous: a smooth ellipsoid (pleomorphic-adenoma-like);
* ``malignant`` -- infiltrative, heterogeneous: a lobulated outline perturbed by a smooth random
  field, mottled attenuation and low-density (necrotic) foci.

Voxel sizes vary between cases (in-plane 0.8-1.1 mm, slices 1.5-3 mm) so the 2 mm resampling is
exercised. Everything is drawn from ``numpy.random.default_rng((seed, case_index))``, so a case
does not depend on how many others are generated.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from RadiologyAICommonLib.outputs import staged_output_dir
from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import write_image
from RadiologyAICommonLib.progress import ProgressCallback, no_progress

DIAGNOSES = ("benign", "malignant")


@dataclass
class SyntheticParameters:
    """Field of view and voxel-size ranges of the synthetic CTs (mm)."""

    fov_mm: tuple[float, float, float] = (200.0, 200.0, 140.0)  # x, y, z
    inplane_spacing_mm: tuple[float, float] = (0.8, 1.1)
    slice_spacing_mm: tuple[float, float] = (1.5, 3.0)
    noise_hu: float = 12.0  # standard deviation of the added noise
    spacing_mm: tuple[float, float, float] | None = None  # fixed spacing (overrides the ranges)


@dataclass
class SyntheticCase:
    case_id: str
    image: sitk.Image  # int16 HU
    label: sitk.Image  # uint8, 1 = tumour
    diagnosis: str
    gland: str
    lesion_volume_ml: float


def _ellipsoid(x, y, z, centre, axes):
    return ((x - centre[0]) / axes[0]) ** 2 + ((y - centre[1]) / axes[1]) ** 2 + ((z - centre[2]) / axes[2]) ** 2


def _smooth_noise(rng, shape, sigma_vox):
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox, mode="wrap")
    return field / (field.std() + 1e-6)


def make_case(
    case_index: int, seed: int = 0, diagnosis: str | None = None, params: SyntheticParameters | None = None
) -> SyntheticCase:
    """One synthetic case; ``diagnosis`` None draws benign/malignant at random."""
    params = params or SyntheticParameters()
    rng = np.random.default_rng((int(seed), int(case_index)))
    if diagnosis is None:
        diagnosis = DIAGNOSES[int(rng.integers(2))]
    if diagnosis not in DIAGNOSES:
        raise RadiologyAIError(f"synthetic case: diagnosis must be one of {DIAGNOSES}, got {diagnosis!r}")
    if params.spacing_mm is not None:
        spacing = np.array(params.spacing_mm, dtype=float)
    else:
        inplane = rng.uniform(*params.inplane_spacing_mm)
        spacing = np.array([inplane, inplane, rng.uniform(*params.slice_spacing_mm)])
    fov = np.array(params.fov_mm, dtype=float)
    size = np.maximum(np.round(fov / spacing).astype(int), 8)
    origin = -0.5 * (size - 1) * spacing
    x = (origin[0] + spacing[0] * np.arange(size[0]))[None, None, :].astype(np.float32)
    y = (origin[1] + spacing[1] * np.arange(size[1]))[None, :, None].astype(np.float32)
    z = (origin[2] + spacing[2] * np.arange(size[2]))[:, None, None].astype(np.float32)
    shape = (size[2], size[1], size[0])

    scale = rng.uniform(0.92, 1.08)
    shift = rng.uniform(-6, 6, size=3) * np.array([1, 1, 0.5])
    x = (x - shift[0]) / scale
    y = (y - shift[1]) / scale
    z = (z - shift[2]) / scale
    hu = np.full(shape, -1000.0, dtype=np.float32)

    # Body: an ellipse widening from the neck (inferior) to the face (superior).
    widen = 1.0 / (1.0 + np.exp(-(z + 20.0) / 10.0))
    ax = 56.0 + 16.0 * widen
    ay = 62.0 + 20.0 * widen
    body_r = np.sqrt((x / ax) ** 2 + ((y - 6.0) / ay) ** 2)
    body = body_r < 1.0
    hu[body] = -100.0  # subcutaneous fat
    muscle = body_r < 1.0 - 7.0 / ax
    hu[np.broadcast_to(muscle, shape)] = 42.0
    # Fat planes in the muscle (gentle texture).
    texture = _smooth_noise(rng, shape, (2.0, 4.0, 4.0))
    hu = np.where(muscle & (texture > 1.6), -60.0, hu)

    # Cervical spine (body, cortex, canal) and pharyngeal airway.
    r_spine = np.sqrt(x**2 + (y - 32.0) ** 2)
    hu = np.where(r_spine < 13.0, 700.0, hu)
    hu = np.where(r_spine < 10.5, 300.0, hu)
    r_canal = np.sqrt(x**2 + (y - 52.0) ** 2)
    hu = np.where(r_canal < 7.5, 25.0, hu)
    airway = ((x / 11.0) ** 2 + ((y - 8.0) / 7.0) ** 2 < 1.0) & (z < 55.0)
    hu = np.where(airway, -1000.0, hu)

    # Mandible: a U-shaped bony band (body anteriorly, rami posteriorly) between z -12 and 38.
    u = np.sqrt((x / 46.0) ** 2 + ((y + 2.0) / 52.0) ** 2)
    mandible = (np.abs(u - 1.0) * 48.0 < 3.5) & (y < 12.0) & (z > -12.0) & (z < 38.0)
    hu = np.where(mandible, 950.0, hu)

    # Glands: parotids (fatty) and submandibular glands.
    glands = {}
    for side, sign in (("right", -1.0), ("left", 1.0)):
        glands[f"parotid_{side}"] = (np.array([sign * 50.0, 16.0, 20.0]), np.array([11.0, 19.0, 22.0]), -12.0)
        glands[f"submandibular_{side}"] = (np.array([sign * 33.0, -8.0, -20.0]), np.array([10.0, 12.0, 9.0]), 15.0)
    for centre, axes, value in glands.values():
        inside = _ellipsoid(x, y, z, centre, axes) < 1.0
        hu = np.where(inside, value + 8.0 * texture, hu)

    # The lesion.
    gland = ("parotid_right", "parotid_left", "submandibular_right", "submandibular_left")[
        int(rng.choice(4, p=[0.4, 0.4, 0.1, 0.1]))
    ]
    g_centre, g_axes, _ = glands[gland]
    centre = g_centre + rng.uniform(-0.35, 0.35, size=3) * g_axes
    radius = rng.uniform(8.0, 14.0) if gland.startswith("parotid") else rng.uniform(7.0, 10.5)
    axes = radius * rng.uniform(0.8, 1.2, size=3)
    rotation = sitk.Euler3DTransform()
    rotation.SetRotation(*rng.uniform(-np.pi, np.pi, size=3))
    rot = np.array(rotation.GetMatrix()).reshape(3, 3)
    dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
    px = rot[0, 0] * dx + rot[0, 1] * dy + rot[0, 2] * dz
    py = rot[1, 0] * dx + rot[1, 1] * dy + rot[1, 2] * dz
    pz = rot[2, 0] * dx + rot[2, 1] * dy + rot[2, 2] * dz
    level = np.sqrt((px / axes[0]) ** 2 + (py / axes[1]) ** 2 + (pz / axes[2]) ** 2)
    offset = rng.uniform(-5, 5)
    if diagnosis == "benign":
        lesion = level < 1.0
        values = np.float32(58.0 + offset)
    else:
        # Infiltrative outline: the level set perturbed by a smooth random field (lobulated, spiculated).
        sigma_vox = np.maximum(3.0 / spacing[::-1], 0.8)
        lobes = _smooth_noise(rng, shape, sigma_vox)
        lesion = (level + 0.28 * lobes) < 1.0
        mottle = _smooth_noise(rng, shape, np.maximum(1.5 / spacing[::-1], 0.6))
        values = 52.0 + offset + 22.0 * mottle
        values = np.where(mottle < -1.0, 12.0, values)  # necrotic foci
    lesion &= body_r < 0.97
    if lesion.sum() < 10:
        raise RadiologyAIError(f"synthetic case {case_index}: lesion too small (use a smaller voxel size)")
    hu = np.where(lesion, values, hu)

    # CT point-spread function and noise.
    hu = ndimage.gaussian_filter(hu, sigma=np.maximum(0.7 / spacing[::-1], 0.3))
    hu += rng.normal(0.0, params.noise_hu, size=shape).astype(np.float32)
    hu = np.clip(hu, -1024, 3071)

    image = sitk.GetImageFromArray(np.round(hu).astype(np.int16))
    label = sitk.GetImageFromArray(lesion.astype(np.uint8))
    for img in (image, label):
        img.SetSpacing([float(s) for s in spacing])
        img.SetOrigin([float(o) for o in origin])
    volume_ml = float(lesion.sum() * np.prod(spacing) / 1000.0)
    return SyntheticCase(f"case_{case_index:03d}", image, label, diagnosis, gland, volume_ml)


def make_dataset(
    output_dir: str | os.PathLike,
    cases: int,
    seed: int = 0,
    params: SyntheticParameters | None = None,
    splits: list[str] | None = None,
    start_index: int = 0,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
) -> list[dict]:
    """Write a dataset folder (``images/``, ``labels/``, ``cases.csv``) with balanced diagnoses.

    ``splits`` (one of train/val/test per case) adds a ``split`` column. The folder is written
    atomically: it appears only when every case is written. A non-empty folder is refused unless
    ``overwrite``, which replaces only an earlier RadiologyAI run's files there.
    """
    progress = progress or no_progress
    if cases < 1:
        raise RadiologyAIError(f"--cases must be at least 1, got {cases}")
    if splits is not None and len(splits) != cases:
        raise RadiologyAIError(f"{len(splits)} splits given for {cases} cases")
    rng = np.random.default_rng((int(seed), 1_000_003))
    diagnoses = [DIAGNOSES[i % 2] for i in range(cases)]
    rng.shuffle(diagnoses)
    rows = []
    with staged_output_dir(output_dir, command="salivary synth", overwrite=overwrite) as staging:
        (staging / "images").mkdir()
        (staging / "labels").mkdir()
        for i in range(cases):
            index = start_index + i
            case = make_case(index, seed, diagnoses[i], params)
            write_image(case.image, staging / "images" / f"{case.case_id}.nrrd")
            write_image(case.label, staging / "labels" / f"{case.case_id}.nrrd")
            row = {"case_id": case.case_id, "diagnosis": case.diagnosis}
            if splits is not None:
                row["split"] = splits[i]
            row.update({"gland": case.gland, "lesion_volume_ml": round(case.lesion_volume_ml, 3)})
            rows.append(row)
            progress((i + 1) / cases, f"synthetic case {i + 1}/{cases}")
        with open(staging / "cases.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(rows)
    return rows


def write_case(case: SyntheticCase, image_path: str | Path, label_path: str | Path | None = None) -> None:
    write_image(case.image, image_path)
    if label_path is not None:
        write_image(case.label, label_path)
