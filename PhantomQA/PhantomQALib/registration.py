"""Rigid registration of the phantom design to a scan (SimpleITK).

``mode``:

- ``never``: the scan is in the design frame (simulated scans, or a design already aligned);
- ``always``: register;
- ``auto`` (default): keep the identity when the design, rendered on the scan grid, already
  correlates with the scan (normalised cross-correlation >= ``accept_correlation`` after a
  light smoothing), otherwise register.

Registration: the design rendered as an ideal CT image (moving) against the scan (fixed),
both at ``working_spacing_mm``; moments-based initial alignment of the dense material
(holder + vessels), then a rigid (Euler) transform optimised on normalised correlation in a
three-level pyramid. Because a cylindrical holder is nearly symmetric about its axis, four
starting rotations about the principal axis are tried and the best is kept, then refined at
a fine spacing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from RadiologyAICommonLib.errors import RadiologyAIError

from .rasterize import GridDesign, RigidMap

REGISTRATION_MODES = ("auto", "always", "never")


@dataclass
class RegistrationParameters:
    mode: str = "auto"
    accept_correlation: float = 0.5  # auto: identity kept above this correlation
    working_spacing_mm: float = 1.5  # both images resampled to this for the multi-start optimisation
    refine_spacing_mm: float = 0.8  # final single-level refinement at this spacing (or the scan's, if coarser)
    iterations: int = 120
    start_angles_deg: tuple = (0.0, 90.0, 180.0, 270.0)  # starting rotations about the holder axis
    min_overlap: float = 0.5  # design vessel volume that must lie inside the scan after alignment


def _smooth(image: sitk.Image, sigma_mm: float) -> sitk.Image:
    return sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), sigma_mm)


def correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if mask is not None:
        a, b = a[mask], b[mask]
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def identity_correlation(scan: sitk.Image, grid: GridDesign, sigma_mm: float = 1.5) -> float:
    """Correlation of the scan with the design rendered on its grid (identity alignment)."""
    ideal = grid.image(grid.ideal_hu())
    a = sitk.GetArrayFromImage(_smooth(ideal, sigma_mm))  # copies: views of temporaries would dangle
    b = sitk.GetArrayFromImage(_smooth(scan, sigma_mm))
    return correlation(a, b)


def _resample_iso(image: sitk.Image, spacing: float) -> sitk.Image:
    size = [max(8, int(round(n * s / spacing))) for n, s in zip(image.GetSize(), image.GetSpacing())]
    smoothed = _smooth(image, max(spacing / 2.0, 1e-3))
    return sitk.Resample(
        smoothed,
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        [spacing] * 3,
        image.GetDirection(),
        -1000.0,
        sitk.sitkFloat32,
    )


def register_design(
    scan: sitk.Image,
    design_image: sitk.Image,
    parameters: RegistrationParameters | None = None,
    what: str = "scan",
    fine_design_image: sitk.Image | None = None,
) -> tuple[RigidMap, float]:
    """Rigid transform scan -> design and the final correlation metric (lower is better, in [-1, 0])."""
    p = parameters or RegistrationParameters()
    fixed = _resample_iso(scan, p.working_spacing_mm)
    moving = _resample_iso(design_image, p.working_spacing_mm)
    fixed_dense = sitk.Cast(fixed > -500, sitk.sitkFloat32)
    moving_dense = sitk.Cast(moving > -500, sitk.sitkFloat32)
    if sitk.GetArrayViewFromImage(fixed_dense).sum() == 0:
        raise RadiologyAIError(f"{what}: no phantom material (> -500 HU) found in the scan; is it a CT of the phantom?")
    try:
        initial = sitk.CenteredTransformInitializer(
            fixed_dense, moving_dense, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
        )
    except RuntimeError as exc:
        raise RadiologyAIError(f"{what}: cannot initialise the design registration ({exc})") from None
    best = None
    for angle in p.start_angles_deg:
        start = sitk.Euler3DTransform(initial)
        start.SetRotation(0.0, 0.0, np.deg2rad(angle))
        reg = sitk.ImageRegistrationMethod()
        reg.SetMetricAsCorrelation()
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(0.2, seed=1)
        reg.SetInterpolator(sitk.sitkLinear)
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=2.0, minStep=1e-3, numberOfIterations=p.iterations, relaxationFactor=0.6
        )
        reg.SetOptimizerScalesFromPhysicalShift()
        reg.SetShrinkFactorsPerLevel([4, 2, 1])
        reg.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
        reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
        reg.SetInitialTransform(start, inPlace=False)
        try:
            transform = reg.Execute(fixed, moving)
        except RuntimeError as exc:
            raise RadiologyAIError(
                f"{what}: the design could not be registered to the scan ({str(exc).strip().splitlines()[-1]})"
            ) from None
        metric = reg.GetMetricValue()
        if best is None or metric < best[1]:
            best = (transform, metric)
    # Refinement of the best start at the fine spacing (sub-millimetre accuracy for thin vessels).
    fine = max(p.refine_spacing_mm, min(scan.GetSpacing()))
    fixed_fine = _resample_iso(scan, fine)
    moving_fine = _resample_iso(fine_design_image if fine_design_image is not None else design_image, fine)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsCorrelation()
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.1, seed=2)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=0.5, minStep=1e-4, numberOfIterations=p.iterations // 2, relaxationFactor=0.6
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetInitialTransform(
        sitk.Euler3DTransform(best[0].GetNthTransform(0) if best[0].GetName() == "CompositeTransform" else best[0]),
        inPlace=False,
    )
    try:
        refined = reg.Execute(fixed_fine, moving_fine)
        best = (refined, reg.GetMetricValue())
    except RuntimeError:
        pass  # keep the coarse result
    return RigidMap.from_sitk(best[0]), float(best[1])


def check_overlap(grid: GridDesign, design_volume_ml: float, min_overlap: float, what: str) -> None:
    """Raise when too little of the design's vessel volume lies inside the scan."""
    voxel_ml = float(np.prod(grid.reference.GetSpacing())) / 1000.0
    inside = float(grid.occupancy.sum()) * voxel_ml
    fraction = inside / design_volume_ml if design_volume_ml > 0 else 0.0
    if fraction < min_overlap:
        raise RadiologyAIError(
            f"{what}: the phantom design does not overlap the scan (only {100 * fraction:.0f} % of the design's "
            f"vessel volume lies inside the scanned volume); check the design, the scan and its position"
        )
