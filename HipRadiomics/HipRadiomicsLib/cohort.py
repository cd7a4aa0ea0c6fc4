"""Cohort feature extraction from a CSV: validate every row first, then extract in parallel.

CSV columns: ``case_id, image, mask, label`` and optionally ``mask_label`` (the mask's label
value for that case) and reader-score columns whose names start with ``reader`` (a higher score
means "more likely the positive class"). Relative paths are relative to the CSV's folder.

Cases run on the shared executor (:func:`RadiologyAICommonLib.executors.open_executor`): a local
process pool (``workers``) or, given a scheduler address, a ``dask.distributed`` cluster
(``Client.get_executor()``; the workers need this package installed and the image paths
visible). A case that fails is recorded with its reason in the failed-cases log; ``strict``
turns the first failure into an error.
"""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.executors import InlineExecutor, open_executor
from RadiologyAICommonLib.progress import ProgressCallback, no_progress

from .radiomics_params import RadiomicsParameters

REQUIRED_COLUMNS = ("case_id", "image", "mask", "label")
OPTIONAL_COLUMNS = ("mask_label",)
READER_PREFIX = "reader"


@dataclass
class CohortCase:
    row: int  # line number in the CSV (header = line 1)
    case_id: str
    image: str
    mask: str
    label: object
    mask_label: int | None = None
    readers: dict = field(default_factory=dict)


@dataclass
class CohortResult:
    features: pd.DataFrame  # case_id, label, readers..., features...
    failed: pd.DataFrame  # case_id, row, image, mask, error
    seconds: float = 0.0
    reader_columns: list[str] = field(default_factory=list)


def is_reader_column(name: str) -> bool:
    return str(name).lower().startswith(READER_PREFIX)


