"""The study runner: every acquisition through VesselQuant, measured against the design.

One *job* per acquisition, run by an executor (:mod:`RadiologyAICommonLib.executors`): read the scan (or
simulate it, for simulated studies), put the design on the scan grid (registering it when
needed, :mod:`.registration`), run VesselQuant with the phantom's known lung region (the
holder interior), and measure per design radius (:mod:`.measure`). Jobs are plain
picklable dataclasses and :func:`run_job` is a module-level function, so the same job runs
in this process, in a local process pool or on a dask.distributed worker.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.progress import ProgressCallback, no_progress

from .acquisitions import Acquisition
from .measure import MeasureParameters, measure_per_radius
from .study_phantom import PhantomDesign
from .rasterize import GridDesign
from .recon import RECON_MODELS, ReconModel
from .registration import RegistrationParameters, check_overlap, identity_correlation, register_design
from .simulate import FastSimulator, ScanGeometry, acquisition_seed, to_ct_image


@dataclass
class SimulationParameters:
    """How a job makes its scan instead of reading it."""

    geometry: ScanGeometry = field(default_factory=ScanGeometry)
    seed: int = 0
    method: str = "fast"  # fast | physical
    recon_models: dict | None = None  # recon key -> ReconModel (default: the calibrated RECON_MODELS)
    write_path: str | None = None  # where to write the simulated scan (NRRD); None = keep in memory


@dataclass
class DesignRef:
    """A design a worker can rebuild cheaply: an analytic design object, or files to load."""

    phantom: PhantomDesign | None = None
    path: str | None = None
    radius_path: str | None = None
    nominal_radii: tuple | None = None

    def token(self) -> str:
        if self.phantom is not None:
            text = self.phantom.to_json()
        else:
            text = json.dumps([self.path, self.radius_path, self.nominal_radii])
        return hashlib.sha1(text.encode()).hexdigest()

    def load(self):
        if self.phantom is not None:
            return self.phantom
        from .designio import load_design

        return load_design(self.path, self.radius_path, list(self.nominal_radii) if self.nominal_radii else None)


@dataclass
class StudyParameters:
    workers: int | None = None  # processes (default: the CPUs available); 1 = in this process
    scheduler: str | None = None  # dask.distributed scheduler address
    registration: RegistrationParameters = field(default_factory=RegistrationParameters)
    measure: MeasureParameters = field(default_factory=MeasureParameters)
    vessel_parameters: dict | None = None  # VesselQuantParameters overrides


@dataclass
class Job:
    acquisition: Acquisition
    design: DesignRef
    analyse: bool = True
    simulation: SimulationParameters | None = None
    registration: RegistrationParameters = field(default_factory=RegistrationParameters)
    measure: MeasureParameters = field(default_factory=MeasureParameters)
    vessel_parameters: dict | None = None


@dataclass
class JobResult:
    acquisition: Acquisition
    per_radius: pd.DataFrame | None
    summary: dict
    alignment: str  # identity | registered
    correlation: float
    seconds: float
    vessel_summary: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- worker side
_CACHE: dict = {}


def _cached(key, make):
    if key not in _CACHE:
        if len(_CACHE) > 8:
            _CACHE.clear()
        _CACHE[key] = make()
    return _CACHE[key]


def _geometry_key(image: sitk.Image) -> tuple:
    return (
        image.GetSize(),
        tuple(np.round(image.GetSpacing(), 6)),
        tuple(np.round(image.GetOrigin(), 4)),
        tuple(np.round(image.GetDirection(), 6)),
    )


def _design_volume_ml(design) -> float:
    if isinstance(design, PhantomDesign):
        return design.vessel_volume_ml()
    voxel_ml = float(np.prod(design.label.GetSpacing())) / 1000.0
    return float((sitk.GetArrayViewFromImage(design.label) == 1).sum()) * voxel_ml


def _extent_overlaps(design, scan: sitk.Image) -> bool:
    """Does the design's vessel bounding box intersect the scan's physical extent (identity)?"""
    from .designio import design_extent_mm

    lo, hi = design_extent_mm(design)
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    size = np.array(scan.GetSize(), float) - 1
    pts = np.array([scan.TransformContinuousIndexToPhysicalPoint(tuple(c * size)) for c in corners])
    return bool(np.all(np.maximum(lo, pts.min(0)) < np.minimum(hi, pts.max(0))))


def align_design(
    design, token: str, scan: sitk.Image, parameters: RegistrationParameters, what: str
) -> tuple[GridDesign, str, float]:
    """The design on the scan grid: identity when it fits (mode auto/never), else registered."""
    from .designio import design_hu_image, design_on_grid

    mode = parameters.mode
    corr = float("nan")
    if mode in ("auto", "never"):
        if mode == "never" or _extent_overlaps(design, scan):
            grid = _cached(("grid", token, _geometry_key(scan)), lambda: design_on_grid(design, scan))
            if mode == "never":
                check_overlap(grid, _design_volume_ml(design), parameters.min_overlap, what)
                return grid, "identity", corr
            corr = identity_correlation(scan, grid)
            if corr >= parameters.accept_correlation:
                check_overlap(grid, _design_volume_ml(design), parameters.min_overlap, what)
                return grid, "identity", corr
    moving = _cached(
        ("design-image", token, parameters.working_spacing_mm),
        lambda: design_hu_image(design, parameters.working_spacing_mm),
    )
    fine = _cached(
        ("design-image", token, parameters.refine_spacing_mm),
        lambda: design_hu_image(design, parameters.refine_spacing_mm),
    )
    rigid, metric = register_design(scan, moving, parameters, what, fine)
    grid = design_on_grid(design, scan, rigid)
    check_overlap(grid, _design_volume_ml(design), parameters.min_overlap, what)
    return grid, "registered", -metric


def _read_scan(acq: Acquisition) -> sitk.Image:
    from RadiologyAICommonLib.imageio import read_volume, validate_scalar_volume

    if acq.dicom_files:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(list(acq.dicom_files))
        try:
            image = reader.Execute()
        except RuntimeError as exc:
            raise RadiologyAIError(
                f"{acq.source}: cannot read the DICOM series ({str(exc).strip().splitlines()[-1]})"
            ) from None
        return validate_scalar_volume(image, acq.source)
    return read_volume(acq.path, f"scan ({acq.source})")


def _simulate(job: Job, grid: GridDesign) -> sitk.Image:
    spec = job.simulation
    acq = job.acquisition
    models = spec.recon_models or RECON_MODELS
    model: ReconModel = models[acq.recon]
    seed = acquisition_seed(spec.seed, acq.recon, acq.ctdivol_mgy, acq.repetition)
    spacing = grid.reference.GetSpacing()
    if spec.method == "physical":
        from .physical import simulate_physical

        array = simulate_physical(grid.ideal_hu(), spacing, acq.recon, acq.ctdivol_mgy, seed)
    else:
        simulator = _cached(("simulator", id(grid)), lambda: FastSimulator(grid.ideal_hu(), spacing))
        array = simulator.acquire(model, acq.ctdivol_mgy, seed)
    return to_ct_image(array, grid.reference)


def run_job(job: Job) -> JobResult:
    """Simulate or read one scan, run VesselQuant on it and measure it (worker entry point)."""
    started = time.perf_counter()
    acq = job.acquisition
    token = job.design.token()
    design = _cached(("design", token), job.design.load)
    if job.simulation is not None:
        reference = job.simulation.geometry.reference()
        grid = _cached(("grid", token, _geometry_key(reference)), lambda: _design_grid(design, reference))
        scan = _simulate(job, grid)
        if job.simulation.write_path:
            from RadiologyAICommonLib.imageio import write_image

            write_image(scan, job.simulation.write_path)
        alignment, corr = "identity", float("nan")
    else:
        scan = _read_scan(acq)
        where = f"{acq.source}, {Path(acq.path).name}" if acq.source else acq.path
        grid, alignment, corr = align_design(design, token, scan, job.registration, where)
    if not job.analyse:
        return JobResult(acq, None, {}, alignment, corr, time.perf_counter() - started)
    try:
        table, summary, vessel_summary = analyse_scan(scan, grid, job.vessel_parameters, job.measure)
    except RadiologyAIError as exc:  # name the acquisition in VesselQuant's message
        raise RadiologyAIError(f"{acq.source or acq.path}: {exc}") from None
    return JobResult(acq, table, summary, alignment, corr, time.perf_counter() - started, vessel_summary)


def _design_grid(design, reference):
    from .designio import design_on_grid

    return design_on_grid(design, reference)


def analyse_scan(
    scan: sitk.Image, grid: GridDesign, vessel_parameters: dict | None = None, measure: MeasureParameters | None = None
):
    """VesselQuant on one scan with the phantom's lung region, then the per-radius measurements."""
    from VesselQuantLib.pipeline import VesselQuantParameters, run_vessel_quant

    params = VesselQuantParameters.from_dict(
        dict(vessel_parameters or {})
    )  # unknown keys and bad values: a clear error
    lung = grid.image(grid.lung_mask)
    result = run_vessel_quant(scan, lung_mask=lung, parameters=params)
    ct = sitk.GetArrayViewFromImage(scan)
    label = sitk.GetArrayViewFromImage(result.vessel_label)
    radius = sitk.GetArrayViewFromImage(result.vessel_radius) if result.vessel_radius is not None else None
    table, summary = measure_per_radius(ct, grid, label, radius, measure)
    vessel_summary = {k: v for k, v in (result.summary or {}).items() if isinstance(v, (int, float, str, bool))}
    return table, summary, vessel_summary


