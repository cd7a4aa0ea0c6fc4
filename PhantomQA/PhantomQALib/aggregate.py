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

from . import published as published_figures
from .published import CALIBRATION_RADIUS_MM
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


def _spearman(x, y) -> float:
    """Spearman rho; NaN for fewer than 3 points or a constant series (no warning).

    Rounded to 12 decimals: over a few doses rho takes a few exact values (5 doses: multiples of 0.1), which scipy
    returns with rounding noise (0.7999999999999999), and the goals compare it with such a value (rho >= 0.8)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return round(float(stats.spearmanr(x, y).statistic), 12)


def trends(summary: pd.DataFrame, vols: pd.DataFrame, radius_mm: float = CALIBRATION_RADIUS_MM) -> dict:
    """The seed's qualitative findings, measured: Spearman rho of IQR and volume vs dose per recon."""
    out: dict = {}
    at_r = summary[np.isclose(summary["radius_mm"], radius_mm)]
    for recon, group in at_r.groupby("recon", sort=False):
        group = group.dropna(subset=["iqr_mean_hu"])
        out[f"iqr_{radius_mm:g}mm_spearman_{recon}"] = _spearman(group["ctdivol_mgy"], group["iqr_mean_hu"])
    for recon, group in vols.groupby("recon", sort=False):
        out[f"volume_spearman_{recon}"] = _spearman(group["ctdivol_mgy"], group["volume_mean_ml"])
    return out


