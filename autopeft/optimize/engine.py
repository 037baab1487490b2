"""The proposal loop on plain tensors: history in, new grid points out.

:func:`propose_points` is :func:`autopeft.optimize.propose` without configurations:
a :class:`~autopeft.optimize.domain.Domain`, the completed points and their
maximised objectives, pending and failed points. Benchmarks call it directly on
bare grids.

A warm-started study (:mod:`.warm`) adds two things. Its first proposals are the earlier
studies' front points (``warm_start``), queued while the study is within its initial design
(fewer trials than ``n_initial``) and has warm-start slots left. And with enough related
observations (``MIN_MODEL_POINTS``) a ``gp`` study models them as related tasks
(:mod:`.multitask`) and skips the rest of its Sobol design: the model takes over as soon as the
study has ``MIN_MODEL_POINTS`` results of its own, because the earlier data carries the shape
that the Sobol trials would otherwise have to find.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch

from autopeft.errors import OptimizerError
from autopeft.optimize.domain import Domain, check_points, from_index, snap, to_index
from autopeft.optimize.runtime import derive_seed, sandbox
from autopeft.optimize.settings import OptimizerSettings
from autopeft.optimize.sobol import space_filling
from autopeft.optimize.state import OptimizerState

if TYPE_CHECKING:
    from autopeft.optimize.acquisition import Acquisition
    from autopeft.optimize.warm import Related, WarmStart

#: Completed trials a model needs at least; before that, proposals stay space-filling.
MIN_MODEL_POINTS = 4


class Warm(NamedTuple):
    """A warm start as the engine takes it: related observations (None: none to model), the
    earlier front points to queue first (``s x d``) and how many of them may still be queued."""

    related: Related | None
    seeds: torch.Tensor
    slots: int


def propose_points(
    domain: Domain,
    X: torch.Tensor,
    Y: torch.Tensor,
    pending: torch.Tensor,
    failed: torch.Tensor,
    n: int,
    seed: int,
    settings: OptimizerSettings | None = None,
    state: OptimizerState | None = None,
    reference: torch.Tensor | None = None,
    warm: Warm | None = None,
) -> list[tuple[tuple[float, ...], str]]:
    """``n`` new canonical points, distinct trials, none of them completed, pending or failed,
    each with what chose it: ``warm_start`` (an earlier study's front point), ``sobol`` or
    ``random`` (the space-filling design) or the model (``gp``, ``saas`` or ``tpe``).

    Args:
        domain: the grid and its trial identity.
        X: ``n_c x d`` completed points; Y: their ``n_c x m`` maximised objectives (finite).
        pending: ``n_p x d`` queued or running points; failed: ``n_f x d`` failed points.
        n: how many points to propose.
        seed: the study seed (mixed with the history size, so successive calls differ).
        settings: the method and its levers (default: ``gp``).
        state: the study's optimiser memory (warm starts, caches), optional.
        reference: ``m`` user reference point in objective units, NaN where the data decides.
        warm: what the study takes from earlier studies (see the module docstring), optional.
    """
    settings = settings or OptimizerSettings()
    d = len(domain.cardinalities)
    _check_inputs(X, Y, pending, failed, n, d)
    taken = {domain.key(row) for part in (X, pending, failed) for row in part.tolist()}
    taken |= set(getattr(domain, "excluded", ()))  # e.g. the key of every point outside a parameter budget
    history = X.shape[0] + pending.shape[0] + failed.shape[0]
    sourced: list[tuple[tuple[float, ...], str]] = []
    if warm is not None and warm.slots > 0 and history < settings.n_initial_for(d):
        sourced = [(p, "warm_start") for p in _seeds(domain, warm.seeds, min(n, warm.slots), taken)]
        if len(sourced) == n:
            return sourced
        pending = torch.cat([pending, torch.tensor([p for p, _ in sourced], dtype=torch.double).reshape(-1, d)])
        history, n = history + len(sourced), n - len(sourced)
    related = warm.related if warm is not None and _models_related(warm, settings) else None
    n_fill = _space_filling_count(settings, d, history, X.shape[0], n, related is not None)
    filling = "random" if settings.method == "random" else "sobol"
    out = space_filling(domain, n_fill, seed, history, taken, scramble=filling == "sobol")
    sourced += [(point, filling) for point in out]
    if len(out) < n:
        extra = torch.tensor(out, dtype=torch.double).reshape(-1, d)
        if settings.method == "tpe":
            more = torch.cat([pending, extra])
            modelled = _tpe_based(domain, X, Y, more, n - len(out), seed, settings, state, taken, history)
        else:
            modelled = _model_based(
                domain, X, Y, torch.cat([pending, extra]), n - len(out), seed, settings, state, reference, taken,
                history, related,
            )  # fmt: skip
        sourced += [(point, settings.method) for point in modelled]
    return sourced


def warm_input(warm: WarmStart, d: int) -> Warm:
    """A :class:`~autopeft.optimize.warm.WarmStart` as tensors (``d``: the space's dimensions)."""
    from autopeft.optimize.warm import related_tensors

    related = related_tensors(warm, d) if warm.n_related else None
    return Warm(related, points_tensor(warm.seeds, d, "warm-start configurations"), warm.slots)


def _seeds(domain: Domain, seeds: torch.Tensor, k: int, taken: set[Hashable]) -> list[tuple[float, ...]]:
    """Up to ``k`` of the warm-start points, in their order, that are not taken; ``taken`` gains them."""
    out: list[tuple[float, ...]] = []
    for row in seeds.tolist():
        if len(out) == k:
            break
        key = domain.key(row)
        if key not in taken:
            taken.add(key)
            out.append(domain.canonical(row))
    return out


def _models_related(warm: Warm, settings: OptimizerSettings) -> bool:
    """Whether the model learns from the earlier studies: a ``gp`` study (SAAS has no multi-task form
    here; it keeps its own data and only re-evaluates the seeds) with enough related observations."""
    return settings.method == "gp" and warm.related is not None and warm.related.X.shape[0] >= MIN_MODEL_POINTS


def _check_inputs(
    X: torch.Tensor, Y: torch.Tensor, pending: torch.Tensor, failed: torch.Tensor, n: int, d: int
) -> None:
    if n < 1:
        raise OptimizerError(f"n must be at least 1, got {n}")
    for part, what in ((X, "completed"), (pending, "pending"), (failed, "failed")):
        check_points(part, d, what)
    if Y.ndim != 2 or Y.shape[0] != X.shape[0] or Y.shape[1] < 2:
        raise OptimizerError(f"objectives must be {X.shape[0]} x m with m >= 2, got shape {tuple(Y.shape)}")
    if not torch.isfinite(Y).all():
        raise OptimizerError(f"objectives must be finite, got {Y[~torch.isfinite(Y).all(dim=-1)][0].tolist()}")


def _space_filling_count(
    settings: OptimizerSettings, d: int, history: int, completed: int, n: int, related: bool = False
) -> int:
    """How many of the ``n`` proposals come from the Sobol (or random) design: all of them until the
    model has ``MIN_MODEL_POINTS`` results, then the rest of ``n_initial`` (none with related data)."""
    if settings.method in ("sobol", "random") or completed < MIN_MODEL_POINTS:
        return n
    if related:
        return 0
    return min(n, max(0, settings.n_initial_for(d) - history))


def _model_based(
    domain: Domain,
    X: torch.Tensor,
    Y: torch.Tensor,
    pending: torch.Tensor,
    n: int,
    seed: int,
    settings: OptimizerSettings,
    state: OptimizerState | None,
    reference: torch.Tensor | None,
    taken: set[Hashable],
    history: int,
    related: Related | None = None,
) -> list[tuple[float, ...]]:
    """``n`` points by sequential greedy qLogNEHVI (each chosen point joins the pending ones); with
    ``related``, on a multi-task model of the study and the earlier ones (its baseline, reference
    point and Pareto parents are the study's own)."""
    from autopeft.optimize.acquisition import build_acquisition
    from autopeft.optimize.reference import acquisition_reference
    from autopeft.optimize.transforms import fit_transform

    cards = torch.tensor(list(domain.cardinalities), dtype=torch.double)
    run_seed = derive_seed(seed, history)
    with sandbox(settings.threads, run_seed):
        t0 = time.perf_counter()
        Xs, pending_s = snap(X, cards), snap(pending, cards)
        Z, transform = fit_transform(Y.to(torch.double), settings.outcome_transform)
        model = _fitted_model(Xs, Z, list(domain.cardinalities), settings, state, run_seed, related)
        t1 = time.perf_counter()
        ref = acquisition_reference(Z, transform, reference)
        # the cached qLogNEHVI needs single-task GPs; a multi-task model goes through botorch's own
        cached = settings.nehvi == "cached" and settings.method == "gp" and related is None
        acqf = build_acquisition(
            model, Xs, Z, ref, pending_s, settings.mc_samples, settings.max_baseline, run_seed, cached
        )
        t2 = time.perf_counter()
        chosen = _greedy(acqf, domain, cards, Xs, Z, n, settings, run_seed, taken)
    if state is not None:
        state.timings = {"fit": t1 - t0, "acquisition": t2 - t1, "search": time.perf_counter() - t2}
    out = [domain.canonical(x.tolist()) for x in chosen]
    if len(out) < n:  # the acquisition found nothing new: fill with the space-filling design
        out += space_filling(domain, n - len(out), seed, history + len(out), taken)
    return out


def _tpe_based(
    domain: Domain,
    X: torch.Tensor,
    Y: torch.Tensor,
    pending: torch.Tensor,
    n: int,
    seed: int,
    settings: OptimizerSettings,
    state: OptimizerState | None,
    taken: set[Hashable],
    history: int,
) -> list[tuple[float, ...]]:
    """``n`` points from :mod:`.tpe` (the rest from the space-filling design when it keeps drawing taken ones)."""
    from autopeft.optimize.tpe import propose_tpe

    t0 = time.perf_counter()
    out = propose_tpe(domain, X, Y, pending, n, derive_seed(seed, history), settings.tpe_candidates, taken)
    if state is not None:
        state.timings = {"search": time.perf_counter() - t0}
    if len(out) < n:
        out += space_filling(domain, n - len(out), seed, history + len(out), taken)
    return out


def _greedy(
    acqf: Acquisition,
    domain: Domain,
    cards: torch.Tensor,
    X: torch.Tensor,
    Z: torch.Tensor,
    n: int,
    settings: OptimizerSettings,
    seed: int,
    taken: set[Hashable],
) -> list[torch.Tensor]:
    """Up to ``n`` new points (``d`` bin centres each), one acquisition maximisation at a time,
    each chosen point added to the acquisition's pending points and to ``taken``.

    ``X`` (``n_c x d``) and ``Z`` (``n_c x m``) give the Pareto set whose mutations seed the search.
    """
    from autopeft.optimize.discrete import SearchBudget, maximize
    from autopeft.pareto import pareto_mask

    parents = to_index(X[pareto_mask(Z)], cards)
    budget = SearchBudget(settings.raw_samples, settings.num_restarts, settings.local_search_steps)
    chosen: list[torch.Tensor] = []
    for i in range(n):
        idx = maximize(acqf, cards, parents, budget, derive_seed(seed, i), lambda x: domain.key(x.tolist()), taken)
        if idx is None:
            break
        x = from_index(idx, cards)
        taken.add(domain.key(x.tolist()))
        chosen.append(x)
        if i + 1 < n:
            acqf.add_pending(x.unsqueeze(0))
    return chosen


def _fitted_model(
    X: torch.Tensor,
    Z: torch.Tensor,
    cards: Sequence[int],
    settings: OptimizerSettings,
    state: OptimizerState | None,
    seed: int,
    related: Related | None = None,
) -> object:
    """The model of ``Z`` (``n x m``) on ``X`` (``n x d``): reused from ``state`` when it was
    fitted on the same data with the same settings, else fitted (warm-started if allowed);
    with ``related``, a multi-task model of the study (task 0) and the earlier studies."""
    data = _related_data(related, X.shape[0], cards, settings) if related is not None else None
    fingerprint = _fingerprint(X, Z, settings, *(data or ()))
    if state is not None and state.fitted_for == fingerprint and state.fitted_model is not None:
        state.last_fit = "reused"
        return state.fitted_model
    if data is not None:
        from autopeft.optimize.multitask import fit_multitask_list

        model = fit_multitask_list(X, Z, *data, cards, state, settings.warm_start, settings.kernel)
    elif settings.method == "saas":
        from autopeft.optimize.saas import fit_saas_list

        model = fit_saas_list(X, Z, settings, seed, state)
    else:
        from autopeft.optimize.gp import fit_gp_list

        model = fit_gp_list(
            X,
            Z,
            cards,
            state,
            settings.warm_start,
            settings.kernel,
            settings.fit_points,
            settings.refit_growth,
            settings.lazy_refit_from,
        )
    if state is not None:
        state.fitted_for, state.fitted_model = fingerprint, model
    return model


def _related_data(
    related: Related, own: int, cards: Sequence[int], settings: OptimizerSettings
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The related rows the model fits: snapped points (``n_r x d``), objectives transformed within
    each task (``n_r x m``) and tasks (``n_r``), capped to the study's ``fit_points``."""
    from autopeft.optimize.multitask import cap_related, per_task_transform

    Zr = per_task_transform(related.Y.to(torch.double), related.task, settings.outcome_transform)
    keep = cap_related(Zr, own, settings.fit_points)
    Xr = snap(related.X[keep], torch.tensor(list(cards), dtype=torch.double))
    return Xr, Zr[keep], related.task[keep]


def _fingerprint(X: torch.Tensor, Z: torch.Tensor, settings: OptimizerSettings, *more: torch.Tensor) -> str:
    """Digest of the training data (``more``: the related rows, if any) and the settings that shape the model."""
    h = hashlib.sha256()
    h.update(
        settings.model_dump_json(
            include={
                "method",
                "outcome_transform",
                "kernel",
                "fit_points",
                "saas_warmup",
                "saas_samples",
                "saas_thinning",
                "saas_max_tree_depth",
            }
        ).encode()
    )
    h.update(f"related:{len(more)}".encode())
    for t in (X, Z, *more):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().contiguous().to(torch.double).numpy().tobytes())
    return h.hexdigest()


def points_tensor(points: Sequence[Sequence[float]], d: int, what: str) -> torch.Tensor:
    """``len(points) x d`` double tensor, with an :class:`OptimizerError` naming ``what`` on bad shapes."""
    try:
        t = torch.tensor([list(map(float, p)) for p in points], dtype=torch.double)
    except (TypeError, ValueError) as err:
        raise OptimizerError(f"{what}: points must be sequences of numbers ({err})") from None
    return t.reshape(-1, d) if t.numel() == 0 else t
