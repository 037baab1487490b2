"""What the optimiser searches over: a grid of ordered discrete dimensions.

Dimension ``i`` has ``n_i`` values; value ``j`` sits at the centre ``(j + 0.5) / n_i``
of its bin in ``[0, 1]``. Several grid points may be one configuration (a layer
group's size does not matter when its family is off), so a domain also says which
points are *the same trial*: :meth:`Domain.key`.

:class:`SpaceDomain` wraps an :class:`~autopeft.space.Space`; :class:`GridDomain`
is a bare grid (benchmarks, tests).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Protocol

import torch

from autopeft.errors import OptimizerError, SpaceError

if TYPE_CHECKING:
    from autopeft.config import PeftConfig
    from autopeft.space import Space

#: Keys remembered per domain (a study of 100k trials still fits).
KEY_CACHE_LIMIT = 200_000


class Domain(Protocol):
    """A grid of ordered discrete dimensions and an identity of its points."""

    @property
    def cardinalities(self) -> Sequence[int]:
        """``n_i``, the number of values of each dimension (``d`` entries)."""
        ...

    def key(self, x: Sequence[float]) -> Hashable:
        """Equal for two points exactly when they are the same trial."""
        ...

    def canonical(self, x: Sequence[float]) -> tuple[float, ...]:
        """The point that stands for ``x``'s trial (bin centres)."""
        ...


def to_index(X: torch.Tensor, cards: torch.Tensor) -> torch.Tensor:
    """Bin index of every coordinate: ``... x d`` points -> ``... x d`` long, in ``[0, n_i)``."""
    idx = torch.floor(X * cards).long()
    return torch.minimum(idx.clamp_min(0), cards.long() - 1)


def from_index(idx: torch.Tensor, cards: torch.Tensor) -> torch.Tensor:
    """Bin centres ``(j + 0.5) / n_i``: ``... x d`` long -> ``... x d`` double."""
    return (idx.to(torch.double) + 0.5) / cards


def snap(X: torch.Tensor, cards: torch.Tensor) -> torch.Tensor:
    """Every coordinate moved to the centre of its bin: ``... x d`` -> ``... x d``."""
    return from_index(to_index(X, cards), cards)


def check_points(X: torch.Tensor, d: int, what: str) -> None:
    """Raise :class:`OptimizerError` unless ``X`` is ``n x d`` with finite entries in ``[0, 1]``."""
    if X.ndim != 2 or X.shape[-1] != d:
        raise OptimizerError(f"{what}: expected points of {d} coordinates, got shape {tuple(X.shape)}")
    if X.numel() and (not torch.isfinite(X).all() or X.min() < 0 or X.max() > 1):
        bad = X[~(torch.isfinite(X) & (X >= 0) & (X <= 1)).all(dim=-1)][0].tolist()
        raise OptimizerError(f"{what}: every coordinate must be a finite number in [0, 1], got {bad}")


class GridDomain:
    """A bare grid: two points are the same trial when they share every bin."""

    def __init__(self, cardinalities: Sequence[int]) -> None:
        if not cardinalities or any(int(n) < 1 for n in cardinalities):
            raise OptimizerError(f"a grid needs at least one dimension of at least one value, got {cardinalities}")
        self._cards = [int(n) for n in cardinalities]

    @property
    def cardinalities(self) -> Sequence[int]:
        return self._cards

    def _bins(self, x: Sequence[float]) -> tuple[int, ...]:
        if len(x) != len(self._cards):
            raise OptimizerError(f"the grid has {len(self._cards)} dimensions, got a point of {len(x)}")
        return tuple(min(max(int(float(v) * n), 0), n - 1) for v, n in zip(x, self._cards))

    def key(self, x: Sequence[float]) -> Hashable:
        return self._bins(x)

    def canonical(self, x: Sequence[float]) -> tuple[float, ...]:
        return tuple((i + 0.5) / n for i, n in zip(self._bins(x), self._cards))


#: The key every point outside a study's parameter budget shares; it is always taken, so never proposed.
OUTSIDE_BUDGET = "outside the parameter budget"


class SpaceDomain:
    """A :class:`~autopeft.space.Space`: two points are the same trial when they decode to
    the same configuration (``config.key``). Keys are cached by bin (decoding is the
    slow part of de-duplication).

    ``feasible``: the study's parameter budget (:func:`autopeft.optimize.budget.feasibility`); every
    configuration it refuses gets the key :data:`OUTSIDE_BUDGET`, which :attr:`excluded` lists;
    ``repair`` moves a space-filling draw into the budget.
    """

    def __init__(
        self,
        space: Space,
        cache: dict[tuple[int, ...], str] | None = None,
        feasible: Callable[[PeftConfig], bool] | None = None,
        repair: Callable[[list[float]], list[float] | None] | None = None,
    ) -> None:
        self.space = space
        self._cards = space.cardinalities
        self._keys: dict[tuple[int, ...], str] = {} if cache is None else cache
        self._feasible = feasible
        #: Moves a space-filling draw into the budget (None: outside it for good); see :mod:`autopeft.optimize.budget`.
        self.repair = repair
        self.excluded: frozenset[str] = frozenset({OUTSIDE_BUDGET}) if feasible is not None else frozenset()

    @property
    def cardinalities(self) -> Sequence[int]:
        return self._cards

    def _bins(self, x: Sequence[float]) -> tuple[int, ...]:
        if len(x) != len(self._cards):
            raise OptimizerError(
                f"space {self.space.name!r} has {len(self._cards)} dimensions, got a point of {len(x)}"
            )
        return tuple(min(max(int(float(v) * n), 0), n - 1) for v, n in zip(x, self._cards))

    def key(self, x: Sequence[float]) -> Hashable:
        bins = self._bins(x)
        found = self._keys.get(bins)
        if found is None:
            try:
                config = self.space.decode([(i + 0.5) / n for i, n in zip(bins, self._cards)])
            except SpaceError as err:
                raise OptimizerError(f"point {list(x)} is not a configuration of the space: {err}") from None
            outside = self._feasible is not None and not self._feasible(config)
            found = OUTSIDE_BUDGET if outside else config.key(self.space.shape.n_layers)
            if len(self._keys) < KEY_CACHE_LIMIT:
                self._keys[bins] = found
        return found

    def canonical(self, x: Sequence[float]) -> tuple[float, ...]:
        return tuple(self.space.encode(self.space.decode(list(x))))
