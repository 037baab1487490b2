"""Proposal strategies: what to train next, given a study's results so far.

``propose(space, completed, pending, n, seed, settings, failed, state=..., stopped=...)``
returns ``n`` new configurations that are not completed, pending (queued or running),
failed or stopped early in the study, and not repeated within the batch. It sees plain snapshots
only, never storage or the network.

Methods (``OptimizerSettings.method``):

- ``gp`` (default): a scrambled Sobol design for the first trials, then one GP per
  objective, qLogNEHVI with the pending trials as ``X_pending``, a data-driven
  reference point, and a discrete local search on the space's bins;
  batches are chosen greedily, each choice joining the pending points.
- ``saas``: the same with fully Bayesian SAAS GPs (NUTS via pyro, bounded cost).
- ``tpe``: the same Sobol design, then Optuna's multivariate multi-objective TPE with
  constant liar for the pending trials (:mod:`autopeft.optimize.tpe`).
- ``sobol`` / ``random``: the space-filling baselines.

A study's parameter budget (``settings.constraints``, :mod:`autopeft.optimize.budget`) takes
every configuration outside it out of the grid: it is never proposed.

A warm start (``warm``, :mod:`autopeft.optimize.warm`) queues the earlier studies' front
configurations first (``source`` ``warm_start``) and, for ``gp``, models the earlier trials as
related tasks (:mod:`autopeft.optimize.multitask`); see docs/warm_start.md.

Objectives are maximised as ``(metric, -log10 max(param_fraction, 1e-6))``
(:func:`autopeft.pareto.to_objectives`). Same inputs, seed and state give the same
proposals; torch's threads and random state are restored afterwards. Layout:
``engine`` (the loop), ``sobol``, ``gp``, ``saas``, ``tpe``, ``multitask``, ``warm``, ``acquisition``,
``discrete`` (acquisition optimiser), ``reference``, ``transforms``, ``domain``, ``runtime``,
``state``; see docs/optimizer.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autopeft.config import PeftConfig
from autopeft.errors import OptimizerError
from autopeft.optimize.settings import (
    Method,
    OptimizerSettings,
    ParamBudget,
    ReferencePoint,
    WarmStartSettings,
    default_n_initial,
)
from autopeft.optimize.state import OptimizerState
from autopeft.space import Space

if TYPE_CHECKING:
    from autopeft.optimize.warm import WarmStart

__all__ = [
    "Method",
    "Observation",
    "OptimizerSettings",
    "OptimizerState",
    "ParamBudget",
    "Proposal",
    "ReferencePoint",
    "WarmStartSettings",
    "default_n_initial",
    "propose",
]


@dataclass(frozen=True)
class Observation:
    """A completed trial: its point in the space and its two objectives."""

    x: tuple[float, ...]
    metric: float
    param_fraction: float


@dataclass(frozen=True)
class Proposal:
    """A configuration to train, its canonical point in the space (bin centres), and what
    chose it: ``warm_start`` (an earlier study's front configuration), ``sobol``/``random``
    (the space-filling design) or ``gp``/``saas``/``tpe`` (the model)."""

    config: PeftConfig
    x: tuple[float, ...]
    source: str = "sobol"


def propose(
    space: Space,
    completed: Sequence[Observation],
    pending: Sequence[Sequence[float]],
    n: int,
    seed: int,
    settings: OptimizerSettings | None = None,
    failed: Sequence[Sequence[float]] = (),
    *,
    state: OptimizerState | None = None,
    stopped: Sequence[Sequence[float]] = (),
    warm: WarmStart | None = None,
) -> list[Proposal]:
    """``n`` new, distinct configurations for the study (see the module docstring).

    Args:
        space: the study's search space.
        completed: completed trials (points and objectives); failed trials go in ``failed``.
        pending: points of queued and running trials.
        n: how many configurations to propose (the batch is chosen jointly).
        seed: the study seed.
        settings: the study's ``optimizer`` object (default: ``gp``).
        failed: points of failed trials: never modelled, never proposed again.
        state: the study's :class:`OptimizerState` (warm starts and caches); optional.
        stopped: points of trials the early-stopping rule stopped: like ``failed``, never modelled (their
            metric is partial: it would read as a final result) and never proposed again (the rule found
            them dominated once already).
        warm: what the study takes from the earlier studies it names
            (:func:`autopeft.optimize.warm.build_warm_start`); the front, the reference point and
            the acquisition's baseline stay the study's own.

    Raises:
        OptimizerError: bad inputs (wrong dimension, non-finite objectives, n < 1), or the
            space has fewer than ``n`` configurations left.
    """
    from autopeft.optimize.domain import SpaceDomain
    from autopeft.optimize.engine import points_tensor, propose_points, warm_input
    from autopeft.optimize.reference import override_objectives
    from autopeft.pareto import to_objectives

    settings = settings or OptimizerSettings()
    d = space.d
    try:
        Y = to_objectives([o.metric for o in completed], [o.param_fraction for o in completed])
    except ValueError as err:
        raise OptimizerError(f"completed trials: {err}") from None
    ref = settings.reference
    feasible = repair = None
    if settings.constraints is not None and settings.constraints.active:
        from autopeft.optimize.budget import feasibility, repairer

        feasible, repair = feasibility(space, settings.constraints), repairer(space, settings.constraints)
    points = propose_points(
        SpaceDomain(space, state.keys if state is not None else None, feasible, repair),
        points_tensor([o.x for o in completed], d, "completed"),
        Y,
        points_tensor(pending, d, "pending"),
        points_tensor([*failed, *stopped], d, "failed or stopped"),
        n,
        seed,
        settings,
        state,
        override_objectives(ref.metric, ref.param_fraction) if ref is not None else None,
        warm_input(warm, d) if warm is not None else None,
    )
    return [Proposal(space.decode(list(x)), tuple(x), source) for x, source in points]
