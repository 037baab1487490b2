"""``saas``: fully Bayesian SAAS GPs (AutoPEFT's choice), sampled with NUTS; see :mod:`autopeft.optimize.saas`.

Slower than ``gp`` (seconds per proposal at tens of trials, on a CPU), bounded by the NUTS budget
below. A warm start queues the earlier fronts' configurations but is not modelled (no multi-task form).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from autopeft.optimize.methods.base import History, register
from autopeft.optimize.methods.bayesian import BayesianMethod, BayesianSettings

if TYPE_CHECKING:
    import torch


class SaasSettings(BayesianSettings):
    """``{"method": "saas", ...}``: the NUTS budget of each fit."""

    method: Literal["saas"] = "saas"
    saas_warmup: int = Field(24, ge=4, le=4096, description="NUTS warm-up steps of the SAAS GP.")
    saas_samples: int = Field(24, ge=1, le=4096, description="NUTS samples of the SAAS GP, before thinning.")
    saas_thinning: int = Field(3, ge=1, le=1024, description="Keep every k-th NUTS sample.")
    saas_max_tree_depth: int = Field(4, ge=1, le=10, description="NUTS tree depth (2^depth leapfrog steps at most).")

    @model_validator(mode="after")
    def _thinning_keeps_a_sample(self) -> SaasSettings:
        if self.saas_thinning > self.saas_samples:
            raise ValueError(
                f"saas_thinning={self.saas_thinning} keeps no sample of saas_samples={self.saas_samples}; "
                "make it at most saas_samples"
            )
        return self


@register
class Saas(BayesianMethod[SaasSettings]):
    name = "saas"
    settings_type = SaasSettings

    def fit(
        self,
        settings: SaasSettings,
        X: torch.Tensor,
        Z: torch.Tensor,
        cards: Sequence[int],
        history: History,
        seed: int,
    ) -> object:
        from autopeft.optimize.saas import Nuts, fit_saas_list

        nuts = Nuts(settings.saas_warmup, settings.saas_samples, settings.saas_thinning, settings.saas_max_tree_depth)
        return fit_saas_list(X, Z, nuts, seed, history.state, settings.reuse_hyperparameters, settings.refit_growth)
