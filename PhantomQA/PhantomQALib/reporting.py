"""Study outputs: CSV tables, study.json and report.html (RadiologyAICommonLib.report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from RadiologyAICommonLib.atomic import write_csv, write_json
from RadiologyAICommonLib.report import HtmlReport, new_figure

from .aggregate import calibration_table, summarise, terminal_table, trends, volumes
from .published import CALIBRATION_RADIUS_MM, PUBLISHED_IQR_3MM_HU, published_iqr_3mm
from .recon import RECON_MODELS
from .study import StudyResults

COLOURS = {"fbp": "#1f77b4", "ir": "#2ca02c", "dlr": "#d62728"}


def _label(recon: str) -> str:
    model = RECON_MODELS.get(recon)
    return model.label if model else recon


def _log_ticks(ax, values, rotate: bool = False) -> None:
    """Log x axis labelled at the study's own values (doses or design radii)."""
    ax.set_xscale("log")
    ax.set_xticks(list(values))
    ax.set_xticklabels([f"{v:g}" for v in values], rotation=90 if rotate else 0, fontsize=8)
    ax.minorticks_off()


def _line_vs_dose(summary: pd.DataFrame, column: str, sd_column: str | None, ylabel: str, title: str, radius: float, published: bool = False):
    fig = new_figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    at_r = summary[np.isclose(summary["radius_mm"], radius)] if "radius_mm" in summary.columns else summary
    for recon, group in at_r.groupby("recon", sort=False):
        group = group.sort_values("ctdivol_mgy")
        colour = COLOURS.get(recon)
        yerr = group[sd_column] if sd_column else None
        ax.errorbar(group["ctdivol_mgy"], group[column], yerr=yerr, marker="o", capsize=3, color=colour, label=_label(recon))
        if published and recon in PUBLISHED_IQR_3MM_HU:
            doses = np.geomspace(group["ctdivol_mgy"].min(), group["ctdivol_mgy"].max(), 30)
            ax.plot(doses, [published_iqr_3mm(recon, d) for d in doses], "--", color=colour, alpha=0.6)
            pts = PUBLISHED_IQR_3MM_HU[recon]
            ax.plot(list(pts), list(pts.values()), "s", mfc="none", color=colour, alpha=0.8)
    _log_ticks(ax, sorted(at_r["ctdivol_mgy"].unique()))
    ax.set_xlabel("CTDIvol (mGy)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _detection_vs_radius(summary: pd.DataFrame):
    recons = list(dict.fromkeys(summary["recon"]))
    fig = new_figure(figsize=(4.2 * len(recons), 3.8))
    doses = sorted(summary["ctdivol_mgy"].unique())
    cmap = __import__("matplotlib").colormaps["viridis"]
    for index, recon in enumerate(recons):
        ax = fig.add_subplot(1, len(recons), index + 1)
        for j, dose in enumerate(doses):
            group = summary[(summary["recon"] == recon) & np.isclose(summary["ctdivol_mgy"], dose)].sort_values("radius_mm")
            ax.plot(group["radius_mm"], group["detection_mean"], marker="o", ms=3, color=cmap(j / max(len(doses) - 1, 1)), label=f"{dose:g} mGy")
        _log_ticks(ax, sorted(summary["radius_mm"].unique()), rotate=True)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("design radius (mm)")
        ax.set_ylabel("detection rate")
        ax.set_title(_label(recon), fontsize=9)
        ax.grid(True, alpha=0.3)
        if index == 0:
            ax.legend(fontsize=7)
    return fig


def study_tables(study: StudyResults) -> dict:
    summary = summarise(study.per_acquisition)
    vols = volumes(study.acquisitions)
    return {"summary": summary, "volumes": vols, "trends": trends(summary, vols), "calibration": calibration_table(summary)}


def write_study_outputs(folder: Path, study: StudyResults, title: str = "PhantomQA: dose x reconstruction study", notes: list[str] | None = None) -> dict:
    """Write summary.csv, volumes.csv, per_acquisition.csv, acquisitions.csv, study.json and report.html."""
    folder = Path(folder)
    tables = study_tables(study)
    summary, vols = tables["summary"], tables["volumes"]
    write_csv(folder / "summary.csv", summary)
    write_csv(folder / "volumes.csv", vols)
    write_csv(folder / "per_acquisition.csv", study.per_acquisition)
    write_csv(folder / "acquisitions.csv", study.acquisitions)
    reps = int(study.acquisitions.groupby(["recon", "ctdivol_mgy"]).size().min()) if not study.acquisitions.empty else 0
    text_table = terminal_table(summary, vols, repetitions=reps)
    write_json(
        folder / "study.json",
        {
            "acquisitions": int(len(study.acquisitions)),
            "repetitions_min": reps,
            "seconds": round(study.seconds, 1),
            "trends": tables["trends"],
            "calibration": tables["calibration"].to_dict(orient="records"),
            "recon_models": {k: vars(v) for k, v in RECON_MODELS.items()},
        },
    )
    report = HtmlReport(title)
    report.paragraph(
        f"{len(study.acquisitions)} acquisitions ({reps}+ repetitions per reconstruction and dose), analysed with VesselQuant "
        "on the phantom's known lung region; measurements per design radius, mean ± SD over repetitions."
    )
    for note in notes or []:
        report.paragraph(note)
    report.heading("Summary (design radius 3 mm)")
    report.paragraph(text_table.splitlines()[0])
    r3 = summary[np.isclose(summary["radius_mm"], CALIBRATION_RADIUS_MM)]
    if not r3.empty:
        report.table(tables["calibration"].round(1), caption="3 mm IQR: simulated/measured vs the seed study (published end points, physics-interpolated between)")
    trend_rows = pd.DataFrame([{"measure": k, "spearman_rho_vs_dose": v} for k, v in tables["trends"].items()])
    if not trend_rows.empty:
        report.table(trend_rows, caption="Trends with dose (Spearman rank correlation across doses)")
    report.heading("Plots")
    report.figure(_line_vs_dose(summary, "iqr_mean_hu", "iqr_sd_hu", "IQR (HU)", f"IQR of {CALIBRATION_RADIUS_MM:g} mm vessels vs dose (dashed: published)", CALIBRATION_RADIUS_MM, published=True), caption="IQR vs dose per reconstruction")
    report.figure(_line_vs_dose(summary, "mpv_mean_hu", "mpv_sd_hu", "MPV (HU)", f"Median pixel value of {CALIBRATION_RADIUS_MM:g} mm vessels vs dose", CALIBRATION_RADIUS_MM), caption="MPV vs dose per reconstruction")
    report.figure(_line_vs_dose(vols, "volume_mean_ml", "volume_sd_ml", "detected volume (ml)", "Detected vessel-tree volume vs dose", 0.0), caption="Detected volume vs dose per reconstruction")
    report.figure(_detection_vs_radius(summary), caption="Detection rate (fraction of the design centreline found) vs design radius, per dose")
    report.heading("Summary per design radius")
    report.table(summary.round(3))
    report.heading("Volumes")
    report.table(vols.round(3))
    report.heading("Acquisitions")
    acq_cols = [c for c in ["recon", "ctdivol_mgy", "repetition", "path", "kernel", "detected_volume_ml", "false_positive_volume_ml", "detection_rate", "alignment", "seconds"] if c in study.acquisitions.columns]
    acq = study.acquisitions[acq_cols].copy()
    if "path" in acq.columns:
        acq["path"] = acq["path"].map(lambda p: Path(str(p)).name)
    report.table(acq.round(3))
    report.write(folder / "report.html")
    return {**tables, "terminal_table": text_table}