# ----------------------------------------------------------------------------- main side
@dataclass
class StudyResults:
    per_acquisition: pd.DataFrame  # one row per acquisition and design radius
    acquisitions: pd.DataFrame  # one row per acquisition (volume, detection, timing, alignment)
    seconds: float = 0.0


def make_jobs(
    acquisitions: list[Acquisition],
    design: DesignRef,
    parameters: StudyParameters,
    simulation: SimulationParameters | None = None,
    analyse: bool = True,
    write_dir: Path | None = None,
) -> list[Job]:
    jobs = []
    for acq in acquisitions:
        spec = None
        if simulation is not None:
            spec = replace(
                simulation, write_path=str(write_dir / Path(acq.path).name) if write_dir is not None else None
            )
        jobs.append(
            Job(acq, design, analyse, spec, parameters.registration, parameters.measure, parameters.vessel_parameters)
        )
    return jobs


def run_jobs(
    jobs: list[Job], parameters: StudyParameters, progress: ProgressCallback | None = None, what: str = "analysing"
) -> list[JobResult]:
    """Map :func:`run_job` over the jobs with the study's executor; the first error stops the study."""
    from RadiologyAICommonLib.executors import open_executor

    progress = progress or no_progress
    results: list[JobResult | None] = [None] * len(jobs)
    progress(0.0, f"{what} {len(jobs)} acquisitions")
    with open_executor(parameters.workers, parameters.scheduler) as executor:
        futures = {executor.submit(run_job, job): index for index, job in enumerate(jobs)}
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                index = futures[future]
                results[index] = future.result()
                acq = jobs[index].acquisition
                progress(
                    done / len(jobs),
                    f"{what}: {acq.recon} {acq.ctdivol_mgy:g} mGy rep {acq.repetition} ({done}/{len(jobs)})",
                )
        except BaseException as first:
            for future in futures:
                future.cancel()
            # report the failure of the earliest acquisition (a stable message, in manifest order)
            for future, index in sorted(futures.items(), key=lambda item: item[1]):
                if future.done() and not future.cancelled() and future.exception() is not None:
                    raise future.exception() from None
            raise first
    return results  # type: ignore[return-value]


