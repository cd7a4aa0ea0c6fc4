"""Mean ± SD over repetitions, the two result tables and the terminal table.

``summary.csv``: one row per (recon, dose, design radius)::

    recon, ctdivol_mgy, radius_mm, mpv_mean_hu, mpv_sd_hu, iqr_mean_hu, iqr_sd_hu, detection_mean, radius_err_mean_mm

``volumes.csv``: one row per (recon, dose): detected vessel-tree volume::

    recon, ctdivol_mgy, volume_mean_ml, volume_sd_ml

SDs are sample SDs (ddof = 1) over the repetitions; a radius with no measurable voxels in a
repetition is left out of that radius' mean (NaN when none has any).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .published import CALIBRATION_RADIUS_MM, published_iqr_3mm
from .recon import RECON_MODELS

SUMMARY_COLUMNS = [
    "recon",
    "ctdivol_mgy",
    "radius_mm",
    "mpv_mean_hu",
    "mpv_sd_hu",
    "iqr_mean_hu",
    "iqr_sd_hu",
    "detection_mean",
    "radius_err_mean_mm",
]
VOLUME_COLUMNS = ["recon", "ctdivol_mgy", "volume_mean_ml", "volume_sd_ml"]


def _order(frame: pd.DataFrame) -> pd.DataFrame:
    rank = {name: i for i, name in enumerate(RECON_MODELS)}
    frame = frame.assign(_r=frame["recon"].map(lambda v: rank.get(v, len(rank))))
    by = ["_r", "ctdivol_mgy"] + (["radius_mm"] if "radius_mm" in frame.columns else [])
    asc = [True, True] + ([False] if "radius_mm" in frame.columns else [])
    return frame.sort_values(by, ascending=asc).drop(columns="_r").reset_index(drop=True)


def summarise(per_acquisition: pd.DataFrame) -> pd.DataFrame:
    """summary.csv from the per-acquisition, per-radius table."""
    grouped = per_acquisition.groupby(["recon", "ctdivol_mgy", "radius_mm"], sort=False)
    table = grouped.agg(
        mpv_mean_hu=("mpv_hu", "mean"),
        mpv_sd_hu=("mpv_hu", "std"),
        iqr_mean_hu=("iqr_hu", "mean"),
        iqr_sd_hu=("iqr_hu", "std"),
        detection_mean=("detection_rate", "mean"),
        radius_err_mean_mm=("radius_err_mm", "mean"),
    ).reset_index()
    return _order(table)[SUMMARY_COLUMNS]


def volumes(acquisitions: pd.DataFrame) -> pd.DataFrame:
    """volumes.csv from the per-acquisition table."""
    table = (
        acquisitions.groupby(["recon", "ctdivol_mgy"], sort=False)
        .agg(volume_mean_ml=("detected_volume_ml", "mean"), volume_sd_ml=("detected_volume_ml", "std"))
        .reset_index()
    )
    return _order(table)[VOLUME_COLUMNS]


def trends(summary: pd.DataFrame, vols: pd.DataFrame, radius_mm: float = CALIBRATION_RADIUS_MM) -> dict:
    """The seed's qualitative findings, measured: Spearman rho of IQR and volume vs dose per recon."""
    out: dict = {}
    at_r = summary[np.isclose(summary["radius_mm"], radius_mm)]
    for recon, group in at_r.groupby("recon", sort=False):
        group = group.dropna(subset=["iqr_mean_hu"])
        rho = stats.spearmanr(group["ctdivol_mgy"], group["iqr_mean_hu"]).statistic if len(group) >= 3 else float("nan")
        out[f"iqr_{radius_mm:g}mm_spearman_{recon}"] = float(rho)
    for recon, group in vols.groupby("recon", sort=False):
        rho = stats.spearmanr(group["ctdivol_mgy"], group["volume_mean_ml"]).statistic if len(group) >= 3 else float("nan")
        out[f"volume_spearman_{recon}"] = float(rho)
    return out


def calibration_table(summary: pd.DataFrame, radius_mm: float = CALIBRATION_RADIUS_MM) -> pd.DataFrame:
    """Simulated vs published 3 mm IQR per recon and dose, with the relative difference."""
    at_r = summary[np.isclose(summary["radius_mm"], radius_mm)].copy()
    at_r["published_iqr_hu"] = [published_iqr_3mm(r, d) for r, d in zip(at_r["recon"], at_r["ctdivol_mgy"])]
    at_r["difference_pct"] = 100.0 * (at_r["iqr_mean_hu"] - at_r["published_iqr_hu"]) / at_r["published_iqr_hu"]
    return at_r[["recon", "ctdivol_mgy", "iqr_mean_hu", "iqr_sd_hu", "published_iqr_hu", "difference_pct"]].reset_index(drop=True)


def _pm(mean: float, sd: float, digits: int = 0) -> str:
    if not np.isfinite(mean):
        return "n/a"
    sd_text = f"{sd:.{digits}f}" if np.isfinite(sd) else "n/a"
    return f"{mean:.{digits}f} ± {sd_text}"


def terminal_table(summary: pd.DataFrame, vols: pd.DataFrame, radius_mm: float = CALIBRATION_RADIUS_MM, repetitions: int | None = None) -> str:
    """The seed study's table layout: per recon and dose, 3 mm MPV and IQR (mean ± SD), tree volume."""
    at_r = summary[np.isclose(summary["radius_mm"], radius_mm)].set_index(["recon", "ctdivol_mgy"])
    vol = vols.set_index(["recon", "ctdivol_mgy"])
    reps = f" over {repetitions} repetitions" if repetitions else ""
    header = ["Recon", "CTDIvol (mGy)", f"MPV {radius_mm:g} mm (HU)", f"IQR {radius_mm:g} mm (HU)", "published IQR", "Volume (ml)", "Detection"]
    lines = []
    for (recon, dose), row in vol.iterrows():
        s = at_r.loc[(recon, dose)] if (recon, dose) in at_r.index else None
        published = published_iqr_3mm(recon, dose) if np.isclose(radius_mm, CALIBRATION_RADIUS_MM) else float("nan")
        lines.append(
            [
                recon.upper(),
                f"{dose:g}",
                _pm(s["mpv_mean_hu"], s["mpv_sd_hu"]) if s is not None else "n/a",
                _pm(s["iqr_mean_hu"], s["iqr_sd_hu"]) if s is not None else "n/a",
                f"{published:.0f}" if np.isfinite(published) else "",
                _pm(row["volume_mean_ml"], row["volume_sd_ml"], 2),
                f"{s['detection_mean']:.2f}" if s is not None and np.isfinite(s["detection_mean"]) else "n/a",
            ]
        )
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.rjust(w) if i > 0 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    rule = "-" * len(fmt(header))
    title = f"Vessels of design radius {radius_mm:g} mm: mean ± SD{reps} (published: seed study, interpolated between 0.2 and 4.0 mGy)"
    return "\n".join([title, rule, fmt(header), rule, *[fmt(l) for l in lines], rule])