def read_cohort_csv(path: str | Path) -> list[CohortCase]:
    """Read and validate a cohort CSV; every problem raises RadiologyAIError naming the row."""
    path = Path(path)
    if not path.is_file():
        raise RadiologyAIError(f"cohort CSV {path}: no such file")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RadiologyAIError(f"cohort CSV {path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise RadiologyAIError(
            f"cohort CSV {path}: missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED_COLUMNS)})"
        )
    extra = [c for c in table.columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    bad_extra = [c for c in extra if not is_reader_column(c)]
    if bad_extra:
        raise RadiologyAIError(
            f"cohort CSV {path}: unexpected column(s) {', '.join(repr(c) for c in bad_extra)}; "
            "extra columns are reader scores and "
            f"their names must start with '{READER_PREFIX}' (e.g. reader1)"
        )
    if len(table) == 0:
        raise RadiologyAIError(f"cohort CSV {path}: no cases")
    base = path.resolve().parent
    cases: list[CohortCase] = []
    seen: dict[str, int] = {}
    problems: list[str] = []
    for i, record in enumerate(table.to_dict("records")):
        row = i + 2
        case_id = record["case_id"].strip()
        where = f"row {row}" + (f" (case {case_id})" if case_id else "")
        if not case_id:
            problems.append(f"{where}: empty case_id")
            continue
        if case_id in seen:
            problems.append(f"{where}: case_id '{case_id}' repeats row {seen[case_id]}")
        seen[case_id] = row
        label = record["label"].strip()
        if not label:
            problems.append(f"{where}: missing label")
        files = {}
        for column in ("image", "mask"):
            value = record[column].strip()
            if not value:
                problems.append(f"{where}: empty {column} path")
                continue
            file = Path(value).expanduser()
            file = file if file.is_absolute() else base / file
            if not file.exists():
                problems.append(f"{where}: {column} {file} does not exist")
            files[column] = str(file)
        mask_label = None
        if "mask_label" in record and record["mask_label"].strip():
            try:
                mask_label = int(record["mask_label"])
            except ValueError:
                problems.append(f"{where}: mask_label '{record['mask_label']}' is not a whole number")
        readers = {}
        for column in extra:
            value = record[column].strip()
            if value == "":
                readers[column] = float("nan")
                continue
            try:
                readers[column] = float(value)
            except ValueError:
                problems.append(f"{where}: reader score {column}='{value}' is not a number")
        cases.append(
            CohortCase(
                row, case_id, files.get("image", ""), files.get("mask", ""), _label_value(label), mask_label, readers
            )
        )
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise RadiologyAIError(f"cohort CSV {path}: {shown}")
    return cases


def _label_value(text: str):
    """Labels stay as written, except that whole numbers become ints (so 0/1 stay 0/1)."""
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else text


def _extract_one(case: CohortCase, params: RadiomicsParameters, label_override: int | None):
    """Worker task: never raises; returns (case, features or None, diagnostics, error or None, seconds)."""
    start = time.perf_counter()
    try:
        from .extraction import extract_files

        result = extract_files(
            case.image,
            case.mask,
            params,
            case.mask_label if case.mask_label is not None else label_override,
            what=f"row {case.row} (case {case.case_id})",
        )
        return case, dict(result.features), result.label, None, time.perf_counter() - start
    except RadiologyAIError as exc:
        return case, None, None, str(exc), time.perf_counter() - start
    except Exception as exc:  # a bad file can make ITK/PyRadiomics fail in unforeseen ways: report, do not stop
        return (
            case,
            None,
            None,
            f"row {case.row} (case {case.case_id}): {type(exc).__name__}: {exc}",
            time.perf_counter() - start,
        )


def extract_cohort(
    cases: list[CohortCase],
    params: RadiomicsParameters,
    workers: int | None = None,
    scheduler: str | None = None,
    label: int | None = None,
    strict: bool = False,
    progress: ProgressCallback = no_progress,
) -> CohortResult:
    """Extract every case (in parallel); failed cases are collected (or fatal with ``strict``)."""
    start = time.perf_counter()
    workers = None if workers is None else max(1, int(workers))
    total = len(cases)
    results = {}
    failures = []
    progress(0.0, f"extracting {total} cases")

    def handle(outcome, done):
        case, features, used_label, error, _seconds = outcome
        if error is not None:
            if strict:
                raise RadiologyAIError(f"{error} (--strict: stopping at the first failed case)")
            failures.append(
                {"case_id": case.case_id, "row": case.row, "image": case.image, "mask": case.mask, "error": error}
            )
        else:
            results[case.case_id] = features
        progress(done / total, f"case {done}/{total}" + (f", {len(failures)} failed" if failures else ""))

    with open_executor(workers, scheduler) as executor:
        if isinstance(executor, InlineExecutor):  # one case at a time, so that --strict stops at the first failure
            outcomes = (_extract_one(case, params, label) for case in cases)
        else:  # leaving the block cancels what has not started
            futures = [executor.submit(_extract_one, case, params, label) for case in cases]
            outcomes = (future.result() for future in concurrent.futures.as_completed(futures))
        for done, outcome in enumerate(outcomes, 1):
            handle(outcome, done)
    if not results:
        shown = "; ".join(f["error"] for f in failures[:3])
        raise RadiologyAIError(f"no case could be extracted ({len(failures)} failed): {shown}")
    reader_columns = sorted({c for case in cases for c in case.readers})
    rows = []
    feature_names: list[str] = []
    for case in cases:  # CSV order, whatever order the workers finished in
        if case.case_id not in results:
            continue
        features = results[case.case_id]
        if not feature_names:
            feature_names = list(features)
        rows.append(
            {
                "case_id": case.case_id,
                "label": case.label,
                **{c: case.readers.get(c, float("nan")) for c in reader_columns},
                **features,
            }
        )
    table = pd.DataFrame(rows, columns=["case_id", "label", *reader_columns, *feature_names])
    failed = (
        pd.DataFrame(failures, columns=["case_id", "row", "image", "mask", "error"]).sort_values("row")
        if failures
        else pd.DataFrame(columns=["case_id", "row", "image", "mask", "error"])
    )
    return CohortResult(table, failed, time.perf_counter() - start, reader_columns)
