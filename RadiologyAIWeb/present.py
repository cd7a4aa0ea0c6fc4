"""Results as the browser shows them: tables as JSON-safe rows, matplotlib figures as PNG data URLs.

Presentation only: every number comes from the modules' result objects; nothing is computed here.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np


def _cell(value, digits: int):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return ""
        return float(f"{value:.{digits}g}")
    return "" if value is None else str(value)


def table(frame, digits: int = 4, columns=None) -> dict:
    """``{"headers": [...], "rows": [[...], ...]}`` of a DataFrame (values rounded to ``digits`` significant)."""
    if columns is not None:
        frame = frame[[c for c in columns if c in frame.columns]]
    return {
        "headers": [str(c) for c in frame.columns],
        "rows": [[_cell(v, digits) for v in row] for row in frame.itertuples(index=False)],
    }


def figure_url(figure, dpi: int = 100) -> str:
    """A matplotlib figure as a ``data:image/png`` URL (the figure is released)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    figure.clear()
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def vessel_plot(per_radius) -> str:
    """Volume (ml) and HU IQR against radius, the chart the Slicer widget shows (VesselQuantLogic's plot)."""
    from RadiologyAICommonLib.report import new_figure

    figure = new_figure(figsize=(5.2, 3.0))
    ax = figure.add_subplot(1, 1, 1)
    ax.plot(per_radius["radius_mm"], per_radius["volume_ml"], marker="o", color="tab:red", label="volume (ml)")
    ax.set_xlabel("radius (mm)")
    ax.set_ylabel("volume (ml)", color="tab:red")
    twin = ax.twinx()
    twin.plot(per_radius["radius_mm"], per_radius["iqr_hu"], marker="s", color="tab:blue", label="IQR (HU)")
    twin.set_ylabel("IQR (HU)", color="tab:blue")
    ax.set_title("VesselQuant: volume and HU IQR per radius", fontsize=9)
    ax.grid(True, alpha=0.3)
    return figure_url(figure)
