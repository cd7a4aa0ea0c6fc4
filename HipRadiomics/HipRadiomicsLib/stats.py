"""Diagnostic-accuracy statistics: AUC with DeLong variance, paired DeLong test, Wilson intervals.

DeLong's method (DeLong, DeLong & Clarke-Pearson, Biometrics 1988) estimates the variance of
the empirical AUC (the Mann-Whitney statistic) and the covariance between AUCs of several
scores measured on the same cases, so two scores can be compared with a paired z-test. It is
hand-written here because no maintained package offers the paired test; the implementation is
the fast midrank algorithm of Sun & Xu (IEEE Signal Processing Letters 21(11), 2014), which needs
O((m+n) log(m+n)) per score instead of the O(m n) structural components. ``delong_naive`` is the
textbook O(m n) definition, kept as an independent check for the tests.

Conventions: ``y_true`` holds 1 for the positive class and 0 for the negative class; a higher
score means "more likely positive"; ties count one half.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _sps

Z95 = float(_sps.norm.ppf(0.975))


def _as_binary(y_true) -> np.ndarray:
    y = np.asarray(y_true)
    values = set(np.unique(y).tolist())
    if not values <= {0, 1, True, False}:
        raise ValueError(f"y_true must hold only 0 and 1, got {sorted(values)}")
    return y.astype(bool)


def midrank(x: np.ndarray) -> np.ndarray:
    """Ranks 1..N of ``x`` with ties given the mean of the ranks they span (Sun & Xu, Algorithm 1)."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    n = len(x)
    ranks_sorted = np.empty(n, dtype=float)
    i = 0
    while i < n:
        j = i
        while j < n and sorted_x[j] == sorted_x[i]:
            j += 1
        ranks_sorted[i:j] = 0.5 * (i + j - 1) + 1.0  # mean of 1-based ranks i+1..j
        i = j
    ranks = np.empty(n, dtype=float)
    ranks[order] = ranks_sorted
    return ranks


@dataclass
class DeLongResult:
    """AUCs of k scores on the same cases and their DeLong covariance matrix (k x k)."""

    aucs: np.ndarray
    covariance: np.ndarray
    n_positive: int
    n_negative: int

    def variance(self, index: int = 0) -> float:
        return float(self.covariance[index, index])

    def ci(self, index: int = 0, level: float = 0.95) -> tuple[float, float]:
        """Normal-approximation CI of AUC ``index``, clipped to [0, 1]."""
        z = float(_sps.norm.ppf(0.5 + level / 2))
        se = math.sqrt(max(self.variance(index), 0.0))
        auc = float(self.aucs[index])
        return max(0.0, auc - z * se), min(1.0, auc + z * se)


def _check_classes(y: np.ndarray) -> tuple[int, int]:
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        raise ValueError(f"DeLong needs at least 2 positive and 2 negative cases (got {m} and {n})")
    return m, n


def delong(y_true, *scores) -> DeLongResult:
    """AUCs and DeLong covariance of one or more score vectors (fast midrank algorithm, Sun & Xu 2014)."""
    y = _as_binary(y_true)
    m, n = _check_classes(y)
    k = len(scores)
    if k == 0:
        raise ValueError("give at least one score vector")
    aucs = np.empty(k)
    v10 = np.empty((k, m))
    v01 = np.empty((k, n))
    for r, score in enumerate(scores):
        s = np.asarray(score, dtype=float)
        if s.shape != y.shape:
            raise ValueError(f"score {r} has shape {s.shape}, labels have {y.shape}")
        if not np.isfinite(s).all():
            raise ValueError(f"score {r} holds NaN or infinite values")
        x, yy = s[y], s[~y]  # positives, negatives
        tx, ty = midrank(x), midrank(yy)
        tz = midrank(np.concatenate([x, yy]))
        aucs[r] = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
        v10[r] = (tz[:m] - tx) / n  # placement of each positive among the negatives
        v01[r] = 1.0 - (tz[m:] - ty) / m  # one minus placement of each negative among the positives
    sx = np.atleast_2d(np.cov(v10))
    sy = np.atleast_2d(np.cov(v01))
    return DeLongResult(aucs=aucs, covariance=sx / m + sy / n, n_positive=m, n_negative=n)


def delong_naive(y_true, *scores) -> DeLongResult:
    """DeLong's structural components by their O(m n) definition (for testing ``delong``)."""
    y = _as_binary(y_true)
    m, n = _check_classes(y)
    aucs, v10s, v01s = [], [], []
    for score in scores:
        s = np.asarray(score, dtype=float)
        x, yy = s[y], s[~y]
        psi = (x[:, None] > yy[None, :]).astype(float) + 0.5 * (x[:, None] == yy[None, :])
        aucs.append(psi.mean())
        v10s.append(psi.mean(axis=1))
        v01s.append(psi.mean(axis=0))
    sx = np.atleast_2d(np.cov(np.array(v10s)))
    sy = np.atleast_2d(np.cov(np.array(v01s)))
    return DeLongResult(aucs=np.array(aucs), covariance=sx / m + sy / n, n_positive=m, n_negative=n)


