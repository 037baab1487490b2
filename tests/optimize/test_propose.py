"""propose(): valid, new, distinct configurations; pending points matter; seeded and side-effect free."""

from __future__ import annotations

import math

import pytest
import torch

from autopeft.errors import OptimizerError
from autopeft.optimize import GpSettings, Observation, OptimizerState, default_n_initial, propose
from tests.conftest import FAST_GP
from tests.optimize.conftest import observe, quick


def keys(space, xs):
    return [space.decode(list(x)).key(space.shape.n_layers) for x in xs]


@pytest.fixture(scope="module")
def history(space):
    """12 completed, 3 pending and 2 failed distinct trials of the space."""
    pts, seen = [], set()
    for x in space.sample_points(200, seed=3):
        k = space.decode(x).key(space.shape.n_layers)
        if k not in seen:
            seen.add(k)
            pts.append(tuple(space.encode(space.decode(x))))
    return observe(space, pts[:12]), pts[12:15], pts[15:17]


@pytest.mark.parametrize("method", ["gp", "tpe", "sobol", "random"])
def test_proposals_are_valid_new_and_distinct(space, history, method):
    completed, pending, failed = history
    settings = quick(method, FAST_GP, n_initial=4)
    props = propose(space, completed, pending, 6, seed=1, settings=settings, failed=failed)
    assert len(props) == 6
    taken = set(keys(space, [o.x for o in completed] + list(pending) + list(failed)))
    new = keys(space, [p.x for p in props])
    assert len(set(new)) == 6, "a configuration repeats within the batch"
    assert not taken & set(new), "a completed, pending or failed configuration was proposed again"
    for p in props:
        p.config.check_fits(space.shape)
        assert p.x == tuple(space.encode(p.config)), "x is the configuration's canonical point"
        assert p.config.key(space.shape.n_layers) == space.decode(list(p.x)).key(space.shape.n_layers)


@pytest.mark.parametrize("method", ["tpe", "sobol", pytest.param("gp", marks=pytest.mark.slow)])
def test_stopped_configurations_are_never_proposed_again(space, history, method):
    """Issue 16: trials the early-stopping rule stopped are kept out of proposals, like failed ones."""
    completed, pending, failed = history
    settings = quick(method, FAST_GP, n_initial=4)
    first = propose(space, completed, pending, 3, seed=1, settings=settings, failed=failed)
    stopped = [p.x for p in first]
    again = propose(space, completed, pending, 3, seed=1, settings=settings, failed=failed, stopped=stopped)
    assert not set(keys(space, [p.x for p in first])) & set(keys(space, [p.x for p in again]))


@pytest.mark.slow
def test_pending_points_change_the_proposals(space, history):
    completed, _, _ = history
    settings = GpSettings(n_initial=4, **FAST_GP)
    first = propose(space, completed, [], 2, seed=5, settings=settings)
    with_pending = propose(space, completed, [first[0].x], 2, seed=5, settings=settings)
    assert keys(space, [p.x for p in with_pending]) != keys(space, [p.x for p in first])
    assert first[0].config.key(3) not in keys(space, [p.x for p in with_pending])


@pytest.mark.parametrize("method", ["tpe", "sobol", pytest.param("gp", marks=pytest.mark.slow), "random"])
def test_same_inputs_and_seed_give_the_same_proposals(space, history, method):
    completed, pending, failed = history
    settings = quick(method, FAST_GP, n_initial=4)
    a = propose(space, completed, pending, 3, seed=7, settings=settings, failed=failed)
    b = propose(space, completed, pending, 3, seed=7, settings=settings, failed=failed, state=OptimizerState())
    assert [p.x for p in a] == [p.x for p in b]
    other = propose(space, completed, pending, 3, seed=8, settings=settings, failed=failed)
    assert [p.x for p in other] != [p.x for p in a]


