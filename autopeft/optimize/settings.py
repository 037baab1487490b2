"""The parts of a study's settings that its optimiser reads, besides each method's own
(:mod:`autopeft.optimize.methods`): the reference point, the parameter budget (the study's
``constraints``) and the warm start (the study's ``warm_start``), and the defaults they share.

Every default is good for the product (MiniLM-sized spaces, d up to a few dozen, studies of
tens to a few hundred trials, a server on a small CPU). Light module: no torch, so API schemas
can import it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

OutcomeTransform = Literal["copula", "standardize"]
NehviImpl = Literal["cached", "botorch"]
KernelName = Literal["rbf", "rbf+additive"]

#: Completed trials a model needs at least; before that, proposals stay space-filling.
MIN_MODEL_POINTS = 4
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

    def max_configs_for(self, n_initial: int) -> int:
        """How many warm-start configurations a study queues at most, given its ``n_initial`` (for its space)."""
        return self.max_configs if self.max_configs is not None else n_initial
