"""Pareto fronts and hypervolume of (task metric, param_fraction) results.

Objectives are maximised in the transformed space ``y = (metric, -log10(param_fraction))``:
quality up, parameters down, and a log scale because fractions span orders of
magnitude (0.01% .. 100%). Pure functions on tensors; shapes in each docstring
(``n`` points, ``m`` objectives; every objective is maximised).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

#: Fractions are floored here before the log (a configuration that trains nothing has fraction 0).
FRACTION_FLOOR = 1e-6
#: Reference of a study's reported hypervolume: metric 0 and 100% of the parameters. Fixed, so
#: the hypervolume of a study only grows as trials complete. For a metric that goes below 0
#: (correlations go to -1) the reference is that metric's lowest value: :func:`study_reference`.
STUDY_REFERENCE = (0.0, 0.0)
#: A data-driven reference point sits this share of the front's range below its worst point.
REFERENCE_MARGIN = 0.1


def to_objectives(metrics: Sequence[float], fractions: Sequence[float]) -> torch.Tensor:
    """``n x 2`` tensor of maximised objectives ``(metric, -log10(max(fraction, FRACTION_FLOOR)))``."""
    if len(metrics) != len(fractions):
        raise ValueError(f"{len(metrics)} metrics but {len(fractions)} fractions")
    m = torch.as_tensor(metrics, dtype=torch.double).reshape(-1)
    f = torch.as_tensor(fractions, dtype=torch.double).reshape(-1)
    bad = ~(torch.isfinite(m) & torch.isfinite(f) & (f >= 0))
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(f"objective ({m[i].item()}, {f[i].item()}) is not finite and non-negative")
    return torch.stack([m, -torch.log10(f.clamp_min(FRACTION_FLOOR))], dim=-1)


def fraction_objective(fraction: float) -> float:
    """The maximised cost objective of one ``param_fraction`` (see :func:`to_objectives`)."""
    return -math.log10(max(fraction, FRACTION_FLOOR))


def pareto_mask(y: torch.Tensor) -> torch.Tensor:
    """``n``-vector, True where row ``i`` of ``y`` (``n x m``, maximised) is non-dominated.

    Of several identical points, only the first is kept.
    """
    from botorch.utils.multi_objective.pareto import is_non_dominated

    if y.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool)
    return is_non_dominated(y, deduplicate=True)


def nondominated_2d(y: torch.Tensor) -> torch.Tensor:
    """``batch x n`` mask of the non-dominated rows of ``y`` (``batch x n x 2``, maximised), by one
    sort per batch (``O(n log n)``; the pairwise test is ``O(n^2)`` in time or memory).

    Exact ties are resolved towards keeping: identical rows are all kept (as
    ``is_non_dominated(..., deduplicate=False)`` does), and so is a row whose second objective
    only equals that of a row better in the first (a superset: for pruning a baseline, a
    row kept by mistake costs a little time; with continuous samples ties do not occur).
    """
    order = torch.argsort(y[..., 1], dim=-1, descending=True, stable=True)
    order = order.gather(-1, torch.argsort(y[..., 0].gather(-1, order), dim=-1, descending=True, stable=True))
    y2 = y[..., 1].gather(-1, order)
    before = torch.cat([torch.full_like(y2[..., :1], -torch.inf), y2[..., :-1]], dim=-1).cummax(dim=-1).values
    return torch.empty_like(order, dtype=torch.bool).scatter_(-1, order, ~(before > y2))


def pareto_ranks(y: torch.Tensor, enough: int | None = None) -> torch.Tensor:
    """``n``-vector of non-domination ranks of ``y`` (``n x m``, maximised): 0 for the Pareto
    front, 1 for the front of the rest, and so on (identical points share a rank).

    With ``enough``, peeling stops once that many points are ranked; the rest get the
    next rank (callers that keep the best ``enough`` points need no more).
    """
    from botorch.utils.multi_objective.pareto import is_non_dominated

    ranks = torch.full((y.shape[0],), -1, dtype=torch.long)
    left = torch.arange(y.shape[0])
    rank = 0
    while left.numel():
        if enough is not None and y.shape[0] - left.numel() >= enough:
            ranks[left] = rank
            break
        front = is_non_dominated(y[left], deduplicate=False)
        ranks[left[front]] = rank
        left = left[~front]
        rank += 1
    return ranks


def hypervolume(y: torch.Tensor, ref: Sequence[float] | torch.Tensor) -> float:
    """Volume dominated by ``y`` (``n x m``, maximised) and bounded below by ``ref`` (``m``).

    Points not strictly better than ``ref`` in every objective add nothing.
    """
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    ref_t = torch.as_tensor(ref, dtype=torch.double)
    if y.shape[0] == 0:
        return 0.0
    y = y.to(torch.double)
    better = (y > ref_t).all(dim=-1)
    if not better.any():
        return 0.0
    front = y[better][pareto_mask(y[better])]
    return float(Hypervolume(ref_point=ref_t).compute(front))


def data_reference_point(y: torch.Tensor, margin: float = REFERENCE_MARGIN) -> torch.Tensor:
    """A reference point (``m``) that the data beats: the worst value of each objective on the
    Pareto front of ``y`` (``n x m``, maximised, ``n >= 1``) minus ``margin`` times the
    front's range, so every front point has positive hypervolume.

    Where the front has no range in an objective (one front point), the range of all
    the data is used, and where that is zero too, ``max(1, |value|)``.
    """
    if y.shape[0] == 0:
        raise ValueError("a data-driven reference point needs at least one point")
    front = y[pareto_mask(y)]
    nadir = front.min(dim=0).values
    span = front.max(dim=0).values - nadir
    span = torch.where(span > 0, span, y.max(dim=0).values - y.min(dim=0).values)
    span = torch.where(span > 0, span, nadir.abs().clamp_min(1.0))
    return nadir - margin * span


def study_reference(metric_low: float = 0.0) -> tuple[float, float]:
    """The fixed reference of a study whose metric cannot go below ``metric_low``: that value and
    100% of the parameters (``-log10(1) = 0``)."""
    return (min(STUDY_REFERENCE[0], float(metric_low)), STUDY_REFERENCE[1])


def study_front(
    metrics: Sequence[float], fractions: Sequence[float], reference: Sequence[float] = STUDY_REFERENCE
) -> tuple[list[int], float]:
    """Indices of the non-dominated results (best metric first) and their hypervolume against
    ``reference`` (:data:`STUDY_REFERENCE` unless the metric goes below 0: :func:`study_reference`)."""
    if not metrics:
        return [], 0.0
    y = to_objectives(metrics, fractions)
    # One sort finds a small superset of the front; the exact (deduplicating) test runs on it only.
    candidates = torch.nonzero(nondominated_2d(y.unsqueeze(0))[0]).flatten()
    front = candidates[pareto_mask(y[candidates])]
    idx = sorted((int(i) for i in front), key=lambda i: (-metrics[i], fractions[i]))
    return idx, hypervolume(y[front], reference)
