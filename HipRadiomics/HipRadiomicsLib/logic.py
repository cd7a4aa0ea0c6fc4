"""HipRadiomicsLogic: MRML adapter of the HipRadiomics cores (usable in Slicer and with slicer-core).

Nodes in -> core -> nodes out:
- :meth:`extractFeatures`: MRI volume + a segment -> PyRadiomics features as a table node;
- :meth:`predict`: the same, then a trained model's probability and class, a table of the
  features that contributed most (SHAP), and the model's importance as a bar chart;
- :meth:`trainingCommands`: the two CLI runs (extract, train) the widget starts as worker
  processes, so training from a cohort CSV never blocks Slicer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk
import slicer

from RadiologyAICommonLib import mrml
from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.logicbase import LogicBase

if TYPE_CHECKING:  # pandas is a requirement: imported on use, after ensure_requirements
    import pandas as pd


@dataclass
class HipPredictionResult:
    className: str
    probability: float
    threshold: float
    classNames: list
    topFeatures: list = field(default_factory=list)
    featuresTableNode: object = None
    contributionsTableNode: object = None
    importanceTableNode: object = None
    importanceChartNode: object = None


class HipRadiomicsLogic(LogicBase):
    """Radiomics features, prediction and training for the HipRadiomics module."""

    def __init__(self) -> None:
        LogicBase.__init__(self)

    # ---- nodes -> images
    @staticmethod
    def imagesFromNodes(volumeNode, segmentationNode, segment) -> tuple[sitk.Image, sitk.Image]:
        """The MRI volume and the segment (name or ID) as SimpleITK image + 0/1 mask on the volume's grid."""
        if volumeNode is None:
            raise RadiologyAIError("select the MRI volume")
        if segmentationNode is None or not segment:
            raise RadiologyAIError("select the segmentation and the femoral-head segment")
        image = mrml.volume_node_to_image(volumeNode)
        mask = mrml.segment_to_image(segmentationNode, segment, volumeNode)
        if not sitk.GetArrayViewFromImage(mask).any():
            raise RadiologyAIError(
                f"segment '{segment}' of '{segmentationNode.GetName()}' is empty inside volume '{volumeNode.GetName()}'"
            )
        return image, mask

    # ---- features
    def extractFeatures(self, volumeNode, segmentationNode, segment, paramsPath: str | None = None, tableNode=None):
        """PyRadiomics features of the segment; returns ``(CaseFeatures, table node)`` (columns feature, value)."""
        import pandas as pd

        from HipRadiomicsLib.extraction import extract_features
        from HipRadiomicsLib.radiomics_params import load_params

        image, mask = self.imagesFromNodes(volumeNode, segmentationNode, segment)
        result = extract_features(image, mask, load_params(paramsPath or None), 1, what=f"segment '{segment}'")
        table = pd.DataFrame({"feature": list(result.features), "value": [float(v) for v in result.features.values()]})
        tableNode = mrml.dataframe_to_table_node(table, "HipRadiomics features", tableNode)
        return result, tableNode

    # ---- prediction
    def predict(self, volumeNode, segmentationNode, segment, modelDir: str, top: int = 10) -> HipPredictionResult:
        """Extract the segment's features with the model's own params and predict; tables + chart nodes out."""
        import pandas as pd

        from HipRadiomicsLib.extraction import extract_features
        from HipRadiomicsLib.model import load_model_folder
        from HipRadiomicsLib.predict import model_params, predict_features

        model = load_model_folder(modelDir)
        params = model_params(model)
        image, mask = self.imagesFromNodes(volumeNode, segmentationNode, segment)
        extracted = extract_features(image, mask, params, 1, what=f"segment '{segment}'")
        prediction = predict_features(model, extracted.features)
        selected = set(model.features)
        featuresTable = pd.DataFrame(
            {
                "feature": list(extracted.features),
                "value": list(extracted.features.values()),
                "used_by_model": [int(f in selected) for f in extracted.features],
            }
        )
        featuresNode = mrml.dataframe_to_table_node(featuresTable, "HipRadiomics features")
        contributions = prediction.contributions.head(top).rename(columns={"shap": "shap_log_odds"})
        contributionsNode = mrml.dataframe_to_table_node(contributions, "HipRadiomics top contributing features")
        importanceNode, chartNode = self.importanceChart(model)
        return HipPredictionResult(
            prediction.class_name,
            prediction.probability,
            prediction.threshold,
            prediction.class_names,
            prediction.as_dict(top)["top_features"],
            featuresNode,
            contributionsNode,
            importanceNode,
            chartNode,
        )

    @staticmethod
    def importanceTable(model) -> pd.DataFrame:
        """Gain share of each selected feature of a loaded model, largest first, with a 1-based rank."""
        import pandas as pd

        gain = model.booster.get_score(importance_type="gain")
        total = sum(gain.values()) or 1.0
        table = pd.DataFrame({"feature": model.features, "gain": [gain.get(f, 0.0) / total for f in model.features]})
        table = table.sort_values("gain", ascending=False).reset_index(drop=True)
        table.insert(0, "rank", np.arange(1, len(table) + 1, dtype=int))
        return table

    def importanceChart(self, model, top: int = 20):
        """Bar chart of the model's feature importance (gain share); returns ``(table node, chart node)``."""
        from HipRadiomicsLib.model import LoadedModel, load_model_folder

        model = model if isinstance(model, LoadedModel) else load_model_folder(model)
        table = self.importanceTable(model).head(top)
        tableNode = mrml.dataframe_to_table_node(table, "HipRadiomics importance")
        chartNode = mrml.plot_chart_node(
            tableNode,
            "rank",
            "gain",
            "HipRadiomics feature importance",
            "feature rank",
            "share of total gain",
            name="HipRadiomics importance chart",
        )
        for index in range(chartNode.GetNumberOfPlotSeriesNodes()):
            series = chartNode.GetNthPlotSeriesNode(index)
            series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeBar)
            series.SetLabelColumnName("feature")
        return tableNode, chartNode

    # ---- training (through the worker process)
    @staticmethod
    def trainingCommands(
        cohortCsv: str,
        outputDir: str,
        paramsPath: str | None = None,
        selector: str = "boruta",
        testSize: float = 0.3,
        seed: int = 0,
        threshold: str = "0.5",
        workers: int | None = None,
    ) -> list[list[str]]:
        """CLI argument lists for the worker: extract the cohort's features into the model folder, then train."""
        if not cohortCsv or not Path(cohortCsv).is_file():
            raise RadiologyAIError(f"cohort CSV '{cohortCsv}' does not exist")
        if not outputDir:
            raise RadiologyAIError("choose a folder for the model")
        features = str(Path(outputDir) / "features.csv")
        # the model folder is reused run after run: --overwrite replaces only RadiologyAI's own files in it
        extract = ["hip", "extract", str(cohortCsv), "--output", features, "--overwrite"]
        if paramsPath:
            extract += ["--params", str(paramsPath)]
        if workers:
            extract += ["--workers", str(int(workers))]
        train = [
            "hip",
            "train",
            features,
            "--output-dir",
            str(outputDir),
            "--selector",
            selector,
            "--test-size",
            str(testSize),
            "--seed",
            str(int(seed)),
            "--threshold",
            str(threshold),
            "--overwrite",
        ]
        return [extract, train]

    @staticmethod
    def loadMetrics(modelDir: str):
        """metrics.json of a trained model folder, as a :class:`HipRadiomicsLib.training.TrainingMetrics`."""
        import json

        from HipRadiomicsLib.training import TrainingMetrics

        path = Path(modelDir) / "metrics.json"
        try:
            return TrainingMetrics.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise RadiologyAIError(f"{path}: cannot read the model metrics ({exc})") from None
        except (KeyError, TypeError, AttributeError) as exc:
            raise RadiologyAIError(f"{path}: not a HipRadiomics metrics file ({type(exc).__name__}: {exc})") from None