def test_proposing_leaves_torch_threads_and_random_state_alone(space, history):
    completed, pending, _ = history
    torch.manual_seed(123)
    before_state, before_threads = torch.get_rng_state(), torch.get_num_threads()
    propose(space, completed, pending, 2, seed=1, settings=GpSettings(n_initial=4, threads=1, **FAST_GP))
    assert torch.equal(torch.get_rng_state(), before_state)
    assert torch.get_num_threads() == before_threads


@pytest.mark.parametrize("growth, after_one_more", [pytest.param(0.1, "conditioned", marks=pytest.mark.slow), (0.0, "warm")])
def test_state_reuses_what_it_can(space, history, growth, after_one_more):
    completed, pending, _ = history
    state = OptimizerState()
    settings = GpSettings(n_initial=4, refit_growth=growth, lazy_refit_from=10, **FAST_GP)
    propose(space, completed, pending, 2, seed=1, settings=settings, state=state)
    assert state.last_fit == "cold" and state.timings["fit"] > 0
    propose(space, completed, pending[:1], 2, seed=1, settings=settings, state=state)
    assert state.last_fit == "reused", "only the pending points changed: same model"
    extra = observe(space, [pending[1]])
    propose(space, [*completed, *extra], pending[2:], 2, seed=1, settings=settings, state=state)
    assert state.last_fit == after_one_more
    more = observe(space, [pending[2], *[o.x for o in completed[:0]]])
    propose(space, [*completed, *extra, *more], [], 2, seed=1, settings=settings, state=state)
    assert state.last_fit == "warm", "14 trials is more than 10% beyond the 12 fitted on"


def test_the_first_trials_follow_one_sobol_sequence(space):
    settings = GpSettings()
    assert default_n_initial(space.d) == 12
    at_once = propose(space, [], [], 6, seed=2, settings=settings)
    first = propose(space, [], [], 3, seed=2, settings=settings)
    rest = propose(space, [], [p.x for p in first], 3, seed=2, settings=settings)
    assert keys(space, [p.x for p in at_once]) == keys(space, [p.x for p in first + rest])


def test_n_initial_default_follows_dimension():
    assert [default_n_initial(d) for d in (2, 4, 9, 16, 33, 200)] == [8, 8, 18, 20, 20, 20]


@pytest.mark.parametrize(
    "completed, pending, n, message",
    [
        ([Observation((0.5,) * 6, math.nan, 0.01)], [], 1, "not finite"),
        ([Observation((0.5,) * 5, 0.7, 0.01)], [], 1, "6 coordinates"),
        ([], [(0.5,) * 6 + (0.1,)], 1, "6 coordinates"),
        ([], [(1.5,) * 6], 1, r"in \[0, 1\]"),
        ([], [], 0, "at least 1"),
    ],
)
def test_bad_inputs_raise_optimizer_errors_naming_the_value(space, completed, pending, n, message):
    with pytest.raises(OptimizerError, match=message):
        propose(space, completed, pending, n, seed=0)


def test_an_exhausted_space_is_an_optimizer_error(shape):
    from autopeft.space import build_space

    tiny = build_space({"name": "tiny", "families": {"bitfit": {"enabled": [False, True]}}}, shape)
    done = propose(tiny, [], [], 2, seed=0)
    assert len(done) == 2
    with pytest.raises(OptimizerError, match="exhausted"):
        propose(tiny, [], [p.x for p in done], 1, seed=0)


@pytest.mark.parametrize("method", ["gp", "tpe", "sobol", "random"])
def test_each_proposal_says_what_chose_it(space, history, method):
    completed, pending, failed = history
    settings = quick(method, FAST_GP, n_initial=4)
    start = propose(space, [], [], 3, seed=1, settings=settings)
    later = propose(space, completed, pending, 3, seed=1, settings=settings, failed=failed)
    design = "random" if method == "random" else "sobol"
    assert [p.source for p in start] == [design] * 3  # nothing completed yet: the space-filling design
    assert [p.source for p in later] == [method] * 3  # 12 completed > n_initial: the model (or the baseline)
