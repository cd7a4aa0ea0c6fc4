"""Selection steps and the Pipeline: known answers, determinism, and no information from the test split."""

import numpy as np
import pandas as pd

from HipRadiomicsLib.features_table import validate_feature_table
from HipRadiomicsLib.model import ModelParameters, build_pipeline, selected_features
from HipRadiomicsLib.selection import BorutaSelector, CollinearityFilter, NearConstantFilter, RFECVSelector
from HipRadiomicsLib.training import TrainingParameters, repeated_cv, train_model


def _toy(n=80, seed=0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n // 2), np.zeros(n - n // 2)].astype(int)
    z = y * 1.5 + rng.normal(size=n)
    X = pd.DataFrame(
        {
            "strong": z + 0.05 * rng.normal(size=n),  # most related to the label
            # |r| with strong ~ 0.97, but less related to y by construction (part of the class shift removed)
            "strong_copy": z - 0.6 * (y - 0.5) + 0.1 * rng.normal(size=n),
            "weak": 0.5 * y + rng.normal(size=n),
            "noise": rng.normal(size=n),
            "constant": np.full(n, 3.0),
            "near_constant": np.r_[np.full(n - 1, 1.0), 2.0],
        }
    )
    return X, y


def test_near_constant_filter():
    X, y = _toy()
    f = NearConstantFilter().fit(X, y)
    assert "constant" not in f.selected_features_ and "near_constant" not in f.selected_features_
    assert {"strong", "strong_copy", "weak", "noise"} <= set(f.selected_features_)
    assert f.report_["dropped"]["constant"] == "constant"
    assert list(f.transform(X).columns) == f.selected_features_


def test_collinearity_filter_keeps_the_feature_most_related_to_the_label():
    X, y = _toy()
    X = X[["strong_copy", "noise", "weak", "strong"]]
    assert abs(np.corrcoef(X["strong"], X["strong_copy"])[0, 1]) > 0.9
    f = CollinearityFilter(0.9).fit(X, y)
    assert set(f.selected_features_) == {"strong", "weak", "noise"}
    assert f.report_["dropped"]["strong_copy"]["correlated_with"] == "strong"
    # the column order does not matter
    g = CollinearityFilter(0.9).fit(X[X.columns[::-1]], y)
    assert set(g.selected_features_) == set(f.selected_features_)
    # a threshold above the correlation keeps both
    assert "strong_copy" in CollinearityFilter(0.999).fit(X, y).selected_features_


def test_boruta_finds_the_informative_features_and_is_seeded():
    X, y = _toy(n=100)
    X = X[["strong", "weak", "noise"]].assign(
        **{f"noise{i}": np.random.default_rng(i).normal(size=100) for i in range(6)}
    )
    a = BorutaSelector(max_iter=25, random_state=3).fit(X, y)
    b = BorutaSelector(max_iter=25, random_state=3).fit(X, y)
    assert "strong" in a.selected_features_
    assert not {f"noise{i}" for i in range(6)} & set(a.selected_features_)
    assert a.selected_features_ == b.selected_features_ and a.report_["ranking"] == b.report_["ranking"]


def test_rfecv_keeps_the_strong_feature():
    X, y = _toy(n=90)
    s = RFECVSelector(step=1, cv_folds=3, random_state=0).fit(X[["strong", "noise", "weak"]], y)
    assert "strong" in s.selected_features_ and s.report_["cv_folds"] == 3


def _noise_table(n=40, p=150, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"f{i:03d}" for i in range(p)])
    frame.insert(0, "label", rng.permutation(np.r_[np.ones(n // 2), np.zeros(n - n // 2)].astype(int)))
    frame.insert(0, "case_id", [f"c{i}" for i in range(n)])
    return frame


def test_test_split_never_influences_fitting():
    """Changing every value of the test cases leaves the fitted pipeline unchanged."""
    X, y = _toy(n=60, seed=4)
    frame = pd.concat(
        [X, pd.DataFrame(np.random.default_rng(1).normal(size=(60, 8)), columns=[f"n{i}" for i in range(8)])], axis=1
    )
    frame.insert(0, "label", y)
    options = TrainingParameters(model=ModelParameters(boruta_max_iter=10, seed=2))
    first = train_model(validate_feature_table(frame, "toy"), options)
    tampered = frame.copy()
    feature_columns = [c for c in frame.columns if c != "label"]
    tampered.loc[first.test_index, feature_columns] = (
        np.random.default_rng(9).normal(size=(len(first.test_index), len(feature_columns))) * 100
    )
    second = train_model(validate_feature_table(tampered, "toy"), options)
    assert np.array_equal(first.test_index, second.test_index)
    assert selected_features(first.pipeline) == selected_features(second.pipeline)
    for step in ("near_constant", "collinearity", "selector"):
        assert (
            first.pipeline.named_steps[step].selected_features_ == second.pipeline.named_steps[step].selected_features_
        )
    train_rows = frame.iloc[first.train_index]
    np.testing.assert_allclose(
        first.pipeline.predict_proba(train_rows[feature_columns])[:, 1],
        second.pipeline.predict_proba(train_rows[feature_columns])[:, 1],
    )


def test_cross_validation_on_pure_noise_is_not_optimistic():
    """With selection inside the Pipeline, CV on random labels gives AUC ~ 0.5; selecting on all data
    first would not."""
    table = validate_feature_table(_noise_table(), "noise")
    config = ModelParameters(boruta_max_iter=6, selector_estimator="rf", seed=0)
    config.xgb_params = {**config.xgb_params, "n_estimators": 40}
    cv = repeated_cv(config, table.X, table.y, folds=4, repeats=1, seed=0)
    assert 0.3 < cv.auc_mean < 0.7
    # the leaky protocol (filter on all cases, then CV) on the same data is optimistic: the check above can fail
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from xgboost import XGBClassifier

    relevance = table.X.apply(lambda c: abs(np.corrcoef(c, table.y)[0, 1]))
    leaky = table.X[relevance.sort_values(ascending=False).index[:5]]
    leaky_auc = cross_val_score(
        XGBClassifier(n_estimators=40, max_depth=2, random_state=0, n_jobs=1),
        leaky,
        table.y,
        cv=StratifiedKFold(4, shuffle=True, random_state=0),
        scoring="roc_auc",
    ).mean()
    assert leaky_auc > cv.auc_mean + 0.1


def test_pipeline_is_deterministic_for_a_seed():
    X, y = _toy(n=60, seed=7)
    a = build_pipeline(ModelParameters(boruta_max_iter=10, seed=5)).fit(X, y)
    b = build_pipeline(ModelParameters(boruta_max_iter=10, seed=5)).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
