"""Prediction for a new case: extract its features exactly as the training data, then P(class) and why.

"Why" is the top contributing features: TreeSHAP values from XGBoost (``pred_contribs``), in
log-odds units; positive values push towards the positive class. They add up, with the bias,
to the model's log-odds for this case.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import SimpleITK as sitk

from RadiologyAICommonLib.errors import RadiologyAIError

from .model import LoadedModel, load_model_folder
from .radiomics_params import RadiomicsParameters, validate_params


@dataclass
class Prediction:
    class_name: str
    probability: float  # P(positive class)
    threshold: float
    class_names: list[str]
    contributions: pd.DataFrame  # feature, value, shap (sorted by |shap|)
    features: dict = field(default_factory=dict)  # all extracted features
    bias: float = 0.0

    def as_dict(self, top: int = 5) -> dict:
        return {
            "class": self.class_name,
            "probability": self.probability,
            "positive_class": self.class_names[1],
            "threshold": self.threshold,
            "top_features": [
                {
                    "feature": r.feature,
                    "value": r.value,
                    "shap_log_odds": r.shap,
                    "towards": self.class_names[1] if r.shap > 0 else self.class_names[0],
                }
                for r in self.contributions.head(top).itertuples()
            ],
            "log_odds_bias": self.bias,
        }


def model_params(model: LoadedModel) -> RadiomicsParameters:
    """The PyRadiomics params the model's training features were extracted with."""
    extraction = model.record.get("extraction")
    if not extraction or "params" not in extraction:
        raise RadiologyAIError(
            f"model {model.folder}: it was trained on a features table that did not come from 'hip extract', so "
            "features cannot be extracted from an image for it; predict from a features table instead"
        )
    params = validate_params(extraction["params"], f"{model.folder / 'pipeline.json'} extraction params")
    stored = extraction.get("params_sha256")
    if stored and stored != params.sha256:
        raise RadiologyAIError(
            f"{model.folder / 'pipeline.json'}: the extraction params do not match their SHA-256 (file edited?)"
        )
    return params


def predict_features(model: LoadedModel, features: dict | pd.Series) -> Prediction:
    """Predict one case from its feature values (a mapping of feature name -> value)."""
    row = pd.DataFrame([dict(features)])
    probability = float(model.predict_proba(row)[0])
    contributions = model.contributions(row).iloc[0]
    bias = float(contributions.pop("bias"))
    table = pd.DataFrame(
        {
            "feature": contributions.index,
            "value": [float(row.iloc[0][f]) for f in contributions.index],
            "shap": contributions.to_numpy(dtype=float),
        }
    )
    table = table.reindex(table["shap"].abs().sort_values(ascending=False).index).reset_index(drop=True)
    names = model.class_names
    return Prediction(
        names[int(probability >= model.threshold)],
        probability,
        model.threshold,
        names,
        table,
        {k: float(v) for k, v in dict(features).items() if _is_number(v)},
        bias,
    )


def _is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def predict_image(
    model: LoadedModel | str, image: sitk.Image, mask: sitk.Image, label: int | None = None, what: str = "case"
) -> Prediction:
    """Extract features of ``image`` in ``mask`` with the model's params and predict."""
    from .extraction import extract_features

    model = load_model_folder(model) if not isinstance(model, LoadedModel) else model
    params = model_params(model)
    if label is None:
        label = (model.record.get("extraction") or {}).get("mask_label")
    extracted = extract_features(image, mask, params, label, what)
    return predict_features(model, extracted.features)
