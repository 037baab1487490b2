"""Metrics agree with scikit-learn and scipy, and give 0.0 instead of NaN where a study could not rank NaN."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from autopeft.tasks.metrics import accuracy, compute_metrics, f1, matthews, pearson, spearman


def _classes(seed: int, n: int = 200, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    p = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))  # correlated with y
    return p, y


@pytest.mark.parametrize("seed", range(5))
def test_binary_metrics_match_sklearn(seed: int) -> None:
    p, y = _classes(seed)
    assert accuracy(p, y) == pytest.approx(skm.accuracy_score(y, p))
    assert f1(p, y) == pytest.approx(skm.f1_score(y, p, pos_label=1))
    assert matthews(p, y) == pytest.approx(skm.matthews_corrcoef(y, p))


@pytest.mark.parametrize("seed", range(3))
def test_multiclass_matthews_matches_sklearn(seed: int) -> None:
    p, y = _classes(seed, k=4)
    assert matthews(p, y) == pytest.approx(skm.matthews_corrcoef(y, p))


@pytest.mark.parametrize("seed", range(5))
def test_correlations_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=150)
    p = 0.6 * y + rng.normal(size=150)
    p[:20] = np.round(p[:20])  # some ties for Spearman's average ranks
    assert pearson(p, y) == pytest.approx(stats.pearsonr(p, y).statistic)
    assert spearman(p, y) == pytest.approx(stats.spearmanr(p, y).statistic)


def test_f1_positive_class_is_the_second_label() -> None:
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([1, 0, 0, 0, 1])
    assert f1(p, y) == pytest.approx(skm.f1_score(y, p, pos_label=1))
    assert f1(p, y) != pytest.approx(skm.f1_score(y, p, pos_label=0))


def test_degenerate_inputs_give_zero_not_nan() -> None:
    y = np.array([0, 1, 0, 1])
    constant = np.zeros(4)
    assert matthews(constant, y) == 0.0
    assert f1(np.zeros(4), np.zeros(4)) == 0.0
    assert pearson(constant, y) == 0.0
    assert spearman(np.arange(4), np.ones(4)) == 0.0


def test_compute_metrics_in_given_order_once() -> None:
    p, y = _classes(0)
    out = compute_metrics(["f1", "accuracy", "f1"], p, y)
    assert list(out) == ["f1", "accuracy"]
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(y, p))


def test_mismatched_lengths_refused() -> None:
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        accuracy([0, 1, 1], [0, 1])
