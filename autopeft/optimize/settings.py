"""How a study proposes configurations: the ``optimizer`` object of a study.

Every field has a default that is good for the product (MiniLM-sized spaces, d up
to a few dozen, studies of tens to a few hundred trials, a server on a small CPU);
the rest are levers for the benchmark and for unusual studies. Light module: no
torch, so API schemas can import it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Method = Literal["gp", "saas", "tpe", "sobol", "random"]
OutcomeTransform = Literal["copula", "standardize"]
NehviImpl = Literal["cached", "botorch"]
KernelName = Literal["rbf", "rbf+additive"]

#: Sobol trials at least / at most before a model takes over (see :func:`default_n_initial`).
MIN_INITIAL, MAX_INITIAL = 8, 20


def default_n_initial(d: int) -> int:
    """``max(8, min(2 d, 20))`` space-filling trials before the GP takes over.

    Why: with dimension-scaled length-scale priors a GP is informative after a
    handful of points even in 30+ dimensions, and every Sobol trial beyond that is a
    trial not spent near the front; 2d keeps small spaces from starting on too
    few points, 20 (five rounds of four workers) bounds the cost in large ones.
    """
    return max(MIN_INITIAL, min(2 * d, MAX_INITIAL))


class ReferencePoint(BaseModel):
    """A user-fixed reference point for the acquisition, in natural units.

    Only configurations better than it in both objectives count as improvement.
    A field left out is chosen from the data (the default for both).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: float | None = Field(None, allow_inf_nan=False, description="Lowest metric worth having.")
    param_fraction: float | None = Field(
        None, gt=0.0, allow_inf_nan=False, description="Largest share of backbone parameters worth training."
    )


class ParamBudget(BaseModel):
    """A study's parameter budget (its ``constraints``): the share of the backbone a configuration may train.

    The optimiser never proposes a configuration outside it (counts are known before training).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_param_fraction: float | None = Field(
        None, gt=0.0, allow_inf_nan=False, description="Largest param_fraction proposed (e.g. 0.005: 0.5%)."
    )
    min_param_fraction: float | None = Field(
        None, ge=0.0, allow_inf_nan=False, description="Smallest param_fraction proposed."
    )

    @model_validator(mode="after")
    def _ordered(self) -> ParamBudget:
        lo, hi = self.min_param_fraction, self.max_param_fraction
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_param_fraction {lo!r} is above max_param_fraction {hi!r}")
        return self

    @property
    def active(self) -> bool:
        return self.max_param_fraction is not None or self.min_param_fraction is not None

    def allows(self, fraction: float) -> bool:
        lo, hi = self.min_param_fraction, self.max_param_fraction
        return (lo is None or fraction >= lo) and (hi is None or fraction <= hi)

    def describe(self) -> str:
        """``0.1% <= param_fraction <= 0.5%``, as people read it."""
        lo, hi = self.min_param_fraction, self.max_param_fraction
        parts = [f"{100 * lo:g}% <=" if lo is not None else "", "param_fraction", f"<= {100 * hi:g}%" if hi else ""]
        return " ".join(p for p in parts if p)


class OptimizerSettings(BaseModel):
    """How a study proposes configurations (the ``optimizer`` object of a study)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = Field(
        "gp", description="gp (default), saas, tpe (Optuna's multi-objective TPE), sobol, or random."
    )
    n_initial: int | None = Field(
        None, ge=1, le=100_000, description="Sobol trials before the model takes over; default max(8, min(2d, 20))."
    )
    reference: ReferencePoint | None = Field(None, description="Override of the data-driven reference point.")
    constraints: ParamBudget | None = Field(
        None, description="The study's parameter budget (set by the study's own constraints field)."
    )
    outcome_transform: OutcomeTransform = Field(
        "copula", description="copula (rank -> normal scores, AutoPEFT's choice) or standardize."
    )
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
        "cached", description="qLogNEHVI implementation for gp: cached (fast, single candidates) or botorch's own."
    )
    mc_samples: int = Field(64, ge=8, le=1024, description="Quasi-MC samples of the acquisition function.")
    raw_samples: int = Field(256, ge=16, le=16_384, description="Candidates scored before local search.")
    num_restarts: int = Field(3, ge=1, le=64, description="Local searches started from the best candidates.")
    local_search_steps: int = Field(5, ge=0, le=1000, description="Moves per local search at most.")
    max_baseline: int = Field(
        96, ge=4, le=100_000, description="Observed points the acquisition keeps as its baseline (best Pareto ranks)."
    )
    warm_start: bool = Field(True, description="Start GP fits from the previous proposal's hyperparameters.")
    refit_growth: float = Field(
        0.1, ge=0.0, le=10.0, description="With warm_start: refit hyperparameters once the data grew by this fraction."
    )
    lazy_refit_from: int = Field(
        100,
        ge=0,
        le=1_000_000,
        description="Below this many completed trials, hyperparameters are refitted every time.",
    )
    threads: int = Field(1, ge=1, le=256, description="torch threads while proposing (a server stays responsive).")
    saas_warmup: int = Field(24, ge=4, le=4096, description="NUTS warm-up steps of the SAAS GP.")
    saas_samples: int = Field(24, ge=1, le=4096, description="NUTS samples of the SAAS GP, before thinning.")
    saas_thinning: int = Field(3, ge=1, le=1024, description="Keep every k-th NUTS sample.")
    saas_max_tree_depth: int = Field(4, ge=1, le=10, description="NUTS tree depth (2^depth leapfrog steps at most).")
    tpe_candidates: int = Field(
        24, ge=1, le=4096, description="tpe: draws from the good-points density scored per proposal (Optuna's default)."
    )

    @model_validator(mode="after")
    def _thinning_keeps_a_sample(self) -> OptimizerSettings:
        if self.saas_thinning > self.saas_samples:
            raise ValueError(
                f"saas_thinning={self.saas_thinning} keeps no sample of saas_samples={self.saas_samples}; "
                "make it at most saas_samples"
            )
        return self

    def n_initial_for(self, d: int) -> int:
        """The Sobol budget for a space of ``d`` dimensions."""
        return self.n_initial if self.n_initial is not None else default_n_initial(d)


#: Earlier studies a warm start may name at most.
MAX_WARM_STUDIES = 20


class WarmStartSettings(BaseModel):
    """A study's ``warm_start``: the earlier studies it starts from (docs/warm_start.md).

    Their Pareto-front configurations that the new space encodes are trained again first
    (``source: "warm_start"``), and every completed trial of theirs that the new space encodes
    is data of a related task for the model. The new study's own front and hypervolume use
    its own trials only.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    studies: list[Annotated[int, Field(strict=True, ge=1, le=2**31 - 1)]] = Field(
        min_length=1,
        max_length=MAX_WARM_STUDIES,
        description="Ids of earlier studies of the same kind of task (classification or regression) on this server.",
    )
    max_configs: int | None = Field(
        None,
        strict=True,
        ge=0,
        le=1000,
        description="Front configurations of the earlier studies trained again first, at most; default: the "
        "study's n_initial; 0: none (the model still learns from the earlier trials).",
    )

    @model_validator(mode="after")
    def _distinct(self) -> WarmStartSettings:
        seen: set[int] = set()
        for study in self.studies:
            if study in seen:
                raise ValueError(f"studies: study {study} is named twice")
            seen.add(study)
        return self

    def max_configs_for(self, d: int, settings: OptimizerSettings) -> int:
        """How many warm-start configurations a study of ``d`` dimensions queues at most."""
        return self.max_configs if self.max_configs is not None else settings.n_initial_for(d)
