"""The classifier: one scikit-learn Pipeline, saved as XGBoost JSON + a JSON description (no pickle).

Pipeline steps (all fitted on the training split only, so cross-validation cannot leak):
``near_constant`` -> ``collinearity`` -> ``selector`` (Boruta or RFECV) -> ``xgboost``.

Saved model folder:
- ``model.json``: the XGBoost booster (``Booster.save_model``, JSON format);
- ``pipeline.json``: selected feature names in model order, every step's settings and what it
  kept/dropped, class names, decision threshold, the PyRadiomics params (and SHA-256) used to
  extract the features, library versions, and the SHA-256 of ``model.json``.
Loading checks all of it and rebuilds the pipeline as ``FixedColumns(selected) -> XGBClassifier``.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from RadiologyAICommonLib.atomic import json_ready, read_json
from RadiologyAICommonLib.checksums import sha256_of, verify_checksums, write_checksums
from RadiologyAICommonLib.errors import RadiologyAIError

from .selection import BorutaSelector, CollinearityFilter, FixedColumns, NearConstantFilter, RFECVSelector

PIPELINE_FORMAT = "radiologyai-hip-pipeline"
PIPELINE_FORMAT_VERSION = 1


@dataclass
class ModelParameters:
    """Settings of the selection + classifier pipeline (defaults: the hip study's configuration)."""

    near_constant_freq_ratio: float = 95 / 5  # caret nearZeroVar defaults
    near_constant_unique_percent: float = 10.0
    collinearity_threshold: float = 0.9  # |Pearson r| above which two features count as collinear
    selector: str = "boruta"  # boruta | rfecv | none
    selector_estimator: str = "rf"  # rf | xgboost (importance source for Boruta / RFECV)
    boruta_max_iter: int = 100
    boruta_perc: int = 100
    boruta_alpha: float = 0.05
    boruta_include_tentative: bool = False
    rfecv_step: float = 1
    rfecv_folds: int = 5
    xgb_params: dict = field(
        default_factory=lambda: {
            "n_estimators": 300,
            "max_depth": 3,
            "learning_rate": 0.05,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "min_child_weight": 1.0,
            "reg_lambda": 1.0,
            "tree_method": "hist",
            "eval_metric": "logloss",
        }
    )
    seed: int = 0
    n_jobs: int = 1

    def validate(self) -> "ModelParameters":
        if self.selector not in ("boruta", "rfecv", "none"):
            raise RadiologyAIError(f"selector '{self.selector}' unknown: use boruta, rfecv or none")
        if self.selector_estimator not in ("rf", "xgboost"):
            raise RadiologyAIError(f"selector estimator '{self.selector_estimator}' unknown: use rf or xgboost")
        if not 0 < self.collinearity_threshold <= 1:
            raise RadiologyAIError(f"collinearity threshold must be in (0, 1], got {self.collinearity_threshold}")
        if self.boruta_max_iter < 5:
            raise RadiologyAIError("Boruta needs at least 5 iterations")
        return self


def build_pipeline(config: ModelParameters):
    """The unfitted sklearn Pipeline for ``config``."""
    from sklearn.pipeline import Pipeline
    from xgboost import XGBClassifier

    config.validate()
    steps = [
        ("near_constant", NearConstantFilter(config.near_constant_freq_ratio, config.near_constant_unique_percent)),
        ("collinearity", CollinearityFilter(config.collinearity_threshold)),
    ]
    if config.selector == "boruta":
        steps.append(
            (
                "selector",
                BorutaSelector(
                    config.selector_estimator,
                    config.boruta_max_iter,
                    config.boruta_perc,
                    config.boruta_alpha,
                    config.boruta_include_tentative,
                    config.seed,
                    config.n_jobs,
                ),
            )
        )
    elif config.selector == "rfecv":
        steps.append(
            (
                "selector",
                RFECVSelector(
                    config.selector_estimator, config.rfecv_step, config.rfecv_folds, 1, config.seed, config.n_jobs
                ),
            )
        )
    steps.append(
        ("xgboost", XGBClassifier(**config.xgb_params, random_state=config.seed, n_jobs=config.n_jobs, verbosity=0))
    )
    return Pipeline(steps)


def selected_features(pipeline) -> list[str]:
    return list(pipeline.steps[-2][1].selected_features_)


def step_reports(pipeline) -> list[dict]:
    """JSON-able description of each fitted selection step."""
    out = []
    for name, step in pipeline.steps[:-1]:
        out.append(
            {
                "name": name,
                "class": type(step).__name__,
                "params": json_ready(step.get_params(), unknown=str),
                "n_in": int(step.n_features_in_),
                "kept": list(step.selected_features_),
                "report": json_ready(step.report_, unknown=str),
            }
        )
    return out


def library_versions() -> dict:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for dist in (
        "radiologyai",
        "numpy",
        "pandas",
        "scikit-learn",
        "xgboost",
        "boruta",
        "pyradiomics-bhklab",
        "SimpleITK",
    ):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    return versions


def save_model_folder(
    folder: Path,
    pipeline,
    config: ModelParameters,
    class_names: list[str],
    threshold: float,
    threshold_mode: str,
    input_features: list[str],
    extraction: dict | None,
    training: dict,
) -> dict:
    """Write ``model.json`` and ``pipeline.json`` into ``folder`` (a staging folder); return the pipeline record."""
    folder = Path(folder)
    booster = pipeline.named_steps["xgboost"].get_booster()
    booster.save_model(str(folder / "model.json"))
    features = selected_features(pipeline)
    record = {
        "format": PIPELINE_FORMAT,
        "format_version": PIPELINE_FORMAT_VERSION,
        "class_names": list(class_names),  # [negative, positive]; probability = P(positive)
        "positive_class": class_names[1],
        "selected_features": features,
        "input_features": list(input_features),
        "threshold": float(threshold),
        "threshold_mode": threshold_mode,
        "config": json_ready(asdict(config), unknown=str),
        "steps": step_reports(pipeline),
        "model": {
            "file": "model.json",
            "sha256": sha256_of(folder / "model.json"),
            "n_features": len(features),
            "xgboost_params": json_ready(pipeline.named_steps["xgboost"].get_params(), unknown=str),
        },
        "extraction": extraction,
        "training": json_ready(training, unknown=str),
        "versions": library_versions(),
    }
    (folder / "pipeline.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    write_checksums(folder, ["pipeline.json", "model.json"])
    return record


@dataclass
class LoadedModel:
    folder: Path
    record: dict
    booster: object

    @property
    def features(self) -> list[str]:
        return list(self.record["selected_features"])

    @property
    def class_names(self) -> list[str]:
        return list(self.record["class_names"])

    @property
    def threshold(self) -> float:
        return float(self.record["threshold"])

    def _matrix(self, X: pd.DataFrame):
        import xgboost

        missing = [f for f in self.features if f not in X.columns]
        if missing:
            raise RadiologyAIError(
                f"model {self.folder}: the input lacks feature(s) {missing[:5]}"
                + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            )
        data = X[self.features].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        return xgboost.DMatrix(data, feature_names=self.features, missing=np.nan)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """P(positive class) for each row of ``X`` (columns by name; extra columns ignored)."""
        return np.asarray(self.booster.predict(self._matrix(X)), dtype=float)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """SHAP values (log-odds) per selected feature, plus ``bias`` (TreeSHAP, XGBoost pred_contribs)."""
        values = self.booster.predict(self._matrix(X), pred_contribs=True)
        return pd.DataFrame(values, columns=[*self.features, "bias"], index=X.index)

    def pipeline(self):
        """The preprocessing + classifier rebuilt as a fitted sklearn Pipeline (no pickle involved)."""
        from sklearn.pipeline import Pipeline
        from xgboost import XGBClassifier

        classifier = XGBClassifier()
        classifier.load_model(str(self.folder / "model.json"))
        return Pipeline([("features", FixedColumns(self.features).fit()), ("xgboost", classifier)])


def load_model_folder(folder: str | Path) -> LoadedModel:
    """Load and check a model folder; any inconsistency is a RadiologyAIError naming the file."""
    import xgboost

    folder = Path(folder)
    if not folder.is_dir():
        raise RadiologyAIError(f"model folder {folder}: no such folder")
    pipeline_file, model_file = folder / "pipeline.json", folder / "model.json"
    for file in (pipeline_file, model_file):
        if not file.is_file():
            raise RadiologyAIError(
                f"model folder {folder}: {file.name} is missing (train a model with 'radiologyai hip train')"
            )
    verify_checksums(folder, [pipeline_file.name, model_file.name])
    record = read_json(pipeline_file)
    if not isinstance(record, dict) or record.get("format") != PIPELINE_FORMAT:
        raise RadiologyAIError(f"{pipeline_file}: not a HipRadiomics pipeline file")
    if record.get("format_version") != PIPELINE_FORMAT_VERSION:
        raise RadiologyAIError(
            f"{pipeline_file}: format version {record.get('format_version')} is not supported "
            f"(this version reads {PIPELINE_FORMAT_VERSION})"
        )
    features = record.get("selected_features")
    classes = record.get("class_names")
    if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
        raise RadiologyAIError(f"{pipeline_file}: 'selected_features' must be a non-empty list of names")
    if not isinstance(classes, list) or len(classes) != 2:
        raise RadiologyAIError(f"{pipeline_file}: 'class_names' must list two classes")
    try:
        threshold = float(record.get("threshold", 0.5))
    except (TypeError, ValueError):
        raise RadiologyAIError(f"{pipeline_file}: 'threshold' is not a number") from None
    if not 0.0 <= threshold <= 1.0:
        raise RadiologyAIError(f"{pipeline_file}: 'threshold' {threshold} outside [0, 1]")
    booster = xgboost.Booster()
    try:
        booster.load_model(str(model_file))
    except xgboost.core.XGBoostError as exc:
        raise RadiologyAIError(
            f"{model_file}: not a readable XGBoost model ({str(exc).splitlines()[0][:200]})"
        ) from None
    if booster.num_features() != len(features):
        raise RadiologyAIError(
            f"{model_file}: the booster expects {booster.num_features()} features, pipeline.json lists {len(features)}"
        )
    booster.feature_names = features
    return LoadedModel(folder, record, booster)
