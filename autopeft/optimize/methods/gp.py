"""``gp`` (the default): one exact GP per objective, fitted by maximum marginal likelihood.

The model is :func:`autopeft.optimize.gp.fit_gp_list` (kernel, subsampled fits, hyperparameter
reuse and lazy refits); with a warm start's related observations, a multi-task GP of the study and
the earlier ones (:mod:`autopeft.optimize.multitask`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from autopeft.optimize.methods.base import History, register
from autopeft.optimize.methods.bayesian import BayesianMethod, BayesianSettings
from autopeft.optimize.settings import KernelName, NehviImpl

if TYPE_CHECKING:
    import torch


class GpSettings(BayesianSettings):
    """``{"method": "gp", ...}``: the model's kernel and the cost levers of its fits."""

    method: Literal["gp"] = "gp"
    kernel: KernelName = Field(
        "rbf+additive", description="GP kernel: ARD RBF, or ARD RBF plus a first-order additive RBF (default)."
    )
    fit_points: int = Field(
        256,
        ge=16,
        le=100_000,
        description="Hyperparameters are fitted on at most this many trials (then all are used).",
    )
    nehvi: NehviImpl = Field(
        "cached", description="qLogNEHVI implementation: cached (fast, single candidates) or botorch's own."
    )
    lazy_refit_from: int = Field(
        100,
        ge=0,
        le=1_000_000,
        description="Below this many completed trials, hyperparameters are refitted every time.",
    )


@register
class Gp(BayesianMethod[GpSettings]):
    name = "gp"
    settings_type = GpSettings
    learns_related = True

    def fit(
        self, settings: GpSettings, X: torch.Tensor, Z: torch.Tensor, cards: Sequence[int], history: History, seed: int
    ) -> object:
        if history.related is not None:
            from autopeft.optimize.multitask import fit_multitask_list, related_rows

            Xr, Zr, task = related_rows(
                history.related, X.shape[0], cards, settings.outcome_transform, settings.fit_points
            )
            return fit_multitask_list(
                X, Z, Xr, Zr, task, cards, history.state, settings.reuse_hyperparameters, settings.kernel
            )
        from autopeft.optimize.gp import fit_gp_list

        return fit_gp_list(
            X,
            Z,
            cards,
            history.state,
            settings.reuse_hyperparameters,
            settings.kernel,
            settings.fit_points,
            settings.refit_growth,
            settings.lazy_refit_from,
        )

    def cached_acquisition(self, settings: GpSettings, history: History) -> bool:
        # the cached qLogNEHVI needs single-task GPs; a multi-task model goes through botorch's own
        return settings.nehvi == "cached" and history.related is None
