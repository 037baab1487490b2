"""The optimizer methods are a registry: each method's settings model, what the optimizer object accepts
(and what it refuses, by name), and the interface the engine calls a method through."""

from __future__ import annotations

from typing import ClassVar, Literal

import pytest
import torch

from autopeft.errors import OptimizerError
from autopeft.optimize import (
    METHODS,
    GpSettings,
    Method,
    MethodSettings,
    RandomSettings,
    SaasSettings,
    SobolSettings,
    parse_optimizer,
)
from autopeft.optimize.domain import GridDomain
from autopeft.optimize.engine import MIN_MODEL_POINTS, propose_points
from autopeft.optimize.methods import registry
from autopeft.optimize.methods.base import History


def test_each_method_is_registered_with_its_own_settings_model():
    assert set(METHODS) >= {"gp", "saas", "sobol", "random"}
    types = {"gp": GpSettings, "saas": SaasSettings, "sobol": SobolSettings, "random": RandomSettings}
    for name, settings_type in types.items():
        assert METHODS[name].settings_type is settings_type
        assert type(parse_optimizer({"method": name})) is settings_type
    assert METHODS["sobol"].space_filling and METHODS["random"].space_filling and METHODS["random"].design == "random"
    assert not METHODS["gp"].space_filling and METHODS["gp"].learns_related and not METHODS["saas"].learns_related


def test_an_empty_optimizer_is_gp_and_settings_as_accepted_before_still_are():
    assert parse_optimizer() == parse_optimizer({}) == GpSettings()
    saas = parse_optimizer({"method": "saas", "saas_warmup": 24, "saas_samples": 30, "threads": 2, "n_initial": 6})
    assert isinstance(saas, SaasSettings) and (saas.saas_samples, saas.threads, saas.n_initial) == (30, 2, 6)
    gp = parse_optimizer({"method": "gp", "kernel": "rbf", "nehvi": "botorch", "reference": {"metric": 0.6}})
    assert isinstance(gp, GpSettings) and gp.kernel == "rbf" and gp.reference.metric == 0.6
    assert parse_optimizer({"method": "sobol", "n_initial": 4}) == SobolSettings(n_initial=4)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"method": "gp", "saas_warmup": 30}, "saas_warmup: does not apply to method gp (it is a setting of saas)"),
        ({"method": "saas", "kernel": "rbf"}, "kernel: does not apply to method saas (it is a setting of gp)"),
        ({"method": "sobol", "raw_samples": 64}, "raw_samples: does not apply to method sobol"),
        ({"method": "random", "threads": 2}, "threads: does not apply to method random"),
        ({"constraints": {"max_param_fraction": 1e-9}}, "constraints: the parameter budget is the study's own field"),
        ({"method": "cmaes"}, "method: unknown optimizer method; one of gp, "),
        ({"method": "gp", "restarts": 3}, "restarts: unknown field"),
        ({"method": "saas", "saas_samples": 4, "saas_thinning": 8}, "saas_thinning=8 keeps no sample"),
        ({"method": "gp", "mc_samples": 2}, "mc_samples: Input should be greater than or equal to 8"),
    ],
)
def test_a_field_the_method_does_not_have_is_refused_by_name(body, message):
    with pytest.raises(OptimizerError, match="^invalid optimizer: .*" + _escaped(message)):
        parse_optimizer(body)


def _escaped(text: str) -> str:
    import re

    return re.escape(text)


def test_warm_start_is_the_deprecated_name_of_reuse_hyperparameters():
    with pytest.warns(DeprecationWarning, match="reuse_hyperparameters"):
        old = parse_optimizer({"method": "gp", "warm_start": False})
    assert old == GpSettings(reuse_hyperparameters=False)
    assert "warm_start" not in old.model_dump()
    with pytest.warns(DeprecationWarning):
        assert parse_optimizer({"method": "saas", "warm_start": False}).reuse_hyperparameters is False
    with pytest.raises(OptimizerError, match="give reuse_hyperparameters only"):
        parse_optimizer({"warm_start": False, "reuse_hyperparameters": True})
    with pytest.raises(OptimizerError, match="warm_start: does not apply to method sobol"):
        parse_optimizer({"method": "sobol", "warm_start": True})


def test_settings_round_trip_through_json_as_their_own_method():
    for settings in (
        GpSettings(kernel="rbf"),
        SaasSettings(saas_warmup=8),
        SobolSettings(),
        RandomSettings(n_initial=3),
    ):
        again = parse_optimizer(settings.model_dump(mode="json"))
        assert again == settings and type(again) is type(settings)


# -- the interface a method implements ------------------------------------------------------------
class FirstFreeSettings(MethodSettings):
    method: Literal["first_free"] = "first_free"


class FirstFree(Method[FirstFreeSettings]):
    """A toy method: the free grid points in index order; records what the engine handed it."""

    name = "first_free"
    settings_type = FirstFreeSettings
    seen: ClassVar[list[tuple[History, int]]] = []

    def propose(self, settings: FirstFreeSettings, history: History, n: int) -> list[tuple[float, ...]]:
        self.seen.append((history, n))
        out = []
        for i in range(4):
            for j in range(4):
                x = history.domain.canonical([(i + 0.5) / 4, (j + 0.5) / 4])
                if len(out) < n and history.domain.key(x) not in history.taken:
                    history.taken.add(history.domain.key(x))
                    out.append(x)
        return out


def test_the_engine_calls_a_method_after_the_shared_start_with_the_study_history(monkeypatch):
    method = FirstFree()
    monkeypatch.setitem(registry.METHODS, method.name, method)
    domain = GridDomain([4, 4])
    X = torch.tensor([[0.125, 0.125], [0.125, 0.375], [0.375, 0.125], [0.875, 0.875]], dtype=torch.double)
    Y = torch.rand(4, 2, dtype=torch.double)
    pending = torch.tensor([[0.125, 0.625]], dtype=torch.double)
    empty = torch.empty(0, 2, dtype=torch.double)
    settings = FirstFreeSettings(n_initial=6)
    got = propose_points(domain, X, Y, pending, empty, 3, seed=1, settings=settings)
    # 5 trials held, n_initial 6: one point from the Sobol design, then the method
    assert [source for _, source in got] == ["sobol", "first_free", "first_free"]
    history, n = method.seen[-1]
    assert n == 2 and history.position == 5 and torch.equal(history.X, X) and torch.equal(history.Y, Y)
    assert history.pending.shape == (2, 2), "the pending points, and the design's point chosen before"
    assert len({domain.key(x) for x, _ in got}) == 3
    assert not {domain.key(x) for x, _ in got} & {domain.key(x) for x in [*X.tolist(), *pending.tolist()]}
    assert X.shape[0] >= MIN_MODEL_POINTS
