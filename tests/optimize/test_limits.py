"""Limits on optimizer settings that multiply into one proposal's cost (issue 27): refused naming the limit."""

from __future__ import annotations

import pytest

from autopeft.errors import OptimizerError
from autopeft.optimize import METHODS, parse_optimizer
from autopeft.optimize.limits import MAX_NUTS_STEPS, check_cost


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_s_defaults_are_within_the_limits(method):
    check_cost(parse_optimizer({"method": method}))


def test_the_nuts_steps_of_a_saas_fit_are_bounded_as_a_product():
    at_limit = parse_optimizer({"method": "saas", "saas_warmup": 512, "saas_samples": 512, "saas_max_tree_depth": 3})
    check_cost(at_limit)
    one_deeper = at_limit.model_copy(update={"saas_max_tree_depth": 4})
    with pytest.raises(OptimizerError, match=f"16,384 NUTS steps per fit, over the limit of {MAX_NUTS_STEPS:,}"):
        check_cost(one_deeper)


@pytest.mark.parametrize(
    ("fields", "limit"),
    [
        ({"raw_samples": 4097}, "MAX_RAW_SAMPLES"),
        ({"num_restarts": 33, "local_search_steps": 10}, "MAX_LOCAL_MOVES"),
        ({"mc_samples": 513}, "MAX_MC_SAMPLES"),
    ],
)
def test_the_acquisition_s_levers_are_bounded(fields, limit):
    with pytest.raises(OptimizerError, match=limit):
        check_cost(parse_optimizer({"method": "gp", **fields}))
