"""The GP optimiser finds a known front better than random search (seeded), and SAAS runs."""

from __future__ import annotations

import itertools

import pytest
import torch

from autopeft.optimize import GpSettings, MethodSettings, OptimizerState, RandomSettings, SaasSettings, propose
from autopeft.optimize.domain import GridDomain
from autopeft.optimize.engine import propose_points
from autopeft.pareto import hypervolume
from tests.optimize.conftest import observe

CARDS = [8, 8, 8, 8]
REF = (-1.0, -1.0)


def objectives(X: torch.Tensor) -> torch.Tensor:
    """Two maximised objectives whose front is x1..x3 = 0.5 with x0 between 0.2 and 0.8."""
    rest = (X[:, 1:] - 0.5).pow(2).sum(-1)
    return torch.stack([-(X[:, 0] - 0.2).pow(2) - rest, -(X[:, 0] - 0.8).pow(2) - rest], dim=-1)


def best_hypervolume() -> float:
    grid = torch.tensor(list(itertools.product(*[range(c) for c in CARDS])), dtype=torch.double)
    return hypervolume(objectives((grid + 0.5) / 8), REF)


def run(settings: MethodSettings, seed: int, budget: int = 24) -> float:
    """Hypervolume after ``budget`` trials in batches of 4, the previous batch pending."""
    domain, empty = GridDomain(CARDS), torch.empty(0, 4, dtype=torch.double)
    X, state = empty, OptimizerState()
    pending = torch.tensor(
        [x for x, _ in propose_points(domain, X, objectives(X), empty, empty, 4, seed, settings, state)]
    )
    while X.shape[0] < budget:
        n_next = min(4, budget - X.shape[0] - pending.shape[0])
        nxt = (
            torch.tensor(
                [x for x, _ in propose_points(domain, X, objectives(X), pending, empty, n_next, seed, settings, state)]
            )
            if n_next > 0
            else empty
        )
        X, pending = torch.cat([X, pending]), nxt.reshape(-1, 4)
    return hypervolume(objectives(X), REF)


@pytest.mark.slow
def test_gp_finds_the_known_front_better_than_random_search():
    best = best_hypervolume()
    gp = run(GpSettings(n_initial=8, raw_samples=128, num_restarts=2), seed=0)
    randoms = [run(RandomSettings(), seed=s) for s in range(3)]
    assert gp > max(randoms), f"gp {gp:.4f} vs random {randoms}"
    assert (best - gp) < 0.5 * (best - sum(randoms) / 3), f"gp gap {best - gp:.4f} vs best {best:.4f}"


@pytest.mark.slow
def test_saas_proposes_valid_new_configurations(space):
    completed = observe(space, [tuple(x) for x in space.sample_points(10, seed=1)])
    settings = SaasSettings(
        n_initial=4,
        saas_warmup=8,
        saas_samples=8,
        saas_thinning=4,
        raw_samples=32,
        num_restarts=1,
        local_search_steps=2,
        mc_samples=16,
    )
    state = OptimizerState()
    props = propose(space, completed, [], 2, seed=0, settings=settings, state=state)
    taken = {space.decode(list(o.x)).key(3) for o in completed}
    new = [p.config.key(3) for p in props]
    assert len(set(new)) == 2 and not taken & set(new)
    model = state.fitted_model
    assert model.models[0].num_mcmc_samples == 2, "8 NUTS samples thinned by 4"
    again = propose(space, completed, [], 2, seed=0, settings=settings)
    assert [p.x for p in again] == [p.x for p in props], "saas is seeded too"