def collect(results: list[JobResult]) -> StudyResults:
    rows, acq_rows = [], []
    for res in results:
        acq = res.acquisition
        base = {
            "recon": acq.recon,
            "ctdivol_mgy": acq.ctdivol_mgy,
            "repetition": acq.repetition,
        }
        if res.per_radius is not None:
            table = res.per_radius.copy()
            for key, value in reversed(list(base.items())):
                table.insert(0, key, value)
            rows.append(table)
        acq_rows.append(
            {
                **base,
                "path": acq.path,
                "measured_ctdivol_mgy": acq.measured_ctdivol_mgy
                if acq.measured_ctdivol_mgy is not None
                else acq.ctdivol_mgy,
                "kernel": acq.kernel,
                "description": acq.description,
                **{
                    k: res.summary.get(k, np.nan)
                    for k in (
                        "detected_volume_ml",
                        "true_positive_volume_ml",
                        "false_positive_volume_ml",
                        "design_volume_ml",
                        "detection_rate",
                    )
                },
                "alignment": res.alignment,
                "alignment_correlation": res.correlation,
                "seconds": round(res.seconds, 2),
            }
        )
    per_acq = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    acq_table = pd.DataFrame(acq_rows)
    if not acq_table.empty:
        acq_table = acq_table.sort_values(["recon", "ctdivol_mgy", "repetition"], key=_recon_sort_key).reset_index(
            drop=True
        )
    if not per_acq.empty:
        per_acq = per_acq.sort_values(
            ["recon", "ctdivol_mgy", "repetition", "radius_mm"],
            ascending=[True, True, True, False],
            key=_recon_sort_key,
        ).reset_index(drop=True)
    return StudyResults(per_acq, acq_table)


def _recon_sort_key(column: pd.Series) -> pd.Series:
    if column.name == "recon":
        order = {name: i for i, name in enumerate(RECON_MODELS)}
        return column.map(lambda v: order.get(v, len(order)))
    return column


def run_study(
    acquisitions: list[Acquisition],
    design: DesignRef,
    parameters: StudyParameters | None = None,
    progress: ProgressCallback | None = None,
    simulation: SimulationParameters | None = None,
    write_dir: Path | None = None,
) -> StudyResults:
    """Analyse every acquisition (simulating it first when ``simulation`` is given)."""
    parameters = parameters or StudyParameters()
    started = time.perf_counter()
    jobs = make_jobs(acquisitions, design, parameters, simulation, True, write_dir)
    results = run_jobs(jobs, parameters, progress)
    study = collect(results)
    study.seconds = time.perf_counter() - started
    return study
