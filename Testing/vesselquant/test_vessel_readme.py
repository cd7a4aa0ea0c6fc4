"""The README's parameter table lists every VesselQuant parameter with its current default."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from VesselQuantLib.parameters import VesselQuantParameters

README = Path(__file__).resolve().parents[2] / "VesselQuant" / "README.md"


def test_readme_parameter_table_matches_the_dataclass():
    text = README.read_text(encoding="utf-8")
    defaults = VesselQuantParameters()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    for field in dataclasses.fields(VesselQuantParameters):
        row = f"| `{field.name}` | `{getattr(defaults, field.name)!r}` |"
        assert any(line.startswith(row) for line in rows), f"README parameter table: missing or stale row {row}"