def _worst(values: np.ndarray, low: float, high: float) -> float:
    """The repetition farthest from the published value (or range)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    distance = np.maximum(low - values, values - high)
    return float(values[int(np.argmax(distance))])


def _off_by_pct(value: float, low: float, high: float) -> float:
    """Signed relative distance (%) of ``value`` from the published value or range (0 inside the range)."""
    if not np.isfinite(value):
        return float("nan")
    if value < low:
        return 100.0 * (value - low) / low
    if value > high:
        return 100.0 * (value - high) / high
    return 0.0


def published_comparison(
    per_acquisition: pd.DataFrame, acquisitions: pd.DataFrame, radius_mm: float = CALIBRATION_RADIUS_MM
) -> pd.DataFrame:
    """Every simulated/measured figure that has a published counterpart, against it.

    One row per (quantity, recon, dose) where the study's value is quoted: the 3 mm IQR, the 3 mm
    MPV (against the published range over the doses) and the detected volume. ``mean`` / ``sd``
    over repetitions, ``worst`` = the repetition farthest from the published value, ``off_pct`` =
    signed distance of the mean from the published value (or range), ``within`` = inside the
    goal's tolerance (15 %; the study's SDs are not available). Nothing is interpolated.
    """
    rows = []
    at_r = (
        per_acquisition[np.isclose(per_acquisition["radius_mm"], radius_mm)]
        if not per_acquisition.empty
        else per_acquisition
    )
    groups = {key: g for key, g in at_r.groupby(["recon", "ctdivol_mgy"], sort=False)} if not at_r.empty else {}
    volume_groups = (
        {key: g for key, g in acquisitions.groupby(["recon", "ctdivol_mgy"], sort=False)}
        if not acquisitions.empty
        else {}
    )

    def add(quantity: str, recon: str, dose: float, values: np.ndarray, low: float, high: float, text: str):
        values = np.asarray(values, float)
        mean = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        sd = float(np.nanstd(values, ddof=1)) if np.isfinite(values).sum() > 1 else float("nan")
        off = _off_by_pct(mean, low, high)
        rows.append(
            {
                "quantity": quantity,
                "recon": recon,
                "ctdivol_mgy": dose,
                "mean": mean,
                "sd": sd,
                "worst": _worst(values, low, high),
                "published": text,
                "off_pct": off,
                "within": bool(np.isfinite(off) and abs(off) <= 100.0 * published_figures.RELATIVE_TOLERANCE),
            }
        )

    for (recon, dose), group in groups.items():
        iqr = published_figures.iqr_3mm(recon, dose)
        if np.isfinite(iqr):
            add(f"IQR {radius_mm:g} mm (HU)", recon, dose, group["iqr_hu"].to_numpy(), iqr, iqr, f"{iqr:g}")
        mpv = published_figures.mpv_3mm_range(recon)
        if mpv is not None:
            add(
                f"MPV {radius_mm:g} mm (HU)",
                recon,
                dose,
                group["mpv_hu"].to_numpy(),
                mpv[0],
                mpv[1],
                f"{mpv[0]:g}-{mpv[1]:g} (range over doses)",
            )
    for (recon, dose), group in volume_groups.items():
        vol = published_figures.volume_ml(recon, dose)
        if np.isfinite(vol):
            add("volume (ml)", recon, dose, group["detected_volume_ml"].to_numpy(), vol, vol, f"{vol:g}")
    table = pd.DataFrame(
        rows, columns=["quantity", "recon", "ctdivol_mgy", "mean", "sd", "worst", "published", "off_pct", "within"]
    )
    return _order(table).sort_values("quantity", kind="stable").reset_index(drop=True)


def study_goals(
    comparison: pd.DataFrame, summary: pd.DataFrame, vols: pd.DataFrame, radius_mm: float = CALIBRATION_RADIUS_MM
) -> dict:
    """The issue's goals on the figures that exist (see PhantomQA/README.md, "Measured figures").

    - MPV and IQR at 3 mm within 15 % of published (IQR where quoted, MPV against the range), counted;
    - the published MPV ordering DLR >= IR > FBP, counted over doses;
    - detected volume DLR / FBP and DLR / IR at the highest dose >= 1.2;
    - detected volume rises with dose for IR and DLR (Spearman rho >= 0.8).
    """
    out: dict = {}
    hu = comparison[comparison["quantity"].str.startswith(("MPV", "IQR"))]
    out["mpv_iqr_within"] = int(hu["within"].sum())
    out["mpv_iqr_available"] = int(len(hu))
    at_r = summary[np.isclose(summary["radius_mm"], radius_mm)].pivot_table(
        index="ctdivol_mgy", columns="recon", values="mpv_mean_hu"
    )
    if {"fbp", "ir", "dlr"} <= set(at_r.columns):
        ordered = (at_r["dlr"] >= at_r["ir"]) & (at_r["ir"] > at_r["fbp"])
        out["mpv_order_doses"] = int(ordered.sum())
        out["mpv_order_available"] = int(len(ordered))
    vol = vols.pivot_table(index="ctdivol_mgy", columns="recon", values="volume_mean_ml")
    if not vol.empty:
        top = vol.loc[vol.index.max()]
        for other in ("fbp", "ir"):
            if {"dlr", other} <= set(vol.columns):
                out[f"volume_ratio_dlr_{other}"] = float(top["dlr"] / top[other])
    for recon in ("fbp", "ir", "dlr"):
        if recon in vol.columns and len(vol) >= 3:
            out[f"volume_spearman_{recon}"] = _spearman(vol.index, vol[recon])
    out["met"] = {
        "mpv_iqr_within_90pct": out["mpv_iqr_available"] > 0
        and out["mpv_iqr_within"] >= 0.9 * out["mpv_iqr_available"],
        "mpv_order": out.get("mpv_order_doses", 0) == out.get("mpv_order_available", -1),
        "volume_ratio_dlr_fbp_ge_1.2": out.get("volume_ratio_dlr_fbp", 0.0) >= 1.2,
        "volume_ratio_dlr_ir_ge_1.2": out.get("volume_ratio_dlr_ir", 0.0) >= 1.2,
        "volume_rises_ir_dlr": all(out.get(f"volume_spearman_{r}", -1.0) >= 0.8 for r in ("ir", "dlr")),
    }
    return out


def _pm(mean: float, sd: float, digits: int = 0) -> str:
    if not np.isfinite(mean):
        return "n/a"
    sd_text = f"{sd:.{digits}f}" if np.isfinite(sd) else "n/a"
    return f"{mean:.{digits}f} ± {sd_text}"


def terminal_table(
    summary: pd.DataFrame, vols: pd.DataFrame, radius_mm: float = CALIBRATION_RADIUS_MM, repetitions: int | None = None
) -> str:
    """The seed study's table layout: per recon and dose, 3 mm MPV and IQR (mean ± SD), tree volume."""
    at_r = summary[np.isclose(summary["radius_mm"], radius_mm)].set_index(["recon", "ctdivol_mgy"])
    vol = vols.set_index(["recon", "ctdivol_mgy"])
    reps = f" over {repetitions} repetitions" if repetitions else ""
    header = [
        "Recon",
        "CTDIvol (mGy)",
        f"MPV {radius_mm:g} mm (HU)",
        "published MPV",
        f"IQR {radius_mm:g} mm (HU)",
        "published IQR",
        "Volume (ml)",
        "published",
        "Detection",
    ]
    lines = []
    for (recon, dose), row in vol.iterrows():
        s = at_r.loc[(recon, dose)] if (recon, dose) in at_r.index else None
        at_3mm = np.isclose(radius_mm, CALIBRATION_RADIUS_MM)
        iqr = published_figures.iqr_3mm(recon, dose) if at_3mm else float("nan")
        mpv = published_figures.mpv_3mm_range(recon) if at_3mm else None
        vol = published_figures.volume_ml(recon, dose)
        lines.append(
            [
                recon.upper(),
                f"{dose:g}",
                _pm(s["mpv_mean_hu"], s["mpv_sd_hu"]) if s is not None else "n/a",
                f"{mpv[0]:g}-{mpv[1]:g}" if mpv else "",
                _pm(s["iqr_mean_hu"], s["iqr_sd_hu"]) if s is not None else "n/a",
                f"{iqr:g}" if np.isfinite(iqr) else "",
                _pm(row["volume_mean_ml"], row["volume_sd_ml"], 2),
                f"{vol:g}" if np.isfinite(vol) else "",
                f"{s['detection_mean']:.2f}" if s is not None and np.isfinite(s["detection_mean"]) else "n/a",
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.rjust(w) if i > 0 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    rule = "-" * len(fmt(header))
    title = (
        f"Vessels of design radius {radius_mm:g} mm: mean ± SD{reps}; "
        "published: the seed study's values where quoted (MPV: its range over the doses; blank: not quoted)"
    )
    return "\n".join([title, rule, fmt(header), rule, *[fmt(line) for line in lines], rule])
