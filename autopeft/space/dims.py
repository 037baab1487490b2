"""Discrete dimensions of a search space and the layer groupings they are placed on.

Every dimension is an ordered list of values; ``[0, 1]`` is cut into equal bins,
one per value, so decoding is ``values[floor(x * n)]`` and a value encodes to the
centre of its bin. Ladders are listed in increasing order, so neighbouring bins hold
neighbouring sizes and a GP sees an ordinal scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autopeft.errors import SpaceError

GROUPINGS = ("spindle", "uniform", "increasing", "decreasing")


@dataclass(frozen=True)
class Dimension:
    name: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise SpaceError(f"dimension {self.name!r} has no values")
        for j, value in enumerate(self.values):
            first = self.index(value)
            if first != j:
                raise SpaceError(
                    f"dimension {self.name!r}: values {_show(self.values[first])!r} and {_show(value)!r} cannot be told "
                    f"apart (numbers must differ by more than {REL_TOL:g} relative and {ABS_TOL:g} absolute), so a "
                    "configuration with the second would never be proposed; choose values further apart"
                )

    @property
    def n(self) -> int:
        return len(self.values)

    def index_of_x(self, x: float) -> int:
        if not math.isfinite(x):
            raise SpaceError(f"dimension {self.name!r}: coordinate {x!r} is not a finite number")
        return min(max(int(x * self.n), 0), self.n - 1)

    def decode(self, x: float) -> Any:
        return self.values[self.index_of_x(x)]

    def index(self, value: Any) -> int:
        for i, v in enumerate(self.values):
            if _same(v, value):
                return i
        raise SpaceError(
            f"dimension {self.name!r} has no value {_show(value)} (it has {[_show(v) for v in self.values]})"
        )

    def center(self, i: int) -> float:
        return (i + 0.5) / self.n

    def encode(self, value: Any) -> float:
        return self.center(self.index(value))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "values": [_show(v) for v in self.values]}


#: Two numbers closer than this (relative, absolute) are the same value of a dimension.
REL_TOL, ABS_TOL = 1e-9, 1e-12


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        try:
            return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
        except OverflowError:  # an integer beyond a float's range is no float's equal
            return False
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return list(a) == list(b)
    return a == b


def _show(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def log2_ladder(top: int, *, start: int = 1, off: bool = True) -> tuple[int, ...]:
    """``(0,) + (start, 2*start, 4*start, ... <= top)``: sizes on a log2 ladder, 0 meaning off."""
    sizes = []
    s = start
    while s <= top:
        sizes.append(s)
        s *= 2
    return ((0,) if off else ()) + tuple(sizes)


def split_layers(n_layers: int, groups: int | Sequence[Sequence[int]], pattern: str = "spindle") -> list[list[int]]:
    """Partition layers ``0..n_layers-1`` into contiguous groups.

    ``spindle`` (seed 000's finding) makes the outer groups small and the middle ones
    large, e.g. 12 layers in 4 groups -> 2, 4, 4, 2. ``groups`` may also be an explicit
    list of layer lists, which must cover every layer once.
    """
    if not isinstance(groups, int):
        explicit = [sorted(int(i) for i in g) for g in groups]
        flat = sorted(i for g in explicit for i in g)
        if flat != list(range(n_layers)) or any(not g for g in explicit):
            raise SpaceError(f"layer groups {explicit} must cover layers 0..{n_layers - 1} exactly once")
        return explicit
    if not 1 <= groups <= n_layers:
        raise SpaceError(f"groups must be between 1 and the model's {n_layers} layers, got {groups}")
    if pattern not in GROUPINGS:
        raise SpaceError(f"unknown grouping {pattern!r} (known: {', '.join(GROUPINGS)})")
    weights = {
        "spindle": [1 + min(i, groups - 1 - i) for i in range(groups)],
        "uniform": [1] * groups,
        "increasing": [i + 1 for i in range(groups)],
        "decreasing": [groups - i for i in range(groups)],
    }[pattern]
    extra = n_layers - groups
    quotas = [extra * w / sum(weights) for w in weights]
    sizes = [1 + math.floor(q) for q in quotas]
    by_remainder = sorted(range(groups), key=lambda i: (-(quotas[i] - math.floor(quotas[i])), i))
    for i in by_remainder[: n_layers - sum(sizes)]:
        sizes[i] += 1
    out, start = [], 0
    for s in sizes:
        out.append(list(range(start, start + s)))
        start += s
    return out
