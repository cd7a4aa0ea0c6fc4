"""Train and validate the classifier on a features table: split, fit, threshold, statistics, outputs.

Protocol (the hip study's, configurable): stratified 70/30 split (seeded); the whole Pipeline
(filters, selector, XGBoost) is fitted on the 70 % only; the 30 % gives the AUC with its DeLong
95 % CI and accuracy / sensitivity / specificity / PPV / NPV with Wilson 95 % CIs at the
threshold (0.5, a given value, or Youden's J on out-of-fold predictions of the training split,
so the threshold never sees the test cases and is not fitted to over-confident in-sample
probabilities). Reader scores, when present, are compared with the model on the same test
cases (AUC with DeLong CI each, paired DeLong test). Optionally the whole Pipeline is also
cross-validated with repeated stratified k-fold on all cases.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.outputs import staged_output_dir
from RadiologyAICommonLib.progress import ProgressCallback, no_progress, subprogress

from . import stats
from .features_table import FeatureTable
from .model import ModelParameters, build_pipeline, save_model_folder, selected_features


@dataclass
class TrainingParameters:
    test_size: float = 0.3
    threshold: float | str = 0.5  # a probability, or "youden"
    cv_folds: int = 5  # for the optional repeated k-fold CV and for the Youden out-of-fold predictions
    cv_repeats: int = 0  # 0: no repeated cross-validation
    model: ModelParameters = field(default_factory=ModelParameters)


@dataclass
class Proportion:
    """A proportion of the test cases at the threshold: its value, Wilson 95 % CI and denominator."""

    value: float
    ci95: list[float]
    n: int


@dataclass
class ReaderComparison:
    """One reader's scores against the model on the same test cases (AUCs with DeLong CIs, paired DeLong test).

    With too few scored test cases of a class, only ``name``, ``n`` and ``note`` are set.
    """

    name: str
    n: int  # scored test cases
    auc: float | None = None
    auc_ci95: list[float] | None = None
    auc_se: float | None = None
    model_auc_same_cases: float | None = None
    auc_difference_model_minus_reader: float | None = None
    z: float | None = None
    p_value: float | None = None
    test: str | None = None
    note: str | None = None

    def to_dict(self) -> dict:
        if self.note is not None:
            return {"name": self.name, "n": self.n, "note": self.note}
        data = asdict(self)
        del data["note"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ReaderComparison:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


@dataclass
class CrossValidation:
    """AUC of the whole Pipeline under repeated stratified k-fold cross-validation on all cases."""

    folds: int
    repeats: int
    auc_mean: float
    auc_sd: float
    auc_per_fold: list[float]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CrossValidation:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


PROPORTIONS = ("accuracy", "sensitivity", "specificity", "ppv", "npv")


@dataclass
class TrainingMetrics:
    """The validation of a trained model, as ``metrics.json`` holds it (:meth:`to_dict` gives its keys, in order).

    The held-out test set's AUC and proportions at the threshold, the split, the feature selection,
    the readers and the optional cross-validation. ``params_sha256`` and ``versions`` (provenance)
    are set when the model folder is written.
    """

    auc: float
    auc_ci95: list[float]
    auc_se: float
    auc_ci_method: str
    threshold: float
    threshold_mode: str  # "fixed" or "youden"
    accuracy: Proportion
    sensitivity: Proportion
    specificity: Proportion
    ppv: Proportion
    npv: Proportion
    proportion_ci_method: str
    confusion: dict[str, int]  # tp, fp, tn, fn
    class_names: list[str]  # [negative, positive]
    positive_class: str
    n_cases: int
    n_train: int
    n_test: int
    n_train_by_class: dict[str, int]
    n_test_by_class: dict[str, int]
    n_input_features: int
    n_after_near_constant: int
    n_after_collinearity: int
    selector: str
    selected_features: list[str]
    n_selected: int
    test_size: float
    seed: int
    readers: list[ReaderComparison] = field(default_factory=list)
    cv: CrossValidation | None = None
    params_sha256: str | None = None
    versions: dict[str, str] | None = None

    def to_dict(self) -> dict:
        """The ``metrics.json`` form: each proportion as three keys (``accuracy``, ``accuracy_ci95``,
        ``accuracy_n``)."""
        data = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in PROPORTIONS:
                data.update({f.name: value.value, f"{f.name}_ci95": value.ci95, f"{f.name}_n": value.n})
            elif f.name == "readers":
                data[f.name] = [reader.to_dict() for reader in value]
            elif f.name == "cv":
                data[f.name] = value.to_dict() if value is not None else None
            else:
                data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainingMetrics:
        """Read back :meth:`to_dict`'s form; a missing key raises ``KeyError``."""
        values = {}
        for f in fields(cls):
            if f.name in PROPORTIONS:
                values[f.name] = Proportion(data[f.name], data[f"{f.name}_ci95"], data[f"{f.name}_n"])
            elif f.name == "readers":
                values[f.name] = [ReaderComparison.from_dict(reader) for reader in data.get("readers") or []]
            elif f.name == "cv":
                values[f.name] = CrossValidation.from_dict(data["cv"]) if data.get("cv") else None
            elif f.name in ("params_sha256", "versions"):
                values[f.name] = data.get(f.name)
            else:
                values[f.name] = data[f.name]
        return cls(**values)


