"""The seed study's published figures (Hernandez-Giron et al.), as far as they are quoted.

The figures live in a versioned data file, ``Resources/published_figures.json``: per
reconstruction the 3 mm IQR (HU) at the doses where it is quoted, the 3 mm MPV as the range
over the doses (the only form in which it is quoted) with the ordering DLR >= IR > FBP, the
detected vessel-tree volume (ml) at 0.2 and 4.0 mGy, and the DLR/FBP and DLR/IR volume ratios at
4 mGy. Every entry names where it is quoted. A figure that is not quoted is *absent*: nothing
here interpolates, and :func:`iqr_3mm` returns NaN where the study's value is not known. The
SDs are not available, so the goal "within max(2 SD, 15 %) of published" is evaluated with
the 15 % alone (``RELATIVE_TOLERANCE``).

Only the standard library is imported (Slicer loads this at start-up).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from RadiologyAICommonLib.errors import RadiologyAIError

PUBLISHED_FILE = Path(__file__).resolve().parents[1] / "Resources" / "published_figures.json"
STUDY_DOSES_MGY = (0.2, 0.5, 1.0, 2.1, 4.0)
STUDY_RECONS = ("fbp", "ir", "dlr")
CALIBRATION_RADIUS_MM = 3.0
RELATIVE_TOLERANCE = 0.15  # goal: within max(2 SD, 15 %) of published


@dataclass(frozen=True)
class PublishedFigures:
    """The quoted figures; dose keys are floats (mGy)."""

    version: int
    iqr_3mm_hu: dict  # recon -> {dose: HU}
    mpv_3mm_range_hu: dict  # recon -> (low, high) over the doses
    mpv_order: tuple  # recons from highest to lowest MPV at every dose
    volume_ml: dict  # recon -> {dose: ml}
    volume_ratio_4mgy: dict  # "dlr/fbp" -> ratio
    sd: dict = field(default_factory=dict)  # quantity -> recon -> {dose: SD}; empty when none is quoted
    missing: tuple = ()
    sources: dict = field(default_factory=dict)  # "iqr_3mm_hu/fbp" -> where it is quoted


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise RadiologyAIError(f"{what}: expected a positive number, got {value!r}")
    return float(value)


def _dose_table(entry, what: str) -> dict:
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("values"), dict)
        or not isinstance(entry.get("source"), str)
    ):
        raise RadiologyAIError(f"{what}: expected {{'values': {{dose: value}}, 'source': text}}")
    table = {}
    for key, value in entry["values"].items():
        try:
            dose = float(key)
        except ValueError:
            raise RadiologyAIError(f"{what}: dose '{key}' is not a number") from None
        table[_number(dose, f"{what} dose")] = _number(value, f"{what} at {key} mGy")
    return table


def parse_published(data, what: str = "published figures") -> PublishedFigures:
    """Validate the JSON document; every problem names its entry."""
    if not isinstance(data, dict) or data.get("format") != "phantomqa-published-figures":
        raise RadiologyAIError(f"{what}: not a PhantomQA published-figures file (format 'phantomqa-published-figures')")
    if not isinstance(data.get("version"), int):
        raise RadiologyAIError(f"{what}: 'version' must be a whole number")
    sources: dict = {}

    def tables(name: str) -> dict:
        block = data.get(name, {})
        if not isinstance(block, dict):
            raise RadiologyAIError(f"{what}: '{name}' must be an object keyed by reconstruction")
        out = {}
        for recon, entry in block.items():
            if recon not in STUDY_RECONS:
                raise RadiologyAIError(f"{what}: {name}: unknown reconstruction '{recon}'")
            out[recon] = _dose_table(entry, f"{what}: {name}.{recon}")
            sources[f"{name}/{recon}"] = entry["source"]
        return out

    ranges = {}
    for recon, entry in (data.get("mpv_3mm_range_hu") or {}).items():
        low_high = entry.get("range") if isinstance(entry, dict) else None
        if recon not in STUDY_RECONS or not isinstance(low_high, list) or len(low_high) != 2:
            raise RadiologyAIError(
                f"{what}: mpv_3mm_range_hu.{recon}: expected {{'range': [low, high], 'source': text}}"
            )
        low, high = (_number(v, f"{what}: mpv_3mm_range_hu.{recon}") for v in low_high)
        if low > high:
            raise RadiologyAIError(f"{what}: mpv_3mm_range_hu.{recon}: low {low:g} above high {high:g}")
        ranges[recon] = (low, high)
        sources[f"mpv_3mm_range_hu/{recon}"] = str(entry.get("source", ""))
    order = tuple((data.get("mpv_3mm_ordering") or {}).get("order", ()))
    if any(r not in STUDY_RECONS for r in order):
        raise RadiologyAIError(f"{what}: mpv_3mm_ordering.order names an unknown reconstruction: {list(order)}")
    ratios = {}
    for name, entry in (data.get("volume_ratio_4mgy") or {}).items():
        ratios[name] = _number(
            entry.get("value") if isinstance(entry, dict) else None, f"{what}: volume_ratio_4mgy.{name}"
        )
        sources[f"volume_ratio_4mgy/{name}"] = str(entry.get("source", ""))
    missing = data.get("missing", [])
    return PublishedFigures(
        version=data["version"],
        iqr_3mm_hu=tables("iqr_3mm_hu"),
        mpv_3mm_range_hu=ranges,
        mpv_order=order,
        volume_ml=tables("volume_ml"),
        volume_ratio_4mgy=ratios,
        sd={},
        missing=tuple(str(m) for m in missing) if isinstance(missing, list) else (),
        sources=sources,
    )


def load_published(path: str | Path | None = None) -> PublishedFigures:
    """The figures of ``path`` (default: the shipped file); a bad file gives one clear error."""
    path = Path(path) if path is not None else PUBLISHED_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RadiologyAIError(f"published figures {path}: cannot read it as JSON ({exc})") from None
    return parse_published(data, f"published figures {path.name}")


@lru_cache(maxsize=1)
def published() -> PublishedFigures:
    return load_published()


def _at(table: dict, ctdivol_mgy: float) -> float:
    for dose, value in table.items():
        if math.isclose(dose, ctdivol_mgy, rel_tol=1e-6):
            return value
    return float("nan")


def iqr_3mm(recon: str, ctdivol_mgy: float) -> float:
    """Published 3 mm IQR (HU) where the study's value is quoted, else NaN (never interpolated)."""
    return _at(published().iqr_3mm_hu.get(recon, {}), ctdivol_mgy)


def volume_ml(recon: str, ctdivol_mgy: float) -> float:
    """Published detected volume (ml) where quoted, else NaN."""
    return _at(published().volume_ml.get(recon, {}), ctdivol_mgy)


def mpv_3mm_range(recon: str) -> tuple[float, float] | None:
    """Published range of the 3 mm MPV over the doses, or None."""
    return published().mpv_3mm_range_hu.get(recon)
