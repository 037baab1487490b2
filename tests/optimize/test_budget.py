"""A study's parameter budget: never proposed outside it, the space's size shrinks, unmeetable refused."""

from __future__ import annotations

import pytest

from autopeft.accounting import estimate
from autopeft.errors import SpaceError
from autopeft.optimize import Observation, ParamBudget, SobolSettings, propose
from autopeft.optimize.budget import budget_size, check_budget
from autopeft.shape import model_shape
from autopeft.space import build_space
from tests.optimize.conftest import quick, synthetic_metric


def _fraction(space, config) -> float:
    return estimate(config, space.shape).param_fraction


@pytest.mark.parametrize("method", ["sobol", "random", pytest.param("gp", marks=pytest.mark.slow), "tpe"])
def test_no_proposal_leaves_the_budget(space, method) -> None:
    budget = ParamBudget(max_param_fraction=0.2, min_param_fraction=0.01)
    settings = quick(method, {"raw_samples": 64}, n_initial=4)
    completed: list[Observation] = []
    for round_ in range(4):
        proposals = propose(space, completed, [], n=3, seed=1, settings=settings, constraints=budget)
        for p in proposals:
            assert budget.allows(_fraction(space, p.config)), (round_, p.config.to_json())
            completed.append(Observation(p.x, *synthetic_metric(space, p.x)))
    without = propose(space, [], [], n=12, seed=1, settings=quick(method, {}))
    assert not all(budget.allows(_fraction(space, p.config)) for p in without)  # the budget did something


def test_the_space_shrinks_to_the_budget(space) -> None:
    everything = budget_size(space, ParamBudget(max_param_fraction=1.0))
    assert everything.exact and everything.within == everything.size == budget_size(space, None).within
    fractions = sorted(_fraction(space, space.decode(list(x))) for x in _grid(space))
    cut = fractions[len(fractions) // 3]
    within = budget_size(space, ParamBudget(max_param_fraction=cut))
    assert within.within == sum(f <= cut for f in fractions) < everything.size
    assert within.to_json()["within_budget"] == within.within


def _grid(space):
    from autopeft.optimize.budget import _points

    return _points(space, 0)[0]


def test_a_large_space_is_estimated_from_samples_and_a_tight_budget_still_proposes() -> None:
    """0.5% of the full space: no uniform sample meets it, the space-filling draws are moved into it."""
    space = build_space("full", model_shape(None))
    loose = budget_size(space, ParamBudget(max_param_fraction=0.1))
    assert not loose.exact and 0 < loose.share < 1 and loose.within < loose.size
    budget = ParamBudget(max_param_fraction=0.005)
    check_budget(space, budget)  # meetable, though no sample meets it
    proposals = propose(space, [], [], n=6, seed=0, settings=SobolSettings(), constraints=budget)
    assert len({p.config.key(6) for p in proposals}) == 6
    assert all(_fraction(space, p.config) <= 0.005 for p in proposals)


def test_a_budget_nothing_meets_is_refused_naming_the_range(space) -> None:
    lowest_nonzero = min(f for x in _grid(space) if (f := _fraction(space, space.decode(list(x)))) > 0)
    with pytest.raises(SpaceError, match=r"no configuration of space 'autopeft' has .*param_fraction"):
        check_budget(space, ParamBudget(min_param_fraction=0.99))
    with pytest.raises(SpaceError, match="spans param_fraction"):
        check_budget(space, ParamBudget(min_param_fraction=lowest_nonzero / 4, max_param_fraction=lowest_nonzero / 2))
    check_budget(space, ParamBudget(max_param_fraction=lowest_nonzero))
    assert budget_size(
        space, ParamBudget(min_param_fraction=lowest_nonzero / 2, max_param_fraction=lowest_nonzero)
    ).within


def test_the_budget_refuses_min_above_max() -> None:
    with pytest.raises(ValueError, match="min_param_fraction 0.2 is above max_param_fraction 0.1"):
        ParamBudget(min_param_fraction=0.2, max_param_fraction=0.1)


def test_space_show_counts_what_the_budget_leaves(capsys) -> None:
    from autopeft.cli import main

    assert main(["space", "show", "autopeft", "--max-param-fraction", "0.005"]) == 0
    out = capsys.readouterr().out
    assert "configurations: 57,600" in out and "within param_fraction <= 0.5%: " in out
    assert main(["space", "show", "autopeft", "--min-param-fraction", "0.9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autopeft space: error: constraints: no configuration") and "\n" not in err
