"""Task metrics, as GLUE reports them: all "higher is better", all plain floats.

Classification metrics take integer class indices; F1 is binary with class 1 (the
second label of the task, as in GLUE's MRPC/QQP) as the positive class. Regression
metrics take float predictions and targets.

Degenerate inputs give 0.0 rather than NaN, because a study cannot rank a NaN: F1
with no predicted and no true positives, Matthews correlation with a constant
prediction or target, Pearson/Spearman with a constant prediction or target.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

ArrayLike = Sequence[float] | np.ndarray


def accuracy(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Share of exact matches."""
    p, y = _pair(predictions, labels)
    return float(np.mean(p == y))


def f1(predictions: ArrayLike, labels: ArrayLike, positive: int = 1) -> float:
    """Binary F1 of class ``positive``."""
    p, y = _pair(predictions, labels)
    tp = float(np.sum((p == positive) & (y == positive)))
    fp = float(np.sum((p == positive) & (y != positive)))
    fn = float(np.sum((p != positive) & (y == positive)))
    denominator = 2 * tp + fp + fn
    return 0.0 if denominator == 0 else 2 * tp / denominator


def matthews(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Matthews correlation for any number of classes (Gorodkin's R_K, as scikit-learn)."""
    p, y = _pair(predictions, labels)
    classes = np.union1d(p, y)
    confusion = np.zeros((classes.size, classes.size), dtype=np.float64)
    np.add.at(confusion, (np.searchsorted(classes, y), np.searchsorted(classes, p)), 1.0)
    t_sum, p_sum = confusion.sum(axis=1), confusion.sum(axis=0)
    n, correct = confusion.sum(), np.trace(confusion)
    cov_yp = correct * n - t_sum @ p_sum
    cov_pp = n * n - p_sum @ p_sum
    cov_yy = n * n - t_sum @ t_sum
    if cov_pp == 0 or cov_yy == 0:
        return 0.0
    return float(cov_yp / np.sqrt(cov_yy * cov_pp))


def pearson(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Pearson correlation coefficient."""
    p, y = _pair(predictions, labels, dtype=np.float64)
    if _constant(p) or _constant(y):
        return 0.0
    return float(stats.pearsonr(p, y).statistic)


def spearman(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Spearman rank correlation (ties get their average rank)."""
    p, y = _pair(predictions, labels, dtype=np.float64)
    if _constant(p) or _constant(y):
        return 0.0
    return float(stats.spearmanr(p, y).statistic)


METRIC_FUNCTIONS: dict[str, Callable[[ArrayLike, ArrayLike], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "matthews": matthews,
    "pearson": pearson,
    "spearman": spearman,
}


def compute_metrics(names: Sequence[str], predictions: ArrayLike, labels: ArrayLike) -> dict[str, float]:
    """Every metric in ``names`` (duplicates once), in the given order."""
    return {name: METRIC_FUNCTIONS[name](predictions, labels) for name in dict.fromkeys(names)}


def _pair(predictions: ArrayLike, labels: ArrayLike, dtype: type | None = None) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(predictions, dtype=dtype).reshape(-1), np.asarray(labels, dtype=dtype).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"{p.size} predictions for {y.size} labels")
    if p.size == 0:
        raise ValueError("no predictions to score")
    return p, y


def _constant(x: np.ndarray) -> bool:
    return bool(np.all(x == x[0]))
