"""Feature-selection steps as scikit-learn transformers (fitted on training data only).

Every step takes and returns a pandas DataFrame, records the feature names it keeps
(``selected_features_``) and what it dropped and why (``report_``), so the fitted pipeline can
be written to JSON and rebuilt without pickle: after fitting, the whole preprocessing of a new
case is "take these columns, in this order".

- :class:`NearConstantFilter`: drops constant and near-constant features with caret's
  ``nearZeroVar`` rule (Kuhn, J Stat Softw 2008): frequency ratio of the most common to the
  second most common value above ``freq_ratio`` *and* fewer than ``unique_percent`` % distinct
  values; all-missing and constant columns always go.
- :class:`CollinearityFilter`: among features with |Pearson r| > ``threshold`` keeps the one
  most related to the label (largest |point-biserial r| with the class), greedily, in order of
  that relevance, as in the hip study.
- :class:`BorutaSelector`: Boruta (Kursa & Rudnicki, J Stat Softw 2010) from the ``boruta``
  package with a seeded random-forest or XGBoost importance estimator.
- :class:`RFECVSelector`: recursive feature elimination with stratified cross-validated AUC
  (scikit-learn ``RFECV``), the antidepressant-study alternative.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted


def _as_frame(X, names=None) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    X = np.asarray(X, dtype=float)
    cols = list(names) if names is not None else [f"x{i}" for i in range(X.shape[1])]
    return pd.DataFrame(X, columns=cols)


class _ColumnSelector(TransformerMixin, BaseEstimator):
    """Base: ``fit`` sets ``feature_names_in_`` and ``selected_features_``; ``transform`` takes those columns."""

    def _start_fit(self, X):
        X = _as_frame(X)
        self.feature_names_in_ = np.array([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = X.shape[1]
        return X

    def transform(self, X):
        check_is_fitted(self, "selected_features_")
        X = _as_frame(X, getattr(self, "feature_names_in_", None))
        missing = [c for c in self.selected_features_ if c not in X.columns]
        if missing:
            raise ValueError(f"input lacks feature(s) {missing[:5]}")
        return X[list(self.selected_features_)]

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "selected_features_")
        return np.array(self.selected_features_, dtype=object)

    def get_support(self):
        check_is_fitted(self, "selected_features_")
        return np.isin(self.feature_names_in_, self.selected_features_)


class FixedColumns(_ColumnSelector):
    """Select a known list of columns (the rebuilt preprocessing of a saved model)."""

    def __init__(self, columns=()):
        self.columns = columns

    def fit(self, X=None, y=None):
        self.selected_features_ = list(self.columns)
        self.feature_names_in_ = np.array(self.selected_features_, dtype=object)
        self.n_features_in_ = len(self.selected_features_)
        self.report_ = {}
        return self


class NearConstantFilter(_ColumnSelector):
    def __init__(self, freq_ratio: float = 95 / 5, unique_percent: float = 10.0):
        self.freq_ratio = freq_ratio
        self.unique_percent = unique_percent

    def fit(self, X, y=None):
        X = self._start_fit(X)
        kept, dropped = [], {}
        for name in X.columns:
            values = X[name].dropna().to_numpy(dtype=float)
            if len(values) == 0:
                dropped[name] = "all values missing"
                continue
            uniques, counts = np.unique(values, return_counts=True)
            if len(uniques) == 1:
                dropped[name] = "constant"
                continue
            counts = np.sort(counts)[::-1]
            ratio = counts[0] / counts[1]
            percent_unique = 100.0 * len(uniques) / len(values)
            if ratio > self.freq_ratio and percent_unique < self.unique_percent:
                dropped[name] = f"near-constant (frequency ratio {ratio:.1f}, {percent_unique:.1f}% distinct)"
                continue
            kept.append(str(name))
        self.selected_features_ = kept
        self.report_ = {"dropped": dropped}
        return self


def label_relevance(X: pd.DataFrame, y) -> pd.Series:
    """|Pearson r| of each feature with the 0/1 label (point-biserial), missing values ignored; NaN -> 0."""
    y = pd.Series(np.asarray(y, dtype=float), index=X.index)
    relevance = X.apply(lambda column: column.corr(y)).abs()
    return relevance.fillna(0.0)


class CollinearityFilter(_ColumnSelector):
    def __init__(self, threshold: float = 0.9):
        self.threshold = threshold

    def fit(self, X, y):
        X = self._start_fit(X)
        if X.shape[1] == 0:
            self.selected_features_, self.report_ = [], {"dropped": {}}
            return self
        relevance = label_relevance(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            corr = X.corr(method="pearson").abs().fillna(0.0)
        # most label-related first; ties broken by name so the result does not depend on column order
        order = sorted(X.columns, key=lambda c: (-round(float(relevance[c]), 12), str(c)))
        kept: list[str] = []
        dropped: dict[str, dict] = {}
        for name in order:
            if kept:
                r = corr.loc[name, kept]
                worst = r.idxmax()
                if r[worst] > self.threshold:
                    dropped[str(name)] = {"correlated_with": str(worst), "abs_r": float(r[worst])}
                    continue
            kept.append(str(name))
        self.selected_features_ = [c for c in X.columns if c in set(kept)]  # keep input order
        self.relevance_ = {str(k): float(v) for k, v in relevance.items()}
        self.report_ = {"dropped": dropped}
        return self


def make_importance_estimator(kind: str, random_state: int, n_jobs: int = 1, n_estimators: int = 200):
    """Tree ensemble whose feature importances drive Boruta / RFECV: 'rf' or 'xgboost'."""
    if kind == "rf":
        from sklearn.ensemble import RandomForestClassifier

        # shallow trees, as the Boruta authors recommend; balanced classes so importance is not driven by prevalence
        return RandomForestClassifier(
            n_estimators=n_estimators, max_depth=5, class_weight="balanced", n_jobs=n_jobs, random_state=random_state
        )
    if kind == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(
            n_estimators=n_estimators,
            max_depth=3,
            learning_rate=0.1,
            subsample=0.8,
            colsample_bytree=0.8,
            importance_type="gain",
            n_jobs=n_jobs,
            random_state=random_state,
            verbosity=0,
        )
    raise ValueError(f"unknown importance estimator '{kind}' (use rf or xgboost)")


def _impute(X: pd.DataFrame, medians: pd.Series) -> np.ndarray:
    return X.fillna(medians).fillna(0.0).to_numpy(dtype=float)


class BorutaSelector(_ColumnSelector):
    def __init__(
        self,
        estimator: str = "rf",
        max_iter: int = 100,
        perc: int = 100,
        alpha: float = 0.05,
        include_tentative: bool = False,
        random_state: int = 0,
        n_jobs: int = 1,
    ):
        self.estimator = estimator
        self.max_iter = max_iter
        self.perc = perc
        self.alpha = alpha
        self.include_tentative = include_tentative
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X, y):
        from boruta import BorutaPy

        X = self._start_fit(X)
        names = [str(c) for c in X.columns]
        if not names:
            raise ValueError("no features left for Boruta")
        medians = X.median(numeric_only=True)
        estimator = make_importance_estimator(self.estimator, self.random_state, self.n_jobs)
        boruta = BorutaPy(
            estimator,
            n_estimators="auto",
            perc=self.perc,
            alpha=self.alpha,
            max_iter=self.max_iter,
            random_state=self.random_state,
            verbose=0,
        )
        boruta.fit(_impute(X, medians), np.asarray(y, dtype=int))
        confirmed = [n for n, s in zip(names, boruta.support_) if s]
        tentative = [n for n, s in zip(names, boruta.support_weak_) if s]
        ranking = {n: int(r) for n, r in zip(names, boruta.ranking_)}
        selected = confirmed + (tentative if self.include_tentative else [])
        fallback = None
        if not selected:
            # Boruta confirmed nothing: keep the best-ranked features so a model can still be fitted, and say so.
            best = min(ranking.values())
            selected = [n for n in names if ranking[n] == best][:10]
            fallback = f"Boruta confirmed no feature; kept the {len(selected)} best-ranked (rank {best})"
        self.selected_features_ = [n for n in names if n in set(selected)]
        self.report_ = {
            "confirmed": confirmed,
            "tentative": tentative,
            "rejected": [n for n in names if n not in set(confirmed) | set(tentative)],
            "ranking": ranking,
            "fallback": fallback,
        }
        return self


class RFECVSelector(_ColumnSelector):
    def __init__(
        self,
        estimator: str = "rf",
        step: float = 1,
        cv_folds: int = 5,
        min_features: int = 1,
        random_state: int = 0,
        n_jobs: int = 1,
    ):
        self.estimator = estimator
        self.step = step
        self.cv_folds = cv_folds
        self.min_features = min_features
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X, y):
        from sklearn.feature_selection import RFECV
        from sklearn.model_selection import StratifiedKFold

        X = self._start_fit(X)
        names = [str(c) for c in X.columns]
        if not names:
            raise ValueError("no features left for RFECV")
        y = np.asarray(y, dtype=int)
        folds = int(min(self.cv_folds, np.bincount(y).min()))
        if folds < 2:
            raise ValueError("RFECV needs at least 2 training cases of each class")
        estimator = make_importance_estimator(self.estimator, self.random_state, self.n_jobs, n_estimators=100)
        rfecv = RFECV(
            clone(estimator),
            step=self.step,
            min_features_to_select=self.min_features,
            cv=StratifiedKFold(folds, shuffle=True, random_state=self.random_state),
            scoring="roc_auc",
            n_jobs=1,
        )
        rfecv.fit(_impute(X, X.median(numeric_only=True)), y)
        self.selected_features_ = [n for n, s in zip(names, rfecv.support_) if s]
        scores = rfecv.cv_results_["mean_test_score"]
        self.report_ = {
            "ranking": {n: int(r) for n, r in zip(names, rfecv.ranking_)},
            "cv_auc_by_n_features": {int(k): float(s) for k, s in zip(rfecv.cv_results_["n_features"], scores)},
            "n_features": int(rfecv.n_features_),
            "cv_folds": folds,
        }
        return self
