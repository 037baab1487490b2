"""Warm start in the optimiser (issue 19): which earlier configurations count, the order they are
queued in, and a multi-task model whose first proposals know where the earlier studies did well."""

from __future__ import annotations

import pytest
import torch

from autopeft.optimize import GpSettings, SaasSettings, SobolSettings, WarmStartSettings, propose
from autopeft.optimize.domain import GridDomain
from autopeft.optimize.engine import Warm, propose_points
from autopeft.optimize.warm import EarlierTrial, Related, build_warm_start, interleave, spread_order
from autopeft.shape import shape_of
from autopeft.space import build_space
from tests.conftest import FAST_GP, tiny_model
from tests.optimize.conftest import observe, quick

FAST = {**FAST_GP, "kernel": "rbf"}


def _key(space, x) -> str:
    return space.decode(list(x)).key(space.shape.n_layers)


def _trial(study: int, i: int, config: dict, metric: float, fraction: float) -> EarlierTrial:
    return EarlierTrial(study, 100 * study + i, config, metric, fraction)


@pytest.fixture(scope="module")
def six_layer_space():
    """The ``autopeft`` space of a 6-layer encoder: another model with the same space."""
    return build_space("autopeft", shape_of(tiny_model("bert", num_hidden_layers=6)))


# -- the spec ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, message",
    [
        ({"studies": []}, "at least 1"),
        ({"studies": [0]}, "greater than or equal to 1"),
        ({"studies": [3, 3]}, "study 3 is named twice"),
        ({"studies": list(range(1, 22))}, "at most 20"),
        ({"studies": ["3"]}, "valid integer"),
        ({"studies": [3], "max_configs": -1}, "greater than or equal to 0"),
        ({"studies": [3], "extra": 1}, "Extra inputs"),
        ({}, "Field required"),
    ],
)
def test_the_warm_start_field_refuses_what_it_cannot_use(body, message):
    with pytest.raises(ValueError, match=message):
        WarmStartSettings.model_validate(body)


def test_max_configs_defaults_to_the_initial_design():
    spec = WarmStartSettings(studies=[3, 7])
    assert spec.max_configs_for(GpSettings().n_initial_for(9)) == 18
    assert spec.max_configs_for(GpSettings(n_initial=5).n_initial_for(9)) == 5
    assert WarmStartSettings(studies=[3], max_configs=2).max_configs_for(18) == 2


# -- which configurations count ------------------------------------------------------------------


def test_spread_order_takes_the_best_metric_then_the_far_ends():
    # a front by cost: metric falls as the cost objective (-log10 fraction) rises
    costs = [1.0, 1.5, 2.0, 2.5, 3.0]
    metrics = [0.9, 0.85, 0.8, 0.75, 0.7]
    order = spread_order(metrics, costs)
    assert order[:3] == [0, 4, 2]
    assert sorted(order) == list(range(5))
    assert interleave([[(0.1,), (0.2,)], [(0.2,), (0.3,), (0.4,)]]) == [(0.1,), (0.2,), (0.3,), (0.4,)]


def test_front_configurations_outside_the_space_or_the_layers_are_skipped(space):
    """The 3-layer autopeft space: LoRA is not in it, a size off its ladder is not, layer 5 is not."""
    n = space.shape.n_layers
    inside = space.decode([0.9] * space.d)
    small = space.decode([0.3, 0.1, 0.1] + [0.9] * n)
    trials = [
        _trial(1, 0, inside.to_json(), 0.995, 0.05),  # front (best metric)
        _trial(1, 1, {"lora": {"rank": 8}}, 0.99, 0.01),  # front, but not in the space
        _trial(1, 2, {"serial_adapter": {"size": 8, "layers": [0, 5]}}, 0.98, 0.001),  # front, layer 5 of 3
        _trial(1, 3, {"serial_adapter": {"size": 3}}, 0.97, 0.0001),  # front, size 3 is off the ladder
        _trial(1, 4, small.to_json(), 0.80, 0.00002),  # front (fewest parameters)
        _trial(1, 5, space.decode([0.6] * space.d).to_json(), 0.10, 0.04),  # dominated
        _trial(9, 0, space.decode([0.5] * space.d).to_json(), 0.99, 0.00001),  # a study not named
    ]
    warm = build_warm_start(space, [1], trials, slots=10)
    keys = [_key(space, x) for x in warm.seeds]
    assert sorted(keys) == sorted({inside.key(n), small.key(n)})
    assert len(warm.x) == 3 and set(warm.task) == {1}  # the encodable completed trials, dominated one too
    assert warm.seen == 6


