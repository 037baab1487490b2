"""Early stopping of trials whose front cannot move: a size-aware, asynchronous median stopping rule.

A study's workers report ``(step, metric)`` at every evaluation while a trial trains; the server
asks :func:`decide` whether the trial should go on. The rule (Golovin et al. 2017, Google
Vizier's *median stopping rule*, restricted to smaller peers):

    stop the trial at step ``s`` when at least ``min_peers`` other trials whose ``param_fraction``
    is at most the trial's have reached step ``s``, and the trial's best metric so far is more
    than ``margin`` below the ``quantile`` (default: the median) of those peers' best metrics
    up to step ``s``; never before ``grace`` of the trial's training budget, never at its last
    evaluation.

Why this rule, and not the others the issue names:

- **Asynchronous.** A decision uses whatever peers have reached the same step; no trial waits
  for others (successive halving's synchronous rungs do), and a trial that arrives early (the
  first few) is never stopped: it has no peers yet.
- **Size-aware, so it only stops trials that look dominated.** The front is metric against
  parameters. A trial is compared only with trials of equal or smaller ``param_fraction``: if
  configurations that train no more parameters already score better at the same point of
  training, this one is unlikely to reach the front. A large trial is never stopped because
  small ones are better at its step unless it is also worse than *most* of them; a trial that
  is the best at its size (no smaller peer beats it) is never stopped, whatever the margin.
- **Not asynchronous successive halving (ASHA) rungs**: rungs fix a geometric grid of budgets
  and a keep-ratio of ``1/eta`` per rung, which stops a fixed share of trials whatever the
  front looks like; the median rule's threshold is a quantile of peers at every evaluation,
  with the same effect at ``quantile = 1 - 1/eta`` but no grid to tune to ``eval_every``.
- **Not a learning-curve model**: a study has tens of curves, from configurations of very
  different shapes; a model fitted on them would decide from extrapolations nobody can check.
  Comparing measured values at the same step needs no model.

Steps align because every trial of a study trains with the same settings (``eval_every``,
batch size, budget). The comparison is of best-so-far values (what the trial's kept state
scores), which is robust to one noisy evaluation.

Off by default (``enabled: false``): measured by ``benchmarks/early_stopping.py`` (SST-2 on
CPU, 16 trials a study, 3 seeds; docs/early_stopping.md) it saves 9% of the training for the
same hypervolume, too little to change what every study sees; a study turns it on explicitly.

Pure Python; no HTTP, no SQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

#: Fractions within this relative tolerance count as the same size (estimates round).
SIZE_TOLERANCE = 1e-9

Curve = Sequence[tuple[int, float]]


class EarlyStoppingSettings(BaseModel):
    """The ``early_stopping`` object of a study: when a trial may be stopped early."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        False, description="Stop trials early by the rule (off by default: see docs/early_stopping.md)."
    )
    grace: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Share of a trial's training steps before which it is never stopped.",
    )
    min_peers: int = Field(
        3, ge=1, le=10_000, description="Trials of equal or smaller size that must have reached the same step."
    )
    quantile: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="The peers' quantile a trial must not fall below (0.5: the median; 1: the best peer).",
    )
    margin: float = Field(
        0.01,
        ge=0.0,
        le=10.0,
        allow_inf_nan=False,
        description="How far below that quantile (in metric units) a trial must be to stop.",
    )


@dataclass(frozen=True)
class Peer:
    """Another trial of the study: its size and its curve of ``(step, metric)`` by step."""

    param_fraction: float
    curve: Curve


@dataclass(frozen=True)
class Decision:
    """Whether the trial goes on, and why (shown in logs and kept with a stopped trial)."""

    go_on: bool
    reason: str


def best_until(curve: Curve, step: int) -> float | None:
    """The best metric of ``curve`` at steps up to ``step``; None if it has none."""
    values = [m for s, m in curve if s <= step]
    return max(values) if values else None


def value_at(curve: Curve, step: int) -> float | None:
    """A peer's value at ``step``: its best so far, if it reported exactly that step (None: it did not)."""
    if not any(s == step for s, _ in curve):
        return None
    return best_until(curve, step)


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile of ``values`` (linear interpolation between order statistics, as numpy's default)."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def smaller_peers(param_fraction: float, peers: Sequence[Peer]) -> list[Peer]:
    """The peers of equal or smaller size than ``param_fraction``."""
    limit = param_fraction * (1 + SIZE_TOLERANCE) + SIZE_TOLERANCE
    return [p for p in peers if p.param_fraction <= limit]


def decide(
    settings: EarlyStoppingSettings,
    *,
    step: int,
    total_steps: int | None,
    curve: Curve,
    param_fraction: float | None,
    peers: Sequence[Peer],
) -> Decision:
    """Whether a trial that just reported ``step`` should go on (see the module docstring).

    Args:
        settings: the study's ``early_stopping`` object.
        step: the step just evaluated.
        total_steps: the trial's training budget in steps (None: unknown, then it always goes on).
        curve: the trial's own ``(step, metric)`` reports, this one included.
        param_fraction: the trial's size (None: unknown, then it always goes on).
        peers: the study's other trials with curves (running, completed or stopped).
    """
    if not settings.enabled:
        return Decision(True, "early stopping is off")
    if total_steps is None:
        return Decision(True, "the trial's budget in steps is unknown")
    if step >= total_steps:
        return Decision(True, "last evaluation")
    if step < settings.grace * total_steps:
        return Decision(True, f"step {step} is within the grace of {settings.grace:g} of {total_steps} steps")
    if param_fraction is None:
        return Decision(True, "the trial's size is unknown")
    own = best_until(curve, step)
    if own is None:
        return Decision(True, "no metric reported yet")
    values = [v for p in smaller_peers(param_fraction, peers) if (v := value_at(p.curve, step)) is not None]
    if len(values) < settings.min_peers:
        return Decision(
            True, f"{len(values)} of the {settings.min_peers} peers of equal or smaller size needed reached step {step}"
        )
    threshold = quantile(values, settings.quantile)
    if own + settings.margin < threshold:
        return Decision(
            False,
            f"best metric {own:.4g} at step {step} is more than {settings.margin:g} below the {settings.quantile:g} "
            f"quantile {threshold:.4g} of {len(values)} trials of equal or smaller size",
        )
    return Decision(True, f"best metric {own:.4g} is within {settings.margin:g} of the peers' {threshold:.4g}")
