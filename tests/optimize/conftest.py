"""Small spaces and synthetic studies for the optimiser tests."""

from __future__ import annotations

import math

import pytest
import torch

from autopeft.accounting import estimate
from autopeft.encoder import ModelShape
from autopeft.optimize import METHODS, BayesianSettings, MethodSettings, Observation, parse_optimizer
from autopeft.shape import shape_of
from autopeft.space import Space, build_space
from tests.conftest import tiny_model


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as proposals run (two threads on two busy cores thrash)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shape() -> ModelShape:
    return shape_of(tiny_model("bert"))


@pytest.fixture(scope="session")
def space(shape) -> Space:
    """The ``autopeft`` space of a 3-layer encoder: d = 6."""
    return build_space("autopeft", shape)


def synthetic_metric(space: Space, x) -> tuple[float, float]:
    """(metric, param_fraction) of the configuration at ``x``: the metric grows with log size."""
    config = space.decode(list(x))
    fraction = estimate(config, space.shape).param_fraction
    return 0.5 + 0.3 * (1 - math.exp(-200 * fraction)), fraction


def observe(space: Space, xs) -> list[Observation]:
    """Observations of the configurations at points ``xs``."""
    out = []
    for x in xs:
        metric, fraction = synthetic_metric(space, x)
        out.append(Observation(tuple(space.encode(space.decode(list(x)))), metric, fraction))
    return out


def quick(method: str, fast: dict, **fields) -> MethodSettings:
    """``method``'s settings with ``fields``, and the small acquisition search ``fast`` for a model-based method
    (a space-filling one refuses those fields: they do not apply to it)."""
    model_based = issubclass(METHODS[method].settings_type, BayesianSettings)
    return parse_optimizer({"method": method, **fields, **(fast if model_based else {})})
