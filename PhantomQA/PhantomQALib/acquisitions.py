"""The acquisitions of a study: from a manifest CSV or a folder of DICOM series.

Manifest CSV (one row per acquisition; extra columns are kept as notes)::

    path,recon,ctdivol_mgy,repetition
    scans/fbp_0.2_1.nrrd,fbp,0.2,1

``path`` is relative to the manifest's folder (or absolute) and may be any image SimpleITK
reads or a folder with one DICOM series. ``recon`` is one of fbp / ir / dlr (aliases in
:mod:`.recon`). Every (recon, dose) needs at least two repetitions (the study reports
mean ± SD over repetitions).

DICOM folder: every CT series found (recursively) is one acquisition; CTDIvol comes from
(0018,9345), the reconstruction family from the convolution kernel (0018,1210) and the
series description (:func:`.recon.recon_from_dicom`); repetitions are numbered in series
order within each (recon, dose). Doses within 20 % of the lowest of a group are one nominal dose
(scanners report slightly different CTDIvol for repeated scans).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from RadiologyAICommonLib.errors import RadiologyAIError

from .recon import normalise_recon, recon_from_dicom

MANIFEST_COLUMNS = ("path", "recon", "ctdivol_mgy", "repetition")
MIN_REPETITIONS = 2


@dataclass
class Acquisition:
    """One scan of the study."""

    path: str  # image file, or DICOM series folder
    recon: str  # canonical recon key
    ctdivol_mgy: float  # nominal dose used for grouping
    repetition: int
    source: str = ""  # where it was declared ("manifest.csv row 3", "DICOM series ...")
    measured_ctdivol_mgy: float | None = None  # CTDIvol as recorded, when it differs from the nominal dose
    kernel: str = ""
    description: str = ""
    dicom_files: list = field(default_factory=list)  # for DICOM series

    @property
    def key(self) -> str:
        return f"{self.recon}_{self.ctdivol_mgy:g}mGy_rep{self.repetition}"


def _positive_float(text: str, what: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise RadiologyAIError(f"{what}: ctdivol_mgy '{text}' is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise RadiologyAIError(f"{what}: ctdivol_mgy must be a positive dose in mGy, got '{text}'")
    return value


def read_manifest(path: str | os.PathLike) -> list[Acquisition]:
    """Parse and validate a manifest CSV (every problem names its row and file)."""
    path = Path(path)
    if not path.is_file():
        raise RadiologyAIError(f"manifest {path}: no such file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RadiologyAIError(f"manifest {path}: cannot read it as CSV ({exc})") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    if missing:
        raise RadiologyAIError(
            f"manifest {path}: missing column(s) {', '.join(missing)}; the header must be {','.join(MANIFEST_COLUMNS)}"
        )
    if not rows:
        raise RadiologyAIError(f"manifest {path}: no acquisitions listed")
    acquisitions = []
    seen: dict[tuple, str] = {}
    for number, raw in enumerate(rows, start=1):
        row = {str(k).strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        where = f"manifest {path.name} row {number} (line {number + 1})"
        if not row.get("path"):
            raise RadiologyAIError(f"{where}: empty path")
        file = Path(row["path"])
        if not file.is_absolute():
            file = path.parent / file
        if not file.exists():
            raise RadiologyAIError(f"{where}: file {file} does not exist")
        recon = normalise_recon(row["recon"], where)
        dose = _positive_float(row["ctdivol_mgy"], where)
        try:
            repetition = int(float(row["repetition"]))
            if repetition < 0 or float(row["repetition"]) != repetition:
                raise ValueError
        except ValueError:
            raise RadiologyAIError(f"{where}: repetition '{row['repetition']}' is not a whole number") from None
        key = (recon, dose, repetition)
        if key in seen:
            raise RadiologyAIError(f"{where}: repeats {recon} at {dose:g} mGy repetition {repetition} of {seen[key]}")
        seen[key] = where
        acquisitions.append(Acquisition(str(file), recon, dose, repetition, source=where))
    check_dose_levels(acquisitions, f"manifest {path}")
    check_repetitions(acquisitions, f"manifest {path}")
    return acquisitions


def _rows(members: list[Acquisition]) -> str:
    return "; ".join(m.source for m in members)


def check_dose_levels(acquisitions: list[Acquisition], what: str, tolerance: float = 0.20) -> None:
    """Distinct doses within ``tolerance`` of each other cannot be told apart as levels of a dose series.

    A manifest gives nominal doses; 1.0 and 1.02 mGy would make two one-scan groups. All such
    pairs are named in one message.
    """
    doses = sorted({a.ctdivol_mgy for a in acquisitions})
    clashes = [(a, b) for a, b in zip(doses, doses[1:]) if b <= a * (1 + tolerance)]
    if clashes:
        parts = []
        for a, b in clashes:
            members = [m for m in acquisitions if m.ctdivol_mgy in (a, b)]
            parts.append(f"{a:g} and {b:g} mGy ({_rows(members)})")
        raise RadiologyAIError(
            f"{what}: doses cannot be grouped into a dose series: {'; '.join(parts)} "
            f"are within {100 * tolerance:g} % of each other; "
            "give every scan of a dose level the same nominal ctdivol_mgy (keep the recorded value in an extra column)"
        )


def check_repetitions(acquisitions: list[Acquisition], what: str) -> None:
    """Every (recon, dose) needs at least MIN_REPETITIONS scans for a mean ± SD (all short groups named at once)."""
    groups: dict[tuple, list[Acquisition]] = {}
    for acq in acquisitions:
        groups.setdefault((acq.recon, acq.ctdivol_mgy), []).append(acq)
    short = [
        (recon, dose, members) for (recon, dose), members in sorted(groups.items()) if len(members) < MIN_REPETITIONS
    ]
    if short:
        listed = "; ".join(
            f"{recon} at {dose:g} mGy has {len(members)} repetition(s) ({_rows(members)})"
            for recon, dose, members in short
        )
        raise RadiologyAIError(f"{what}: {listed}; at least {MIN_REPETITIONS} are needed for a mean ± SD")


def _nominal_doses(values: list[float], tolerance: float = 0.20) -> dict[float, float]:
    """Cluster doses within ``tolerance`` (relative) and map each to its cluster's lower median."""
    mapping: dict[float, float] = {}
    cluster: list[float] = []
    for value in sorted(set(values)) + [math.inf]:
        if cluster and (value == math.inf or value > cluster[0] * (1 + tolerance)):
            ordered = sorted(cluster)
            nominal = round(ordered[(len(ordered) - 1) // 2], 4)  # the lower median
            mapping.update({v: nominal for v in cluster})
            cluster = []
        if value != math.inf:
            cluster.append(value)
    return mapping


def read_dicom_folder(folder: str | os.PathLike, recon_overrides: dict[str, str] | None = None) -> list[Acquisition]:
    """Every CT series in ``folder`` as an acquisition (dose, kernel, description from the tags)."""
    from RadiologyAICommonLib.imageio import list_dicom_series

    folder = Path(folder)
    series = [s for s in list_dicom_series(folder) if s.modality.upper() in ("CT", "")]
    if not series:
        raise RadiologyAIError(f"{folder}: no CT DICOM series found")
    recon_overrides = {k.lower(): v for k, v in (recon_overrides or {}).items()}
    found = []
    for s in series:
        where = f"DICOM series '{s.description or s.series_uid}' in {s.folder}"
        if s.ctdivol_mgy is None:
            raise RadiologyAIError(
                f"{where}: no CTDIvol (0018,9345) in its header; list the scans in a manifest CSV instead"
            )
        if not math.isfinite(s.ctdivol_mgy) or s.ctdivol_mgy <= 0:
            raise RadiologyAIError(f"{where}: CTDIvol {s.ctdivol_mgy} is not a positive dose")
        override = recon_overrides.get(s.kernel.lower()) or recon_overrides.get(s.description.lower())
        recon = normalise_recon(override, where) if override else recon_from_dicom(s.kernel, s.description)
        if recon is None:
            raise RadiologyAIError(
                f"{where}: cannot tell the reconstruction from kernel '{s.kernel}' and description '{s.description}'; "
                "map it with --recon-map 'KERNEL=fbp|ir|dlr' or list the scans in a manifest CSV"
            )
        found.append((s, recon, where))
    nominal = _nominal_doses([s.ctdivol_mgy for s, _, _ in found])
    counters: dict[tuple, int] = {}
    acquisitions = []
    for s, recon, where in sorted(
        found, key=lambda item: (item[1], nominal[item[0].ctdivol_mgy], item[0].folder, item[0].series_uid)
    ):
        dose = nominal[s.ctdivol_mgy]
        counters[(recon, dose)] = counters.get((recon, dose), 0) + 1
        acquisitions.append(
            Acquisition(
                path=s.folder,
                recon=recon,
                ctdivol_mgy=dose,
                repetition=counters[(recon, dose)],
                source=where,
                measured_ctdivol_mgy=s.ctdivol_mgy,
                kernel=s.kernel,
                description=s.description,
                dicom_files=list(s.files),
            )
        )
    check_repetitions(acquisitions, f"DICOM folder {folder}")
    return acquisitions


def load_acquisitions(source: str | os.PathLike, recon_overrides: dict[str, str] | None = None) -> list[Acquisition]:
    """A manifest CSV file or a DICOM folder."""
    source = Path(source)
    if source.is_dir():
        return read_dicom_folder(source, recon_overrides)
    if not source.exists():
        raise RadiologyAIError(f"{source}: no such manifest file or DICOM folder")
    return read_manifest(source)


def write_manifest_rows(acquisitions: list[Acquisition], relative_to: Path) -> list[dict]:
    """Rows for a manifest CSV (paths relative to ``relative_to`` when possible)."""
    rows = []
    for acq in acquisitions:
        path = Path(acq.path)
        try:
            path = path.relative_to(relative_to)
        except ValueError:
            pass
        rows.append(
            {"path": path.as_posix(), "recon": acq.recon, "ctdivol_mgy": acq.ctdivol_mgy, "repetition": acq.repetition}
        )
    return rows
