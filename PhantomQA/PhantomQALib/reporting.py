"""Study outputs: CSV tables, study.json and report.html (RadiologyAICommonLib.report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from RadiologyAICommonLib.atomic import write_csv, write_json
from RadiologyAICommonLib.report import HtmlReport, new_figure

from . import published as published_figures
from .aggregate import published_comparison, study_goals, summarise, terminal_table, trends, volumes
from .published import CALIBRATION_RADIUS_MM
from .recon import CALIBRATION_METADATA, RECON_MODELS
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


def _published_points(quantity: str, recon: str) -> tuple[list, list]:
    table = {"iqr": published_figures.published().iqr_3mm_hu, "volume": published_figures.published().volume_ml}[
        quantity
    ].get(recon, {})
    doses = sorted(table)
    return doses, [table[d] for d in doses]


def dose_figure(summary: pd.DataFrame, vols: pd.DataFrame, radius: float = CALIBRATION_RADIUS_MM):
    """MPV, IQR (3 mm) and detected volume vs dose per reconstruction, with the published figures.

    Lines with error bars: mean ± SD over repetitions. Open squares: the study's published values
    where they are quoted; shaded bands: the published MPV range over the doses (the MPV is only
    quoted as a range). Nothing published is interpolated.
    """
    fig = new_figure(figsize=(13.5, 4.2))
    at_r = summary[np.isclose(summary["radius_mm"], radius)]
    panels = [
        (at_r, "mpv_mean_hu", "mpv_sd_hu", f"MPV of {radius:g} mm vessels (HU)", "mpv"),
        (at_r, "iqr_mean_hu", "iqr_sd_hu", f"IQR of {radius:g} mm vessels (HU)", "iqr"),
        (vols, "volume_mean_ml", "volume_sd_ml", "detected vessel-tree volume (ml)", "volume"),
    ]
    doses = sorted(vols["ctdivol_mgy"].unique()) if not vols.empty else []
    for index, (frame, column, sd_column, ylabel, quantity) in enumerate(panels):
        ax = fig.add_subplot(1, 3, index + 1)
        for recon, group in frame.groupby("recon", sort=False):
            group = group.sort_values("ctdivol_mgy")
            colour = COLOURS.get(recon)
            ax.errorbar(
                group["ctdivol_mgy"],
                group[column],
                yerr=group[sd_column],
                marker="o",
                capsize=3,
                color=colour,
                label=f"{recon.upper()} simulated",
            )
            if quantity == "mpv":
                band = published_figures.mpv_3mm_range(recon)
                if band is not None:
                    ax.axhspan(band[0], band[1], color=colour, alpha=0.12, lw=0)
            else:
                x, y = _published_points(quantity, recon)
                if x:
                    ax.plot(x, y, "s", ms=8, mfc="none", mew=1.5, color=colour, label=f"{recon.upper()} published")
        if doses:
            _log_ticks(ax, doses)
        ax.set_xlabel("CTDIvol (mGy)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if index == 0:
            ax.set_title("bands: published MPV range over doses", fontsize=9)
        if index == 1:
            ax.set_title("squares: published values (where quoted)", fontsize=9)
            ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def _detection_vs_radius(summary: pd.DataFrame):
    recons = list(dict.fromkeys(summary["recon"]))
    fig = new_figure(figsize=(4.2 * len(recons), 3.8))
    doses = sorted(summary["ctdivol_mgy"].unique())
    cmap = __import__("matplotlib").colormaps["viridis"]
    for index, recon in enumerate(recons):
        ax = fig.add_subplot(1, len(recons), index + 1)
        for j, dose in enumerate(doses):
            group = summary[(summary["recon"] == recon) & np.isclose(summary["ctdivol_mgy"], dose)].sort_values(
                "radius_mm"
            )
            ax.plot(
                group["radius_mm"],
                group["detection_mean"],
                marker="o",
                ms=3,
                color=cmap(j / max(len(doses) - 1, 1)),
                label=f"{dose:g} mGy",
            )
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
    comparison = published_comparison(study.per_acquisition, study.acquisitions)
    return {
        "summary": summary,
        "volumes": vols,
        "trends": trends(summary, vols),
        "comparison": comparison,
        "goals": study_goals(comparison, summary, vols),
    }


def write_study_outputs(
    folder: Path,
    study: StudyResults,
    title: str = "PhantomQA: dose x reconstruction study",
    notes: list[str] | None = None,
) -> dict:
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
            "published_comparison": tables["comparison"].to_dict(orient="records"),
            "goals": tables["goals"],
            "recon_models": {k: vars(v) for k, v in RECON_MODELS.items()},
            "recon_calibration": {
                k: v for k, v in CALIBRATION_METADATA.items() if k in ("version", "fitted_by", "fitted_on")
            },
            "published_figures_version": published_figures.published().version,
        },
    )
    report = HtmlReport(title)
    report.paragraph(
        f"{len(study.acquisitions)} acquisitions ({reps}+ repetitions per reconstruction and dose), "
        "analysed with VesselQuant "
        "on the phantom's known lung region; measurements per design radius, mean ± SD over repetitions."
    )
    for note in notes or []:
        report.paragraph(note)
    report.heading("Summary (design radius 3 mm)")
    report.paragraph(text_table.splitlines()[0])
    if not tables["comparison"].empty:
        report.table(
            tables["comparison"].round(2),
            caption=(
                "Against the seed study, only where it quotes a value (mean ± SD over repetitions; "
                "worst = the repetition farthest from published; "
                "off_pct = distance from the published value or range; "
                "within = inside 15 %, the study's SDs not being available)"
            ),
        )
        report.paragraph(
            "Not available from the study (not compared): " + "; ".join(published_figures.published().missing) + "."
        )
    goal_rows = pd.DataFrame(
        [{"goal": k, "value": v} for k, v in tables["goals"].items() if k != "met"]
        + [{"goal": f"met: {k}", "value": v} for k, v in tables["goals"]["met"].items()]
    )
    report.table(goal_rows, caption="Goals (PhantomQA/README.md, 'Measured figures')")
    trend_rows = pd.DataFrame([{"measure": k, "spearman_rho_vs_dose": v} for k, v in tables["trends"].items()])
    if not trend_rows.empty:
        report.table(trend_rows, caption="Trends with dose (Spearman rank correlation across doses)")
    report.heading("Plots")
    report.figure(
        dose_figure(summary, vols),
        caption=(
            "MPV, IQR (3 mm) and detected volume vs dose per reconstruction (mean ± SD); "
            "squares: published values where quoted; bands: published MPV range"
        ),
    )
    report.figure(
        _detection_vs_radius(summary),
        caption="Detection rate (fraction of the design centreline found) vs design radius, per dose",
    )
    report.heading("Summary per design radius")
    report.table(summary.round(3))
    report.heading("Volumes")
    report.table(vols.round(3))
    report.heading("Acquisitions")
    acq_cols = [
        c
        for c in [
            "recon",
            "ctdivol_mgy",
            "repetition",
            "path",
            "kernel",
            "detected_volume_ml",
            "false_positive_volume_ml",
            "detection_rate",
            "alignment",
            "seconds",
        ]
        if c in study.acquisitions.columns
    ]
    acq = study.acquisitions[acq_cols].copy()
    if "path" in acq.columns:
        acq["path"] = acq["path"].map(lambda p: Path(str(p)).name)
    report.table(acq.round(3))
    report.write(folder / "report.html")
    return {**tables, "terminal_table": text_table}
