"""What a user types, read one way everywhere: number lists, name lists and path fields.

Pure Python (no Slicer, no Qt), so the widgets, the logic classes and the CLI share it.
"""

from __future__ import annotations

import math
import os

from .errors import RadiologyAIError


def parse_numbers(text: str, what: str, *, positive: bool = True, unique: bool = True) -> list[float]:
    """``"0.5, 1 2"`` -> ``[0.5, 1.0, 2.0]``: commas or spaces between finite numbers; a clear error otherwise.

    ``positive``: every value must be > 0. ``unique``: no value twice. ``what`` names the field in errors.
    """
    values = []
    for item in str(text).replace(",", " ").split():
        try:
            value = float(item)
        except ValueError:
            raise RadiologyAIError(f"{what}: '{item}' is not a number") from None
        if not math.isfinite(value) or (positive and value <= 0):
            raise RadiologyAIError(f"{what}: values must be {'positive' if positive else 'finite'}, got '{item}'")
        values.append(value)
    if not values:
        raise RadiologyAIError(f"{what}: give at least one value")
    if unique and len(set(values)) != len(values):
        raise RadiologyAIError(f"{what}: repeated value in '{text}'")
    return values


def parse_names(text: str | None) -> list[str] | None:
    """``"a, b,"`` -> ``["a", "b"]``; None or blank text -> None (not given)."""
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    return names or None


def path_is_set(path: str | os.PathLike | None) -> bool:
    """Whether a path field holds a path. An empty ``pathlib.Path`` reads as ``"."``, so that counts as unset."""
    return path is not None and str(path).strip() not in ("", ".")
