"""A features table for training: from ``hip extract`` or any other source (e.g. tabular imaging features).

Columns: ``label`` (two classes), optionally ``case_id``, reader-score columns (names starting
with ``reader``, or given explicitly), and numeric feature columns (everything else, minus any
excluded columns). Empty cells are allowed in features (XGBoost handles missing values; the
filters ignore them); text in a feature column, infinities, a missing label, a single class or
more than two classes are errors naming the column or row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from RadiologyAICommonLib.errors import RadiologyAIError

from .cohort import is_reader_column

META_SUFFIX = ".meta.json"


@dataclass
class FeatureTable:
    X: pd.DataFrame  # numeric features
    y: np.ndarray  # 0/1, 1 = positive class
    case_ids: list[str]
    class_names: list[str]  # [negative, positive] as written in the table
    readers: pd.DataFrame  # reader scores (may have no columns)
    source: str = ""
    extraction: dict | None = (
        None  # PyRadiomics provenance (params, hash, version) when the table came from hip extract
    )
    label_values: list = field(default_factory=list)


def meta_path(features_csv: str | Path) -> Path:
    return Path(str(features_csv) + META_SUFFIX)


def _positive_first(values: list, positive_class) -> tuple[object, object]:
    if positive_class is not None:
        matches = [v for v in values if str(v) == str(positive_class)]
        if not matches:
            raise RadiologyAIError(
                f"--positive-class '{positive_class}' is not one of the labels {[str(v) for v in values]}"
            )
        pos = matches[0]
        neg = [v for v in values if v is not pos and str(v) != str(pos)][0]
        return neg, pos
    if set(values) == {0, 1}:
        return 0, 1
    ordered = sorted(values, key=lambda v: str(v))
    return ordered[0], ordered[1]


def load_feature_table(
    path: str | Path, positive_class=None, reader_columns: list[str] | None = None, exclude: list[str] | None = None
) -> FeatureTable:
    """Read and validate a features CSV (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise RadiologyAIError(f"features table {path}: no such file")
    try:
        table = pd.read_csv(path, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RadiologyAIError(f"features table {path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    table.columns = [str(c).strip() for c in table.columns]
    extraction = None
    meta = meta_path(path)
    if meta.is_file():
        try:
            extraction = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RadiologyAIError(
                f"{meta}: unreadable extraction record ({exc}); delete it or re-run hip extract"
            ) from None
    return validate_feature_table(table, str(path), positive_class, reader_columns, exclude, extraction)


def validate_feature_table(
    table: pd.DataFrame,
    source: str,
    positive_class=None,
    reader_columns: list[str] | None = None,
    exclude: list[str] | None = None,
    extraction: dict | None = None,
) -> FeatureTable:
    if "label" not in table.columns:
        raise RadiologyAIError(f"features table {source}: no 'label' column")
    duplicated = table.columns[table.columns.duplicated()].tolist()
    if duplicated:
        raise RadiologyAIError(f"features table {source}: repeated column name(s) {duplicated}")
    exclude = list(exclude or [])
    for name in exclude:
        if name not in table.columns:
            raise RadiologyAIError(f"features table {source}: --exclude column '{name}' does not exist")
    if reader_columns is None:
        reader_columns = [c for c in table.columns if is_reader_column(c)]
    for name in reader_columns:
        if name not in table.columns:
            raise RadiologyAIError(f"features table {source}: reader column '{name}' does not exist")
    if len(table) == 0:
        raise RadiologyAIError(f"features table {source}: no rows (no cases)")
    labels = table["label"]
    missing = [i + 2 for i, v in enumerate(labels) if pd.isna(v) or str(v).strip() == ""]
    if missing:
        raise RadiologyAIError(f"features table {source}: missing label in row(s) {missing[:10]}")
    label_list = [_normalise_label(v) for v in labels]
    values = sorted(set(label_list), key=str)
    if len(values) < 2:
        raise RadiologyAIError(f"features table {source}: only one class ({values[0]!r}); training needs two classes")
    if len(values) > 2:
        raise RadiologyAIError(
            f"features table {source}: {len(values)} classes {values[:6]}; the classifier handles two"
        )
    negative, positive = _positive_first(values, positive_class)
    y = np.array([1 if str(v) == str(positive) else 0 for v in label_list], dtype=int)
    if "case_id" in table.columns:
        case_ids = [str(v) for v in table["case_id"]]
        repeats = pd.Series(case_ids)[pd.Series(case_ids).duplicated()].tolist()
        if repeats:
            raise RadiologyAIError(f"features table {source}: case_id {repeats[0]!r} appears more than once")
    else:
        case_ids = [f"row{i + 2}" for i in range(len(table))]
    readers = pd.DataFrame(index=table.index)
    for name in reader_columns:
        numeric = pd.to_numeric(table[name], errors="coerce")
        bad = table[name].notna() & numeric.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise RadiologyAIError(
                f"features table {source}: reader column '{name}' row {row} "
                f"is not a number ({table[name].iloc[row - 2]!r})"
            )
        readers[name] = numeric.astype(float)
    skip = {"label", "case_id", *reader_columns, *exclude}
    feature_columns = [c for c in table.columns if c not in skip]
    if not feature_columns:
        raise RadiologyAIError(f"features table {source}: no feature columns (only {list(table.columns)})")
    columns = {}
    for name in feature_columns:
        column = table[name]
        numeric = pd.to_numeric(column, errors="coerce")
        bad = column.notna() & numeric.isna() & (column.astype(str).str.strip() != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise RadiologyAIError(
                f"features table {source}: column '{name}' is not numeric (row {row}: {column.iloc[row - 2]!r}); "
                "remove it or name it with --exclude"
            )
        values = numeric.to_numpy(dtype=float)
        if np.isinf(values).any():
            row = int(np.flatnonzero(np.isinf(values))[0]) + 2
            raise RadiologyAIError(f"features table {source}: column '{name}' row {row} is infinite")
        too_large = np.abs(np.nan_to_num(values)) > FLOAT32_MAX
        if too_large.any():  # XGBoost works in float32, where these become infinite
            row = int(np.flatnonzero(too_large)[0]) + 2
            raise RadiologyAIError(
                f"features table {source}: column '{name}' row {row} is {values[row - 2]:g}, beyond "
                f"the +/-{FLOAT32_MAX:.3g} XGBoost can use; rescale or drop the column"
            )
        columns[str(name)] = numeric.astype(float)
    X = pd.DataFrame(columns, index=table.index)
    return FeatureTable(
        X=X.reset_index(drop=True),
        y=y,
        case_ids=case_ids,
        class_names=[str(negative), str(positive)],
        readers=readers.reset_index(drop=True),
        source=source,
        extraction=extraction,
        label_values=[negative, positive],
    )


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _normalise_label(value):
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    text = str(value).strip()
    try:
        number = float(text)
        return int(number) if number.is_integer() else text
    except ValueError:
        return text
