"""``tpe``: Optuna's multi-objective Tree-structured Parzen Estimator over the space's bins.

Why: it is the peer a user would otherwise wire to a training script ("Optuna and a training
loop"), so it is a method of the study that shares everything with ``gp`` but the model: the
space's ordered discrete dimensions (one ``IntDistribution`` of bin indices each), the Sobol
initial design (the engine runs it before any method's model), the parameter budget (a point
outside it is moved into it, as Sobol draws are, or refused), de-duplication, and the pending
trials, which Optuna's constant liar sees as running trials (scored worst, so the next proposals
move away from them). Optuna keeps no state here: each proposal builds an in-memory study from
the snapshot it is given, so the same history and seed give the same proposals.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from pydantic import Field

from autopeft.optimize.methods.base import History, Method, MethodSettings, register

#: Draws per wanted point at most before the rest of a batch falls back to the space-filling design.
MAX_DRAWS_PER_POINT = 32


class TpeSettings(MethodSettings):
    """``{"method": "tpe", ...}``: Optuna's ``TPESampler(multivariate=True, constant_liar=True)``."""

    method: Literal["tpe"] = "tpe"
    n_ei_candidates: int = Field(
        24, ge=1, le=4096, description="Draws from the good points' density scored per proposal (Optuna's default)."
    )


@register
class Tpe(Method[TpeSettings]):
    name = "tpe"
    settings_type = TpeSettings

    def propose(self, settings: TpeSettings, history: History, n: int) -> list[tuple[float, ...]]:
        """``n`` points from a multivariate TPE with constant liar; the space-filling design fills in when
        TPE keeps drawing taken points (a nearly exhausted space)."""
        from autopeft.optimize.runtime import derive_seed
        from autopeft.optimize.sobol import space_filling

        seed = derive_seed(history.seed, history.position)
        out = _tpe_points(history, n, seed, settings.n_ei_candidates)
        if len(out) < n:
            out += space_filling(history.domain, n - len(out), history.seed, history.position + len(out), history.taken)
        return out


def _tpe_points(history: History, n: int, seed: int, candidates: int) -> list[tuple[float, ...]]:
    """Up to ``n`` new canonical points; ``history.taken`` gains their keys.

    The completed trials (``n_c x d`` points, ``n_c x m`` maximised objectives) are Optuna's complete
    trials, the pending ones (``n_p x d``) its running trials; every point asked for stays running, so
    an accepted one is pending for the rest of the batch and a refused one (taken, or outside the
    budget and not repairable) moves the next draws away from it.
    """
    import optuna
    import torch
    from optuna.distributions import IntDistribution
    from optuna.trial import TrialState, create_trial

    from autopeft.optimize.domain import from_index, to_index

    domain = history.domain
    cards = torch.tensor(list(domain.cardinalities), dtype=torch.double)
    names = [f"x{i}" for i in range(len(cards))]
    space = {name: IntDistribution(0, int(c) - 1) for name, c in zip(names, cards.tolist())}
    repair = getattr(domain, "repair", None)
    excluded = getattr(domain, "excluded", frozenset())
    out: list[tuple[float, ...]] = []
    with _quiet():
        sampler = optuna.samplers.TPESampler(
            multivariate=True, constant_liar=True, n_startup_trials=0, n_ei_candidates=candidates, seed=seed % 2**32
        )
        study = optuna.create_study(directions=["maximize"] * history.Y.shape[1], sampler=sampler)
        for bins, values in zip(to_index(history.X, cards).tolist(), history.Y.tolist()):
            study.add_trial(create_trial(params=dict(zip(names, bins)), distributions=space, values=values))
        for bins in to_index(history.pending, cards).tolist():
            study.add_trial(create_trial(params=dict(zip(names, bins)), distributions=space, state=TrialState.RUNNING))
        for _ in range(MAX_DRAWS_PER_POINT * n):
            trial = study.ask(space)
            x = from_index(torch.tensor([trial.params[name] for name in names]), cards).tolist()
            key = domain.key(x)
            if key in excluded and repair is not None and (moved := repair(x)) is not None:
                x, key = moved, domain.key(moved)
            if key in history.taken:
                continue
            history.taken.add(key)
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
