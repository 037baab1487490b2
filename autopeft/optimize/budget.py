"""A study's parameter budget over its space: which configurations it allows, and how many.

Counts are known before training (:func:`autopeft.accounting.estimate`), so the optimiser
simply never proposes a configuration outside the budget: :class:`~autopeft.optimize.domain.SpaceDomain`
gives every such point one shared key that is always "taken". :func:`budget_size` says how
much of the space is left, and :func:`check_budget` refuses a budget nothing in the space meets,
saying which fractions the space can reach.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from autopeft.accounting import estimate
from autopeft.config import PeftConfig
from autopeft.errors import SpaceError
from autopeft.optimize.settings import ParamBudget
from autopeft.space import Space

#: Grids up to this many points are counted exactly; larger ones are estimated from this many samples.
EXACT_LIMIT = 4096
SAMPLES = 1024


def fraction_of(space: Space) -> Callable[[PeftConfig], float]:
    """``param_fraction`` of a configuration on the space's model, memoised by configuration key."""
    memo: dict[str, float] = {}
    n_layers = space.shape.n_layers

    def fraction(config: PeftConfig) -> float:
        key = config.key(n_layers)
        if key not in memo:
            memo[key] = estimate(config, space.shape).param_fraction
        return memo[key]

    return fraction


def feasibility(space: Space, budget: ParamBudget) -> Callable[[PeftConfig], bool]:
    """Whether the budget allows a configuration of ``space``."""
    fraction = fraction_of(space)
    return lambda config: budget.allows(fraction(config))


@dataclass(frozen=True)
class BudgetSize:
    """Grid points of the space, and those within the budget (exact, or estimated from samples)."""

    size: int | None
    within: int | None
    share: float
    exact: bool
    #: The smallest and largest param_fraction seen (all points when exact, else the samples and corners).
    lowest: float
    highest: float

    def to_json(self) -> dict[str, object]:
        return {
            "size": self.size,
            "within_budget": self.within,
            "share_within_budget": self.share,
            "exact": self.exact,
            "samples": None if self.exact else SAMPLES,
            "param_fraction_range": None if np.isnan(self.lowest) else [self.lowest, self.highest],
        }


def _points(space: Space, seed: int) -> tuple[np.ndarray, bool]:
    """Every grid point (small spaces), else uniform samples plus the two corners (bin 0 and the last bin)."""
    cards = space.cardinalities
    total = float(np.prod([float(n) for n in cards]))
    if total <= EXACT_LIMIT:
        grids = np.meshgrid(*[(np.arange(n) + 0.5) / n for n in cards], indexing="ij")
        return np.stack([g.reshape(-1) for g in grids], axis=1), True
    corners = np.array([[0.5 / n for n in cards], [1 - 0.5 / n for n in cards]])
    return np.concatenate([corners, space.sample_points(SAMPLES, seed)]), False


def budget_size(space: Space, budget: ParamBudget | None, seed: int = 0) -> BudgetSize:
    """How much of ``space`` the budget leaves (all of it without one: then nothing is decoded, and the
    param_fraction range is unknown, NaN)."""
    if budget is None or not budget.active:
        size = space.describe()["size"]
        return BudgetSize(size, size, 1.0, True, float("nan"), float("nan"))
    fraction = fraction_of(space)
    points, exact = _points(space, seed)
    fractions = np.array([fraction(space.decode(list(x))) for x in points])
    inside = np.array([budget is None or budget.allows(f) for f in fractions])
    sampled = inside if exact else inside[2:]  # corners are not a uniform sample
    share = float(sampled.mean()) if len(sampled) else 0.0
    size = space.describe()["size"]
    within = int(inside.sum()) if exact else (round(share * size) if size is not None else None)
    return BudgetSize(size, within, share, exact, float(fractions.min()), float(fractions.max()))


def check_budget(space: Space, budget: ParamBudget, seed: int = 0) -> None:
    """Raise :class:`SpaceError` when no configuration of ``space`` meets the budget: none of its grid
    points (small spaces), or of the samples and corners, nor any of them moved into it by :func:`repairer`.
    Stops at the first configuration that meets it, so a loose budget costs a few decodes."""
    fraction = fraction_of(space)
    points, exact = _points(space, seed)
    seen = []
    for x in points:
        f = fraction(space.decode(list(x)))
        if budget.allows(f):
            return
        seen.append(f)
    if not exact:
        fix = repairer(space, budget)
        if any(fix(list(x)) is not None for x in points[:64]):
            return
    raise SpaceError(
        f"constraints: no configuration of space {space.name!r} has {budget.describe()} on this model "
        f"(the space spans param_fraction {100 * min(seen):.4g}% to {100 * max(seen):.4g}%"
        f"{'' if exact else ', sampled'})"
    )


def repairer(
    space: Space, budget: ParamBudget, moves: int | None = None
) -> Callable[[list[float]], list[float] | None]:
    """``repair(x)``: ``x`` itself when the budget allows its configuration, else ``x`` with coordinates moved
    one at a time to a random lower bin (too large) or higher bin (too small) until it does, or None.

    Space-filling draws go through it: in a large space few uniform points meet a tight budget
    (0.5% on the ``full`` space: none of 2048), but most reach it after a few dimensions are turned
    down. The moves are seeded by the point, so a point always repairs to the same configuration.
    """
    fraction = fraction_of(space)
    cards = space.cardinalities
    limit = moves if moves is not None else 4 * len(cards)

    def repair(x: list[float]) -> list[float] | None:
        x = list(x)
        bins = [min(int(v * n), n - 1) for v, n in zip(x, cards)]
        rng = np.random.default_rng([*bins, len(bins)])
        for _ in range(limit + 1):
            f = fraction(space.decode(x))
            if budget.allows(f):
                return x
            down = budget.max_param_fraction is not None and f > budget.max_param_fraction
            movable = [i for i, (b, n) in enumerate(zip(bins, cards)) if (b > 0 if down else b < n - 1)]
            if not movable:
                return None
            i = int(rng.choice(movable))
            bins[i] = int(rng.integers(0, bins[i])) if down else int(rng.integers(bins[i] + 1, cards[i]))
            x[i] = (bins[i] + 0.5) / cards[i]
        return None

    return repair
