"""The published figures and the reconstruction calibration: data files read, validated, never interpolated."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest

from PhantomQALib import published as pub
from PhantomQALib.aggregate import _spearman, published_comparison, study_goals, summarise, volumes
from PhantomQALib.recon import CALIBRATION_FILE, RECON_MODELS, calibration_document, load_calibration, parse_calibration
from RadiologyAICommonLib.errors import RadiologyAIError


def test_published_figures_are_the_quoted_ones_and_nothing_else():
    figures = pub.published()
    assert figures.iqr_3mm_hu["fbp"] == {0.2: 120.0, 0.5: 72.0, 1.0: 44.0, 2.1: 34.0, 4.0: 37.0}
    assert figures.iqr_3mm_hu["ir"] == {0.2: 62.0, 4.0: 25.0} and figures.iqr_3mm_hu["dlr"] == {0.2: 62.0, 4.0: 36.0}
    assert figures.mpv_3mm_range_hu == {"fbp": (91.0, 98.0), "ir": (99.0, 104.0), "dlr": (102.0, 107.0)}
    assert figures.mpv_order == ("dlr", "ir", "fbp")
    assert figures.volume_ml["fbp"] == {0.2: 7.14, 4.0: 5.24} and figures.volume_ml["dlr"][4.0] == 7.42
    assert figures.volume_ratio_4mgy == {"dlr/fbp": 1.42, "dlr/ir": 1.36}
    assert figures.sd == {} and any("SD" in m for m in figures.missing)
    # every stored figure names where it is quoted
    assert all(figures.sources.values()) and len(figures.sources) == 11
    # not quoted -> NaN: no interpolation between the end points
    assert math.isnan(pub.iqr_3mm("ir", 1.0)) and math.isnan(pub.volume_ml("dlr", 2.1))
    assert pub.iqr_3mm("fbp", 1.0) == 44.0 and pub.iqr_3mm("ir", 4.0) == 25.0


def _published_document() -> dict:
    return json.loads(pub.PUBLISHED_FILE.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(format="other"), "not a PhantomQA published-figures file"),
        (
            lambda d: d["iqr_3mm_hu"]["fbp"]["values"].update({"0.5": -3}),
            r"iqr_3mm_hu.fbp at 0.5 mGy: expected a positive number",
        ),
        (lambda d: d["iqr_3mm_hu"].update(sirt={"values": {}, "source": "x"}), "unknown reconstruction 'sirt'"),
        (lambda d: d["volume_ml"]["ir"]["values"].update({"low": 3.0}), "dose 'low' is not a number"),
        (lambda d: d["mpv_3mm_range_hu"]["ir"].update(range=[104, 99]), "low 104 above high 99"),
        (lambda d: d["iqr_3mm_hu"]["dlr"].pop("source"), r"iqr_3mm_hu.dlr: expected"),
    ],
)
def test_a_bad_published_file_gives_one_clear_error(tmp_path, edit, message):
    data = _published_document()
    edit(data)
    path = tmp_path / "published.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RadiologyAIError, match=message):
        pub.load_published(path)
    path.write_text("{not json")
    with pytest.raises(RadiologyAIError, match="cannot read it as JSON"):
        pub.load_published(path)


def test_the_shipped_calibration_is_versioned_and_round_trips(tmp_path):
    models, meta = load_calibration()
    assert models == RECON_MODELS and isinstance(meta["version"], int) and meta["fitted_by"]
    document = calibration_document(models, meta["version"], meta["fitted_by"])
    again, _ = parse_calibration(json.loads(json.dumps(document)))
    assert again == models
    assert (
        not RECON_MODELS["fbp"].is_regularised()
        and RECON_MODELS["ir"].is_regularised()
        and RECON_MODELS["dlr"].is_regularised()
    )


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(format="x"), "not a PhantomQA reconstruction calibration"),
        (lambda d: d.pop("fitted_by"), "'fitted_by' text"),
        (lambda d: d["models"].pop("dlr"), "exactly fbp, ir and dlr"),
        (
            lambda d: d["models"]["ir"].update(noise_sd_1mgy_hu=float("nan")),
            r"models.ir.noise_sd_1mgy_hu must be a number in \[0.01, 1000\], got nan",
        ),
        (
            lambda d: d["models"]["fbp"].update(white_fraction=1.5),
            r"models.fbp.white_fraction must be a number in \[0, 1\]",
        ),
        (lambda d: d["models"]["fbp"].update(edge_cnr="high"), r"models.fbp.edge_cnr must be a number"),
        (lambda d: d["models"]["dlr"].pop("signal_fwhm_mm"), "models.dlr: missing field signal_fwhm_mm"),
        (lambda d: d["models"]["dlr"].update(__import__="os"), r"models.dlr: unknown field\(s\) __import__"),
        (
            lambda d: d.update(phantom_materials={"vessel_hu": 300}),
            "'phantom_materials' must hold only vessel_texture_sd_hu, vessel_texture_fwhm_mm",
        ),
        (
            lambda d: d.update(phantom_materials={"vessel_texture_sd_hu": -1}),
            r"phantom_materials.vessel_texture_sd_hu must be a number in \[0, 200\]",
        ),
        (lambda d: d["physical"].pop("i0_1mgy"), "'physical' must hold exactly i0_1mgy, system_fwhm_mm"),
        (
            lambda d: d["physical"].update(ir_tv_factor=float("inf")),
            r"physical.ir_tv_factor must be a number in \[0, 100\]",
        ),
    ],
)
def test_a_bad_calibration_file_gives_one_clear_error(tmp_path, edit, message):
    data = json.loads(CALIBRATION_FILE.read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / "recon_calibration.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RadiologyAIError, match=message):
        load_calibration(path)


def _tables(iqr: dict, mpv: dict, vol: dict):
    """per_acquisition / acquisitions tables with two repetitions per (recon, dose): value +- 1."""
    rows, acq = [], []
    for recon in ("fbp", "ir", "dlr"):
        for dose in (0.2, 1.0, 4.0):
            for rep, delta in ((1, -1.0), (2, 1.0)):
                rows.append(
                    {
                        "recon": recon,
                        "ctdivol_mgy": dose,
                        "repetition": rep,
                        "radius_mm": 3.0,
                        "mpv_hu": mpv[recon][dose] + delta,
                        "iqr_hu": iqr[recon][dose] + delta,
                        "detection_rate": 1.0,
                        "radius_err_mm": 0.0,
                    }
                )
                acq.append(
                    {
                        "recon": recon,
                        "ctdivol_mgy": dose,
                        "repetition": rep,
                        "detected_volume_ml": vol[recon][dose] + delta / 100,
                    }
                )
    return pd.DataFrame(rows), pd.DataFrame(acq)


def test_a_trend_of_exactly_the_goal_meets_it():
    """Over five doses two swapped pairs give rho = 0.8 exactly (1 - 6 * 4 / 120); scipy's 0.7999999999999999 must not
    fail the goal rho >= 0.8."""
    doses = [0.2, 0.5, 1.0, 2.1, 4.0]
    assert _spearman(doses, [8.53, 8.52, 8.56, 8.55, 8.59]) == 0.8
    assert _spearman(doses, [8.52, 8.53, 8.55, 8.56, 8.59]) == 1.0
    assert math.isnan(_spearman(doses, [1.0] * 5))


def test_comparison_and_goals_on_known_numbers():
    iqr = {"fbp": {0.2: 120, 1.0: 60, 4.0: 37}, "ir": {0.2: 62, 1.0: 30, 4.0: 25}, "dlr": {0.2: 80, 1.0: 40, 4.0: 36}}
    mpv = {
        "fbp": {0.2: 90, 1.0: 95, 4.0: 97},
        "ir": {0.2: 100, 1.0: 101, 4.0: 102},
        "dlr": {0.2: 105, 1.0: 80, 4.0: 106},
    }
    vol = {
        "fbp": {0.2: 5.0, 1.0: 5.0, 4.0: 5.0},
        "ir": {0.2: 4.0, 1.0: 5.0, 4.0: 6.0},
        "dlr": {0.2: 6.0, 1.0: 7.0, 4.0: 7.5},
    }
    per_acq, acquisitions = _tables(iqr, mpv, vol)
    table = published_comparison(per_acq, acquisitions)
    # IQR rows only where published: FBP 0.2/1.0/4.0, IR and DLR 0.2/4.0; MPV at all 9; volume at 0.2 and 4.0
    assert (table["quantity"] == "IQR 3 mm (HU)").sum() == 7 and (table["quantity"] == "MPV 3 mm (HU)").sum() == 9
    assert (table["quantity"] == "volume (ml)").sum() == 6
    row = table[
        (table["quantity"] == "IQR 3 mm (HU)") & (table["recon"] == "fbp") & (table["ctdivol_mgy"] == 1.0)
    ].iloc[0]
    assert (
        row["mean"] == 60
        and row["published"] == "44"
        and row["off_pct"] == pytest.approx(100 * 16 / 44)
        and not row["within"]
    )
    assert row["worst"] == 61 and row["sd"] == pytest.approx(np.sqrt(2))
    dlr_low = table[
        (table["quantity"] == "IQR 3 mm (HU)") & (table["recon"] == "dlr") & (table["ctdivol_mgy"] == 0.2)
    ].iloc[0]
    assert dlr_low["off_pct"] == pytest.approx(100 * 18 / 62) and not dlr_low["within"]
    inside = table[
        (table["quantity"] == "MPV 3 mm (HU)") & (table["recon"] == "fbp") & (table["ctdivol_mgy"] == 1.0)
    ].iloc[0]
    assert inside["off_pct"] == 0.0 and inside["within"]  # inside the published range 91-98
    below = table[
        (table["quantity"] == "MPV 3 mm (HU)") & (table["recon"] == "dlr") & (table["ctdivol_mgy"] == 1.0)
    ].iloc[0]
    assert below["off_pct"] == pytest.approx(100 * (80 - 102) / 102) and not below["within"]
    goals = study_goals(table, summarise(per_acq), volumes(acquisitions))
    assert goals["mpv_iqr_available"] == 16 and goals["mpv_iqr_within"] == 13  # FBP 1.0, DLR 0.2 IQR; DLR 1.0 MPV
    assert goals["mpv_order_doses"] == 2 and goals["mpv_order_available"] == 3  # DLR < IR at 1.0 mGy
    assert goals["volume_ratio_dlr_fbp"] == pytest.approx(1.5) and goals["volume_ratio_dlr_ir"] == pytest.approx(1.25)
    assert goals["volume_spearman_ir"] == pytest.approx(1.0) and goals["met"]["volume_rises_ir_dlr"]
    assert not goals["met"]["mpv_iqr_within_90pct"] and not goals["met"]["mpv_order"]
    assert goals["met"]["volume_ratio_dlr_fbp_ge_1.2"] and goals["met"]["volume_ratio_dlr_ir_ge_1.2"]
    # one more figure within: the count follows
    better = copy.deepcopy(iqr)
    better["fbp"][1.0] = 50
    per_acq, acquisitions = _tables(better, mpv, vol)
    assert (
        study_goals(published_comparison(per_acq, acquisitions), summarise(per_acq), volumes(acquisitions))[
            "mpv_iqr_within"
        ]
        == 14
    )
