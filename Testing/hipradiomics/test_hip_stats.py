"""DeLong AUC variance / paired test (fast midrank) against its definition and a brute-force
bootstrap; Wilson; Youden."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from HipRadiomicsLib import stats


def test_midrank_gives_ties_their_mean_rank():
    assert stats.midrank([3.0, 1.0, 3.0, 2.0, 3.0]).tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]


def test_delong_hand_computed_example():
    # positives 0.9, 0.4; negatives 0.5, 0.1: AUC 3/4; placements V10 = [1, 0.5], V01 = [0.5, 1]
    # S = var(V10)/2 + var(V01)/2 = 0.125/2 + 0.125/2 = 0.125
    result = stats.delong([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1])
    assert result.aucs[0] == pytest.approx(0.75)
    assert result.variance(0) == pytest.approx(0.125)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_delong_equals_structural_components_definition(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 57)
    y[:2], y[2:4] = 0, 1
    a = y * 1.2 + rng.normal(size=57)
    b = np.round(y * 0.6 + rng.normal(size=57), 1)  # many ties
    c = rng.integers(1, 6, 57).astype(float)  # Likert-like
    fast, naive = stats.delong(y, a, b, c), stats.delong_naive(y, a, b, c)
    np.testing.assert_allclose(fast.aucs, naive.aucs, atol=1e-12)
    np.testing.assert_allclose(fast.covariance, naive.covariance, atol=1e-12)
    for score, auc in zip((a, b, c), fast.aucs):
        assert auc == pytest.approx(roc_auc_score(y, score))


def test_delong_variance_matches_bootstrap():
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(40), np.zeros(40)].astype(int)
    a = y * 1.3 + rng.normal(size=80)
    b = y * 0.9 + 0.6 * a + rng.normal(size=80)  # correlated with a, as two readings of the same cases
    boot = stats.bootstrap_auc(y, a, b, n_boot=3000, seed=1)
    result = stats.delong(y, a, b)
    assert np.sqrt(result.variance(0)) == pytest.approx(boot[:, 0].std(ddof=1), rel=0.1)
    assert np.sqrt(result.variance(1)) == pytest.approx(boot[:, 1].std(ddof=1), rel=0.1)
    paired = stats.delong_paired_test(y, a, b)
    assert paired["se_difference"] == pytest.approx((boot[:, 0] - boot[:, 1]).std(ddof=1), rel=0.12)
    low, high = result.ci(0)
    normal_boot = (
        result.aucs[0] - stats.Z95 * boot[:, 0].std(ddof=1),
        result.aucs[0] + stats.Z95 * boot[:, 0].std(ddof=1),
    )
    assert abs(low - normal_boot[0]) < 0.02 and abs(high - normal_boot[1]) < 0.02


def test_paired_test_behaviour():
    rng = np.random.default_rng(9)
    y = np.r_[np.ones(50), np.zeros(50)].astype(int)
    good = y * 2.5 + rng.normal(size=100)
    noise = rng.normal(size=100)
    same = stats.delong_paired_test(y, good, good)
    assert same["p_value"] == 1.0 and same["difference"] == 0.0
    different = stats.delong_paired_test(y, good, noise)
    assert different["difference"] > 0.3 and different["p_value"] < 1e-4
    # symmetric in its arguments
    flipped = stats.delong_paired_test(y, noise, good)
    assert flipped["p_value"] == pytest.approx(different["p_value"]) and flipped["z"] == pytest.approx(-different["z"])


def test_delong_needs_two_cases_per_class():
    with pytest.raises(ValueError):
        stats.delong([1, 0, 0, 0], [0.2, 0.1, 0.3, 0.4])
    with pytest.raises(ValueError):
        stats.delong([1, 2, 0, 0], [0.2, 0.1, 0.3, 0.4])


def test_wilson_interval_known_values():
    # Newcombe (1998) / Agresti-Coull: 8 of 10 -> 0.490-0.943; 0 of 10 -> 0-0.278
    assert stats.wilson_ci(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    low, high = stats.wilson_ci(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert all(np.isnan(stats.wilson_ci(0, 0)))


def test_threshold_metrics_and_youden():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.3, 0.55, 0.2, 0.1, 0.05])
    m = stats.threshold_metrics(y, p, 0.5)
    assert m["counts"] == {"tp": 2, "fp": 1, "tn": 3, "fn": 1}
    assert m["sensitivity"]["value"] == pytest.approx(2 / 3) and m["specificity"]["value"] == pytest.approx(3 / 4)
    assert m["ppv"]["value"] == pytest.approx(2 / 3) and m["npv"]["value"] == pytest.approx(3 / 4)
    assert m["accuracy"]["value"] == pytest.approx(5 / 7)
    # Youden: threshold 0.25 (between 0.2 and 0.3) gives sens 1, spec 3/4 -> J 0.75, the best
    assert stats.youden_threshold(y, p) == pytest.approx(0.25)
