"""PhantomQALogic on a real MRML scene (slicer-core)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from PhantomQALib.acquisitions import read_manifest
from PhantomQALib.aggregate import summarise, volumes
from RadiologyAICommonLib.errors import RadiologyAIError


def _study_tables():
    rows, acq = [], []
    rng = np.random.default_rng(0)
    for recon in ("fbp", "ir", "dlr"):
        for dose in (0.2, 1.0, 4.0):
            for rep in (1, 2):
                acq.append(
                    {
                        "recon": recon,
                        "ctdivol_mgy": dose,
                        "repetition": rep,
                        "detected_volume_ml": 5 + dose / 10 + rng.normal(0, 0.01),
                    }
                )
                for radius in (3.0, 1.0, 0.5):
                    rows.append(
                        {
                            "recon": recon,
                            "ctdivol_mgy": dose,
                            "repetition": rep,
                            "radius_mm": radius,
                            "mpv_hu": 100 - radius,
                            "iqr_hu": 50 / np.sqrt(dose) + rep,
                            "detection_rate": min(1.0, radius * dose),
                            "radius_err_mm": 0.1,
                        }
                    )
    per_acq, acquisitions = pd.DataFrame(rows), pd.DataFrame(acq)
    return summarise(per_acq), volumes(acquisitions), acquisitions


def test_results_become_tables_and_plots(mrml_scene):
    from PhantomQALib.logic import PhantomQALogic

    summary, vols, acquisitions = _study_tables()
    nodes = PhantomQALogic().resultsToNodes(summary, vols, acquisitions)
    assert nodes.summaryTable.GetNumberOfRows() == len(summary)
    assert nodes.volumesTable.GetNumberOfRows() == 9
    iqr = nodes.iqrTable.GetTable()
    assert [iqr.GetColumn(i).GetName() for i in range(iqr.GetNumberOfColumns())] == ["ctdivol_mgy", "fbp", "ir", "dlr"]
    assert iqr.GetNumberOfRows() == 3
    assert iqr.GetValueByName(0, "fbp").ToDouble() == pytest.approx(50 / np.sqrt(0.2) + 1.5)
    chart = nodes.iqrChart
    assert chart.IsA("vtkMRMLPlotChartNode") and chart.GetNumberOfPlotSeriesNodes() == 3
    assert nodes.detectionChart.GetNumberOfPlotSeriesNodes() == 3


def test_load_results_from_a_folder(mrml_scene, tmp_path):
    from PhantomQALib.logic import PhantomQALogic

    summary, vols, acquisitions = _study_tables()
    with pytest.raises(RadiologyAIError, match="no summary.csv"):
        PhantomQALogic().loadResults(str(tmp_path))
    summary.to_csv(tmp_path / "summary.csv", index=False)
    vols.to_csv(tmp_path / "volumes.csv", index=False)
    nodes = PhantomQALogic().loadResults(str(tmp_path))
    assert nodes.acquisitionsTable is None and nodes.volumeChart is not None


def _volume_node(name, value):
    from RadiologyAICommonLib import mrml

    image = sitk.GetImageFromArray(np.full((4, 10, 10), value, np.int16))
    image.SetSpacing((0.7, 0.7, 1.0))
    return mrml.image_to_volume_node(image, name)


def test_scene_volumes_become_a_manifest(mrml_scene, tmp_path):
    from PhantomQALib.logic import PhantomQALogic

    logic = PhantomQALogic()
    nodes = [_volume_node(f"ir_0.5mGy_rep{k}", -1000 + k) for k in (1, 2)] + [_volume_node("scan of the day", 0)]
    assert logic.guessAcquisition(nodes[0]) == {"recon": "ir", "ctdivol_mgy": 0.5, "repetition": 1}
    assert logic.guessAcquisition(nodes[2]) == {"recon": None, "ctdivol_mgy": None, "repetition": None}
    entries = [(nodes[0], "ir", 0.5, 1), (nodes[1], "ir", "0.5", 2)]
    manifest = logic.writeManifest(entries, str(tmp_path / "scans"))
    acquisitions = read_manifest(manifest)
    assert [(a.recon, a.ctdivol_mgy, a.repetition) for a in acquisitions] == [("ir", 0.5, 1), ("ir", 0.5, 2)]
    scan = sitk.ReadImage(acquisitions[1].path)
    assert scan.GetSpacing() == pytest.approx((0.7, 0.7, 1.0)) and sitk.GetArrayViewFromImage(scan)[0, 0, 0] == -998
    with pytest.raises(RadiologyAIError, match="1 repetition"):
        logic.writeManifest([(nodes[2], "fbp", 1.0, 1)], str(tmp_path / "single"))
    with pytest.raises(RadiologyAIError, match="unknown reconstruction"):
        logic.writeManifest([(nodes[2], "xyz", 1.0, 1)], str(tmp_path / "bad"))
    assert not (tmp_path / "single").exists() and not (tmp_path / "bad").exists()
    loaded = logic.loadAcquisitions(str(manifest))
    assert [n.GetName() for n in loaded] == ["ir_0.5mGy_rep1", "ir_0.5mGy_rep2"]


def test_worker_arguments_are_the_cli_commands(mrml_scene, tmp_path):
    """The logic builds the worker's arguments; they parse as the `radiologyai phantom` commands."""
    from PhantomQALib.logic import PhantomQALogic
    from RadiologyAICommonLib.cli import build_parser

    logic = PhantomQALogic()
    nodes = [_volume_node(f"fbp_1mGy_rep{k}", -1000 + k) for k in (1, 2)]
    args = logic.sceneStudyArguments(
        [(n, "fbp", 1.0, k) for k, n in enumerate(nodes, 1)],
        tmp_path / "work",
        str(tmp_path / "results"),
        workers=2,
        design=Path(),
    )
    assert args[:2] == ["phantom", "study"] and Path(args[2]) == tmp_path / "work" / "manifest.csv"
    assert "--design" not in args  # an empty path field is no design
    parsed = build_parser().parse_args(args)
    assert parsed.output_dir == str(tmp_path / "results") and parsed.workers == 2 and parsed.overwrite
    parsed = build_parser().parse_args(logic.studyArguments("scans/manifest.csv", "out", 1, "design"))
    assert parsed.design == "design"
    parsed = build_parser().parse_args(logic.demoArguments("out", 3))
    assert parsed.output_dir == "out" and parsed.workers == 3
