"""Dimensions decode bins and encode to bin centres; layer groupings follow their pattern."""

from __future__ import annotations

import math

import pytest

from autopeft.errors import SpaceError
from autopeft.space.dims import Dimension, log2_ladder, split_layers


def test_bins_decode_and_centres_encode():
    dim = Dimension("size", (0, 4, 8, 16))
    assert [dim.decode(x) for x in (0.0, 0.24, 0.25, 0.74, 0.99, 1.0)] == [0, 0, 4, 8, 16, 16]
    assert dim.encode(8) == 0.625 and dim.decode(dim.encode(8)) == 8
    with pytest.raises(SpaceError, match="has no value 5"):
        dim.encode(5)
    with pytest.raises(SpaceError, match="not a finite number"):
        dim.decode(math.nan)


def test_booleans_are_not_confused_with_numbers():
    dim = Dimension("enabled", (False, True))
    assert dim.index(True) == 1
    with pytest.raises(SpaceError):
        dim.index(1)


def test_log2_ladder_starts_with_off():
    assert log2_ladder(40) == (0, 1, 2, 4, 8, 16, 32)
    assert log2_ladder(8, off=False) == (1, 2, 4, 8)


@pytest.mark.parametrize(
    "n, groups, pattern, sizes",
    [
        (12, 4, "spindle", [2, 4, 4, 2]),
        (6, 4, "spindle", [1, 2, 2, 1]),
        (24, 4, "spindle", [4, 8, 8, 4]),
        (12, 3, "spindle", [3, 6, 3]),
        (12, 4, "uniform", [3, 3, 3, 3]),
        (12, 4, "increasing", [2, 3, 3, 4]),
        (12, 4, "decreasing", [4, 3, 3, 2]),
        (6, 6, "spindle", [1, 1, 1, 1, 1, 1]),
    ],
)
def test_groupings(n, groups, pattern, sizes):
    split = split_layers(n, groups, pattern)
    assert [len(g) for g in split] == sizes
    assert [i for g in split for i in g] == list(range(n))


def test_explicit_groups_must_cover_every_layer_once():
    assert split_layers(4, [[0, 1], [3, 2]]) == [[0, 1], [2, 3]]
    with pytest.raises(SpaceError, match="exactly once"):
        split_layers(4, [[0, 1], [1, 2, 3]])
    with pytest.raises(SpaceError, match="between 1 and"):
        split_layers(3, 5)
