"""Proposal strategies: what to train next, given a study's results so far.

``propose(space, completed, pending, n, seed, settings, failed, state=..., stopped=...)``
returns ``n`` new configurations that are not completed, pending (queued or running),
failed or stopped early in the study, and not repeated within the batch. It sees plain snapshots
only, never storage or the network.

Methods (``optimizer.method``; one file each in :mod:`autopeft.optimize.methods`, each with its own
settings model; :data:`OptimizerSettings` is their union, :func:`parse_optimizer` reads one):

- ``gp`` (default): a scrambled Sobol design for the first trials, then one GP per
  objective, qLogNEHVI with the pending trials as ``X_pending``, a data-driven
  reference point, and a discrete local search on the space's bins;
  batches are chosen greedily, each choice joining the pending points.
- ``saas``: the same with fully Bayesian SAAS GPs (NUTS via pyro, bounded cost).
- ``tpe``: the same Sobol design, then Optuna's multivariate multi-objective TPE with
  constant liar for the pending trials.
- ``sobol`` / ``random``: the space-filling baselines.

A study's parameter budget (its ``constraints``, :mod:`autopeft.optimize.budget`) takes
every configuration outside it out of the grid: it is never proposed.

A warm start (``warm``, :mod:`autopeft.optimize.warm`) queues the earlier studies' front
configurations first (``source`` ``warm_start``) and, for ``gp``, models the earlier trials as
related tasks (:mod:`autopeft.optimize.multitask`); see docs/warm_start.md.

Objectives are maximised as ``(metric, -log10 max(param_fraction, 1e-6))``
(:func:`autopeft.pareto.to_objectives`). Same inputs, seed and state give the same
proposals; torch's threads and random state are restored afterwards. Layout:
``engine`` (the loop), ``methods`` (one file per method), ``sobol``, ``gp``, ``saas``, ``multitask``, ``warm``,
``acquisition``,
``discrete`` (acquisition optimiser), ``reference``, ``transforms``, ``domain``, ``runtime``,
``state``; see docs/optimizer.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autopeft.config import PeftConfig
from autopeft.errors import OptimizerError
from autopeft.optimize.methods.base import Method, MethodSettings
from autopeft.optimize.methods.bayesian import BayesianSettings
from autopeft.optimize.methods.gp import GpSettings
from autopeft.optimize.methods.random import RandomSettings
from autopeft.optimize.methods.registry import METHODS, OptimizerSettings, method_of, parse_optimizer
from autopeft.optimize.methods.saas import SaasSettings
from autopeft.optimize.methods.sobol import SobolSettings
from autopeft.optimize.methods.tpe import TpeSettings
from autopeft.optimize.settings import ParamBudget, ReferencePoint, WarmStartSettings, default_n_initial
from autopeft.optimize.state import OptimizerState
from autopeft.space import Space

if TYPE_CHECKING:
    from autopeft.optimize.warm import WarmStart

__all__ = [
    "METHODS",
    "BayesianSettings",
    "GpSettings",
    "Method",
    "MethodSettings",
    "Observation",
    "OptimizerSettings",
    "OptimizerState",
    "ParamBudget",
    "Proposal",
    "RandomSettings",
    "ReferencePoint",
    "SaasSettings",
    "SobolSettings",
    "TpeSettings",
    "WarmStartSettings",
    "default_n_initial",
    "method_of",
    "parse_optimizer",
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
    (the space-filling design) or the method (``gp``, ``saas``, ...)."""

    config: PeftConfig
    x: tuple[float, ...]
    source: str = "sobol"


def propose(
    space: Space,
    completed: Sequence[Observation],
    pending: Sequence[Sequence[float]],
    n: int,
    seed: int,
    settings: MethodSettings | None = None,
    failed: Sequence[Sequence[float]] = (),
    *,
    state: OptimizerState | None = None,
    stopped: Sequence[Sequence[float]] = (),
    warm: WarmStart | None = None,
    constraints: ParamBudget | None = None,
) -> list[Proposal]:
    """``n`` new, distinct configurations for the study (see the module docstring).

    Args:
        space: the study's search space.
        completed: completed trials (points and objectives); failed trials go in ``failed``.
        pending: points of queued and running trials.
        n: how many configurations to propose (the batch is chosen jointly).
        seed: the study seed.
        settings: the study's ``optimizer`` object (default: ``gp``): a method's settings
            (:func:`parse_optimizer` reads one from JSON).
        failed: points of failed trials: never modelled, never proposed again.
        state: the study's :class:`OptimizerState` (warm starts and caches); optional.
        stopped: points of trials the early-stopping rule stopped: like ``failed``, never modelled (their
            metric is partial: it would read as a final result) and never proposed again (the rule found
            them dominated once already).
        warm: what the study takes from the earlier studies it names
            (:func:`autopeft.optimize.warm.build_warm_start`); the front, the reference point and
            the acquisition's baseline stay the study's own.
        constraints: the study's parameter budget: no configuration outside it is proposed.

    Raises:
        OptimizerError: bad inputs (wrong dimension, non-finite objectives, n < 1), or the
            space has fewer than ``n`` configurations left.
    """
    from autopeft.optimize.domain import SpaceDomain
    from autopeft.optimize.engine import points_tensor, propose_points, warm_input
    from autopeft.pareto import to_objectives

    settings = settings or parse_optimizer()
    d = space.d
    try:
        Y = to_objectives([o.metric for o in completed], [o.param_fraction for o in completed])
    except ValueError as err:
        raise OptimizerError(f"completed trials: {err}") from None
    feasible = repair = None
    if constraints is not None and constraints.active:
        from autopeft.optimize.budget import feasibility, repairer

        feasible, repair = feasibility(space, constraints), repairer(space, constraints)
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
        warm_input(warm, d) if warm is not None else None,
    )
    return [Proposal(space.decode(list(x)), tuple(x), source) for x, source in points]