@dataclass
class TrainingResult:
    pipeline: object
    metrics: TrainingMetrics
    test_predictions: pd.DataFrame
    importance: pd.DataFrame
    table: FeatureTable
    options: TrainingParameters
    train_index: np.ndarray
    test_index: np.ndarray
    reader_curves: dict = field(default_factory=dict)


def _class_counts(y, names) -> dict:
    return {names[0]: int((y == 0).sum()), names[1]: int((y == 1).sum())}


def split_indices(table: FeatureTable, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split; errors when a class is too small for a test AUC (>= 2 per class) and training (>= 3)."""
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise RadiologyAIError(f"--test-size must be between 0 and 1, got {test_size}")
    y = table.y
    counts = _class_counts(y, table.class_names)
    need = max(5, math.ceil(2 / test_size), math.ceil(3 / (1 - test_size)))
    small = {k: v for k, v in counts.items() if v < need}
    if small:
        raise RadiologyAIError(
            f"too few cases for a {round((1 - test_size) * 100)}/{round(test_size * 100)} split: "
            + ", ".join(f"class '{k}' has {v}" for k, v in small.items())
            + f"; each class needs at least {need} cases (2 per class in the test set, 3 in training)"
        )
    index = np.arange(len(y))
    try:
        train, test = train_test_split(index, test_size=test_size, stratify=y, random_state=seed)
    except ValueError as exc:
        raise RadiologyAIError(f"cannot split {len(y)} cases with test size {test_size}: {exc}") from None
    for part, rows, minimum in (("test", test, 2), ("training", train, 3)):
        part_counts = _class_counts(y[rows], table.class_names)
        if min(part_counts.values()) < minimum:
            raise RadiologyAIError(f"too few cases: the {part} split has {part_counts}; need {minimum} per class")
    return np.sort(train), np.sort(test)


def _fit(pipeline, X, y, what: str):
    try:
        return pipeline.fit(X, y)
    except ValueError as exc:
        raise RadiologyAIError(f"{what}: {str(exc).strip().splitlines()[0]}") from None


def out_of_fold_probabilities(
    config: ModelParameters,
    X: pd.DataFrame,
    y: np.ndarray,
    folds: int,
    seed: int,
    progress: ProgressCallback = no_progress,
) -> np.ndarray:
    """Predicted P(positive) of each training case by a Pipeline fitted without it (stratified k-fold)."""
    from sklearn.model_selection import StratifiedKFold

    folds = int(min(folds, np.bincount(y).min()))
    if folds < 2:
        raise RadiologyAIError("Youden threshold: need at least 2 training cases per class")
    oof = np.empty(len(y))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for k, (fit_rows, held_rows) in enumerate(splitter.split(X, y)):
        pipeline = _fit(build_pipeline(config), X.iloc[fit_rows], y[fit_rows], "Youden out-of-fold fit")
        oof[held_rows] = pipeline.predict_proba(X.iloc[held_rows])[:, 1]
        progress((k + 1) / folds, f"Youden threshold: fold {k + 1}/{folds}")
    return oof


def repeated_cv(
    config: ModelParameters,
    X: pd.DataFrame,
    y: np.ndarray,
    folds: int,
    repeats: int,
    seed: int,
    progress: ProgressCallback = no_progress,
) -> CrossValidation:
    """AUC of the whole Pipeline under repeated stratified k-fold CV (every fold refits every step)."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    folds = int(min(folds, np.bincount(y).min()))
    if folds < 2:
        raise RadiologyAIError("cross-validation needs at least 2 cases per class")
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    aucs = []
    total = folds * repeats
    for k, (fit_rows, held_rows) in enumerate(splitter.split(X, y)):
        pipeline = _fit(build_pipeline(config), X.iloc[fit_rows], y[fit_rows], "cross-validation fit")
        p = pipeline.predict_proba(X.iloc[held_rows])[:, 1]
        yh = y[held_rows]
        aucs.append(stats.roc_auc(yh, p) if 0 < yh.sum() < len(yh) else float("nan"))
        progress((k + 1) / total, f"cross-validation fold {k + 1}/{total}")
    aucs = np.array(aucs)
    return CrossValidation(
        folds, repeats, float(np.nanmean(aucs)), float(np.nanstd(aucs, ddof=1)), [float(a) for a in aucs]
    )


def train_model(
    table: FeatureTable, options: TrainingParameters | None = None, progress: ProgressCallback = no_progress
) -> TrainingResult:
    """Split, fit on the training split, set the threshold, validate on the test split (and optionally by CV)."""
    options = options or TrainingParameters()
    config = options.model.validate()
    seed = config.seed
    threshold_mode = "youden" if options.threshold == "youden" else "fixed"
    if threshold_mode == "fixed":
        threshold = float(options.threshold)
        if not 0 < threshold < 1:
            raise RadiologyAIError(f"--threshold must be a probability in (0, 1) or 'youden', got {threshold}")
    progress(0.0, "splitting cases")
    train, test = split_indices(table, options.test_size, seed)
    X, y = table.X, table.y

    cv_share = 0.35 if options.cv_repeats > 0 else 0.0
    youden_share = 0.3 if threshold_mode == "youden" else 0.0
    fit_end = 0.9 - cv_share - youden_share
    progress(0.02, f"fitting the pipeline on {len(train)} training cases")
    pipeline = _fit(build_pipeline(config), X.iloc[train], y[train], "training")
    progress(fit_end, "pipeline fitted")
    if threshold_mode == "youden":
        oof = out_of_fold_probabilities(
            config,
            X.iloc[train],
            y[train],
            options.cv_folds,
            seed,
            subprogress(progress, fit_end, fit_end + youden_share),
        )
        threshold = stats.youden_threshold(y[train], oof)
    probability = pipeline.predict_proba(X.iloc[test])[:, 1]
    metrics = _test_metrics(table, options, pipeline, train, test, probability, threshold, threshold_mode)
    metrics.readers, reader_curves = _compare_readers(table, test, probability)
    if options.cv_repeats > 0:
        metrics.cv = repeated_cv(
            config, X, y, options.cv_folds, options.cv_repeats, seed, subprogress(progress, 0.9 - cv_share, 0.9)
        )
    importance = _feature_importance(pipeline, X.iloc[test], metrics.selected_features)
    predictions = _test_predictions(table, test, probability, threshold)
    progress(0.9, "model validated")
    return TrainingResult(pipeline, metrics, predictions, importance, table, options, train, test, reader_curves)


def _test_metrics(
    table: FeatureTable,
    options: TrainingParameters,
    pipeline,
    train: np.ndarray,
    test: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    threshold_mode: str,
) -> TrainingMetrics:
    """The fitted pipeline on the test split: AUC (DeLong CI), proportions at the threshold, what was selected."""
    y, names = table.y, table.class_names
    yte = y[test]
    auc = stats.auc_ci(yte, probability)
    at_threshold = stats.threshold_metrics(yte, probability, threshold)
    proportions = {
        name: Proportion(at_threshold[name]["value"], at_threshold[name]["ci95"], at_threshold[name]["n"])
        for name in PROPORTIONS
    }
    features = selected_features(pipeline)
    steps = dict(pipeline.named_steps)
    return TrainingMetrics(
        auc=auc["auc"],
        auc_ci95=auc["ci"],
        auc_se=auc["se"],
        auc_ci_method="DeLong (fast midrank, Sun & Xu 2014)",
        threshold=float(threshold),
        threshold_mode=threshold_mode,
        **proportions,
        proportion_ci_method="Wilson score",
        confusion=at_threshold["counts"],
        class_names=names,
        positive_class=names[1],
        n_cases=int(len(y)),
        n_train=int(len(train)),
        n_test=int(len(test)),
        n_train_by_class=_class_counts(y[train], names),
        n_test_by_class=_class_counts(yte, names),
        n_input_features=int(table.X.shape[1]),
        n_after_near_constant=len(steps["near_constant"].selected_features_),
        n_after_collinearity=len(steps["collinearity"].selected_features_),
        selector=options.model.selector,
        selected_features=features,
        n_selected=len(features),
        test_size=options.test_size,
        seed=options.model.seed,
    )


def _compare_readers(
    table: FeatureTable, test: np.ndarray, probability: np.ndarray
) -> tuple[list[ReaderComparison], dict]:
    """Each reader against the model on the test cases it scored; also ``{reader: (labels, scores)}``
    for the ROC plot."""
    yte = table.y[test]
    readers, curves = [], {}
    for name in table.readers.columns:
        scores = table.readers[name].to_numpy(dtype=float)[test]
        ok = np.isfinite(scores)
        yr = yte[ok]
        if yr.sum() < 2 or (1 - yr).sum() < 2:
            readers.append(ReaderComparison(name, int(ok.sum()), note="too few scored test cases of each class"))
            continue
        reader_auc = stats.auc_ci(yr, scores[ok])
        paired = stats.delong_paired_test(yr, probability[ok], scores[ok])
        readers.append(
            ReaderComparison(
                name,
                int(ok.sum()),
                auc=reader_auc["auc"],
                auc_ci95=reader_auc["ci"],
                auc_se=reader_auc["se"],
                model_auc_same_cases=paired["auc_a"],
                auc_difference_model_minus_reader=paired["difference"],
                z=paired["z"],
                p_value=paired["p_value"],
                test="paired DeLong",
            )
        )
        curves[name] = (yr, scores[ok])
    return readers, curves


def _feature_importance(pipeline, X_test: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Gain share of each selected feature and its mean |SHAP| on the test cases, largest gain first."""
    import xgboost

    booster = pipeline.named_steps["xgboost"].get_booster()
    gain = booster.get_score(importance_type="gain")
    total_gain = sum(gain.values()) or 1.0
    contributions = booster.predict(
        xgboost.DMatrix(X_test[features].to_numpy(dtype=float), feature_names=features, missing=np.nan),
        pred_contribs=True,
    )
    return (
        pd.DataFrame(
            {
                "feature": features,
                "gain": [gain.get(f, 0.0) / total_gain for f in features],
                "mean_abs_shap_test": np.abs(contributions[:, :-1]).mean(axis=0),
            }
        )
        .sort_values("gain", ascending=False)
        .reset_index(drop=True)
    )


def _test_predictions(table: FeatureTable, test: np.ndarray, probability: np.ndarray, threshold: float) -> pd.DataFrame:
    """test_predictions.csv: each test case's label, P(positive), predicted class and reader scores."""
    predictions = pd.DataFrame(
        {
            "case_id": [table.case_ids[i] for i in test],
            "label": [table.label_values[v] for v in table.y[test]],
            "probability": probability,
            "predicted": [table.class_names[int(p >= threshold)] for p in probability],
        }
    )
    for name in table.readers.columns:
        predictions[name] = table.readers[name].to_numpy(dtype=float)[test]
    return predictions


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _fmt_ci(value, ci) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f} ({ci[0]:.3f}-{ci[1]:.3f})"


def write_outputs(
    result: TrainingResult, output_dir: str | Path, progress: ProgressCallback = no_progress, overwrite: bool = False
) -> Path:
    """Write model.json, pipeline.json, metrics.json, test_predictions.csv, roc.png, importance.png, report.html.

    All files are written into a staging folder and moved into ``output_dir`` only when all succeeded;
    a non-empty ``output_dir`` is refused unless ``overwrite`` (only an earlier run's files are replaced).
    """
    from RadiologyAICommonLib.atomic import write_csv, write_json
    from RadiologyAICommonLib.report import HtmlReport, save_figure

    from .plots import importance_figure, roc_figure

    metrics = result.metrics
    table = result.table
    training = {
        "source": table.source,
        "n_train": metrics.n_train,
        "n_test": metrics.n_test,
        "seed": metrics.seed,
        "test_size": metrics.test_size,
        "train_case_ids": [table.case_ids[i] for i in result.train_index],
        "test_case_ids": [table.case_ids[i] for i in result.test_index],
        "cv_folds": result.options.cv_folds,
        "cv_repeats": result.options.cv_repeats,
    }
    inputs = [table.source] if table.source else []
    with staged_output_dir(output_dir, command="hip train", inputs=inputs, overwrite=overwrite) as stage:
        record = save_model_folder(
            stage,
            result.pipeline,
            result.options.model,
            table.class_names,
            metrics.threshold,
            metrics.threshold_mode,
            list(table.X.columns),
            table.extraction,
            training,
        )
        metrics = replace(
            metrics, params_sha256=(table.extraction or {}).get("params_sha256"), versions=record["versions"]
        )
        write_json(stage / "metrics.json", metrics.to_dict())
        write_csv(stage / "test_predictions.csv", result.test_predictions)
        write_csv(stage / "importance.csv", result.importance)
        yte = table.y[result.test_index]
        auc = {"auc": metrics.auc, "ci": metrics.auc_ci95}
        save_figure(
            roc_figure(
                yte, result.test_predictions["probability"].to_numpy(), auc, metrics.readers, result.reader_curves
            ),
            stage / "roc.png",
        )
        save_figure(importance_figure(result.importance), stage / "importance.png")
        progress(0.95, "writing the report")
        report = HtmlReport("HipRadiomics model report")
        report.paragraph(
            f"Features table: {table.source}. Classes: negative '{table.class_names[0]}', positive "
            f"'{table.class_names[1]}'. {metrics.n_cases} cases, stratified split {metrics.n_train} training / "
            f"{metrics.n_test} test (seed {metrics.seed})."
        )
        report.heading("Held-out test performance")
        rows = [("AUC (DeLong 95% CI)", _fmt_ci(metrics.auc, metrics.auc_ci95))]
        for key in PROPORTIONS:
            proportion = getattr(metrics, key)
            rows.append(
                (f"{key.upper() if len(key) == 3 else key} (Wilson 95% CI)", _fmt_ci(proportion.value, proportion.ci95))
            )
        rows.append(("threshold", f"{metrics.threshold:.3f} ({metrics.threshold_mode})"))
        report.table(pd.DataFrame(rows, columns=["measure", "value"]))
        if metrics.readers:
            report.heading("Comparison with readers (same test cases)")
            reader_rows = [
                (r.name, r.n, _fmt_ci(r.auc, r.auc_ci95 or [0, 0]), _or_nan(r.model_auc_same_cases), _or_nan(r.p_value))
                for r in metrics.readers
            ]
            report.table(
                pd.DataFrame(
                    reader_rows, columns=["reader", "n", "reader AUC (95% CI)", "model AUC", "paired DeLong p"]
                )
            )
        if metrics.cv:
            cv = metrics.cv
            report.paragraph(
                f"Repeated stratified {cv.folds}-fold cross-validation x {cv.repeats} on all cases "
                f"(every step refitted per fold): AUC {cv.auc_mean:.3f} +- {cv.auc_sd:.3f} (SD)."
            )
        report.figure(
            roc_figure(
                yte, result.test_predictions["probability"].to_numpy(), auc, metrics.readers, result.reader_curves
            ),
            "ROC curve of the held-out test set",
        )
        report.heading("Feature selection")
        report.paragraph(
            f"{metrics.n_input_features} input features -> {metrics.n_after_near_constant} after removing constant/"
            f"near-constant -> {metrics.n_after_collinearity} after the collinearity filter (|r| > "
            f"{result.options.model.collinearity_threshold}) -> {metrics.n_selected} selected by {metrics.selector}."
        )
        report.table(
            result.importance.head(40), caption="Selected features (XGBoost gain share, mean |SHAP| on the test set)"
        )
        report.figure(importance_figure(result.importance), "Feature importance")
        report.heading("Provenance")
        provenance = [("PyRadiomics params SHA-256", str(metrics.params_sha256))] + [
            (k, str(v)) for k, v in metrics.versions.items()
        ]
        report.table(pd.DataFrame(provenance, columns=["item", "value"]))
        report.write(stage / "report.html")
    progress(1.0, "done")
    return Path(output_dir)
