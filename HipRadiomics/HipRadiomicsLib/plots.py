"""Figures of a trained model: ROC curve (model and readers) and feature importance (Agg-safe)."""

from __future__ import annotations

import numpy as np

from RadiologyAICommonLib.report import new_figure

from .stats import roc_curve_points


def roc_figure(
    y_true,
    probability,
    auc: dict,
    readers: list | None = None,
    reader_scores: dict | None = None,
    title: str = "ROC on the held-out test set",
):
    """``auc``: ``{"auc", "ci"}`` of the model; ``readers``: :class:`.training.ReaderComparison` objects, drawn where
    ``reader_scores`` holds their ``(labels, scores)``."""
    fig = new_figure(figsize=(5.2, 5.0))
    ax = fig.add_subplot(1, 1, 1)
    fpr, tpr = roc_curve_points(y_true, probability)
    # the empirical ROC joins its points with straight lines (a diagonal segment where scores tie)
    ax.plot(
        fpr, tpr, color="#1f4e79", lw=2, label=f"model AUC {auc['auc']:.3f} ({auc['ci'][0]:.3f}-{auc['ci'][1]:.3f})"
    )
    colours = ["#d95f02", "#1b9e77", "#7570b3", "#e7298a"]
    for i, reader in enumerate(readers or []):
        y_r, s_r = (reader_scores or {}).get(reader.name, (None, None))
        if y_r is None:
            continue
        rf, rt = roc_curve_points(y_r, s_r)
        ax.plot(
            rf,
            rt,
            "o--",
            color=colours[i % len(colours)],
            lw=1.2,
            ms=3,
            label=f"{reader.name} AUC {reader.auc:.3f} ({reader.auc_ci95[0]:.3f}-{reader.auc_ci95[1]:.3f})",
        )
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_aspect("equal")
    return fig


def importance_figure(importance, top: int = 20, title: str = "XGBoost feature importance (gain)"):
    """``importance``: DataFrame with ``feature`` and ``gain`` (fraction of total gain)."""
    table = importance.sort_values("gain", ascending=False).head(top).iloc[::-1]
    fig = new_figure(figsize=(7.5, 0.32 * max(len(table), 3) + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(table))
    ax.barh(y, table["gain"].to_numpy(), color="#2c7fb8")
    ax.set_yticks(y)
    ax.set_yticklabels(table["feature"].tolist(), fontsize=8)
    ax.set_xlabel("share of total gain")
    ax.set_title(title)
    return fig