def test_another_encoder_keeps_only_configurations_that_fit_its_layers(space, six_layer_space):
    """A front found on a 6-layer model warms a study on a 3-layer one: layers 3..5 do not exist there."""
    big = six_layer_space
    fits = big.decode([0.9, 0.1, 0.1, 1, 1, 1, 0, 0, 0])  # layers 0-2 only
    beyond = big.decode([0.9, 0.1, 0.1, 1, 0, 0, 0, 0, 1])  # layer 5
    trials = [_trial(2, 0, fits.to_json(), 0.85, 0.001), _trial(2, 1, beyond.to_json(), 0.8, 0.0001)]
    warm = build_warm_start(space, [2], trials, slots=5)
    assert [_key(space, x) for x in warm.seeds] == [space.decode(space.encode(fits.to_json())).key(3)]


def test_a_still_running_study_contributes_what_it_has(space):
    points = [tuple(space.encode(space.decode(list(x)))) for x in space.sample_points(40, seed=5)]
    points = list(dict.fromkeys(points))[:8]
    obs = observe(space, points)
    trials = [_trial(4, i, space.decode(list(o.x)).to_json(), o.metric, o.param_fraction) for i, o in enumerate(obs)]
    early = build_warm_start(space, [4], trials[:3], slots=10)
    later = build_warm_start(space, [4], trials, slots=10)
    assert len(early.x) == 3 and len(later.x) == 8
    assert early.seeds and later.seeds


# -- what is proposed ----------------------------------------------------------------------------


def _seeded(space, n_seeds: int = 3):
    """A warm start whose front is ``n_seeds`` configurations of the space."""
    points = list(dict.fromkeys(tuple(space.encode(space.decode(list(x)))) for x in space.sample_points(60, seed=11)))
    obs = observe(space, points[:12])
    trials = [_trial(5, i, space.decode(list(o.x)).to_json(), o.metric, o.param_fraction) for i, o in enumerate(obs)]
    warm = build_warm_start(space, [5], trials, slots=n_seeds)
    return warm, obs


@pytest.mark.parametrize("method", ["gp", "sobol"])
def test_front_configurations_are_the_first_proposals_then_the_usual_design(space, method):
    warm, _ = _seeded(space, n_seeds=2)
    assert len(warm.seeds) >= 2
    settings = quick(method, FAST, n_initial=6)
    props = propose(space, [], [], 4, seed=3, settings=settings, warm=warm)
    assert [p.source for p in props] == ["warm_start", "warm_start", "sobol", "sobol"]
    assert [_key(space, p.x) for p in props[:2]] == [_key(space, x) for x in warm.seeds[:2]]
    cold = propose(space, [], [], 4, seed=3, settings=settings)
    assert all(p.source == "sobol" for p in cold)


def test_queued_seeds_are_not_proposed_twice_and_none_once_the_slots_are_used(space):
    warm, _ = _seeded(space, n_seeds=3)
    settings = SobolSettings(n_initial=6)
    first = propose(space, [], [], 1, seed=3, settings=settings, warm=warm)
    second = propose(space, [], [first[0].x], 1, seed=3, settings=settings, warm=warm)
    assert first[0].source == second[0].source == "warm_start"
    assert _key(space, first[0].x) != _key(space, second[0].x)
    used = type(warm)(**{**warm.__dict__, "slots": 0})
    assert propose(space, [], [], 1, seed=3, settings=settings, warm=used)[0].source == "sobol"


def test_seeds_wait_for_the_initial_design_only(space):
    """Past n_initial trials, a front that an earlier study found later reaches the model only."""
    warm, obs = _seeded(space, n_seeds=3)
    settings = SobolSettings(n_initial=4)
    props = propose(space, obs[:4], [], 2, seed=3, settings=settings, warm=warm)
    assert all(p.source == "sobol" for p in props)


