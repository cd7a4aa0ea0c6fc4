"""A third vessel phantom family for issue 13: PhantomQA's study phantom, scanned by PhantomQA's own simulator.

VesselQuant was tuned on neither. The design is ``PhantomQALib.study_phantom.make_study_phantom`` (the
built-in "printed" preset: two trees of capsules, radii 4.25 down to 0.1 mm, printed material near +100 HU
with its calibrated texture, in **air** inside a PMMA holder), rasterised by ``rasterise_design`` on the
study's scan grid (``PRESET_SCAN_SIZES``, 0.7 x 0.7 x 1.0 mm) and acquired as the study does it
(``FastSimulator`` with a calibrated reconstruction model at a CTDIvol, noise seeded by ``acquisition_seed``,
``to_ct_image``), so the noise has the reconstruction's NPS and an SD of ``noise_sd_1mgy_hu / sqrt(CTDIvol)``.

``seed`` picks both the design and the noise: design seed ``7 + seed`` (seed 0 is the study's own phantom,
whose default phantom seed is 7) and acquisition ``acquisition_seed(seed, recon, dose, repetition 1)``.

Truth, with the definitions of ``VesselQuantLib/vessel_phantom.py``: the vessel fraction is
``rasterise_design``'s occupancy (super-sampled partial volume); the label is the voxels at least half filled
with vessel plus the voxels the centreline passes through, inside the lung mask (the holder interior, what the
study passes to VesselQuant); centreline points every 0.25 mm with radius, isolation and position along the
segment come from ``vessel_phantom._centreline_truth``. The design frame is the scan's physical frame
(identity direction, origin at the holder's centre), so no transform is involved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from PhantomQALib.rasterize import rasterise_design
from PhantomQALib.recon import get_model
from PhantomQALib.simulate import FastSimulator, ScanGeometry, acquisition_seed, to_ct_image
from PhantomQALib.study_phantom import PRESET_SCAN_SIZES, PhantomDesign, make_study_phantom, preset_parameters
from VesselQuantLib.evaluation import physical_to_index
from VesselQuantLib.vessel_phantom import VesselPhantom, _centreline_truth

STUDY_DOSES_MGY = (0.2, 0.5, 1.0, 2.1, 4.0)  # the study's dose series (PhantomQA/README.md)
DESIGN_SEED = 7  # the study's default phantom seed


@dataclass
class StudyFamilyPhantom(VesselPhantom):
    design: PhantomDesign | None = None
    recon: str = "fbp"
    ctdivol_mgy: float = 0.0
    nominal_noise_sd_hu: float = float("nan")  # the reconstruction model's SD at the dose


def background_noise_sd(phantom: VesselPhantom, away_mm: float = 3.0) -> float:
    """SD (HU) of the image in the lung region at least ``away_mm`` from any vessel (and nodule, for phantoms
    that have them) and from the region's edge: the noise where there is only background."""
    spacing = phantom.image.GetSpacing()[::-1]
    lung = sitk.GetArrayViewFromImage(phantom.lung_mask).astype(bool)
    empty = sitk.GetArrayViewFromImage(phantom.vessel_fraction) <= 0
    nodules = getattr(phantom, "nodule_label", None)
    if nodules is not None:
        empty = empty & ~sitk.GetArrayViewFromImage(nodules).astype(bool)
    room = np.minimum(
        ndi.distance_transform_edt(lung, sampling=spacing), ndi.distance_transform_edt(empty, sampling=spacing)
    )
    return float(sitk.GetArrayViewFromImage(phantom.image)[room > away_mm].std())


def _slices_through(lung: np.ndarray):
    """A function that crops an image of the scan grid to the slices holding the holder's interior.

    The printed holder is a tube open at both ends whose slab (92 mm) is shorter than the study's grid (95 mm):
    in the end slices its air interior meets the air around it, which an automatic lung mask rightly takes as
    outside air. A chest CT is cropped to the lungs the same way (VesselQuant keeps lungs that touch the first
    and last slice). The study itself passes the holder interior as the lung mask and is not affected.
    """
    hit = np.flatnonzero(lung.any(axis=(1, 2)))
    first, count = int(hit[0]), int(hit[-1] - hit[0] + 1)

    def crop(image: sitk.Image) -> sitk.Image:
        size = list(image.GetSize())
        return sitk.RegionOfInterest(image, [size[0], size[1], count], [0, 0, first])

    return crop


def make_study_family_phantom(
    seed: int = 0, ctdivol_mgy: float = 4.0, recon: str = "fbp", preset: str = "printed", noise: bool = True
) -> StudyFamilyPhantom:
    """One phantom of the family (see the module docstring): design ``7 + seed``, acquired at ``ctdivol_mgy``
    (without noise: the reconstruction's noise-free image at that dose, for signal-to-noise studies)."""
    design = make_study_phantom(preset_parameters(preset, seed=DESIGN_SEED + seed))
    reference = ScanGeometry(size=PRESET_SCAN_SIZES[preset]).reference()
    grid = rasterise_design(design, reference)
    model = get_model(recon)
    simulator = FastSimulator(grid.ideal_hu(), reference.GetSpacing())
    image = to_ct_image(
        simulator.acquire(model, ctdivol_mgy, acquisition_seed(seed, model.name, ctdivol_mgy, 1), noise=noise),
        reference,
    )

    segments = [
        {"start_mm": np.asarray(s.start, float), "end_mm": np.asarray(s.end, float), "radius_mm": s.radius_mm}
        for s in design.segments
    ]
    points, radii, positions, isolated = _centreline_truth(segments)
    lung = grid.lung_mask.astype(bool)
    label = grid.occupancy >= 0.5
    index = np.rint(physical_to_index(reference, points)).astype(int)  # every centreline voxel is vessel
    for a in range(3):
        index[:, a] = np.clip(index[:, a], 0, label.shape[a] - 1)
    label[tuple(index.T)] = True
    label &= lung
    slab = _slices_through(lung)
    return StudyFamilyPhantom(
        image=slab(image),
        truth_label=slab(grid.image(label.astype(np.uint8))),
        vessel_fraction=slab(grid.image(grid.occupancy.astype(np.float32))),
        lung_mask=slab(grid.image(lung.astype(np.uint8))),
        points_mm=points,
        point_radius_mm=radii,
        point_isolated=isolated,
        point_position=positions,
        segments=segments,
        design=design,
        recon=model.name,
        ctdivol_mgy=float(ctdivol_mgy),
        nominal_noise_sd_hu=model.noise_sd_at(ctdivol_mgy),
    )
