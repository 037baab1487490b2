"""Outcome transforms applied before the GP sees the objectives.

The objectives are maximised columns ``y`` (``n x m``). ``copula`` replaces each
column by normal scores of its ranks (AutoPEFT's choice): a saturating metric and a
log-fraction with a far outlier (an empty configuration at ``-log10(1e-6) = 6``)
both become Gaussian-looking, and the fit no longer depends on outliers.
``standardize`` is the affine alternative. Both are monotone per column, so Pareto
dominance is unchanged and a reference point maps through :meth:`map_point`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from autopeft.optimize.settings import OutcomeTransform

#: How far below the lowest observed normal score an override below every observation lands.
_BELOW = 1.0


@dataclass(frozen=True)
class FittedTransform:
    """A per-column monotone map fitted on ``y`` (``n x m``)."""

    kind: OutcomeTransform
    y_sorted: torch.Tensor  # n x m, each column ascending
    z_sorted: torch.Tensor  # n x m, the transformed values at y_sorted
    shift: torch.Tensor  # m (standardize: the column means)
    scale: torch.Tensor  # m (standardize: the column standard deviations)

    def map_point(self, point: torch.Tensor) -> torch.Tensor:
        """``m`` values in objective units -> model units."""
        if self.kind == "standardize":
            return (point - self.shift) / self.scale
        return torch.stack(
            [_interp(point[j], self.y_sorted[:, j], self.z_sorted[:, j]) for j in range(point.shape[-1])]
        )


def fit_transform(y: torch.Tensor, kind: OutcomeTransform) -> tuple[torch.Tensor, FittedTransform]:
    """Transformed ``n x m`` objectives and the fitted map (``y``: ``n x m``, ``n >= 1``)."""
    shift, scale = _moments(y)
    z = copula(y) if kind == "copula" else (y - shift) / scale
    order = torch.argsort(y, dim=0)
    return z, FittedTransform(kind, torch.gather(y, 0, order), torch.gather(z, 0, order), shift, scale)


def copula(y: torch.Tensor) -> torch.Tensor:
    """Normal scores ``Phi^-1((rank - 0.5) / n)`` per column, ties sharing their mean rank: ``n x m``."""
    n = y.shape[0]
    return torch.special.ndtri((_mean_ranks(y) - 0.5) / n)


def standardize(y: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit standard deviation per column (a constant column becomes 0): ``n x m``."""
    shift, scale = _moments(y)
    return (y - shift) / scale


def _moments(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column means and standard deviations (1 where a column is constant): two ``m``-vectors."""
    mean = y.mean(dim=0)
    std = y.std(dim=0) if y.shape[0] > 1 else torch.ones_like(mean)
    return mean, torch.where(std > 1e-12, std, torch.ones_like(std))


def _mean_ranks(y: torch.Tensor) -> torch.Tensor:
    """Rank (1-based) of each entry within its column, tied entries sharing their mean rank: ``n x m``."""
    n, m = y.shape
    out = torch.empty_like(y)
    for j in range(m):
        col = y[:, j]
        ranks = torch.empty(n, dtype=y.dtype)
        ranks[torch.argsort(col, stable=True)] = torch.arange(1, n + 1, dtype=y.dtype)
        _, inverse = torch.unique(col, return_inverse=True)
        sums = torch.zeros(int(inverse.max()) + 1, dtype=y.dtype).index_add_(0, inverse, ranks)
        counts = torch.zeros_like(sums).index_add_(0, inverse, torch.ones_like(ranks))
        out[:, j] = (sums / counts)[inverse]
    return out


def _interp(v: torch.Tensor, xs: torch.Tensor, zs: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``zs(xs)`` at the scalar ``v`` (``xs`` ascending, ``n``); outside the
    data, the end value moved ``_BELOW`` normal-score units further out."""
    if v < xs[0]:
        return zs[0] - _BELOW
    if v > xs[-1]:
        return zs[-1] + _BELOW
    hi = int(torch.searchsorted(xs.contiguous(), v.reshape(1)).item())
    if hi == 0 or xs[hi] == v:
        return zs[hi].clone()
    t = (v - xs[hi - 1]) / (xs[hi] - xs[hi - 1])
    return zs[hi - 1] + t * (zs[hi] - zs[hi - 1])