def auc_ci(y_true, score, level: float = 0.95) -> dict:
    """AUC, DeLong standard error and CI of one score."""
    result = delong(y_true, score)
    low, high = result.ci(0, level)
    return {"auc": float(result.aucs[0]), "se": math.sqrt(max(result.variance(0), 0.0)), "ci": [low, high]}


def delong_paired_test(y_true, score_a, score_b) -> dict:
    """Paired DeLong test of AUC(a) = AUC(b) on the same cases: z statistic and two-sided p-value."""
    result = delong(y_true, score_a, score_b)
    diff = float(result.aucs[0] - result.aucs[1])
    var = float(result.covariance[0, 0] + result.covariance[1, 1] - 2 * result.covariance[0, 1])
    if var <= 1e-15:
        z, p = (0.0, 1.0) if abs(diff) < 1e-12 else (math.copysign(math.inf, diff), 0.0)
    else:
        z = diff / math.sqrt(var)
        p = float(2 * _sps.norm.sf(abs(z)))
    return {
        "auc_a": float(result.aucs[0]),
        "auc_b": float(result.aucs[1]),
        "difference": diff,
        "se_difference": math.sqrt(max(var, 0.0)),
        "z": z,
        "p_value": p,
    }


def bootstrap_auc(y_true, *scores, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Stratified bootstrap AUCs (n_boot x k): resample positives and negatives separately.

    Brute force (O(n_boot * N log N)); used to check DeLong, never in the main pipeline.
    """
    y = _as_binary(y_true)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(s, dtype=float) for s in scores]
    out = np.empty((n_boot, len(arrays)))
    for b in range(n_boot):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        yb = y[idx]
        for r, s in enumerate(arrays):
            out[b, r] = _auc_fast(yb, s[idx])
    return out


def _auc_fast(y: np.ndarray, s: np.ndarray) -> float:
    m = int(y.sum())
    n = len(y) - m
    ranks = _sps.rankdata(s)
    return float((ranks[y].sum() - m * (m + 1) / 2.0) / (m * n))


def roc_auc(y_true, score) -> float:
    """Empirical AUC (Mann-Whitney, ties one half)."""
    y = _as_binary(y_true)
    if y.all() or not y.any():
        raise ValueError("the AUC needs cases of both classes")
    return _auc_fast(y, np.asarray(score, dtype=float))


def wilson_ci(successes: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927); (nan, nan) when total is 0."""
    if total <= 0:
        return float("nan"), float("nan")
    z = float(_sps.norm.ppf(0.5 + level / 2))
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return max(0.0, centre - half), min(1.0, centre + half)


def youden_threshold(y_true, score) -> float:
    """Threshold maximising sensitivity + specificity - 1 (Youden's J) on the given data.

    Candidate thresholds are the midpoints between consecutive distinct scores; a case is
    called positive when its score is >= the threshold.
    """
    y = _as_binary(y_true)
    s = np.asarray(score, dtype=float)
    distinct = np.unique(s)
    if len(distinct) == 1:
        return float(distinct[0])
    candidates = np.concatenate([[distinct[0]], (distinct[:-1] + distinct[1:]) / 2])
    best, best_j = 0.5, -np.inf
    for t in candidates:
        pred = s >= t
        sens = (pred & y).sum() / max(y.sum(), 1)
        spec = (~pred & ~y).sum() / max((~y).sum(), 1)
        j = sens + spec - 1
        if j > best_j + 1e-12:
            best, best_j = float(t), j
    return best


def threshold_metrics(y_true, score, threshold: float = 0.5, level: float = 0.95) -> dict:
    """Accuracy, sensitivity, specificity, PPV, NPV at ``threshold`` with Wilson CIs and the 2x2 counts."""
    y = _as_binary(y_true)
    pred = np.asarray(score, dtype=float) >= threshold
    tp = int((pred & y).sum())
    tn = int((~pred & ~y).sum())
    fp = int((pred & ~y).sum())
    fn = int((~pred & y).sum())

    def prop(k, total):
        low, high = wilson_ci(k, total, level)
        return {"value": (k / total) if total else float("nan"), "ci95": [low, high], "n": total}

    return {
        "threshold": float(threshold),
        "counts": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
        "accuracy": prop(tp + tn, len(y)),
        "sensitivity": prop(tp, tp + fn),
        "specificity": prop(tn, tn + fp),
        "ppv": prop(tp, tp + fp),
        "npv": prop(tn, tn + fn),
    }


def roc_curve_points(y_true, score) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of the empirical ROC curve (from (0,0) to (1,1))."""
    y = _as_binary(y_true)
    s = np.asarray(score, dtype=float)
    thresholds = np.unique(s)[::-1]
    fpr = [0.0]
    tpr = [0.0]
    m, n = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    for t in thresholds:
        pred = s >= t
        tpr.append((pred & y).sum() / m)
        fpr.append((pred & ~y).sum() / n)
    return np.array(fpr), np.array(tpr)
