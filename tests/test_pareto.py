"""Pareto sets, ranks, hypervolume and reference points against hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from autopeft.pareto import (
    STUDY_REFERENCE,
    data_reference_point,
    hypervolume,
    pareto_mask,
    pareto_ranks,
    study_front,
    to_objectives,
)


def t(rows):
    return torch.tensor(rows, dtype=torch.double)


def test_pareto_mask_keeps_the_non_dominated_points():
    y = t([[1, 5], [2, 4], [2, 3], [3, 1], [0, 6], [1, 4]])
    # (2, 3) is dominated by (2, 4); (1, 4) by (1, 5) and (2, 4)
    assert pareto_mask(y).tolist() == [True, True, False, True, True, False]


def test_pareto_mask_keeps_one_of_identical_points_and_handles_empty():
    assert pareto_mask(t([[1, 1], [1, 1], [0, 2]])).tolist() == [True, False, True]
    assert pareto_mask(torch.empty(0, 2, dtype=torch.double)).numel() == 0


def test_pareto_ranks_peel_fronts():
    y = t([[3, 1], [1, 3], [2, 2], [1, 1], [0, 0], [2, 1]])
    # front 0: (3,1) (1,3) (2,2); front 1: (2,1) ; (1,1) is dominated by (2,1) -> 2; (0,0) -> 3
    assert pareto_ranks(y).tolist() == [0, 0, 0, 2, 3, 1]


def test_hypervolume_of_a_staircase():
    y = t([[1, 3], [2, 2], [3, 1]])
    # boxes above ref (0, 0): 1*3 + 1*2 + 1*1 = 6
    assert hypervolume(y, [0.0, 0.0]) == pytest.approx(6.0)
    # ref (1, 1): only (2, 2) and (3, 1)... (1, 3) and (3, 1) do not beat it strictly; (2, 2) gives 1*1
    assert hypervolume(y, [1.0, 1.0]) == pytest.approx(1.0)
    # dominated and duplicate points add nothing
    assert hypervolume(t([[1, 3], [2, 2], [3, 1], [1, 1], [2, 2]]), [0.0, 0.0]) == pytest.approx(6.0)
    assert hypervolume(torch.empty(0, 2, dtype=torch.double), [0.0, 0.0]) == 0.0
    assert hypervolume(t([[-1, 5]]), [0.0, 0.0]) == 0.0


def test_hypervolume_in_three_objectives():
    y = t([[1, 1, 1], [2, 0.5, 0.5]])
    # union of [0,1]^3 and [0,2]x[0,.5]x[0,.5]: 1 + 2*0.25 - 1*0.25 = 1.25
    assert hypervolume(y, [0.0, 0.0, 0.0]) == pytest.approx(1.25)


def test_data_reference_point_sits_below_the_front():
    y = t([[0.6, 4.0], [0.7, 3.0], [0.8, 1.0], [0.5, 0.5]])
    ref = data_reference_point(y)
    # front: (0.6,4) (0.7,3) (0.8,1); nadir (0.6, 1); range (0.2, 3); ref = nadir - 0.1 range
    assert ref.tolist() == pytest.approx([0.58, 0.7])
    assert hypervolume(y[pareto_mask(y)], ref) > 0
    single = data_reference_point(t([[1.0, 2.0]]))
    assert (single < t([1.0, 2.0])).all()


def test_to_objectives_log_scales_fractions_and_floors_zero():
    y = to_objectives([0.7, 0.8], [0.01, 0.0])
    assert torch.allclose(y, t([[0.7, 2.0], [0.8, 6.0]]))
    with pytest.raises(ValueError, match="not finite"):
        to_objectives([math.nan], [0.1])
    with pytest.raises(ValueError):
        to_objectives([0.5], [-0.1])


def test_study_front_orders_best_metric_first_with_a_fixed_reference():
    metrics, fractions = [0.70, 0.80, 0.60, 0.75], [0.001, 0.1, 0.01, 0.1]
    front, hv = study_front(metrics, fractions)
    # (0.75, 0.1) is dominated by (0.80, 0.1); (0.60, 0.01) by (0.70, 0.001)
    assert front == [1, 0]
    assert STUDY_REFERENCE == (0.0, 0.0)
    assert hv == pytest.approx(0.7 * 3 + (0.8 - 0.7) * 1)
    _, more = study_front([*metrics, 0.9], [*fractions, 0.5])
    assert more > hv, "adding a result never lowers a study's hypervolume"
    assert study_front([], []) == ([], 0.0)


def test_nondominated_2d_matches_the_pairwise_test_on_continuous_values():
    from botorch.utils.multi_objective.pareto import is_non_dominated

    from autopeft.pareto import nondominated_2d

    torch.manual_seed(0)
    y = torch.randn(16, 40, 2, dtype=torch.double)
    assert torch.equal(nondominated_2d(y), is_non_dominated(y, deduplicate=False))
    ties = t([[[1, 1], [1, 1], [0, 2], [0, 1]]])
    assert nondominated_2d(ties).tolist() == [[True, True, True, False]]


def test_a_correlation_front_is_measured_from_its_metric_floor():
    """Correlations go to -1: against (0, 0) a front of negative correlations has no volume."""
    from autopeft.pareto import study_reference

    assert study_reference() == STUDY_REFERENCE and study_reference(-1.0) == (-1.0, 0.0)
    metrics, fractions = [-0.2, -0.5], [0.01, 0.001]
    assert study_front(metrics, fractions)[1] == 0.0
    front, hv = study_front(metrics, fractions, study_reference(-1.0))
    assert front == [0, 1] and hv == pytest.approx(0.8 * 2 + 0.5 * 1)
