"""The README's parameter table lists every VesselQuant parameter with its current default and allowed values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from VesselQuantLib.parameters import RANGES, VesselQuantParameters

README = Path(__file__).resolve().parents[2] / "VesselQuant" / "README.md"


def test_readme_parameter_table_matches_the_dataclass():
    text = README.read_text(encoding="utf-8")
    defaults = VesselQuantParameters()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    for field in dataclasses.fields(VesselQuantParameters):
        row = f"| `{field.name}` | `{getattr(defaults, field.name)!r}` | {RANGES[field.name].text()} |"
        assert any(line.startswith(row) for line in rows), f"README parameter table: missing or stale row {row}"


def test_every_parameter_has_a_range_that_its_default_meets():
    from VesselQuantLib.parameters import Range

    names = {field.name for field in dataclasses.fields(VesselQuantParameters)}
    assert set(RANGES) == names
    VesselQuantParameters().validate()
    assert all(isinstance(r, Range) for r in RANGES.values())
