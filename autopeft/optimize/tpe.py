"""``tpe``: Optuna's multi-objective Tree-structured Parzen Estimator over the space's bins.

Why: it is the peer a user would otherwise wire to a training script ("Optuna and a training
loop"), so it is a method of the study that shares everything with ``gp`` but the model: the
space's ordered discrete dimensions (one ``IntDistribution`` of bin indices each), the Sobol
initial design (:mod:`.engine` runs it before any method's model), the parameter budget (a
point outside it is moved into it, as Sobol draws are, or refused), de-duplication, and the
pending trials, which Optuna's constant liar sees as running trials (scored worst, so the next
proposals move away from them). Optuna keeps no state here: each proposal builds an in-memory
study from the snapshot it is given, so the same history and seed give the same proposals.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

import torch

from autopeft.optimize.domain import Domain, from_index, to_index

#: Draws per wanted point at most before the rest of a batch falls back to the space-filling design.
MAX_DRAWS_PER_POINT = 32


def propose_tpe(
    domain: Domain,
    X: torch.Tensor,
    Y: torch.Tensor,
    pending: torch.Tensor,
    n: int,
    seed: int,
    candidates: int,
    taken: set[Hashable],
) -> list[tuple[float, ...]]:
    """Up to ``n`` new canonical points from a multivariate TPE with constant liar; ``taken`` gains their keys.

    Args:
        domain: the grid and its trial identity (with ``repair``/``excluded`` for a parameter budget).
        X: ``n_c x d`` completed points; Y: their ``n_c x m`` maximised objectives.
        pending: ``n_p x d`` queued or running points (Optuna's running trials).
        n: points wanted; fewer come back when TPE keeps drawing taken points.
        seed: the proposal's seed (the study seed mixed with its history).
        candidates: Optuna's ``n_ei_candidates``: draws from the good-points density scored per proposal.
        taken: keys never to propose (completed, pending, failed; the key of points outside the budget).
    """
    import optuna
    from optuna.distributions import IntDistribution
    from optuna.trial import TrialState, create_trial

    cards = torch.tensor(list(domain.cardinalities), dtype=torch.double)
    names = [f"x{i}" for i in range(len(cards))]
    space = {name: IntDistribution(0, int(c) - 1) for name, c in zip(names, cards.tolist())}
    repair = getattr(domain, "repair", None)
    excluded = getattr(domain, "excluded", frozenset())
    with _quiet():
        sampler = optuna.samplers.TPESampler(
            multivariate=True, constant_liar=True, n_startup_trials=0, n_ei_candidates=candidates, seed=seed % 2**32
        )
        study = optuna.create_study(directions=["maximize"] * Y.shape[1], sampler=sampler)
        for bins, values in zip(to_index(X, cards).tolist(), Y.tolist()):
            study.add_trial(create_trial(params=dict(zip(names, bins)), distributions=space, values=values))
        for bins in to_index(pending, cards).tolist():
            study.add_trial(create_trial(params=dict(zip(names, bins)), distributions=space, state=TrialState.RUNNING))
        out: list[tuple[float, ...]] = []
        for _ in range(MAX_DRAWS_PER_POINT * n):
            # an asked trial stays running: accepted, it is pending for the rest of the batch; refused
            # (taken, or outside the budget), the liar moves the next draws away from it
            trial = study.ask(space)
            x = from_index(torch.tensor([trial.params[name] for name in names]), cards).tolist()
            key = domain.key(x)
            if key in excluded and repair is not None and (moved := repair(x)) is not None:
                x, key = moved, domain.key(moved)
            if key in taken:
                continue
            taken.add(key)
            out.append(domain.canonical(x))
            if len(out) == n:
                break
    return out


@contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's per-trial log lines and its experimental-feature warnings are noise in a server's log."""
    from optuna.exceptions import ExperimentalWarning

    logger = logging.getLogger("optuna")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            yield
    finally:
        logger.setLevel(level)
