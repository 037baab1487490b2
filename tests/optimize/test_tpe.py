"""The ``tpe`` method (Optuna's multi-objective TPE): the study's space, budget and pending trials, seeded."""

from __future__ import annotations

import itertools

import pytest
import torch

from autopeft.accounting import estimate
from autopeft.errors import OptimizerError
from autopeft.optimize import METHODS, Observation, ParamBudget, RandomSettings, TpeSettings, parse_optimizer, propose
from autopeft.optimize.domain import GridDomain
from autopeft.optimize.engine import propose_points
from autopeft.shape import model_shape
from autopeft.space import build_space
from tests.optimize.conftest import observe, synthetic_metric
from tests.optimize.test_quality import best_hypervolume, run

TPE = TpeSettings(n_initial=4)


def distinct_points(space, k: int, seed: int) -> list[tuple[float, ...]]:
    pts, seen = [], set()
    for x in space.sample_points(20 * k, seed=seed):
        key = space.decode(x).key(space.shape.n_layers)
        if key not in seen:
            seen.add(key)
            pts.append(tuple(space.encode(space.decode(x))))
        if len(pts) == k:
            break
    return pts


def test_pending_trials_move_the_proposals_away(space):
    """Constant liar: a pending trial is not proposed again, and it changes what is proposed next."""
    completed = observe(space, distinct_points(space, 10, seed=4))
    first = propose(space, completed, [], 3, seed=2, settings=TPE)
    again = propose(space, completed, [p.x for p in first], 3, seed=2, settings=TPE)
    n = space.shape.n_layers
    assert not {p.config.key(n) for p in first} & {p.config.key(n) for p in again}
    assert [p.source for p in again] == ["tpe"] * 3


def test_a_nearly_exhausted_grid_gets_its_last_points():
    """When TPE keeps drawing taken points, the rest of the batch comes from the space-filling design."""
    domain, cards = GridDomain([2, 2, 2]), torch.tensor([2.0, 2.0, 2.0])
    grid = (torch.tensor(list(itertools.product(range(2), repeat=3)), dtype=torch.double) + 0.5) / cards
    X, pending = grid[:5], grid[5:6]
    Y = torch.stack([X.sum(-1), -X.sum(-1)], dim=-1)
    settings = TpeSettings(n_initial=1)
    empty = torch.empty(0, 3, dtype=torch.double)
    out = propose_points(domain, X, Y, pending, empty, 2, seed=0, settings=settings)
    assert sorted(domain.key(x) for x, _ in out) == sorted(domain.key(x.tolist()) for x in grid[6:])


def test_a_tight_budget_on_the_full_space_holds_after_the_initial_design():
    """0.5% of the ``full`` space (d = 40): TPE's own proposals, not only the Sobol ones, stay inside."""
    space = build_space("full", model_shape(None))
    budget = ParamBudget(max_param_fraction=0.005)
    settings = TpeSettings(n_initial=4)
    completed: list[Observation] = []
    for _ in range(3):
        for p in propose(space, completed, [], 4, seed=3, settings=settings, constraints=budget):
            assert estimate(p.config, space.shape).param_fraction <= 0.005, p.config.to_json()
            completed.append(Observation(p.x, *synthetic_metric(space, p.x)))
    later = propose(space, completed, [], 4, seed=3, settings=settings, constraints=budget)
    assert {p.source for p in later} == {"tpe"}
    assert all(estimate(p.config, space.shape).param_fraction <= 0.005 for p in later)


def test_tpe_finds_the_known_front_better_than_random_search():
    best = best_hypervolume()
    tpe = [run(TpeSettings(n_initial=8), seed=s, budget=40) for s in range(3)]
    randoms = [run(RandomSettings(), seed=s, budget=40) for s in range(3)]
    assert sum(tpe) > sum(randoms), f"tpe {tpe} vs random {randoms} (best {best:.4f})"


def test_tpe_is_a_registered_method_with_its_own_settings():
    assert type(parse_optimizer({"method": "tpe", "n_ei_candidates": 48})) is TpeSettings
    assert METHODS["tpe"].settings_type is TpeSettings and not METHODS["tpe"].space_filling
    with pytest.raises(OptimizerError, match="raw_samples: does not apply to method tpe"):
        parse_optimizer({"method": "tpe", "raw_samples": 64})
    with pytest.raises(OptimizerError, match="n_ei_candidates"):
        parse_optimizer({"method": "tpe", "n_ei_candidates": 0})