def test_earlier_data_lets_the_model_start_after_a_few_own_results(space):
    """A cold gp study keeps to Sobol until n_initial; a warm one models from MIN_MODEL_POINTS results."""
    warm, obs = _seeded(space, n_seeds=0)
    own = observe(space, [tuple(space.encode(space.decode(list(x)))) for x in space.sample_points(6, seed=1)])[:4]
    settings = GpSettings(n_initial=10, **FAST)
    cold = propose(space, own, [], 1, seed=3, settings=settings)
    assert cold[0].source == "sobol"
    modelled = propose(space, own, [], 1, seed=3, settings=settings, warm=warm)
    assert modelled[0].source == "gp"
    saas = SaasSettings(n_initial=10)
    assert propose(space, own, [], 1, seed=3, settings=saas, warm=warm)[0].source == "sobol"


# -- the multi-task model ------------------------------------------------------------------------

CENTRE = torch.tensor([0.8, 0.2, 0.75, 0.3], dtype=torch.double)


def _objectives(X: torch.Tensor, shift: float = 0.0) -> torch.Tensor:
    """A metric peaked at CENTRE (+ shift) and a cost that grows with x0: the front runs along x0
    at CENTRE's other coordinates."""
    metric = 1 - 2 * ((X - CENTRE - shift) ** 2).sum(-1)
    return torch.stack([metric, -0.3 * X[:, 0]], dim=-1)


def _grid_points(n: int, gen: torch.Generator) -> torch.Tensor:
    return (torch.floor(torch.rand(n, 4, generator=gen, dtype=torch.double) * 8) + 0.5) / 8


def _distance(points) -> float:
    """Mean distance of points to the front's line (ignoring x0)."""
    P = torch.tensor([list(p) for p in points], dtype=torch.double)
    return float(((P[:, 1:] - CENTRE[1:]) ** 2).sum(-1).sqrt().mean())


@pytest.mark.slow
def test_earlier_observations_bring_the_first_model_proposals_near_their_optimum():
    """Earlier data (another task: the metric rescaled and its peak slightly moved) put the warm
    model's first proposals nearer the front than a cold model's on the same 4 own results."""
    domain, empty = GridDomain([8] * 4), torch.zeros(0, 4, dtype=torch.double)
    settings = GpSettings(n_initial=4, **FAST)
    cold, warm = [], []
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        X, Xr = _grid_points(4, gen), _grid_points(40, gen)
        Yr = _objectives(Xr, 0.03)
        Yr[:, 0] = 0.8 * Yr[:, 0] + 0.1
        related = Warm(Related(Xr, Yr, torch.ones(40, dtype=torch.long)), empty, 0)
        c = propose_points(domain, X, _objectives(X), empty, empty, 3, seed, settings)
        w = propose_points(domain, X, _objectives(X), empty, empty, 3, seed, settings, warm=related)
        assert {s for _, s in c} == {s for _, s in w} == {"gp"}
        cold.append(_distance([x for x, _ in c]))
        warm.append(_distance([x for x, _ in w]))
    assert sum(warm) < 0.6 * sum(cold), (warm, cold)
    assert sum(w < c for w, c in zip(warm, cold)) >= 2, (warm, cold)


@pytest.mark.slow
def test_the_multitask_model_learns_that_the_tasks_agree():
    from autopeft.optimize.multitask import fit_multitask_list, per_task_transform, task_correlation
    from autopeft.optimize.transforms import fit_transform

    gen = torch.Generator().manual_seed(0)
    X, Xr = _grid_points(8, gen), _grid_points(30, gen)
    Z, _ = fit_transform(_objectives(X), "copula")
    task = torch.ones(30, dtype=torch.long)
    Zr = per_task_transform(_objectives(Xr), task, "copula")
    torch.manual_seed(0)
    model = fit_multitask_list(X, Z, Xr, Zr, task, [8] * 4, None, False, "rbf")
    corr = task_correlation(model.models[0])
    assert corr.shape == (2, 2) and float(corr[0, 1]) > 0.5
    with torch.no_grad():
        mean = model.posterior(Xr[:5]).mean  # predictions for the new study (task 0), both objectives
    assert mean.shape == (5, 2)
