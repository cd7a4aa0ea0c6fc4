"""HipRadiomicsLogic on a real MRML scene (slicer-core): volume + segment -> features, prediction, importance chart."""

import numpy as np
import pytest
import SimpleITK as sitk

import hip_testdata as data
from RadiologyAICommonLib.errors import RadiologyAIError
from HipRadiomicsLib.extraction import extract_features
from HipRadiomicsLib.model import load_model_folder
from HipRadiomicsLib.predict import model_params
from HipRadiomicsLib.synthetic import SyntheticParameters, make_case


@pytest.fixture()
def scene_case(mrml_scene):
    from RadiologyAICommonLib import mrml

    case = make_case(1, seed=77, config=SyntheticParameters(size=data.SIZE, radius_range=(9.0, 11.0)))
    direction = sitk.Euler3DTransform()
    direction.SetRotation(0.1, -0.05, 0.2)
    case.image.SetDirection(direction.GetMatrix())  # oblique, to exercise LPS/RAS handling
    case.mask.CopyInformation(case.image)
    volume = mrml.image_to_volume_node(case.image, "hip MRI")
    segmentation = mrml.labelmap_to_segmentation_node(
        case.mask, {1: ("femoral head", (0.9, 0.6, 0.2))}, "hip segmentation"
    )
    return case, volume, segmentation


def test_extract_features_matches_the_core(scene_case):
    from HipRadiomicsLib.logic import HipRadiomicsLogic

    case, volume, segmentation = scene_case
    result, table = HipRadiomicsLogic().extractFeatures(volume, segmentation, "femoral head")
    assert table.GetNumberOfRows() == len(result.features) == 107
    direct = extract_features(case.image, case.mask)
    # the segment goes through the segmentation's binary labelmap: the same voxels, so the same features
    for name in ("original_shape_VoxelVolume", "original_firstorder_Mean", "original_glcm_Contrast"):
        assert result.features[name] == pytest.approx(direct.features[name], rel=1e-6)


def test_predict_creates_tables_and_chart(scene_case):
    from HipRadiomicsLib.logic import HipRadiomicsLogic

    case, volume, segmentation = scene_case
    model_dir = data.model()
    result = HipRadiomicsLogic().predict(volume, segmentation, "femoral head", str(model_dir), top=3)
    model = load_model_folder(model_dir)
    expected = float(
        model.predict_proba(
            __import__("pandas").DataFrame([extract_features(case.image, case.mask, model_params(model)).features])
        )[0]
    )
    assert result.probability == pytest.approx(expected, rel=1e-5)
    assert result.className == result.classNames[int(expected >= model.threshold)]
    assert result.featuresTableNode.GetNumberOfRows() == 107
    assert result.contributionsTableNode.GetNumberOfRows() == min(3, len(model.features))
    assert result.importanceChartNode.GetNumberOfPlotSeriesNodes() == 1
    assert result.importanceTableNode.GetTable().GetColumnByName("gain") is not None


def test_empty_segment_and_missing_inputs(scene_case, mrml_scene):
    from RadiologyAICommonLib import mrml
    from HipRadiomicsLib.logic import HipRadiomicsLogic

    case, volume, segmentation = scene_case
    logic = HipRadiomicsLogic()
    with pytest.raises(RadiologyAIError, match="no segment 'tibia'"):
        logic.extractFeatures(volume, segmentation, "tibia")
    empty = mrml.labelmap_to_segmentation_node(case.mask * 0, {1: ("femoral head", (1, 0, 0))}, "empty")
    with pytest.raises(RadiologyAIError, match="empty"):
        logic.extractFeatures(volume, empty, "femoral head")
    with pytest.raises(RadiologyAIError, match="MRI volume"):
        logic.extractFeatures(None, segmentation, "femoral head")


def test_training_commands_run_through_the_worker(tmp_path):
    from RadiologyAICommonLib.worker import WorkerProcess
    from HipRadiomicsLib.logic import HipRadiomicsLogic

    import pandas as pd

    cohort = pd.read_csv(data.cohort()).head(16)
    base = data.cohort().parent
    cohort["image"] = [str(base / p) for p in cohort["image"]]
    cohort["mask"] = [str(base / p) for p in cohort["mask"]]
    csv = tmp_path / "cohort.csv"
    cohort.to_csv(csv, index=False)
    commands = HipRadiomicsLogic.trainingCommands(str(csv), str(tmp_path / "model"), workers=1)
    assert [c[:2] for c in commands] == [["hip", "extract"], ["hip", "train"]]
    fractions = []
    result = WorkerProcess(commands[0], on_progress=lambda f, m: fractions.append(f)).wait(timeout=300)
    assert result.ok, result.error
    assert fractions and fractions[-1] == pytest.approx(1.0)
    assert (tmp_path / "model" / "features.csv").is_file()
    with pytest.raises(RadiologyAIError):
        HipRadiomicsLogic.trainingCommands(str(tmp_path / "none.csv"), str(tmp_path / "m"))
    assert np.isfinite(pd.read_csv(tmp_path / "model" / "features.csv")["original_glcm_Contrast"]).all()


def test_load_metrics_reads_metrics_json_back(tmp_path):
    """loadMetrics gives the typed metrics of a model folder; written out again they are the file's keys and values."""
    import json

    from HipRadiomicsLib.logic import HipRadiomicsLogic

    stored = json.loads((data.model() / "metrics.json").read_text(encoding="utf-8"))
    metrics = HipRadiomicsLogic.loadMetrics(str(data.model()))
    assert metrics.to_dict() == stored and list(metrics.to_dict()) == list(stored)
    assert metrics.n_test == stored["n_test"] and metrics.accuracy.ci95 == stored["accuracy_ci95"]
    assert [r.name for r in metrics.readers] == [r["name"] for r in stored["readers"]]
    (tmp_path / "metrics.json").write_text(json.dumps({"auc": 0.5}), encoding="utf-8")
    with pytest.raises(RadiologyAIError, match="not a HipRadiomics metrics file"):
        HipRadiomicsLogic.loadMetrics(str(tmp_path))
