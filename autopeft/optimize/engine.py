"""The proposal loop on plain tensors: history in, new grid points out.

:func:`propose_points` is :func:`autopeft.optimize.propose` without configurations:
a :class:`~autopeft.optimize.domain.Domain`, the completed points and their
maximised objectives, pending and failed points. Benchmarks call it directly on
bare grids.

A warm-started study (:mod:`.warm`) adds two things. Its first proposals are the earlier
studies' front points (``warm_start``), queued while the study is within its initial design
(fewer trials than ``n_initial``) and has warm-start slots left. And with enough related
observations (``MIN_MODEL_POINTS``) a method that learns from them (``gp``) models them as related tasks
(:mod:`.multitask`) and skips the rest of its Sobol design: the model takes over as soon as the
study has ``MIN_MODEL_POINTS`` results of its own, because the earlier data carries the shape
that the Sobol trials would otherwise have to find.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch

from autopeft.errors import OptimizerError
from autopeft.optimize.domain import Domain, check_points
from autopeft.optimize.methods.base import History, Method, MethodSettings
from autopeft.optimize.methods.registry import method_of, parse_optimizer
from autopeft.optimize.settings import MIN_MODEL_POINTS
from autopeft.optimize.sobol import space_filling
from autopeft.optimize.state import OptimizerState

if TYPE_CHECKING:
    from autopeft.optimize.warm import Related, WarmStart



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
    settings: MethodSettings | None = None,
    state: OptimizerState | None = None,
    warm: Warm | None = None,
) -> list[tuple[tuple[float, ...], str]]:
    """``n`` new canonical points, distinct trials, none of them completed, pending or failed,
    each with what chose it: ``warm_start`` (an earlier study's front point), ``sobol`` or
    ``random`` (the space-filling design) or the method (``gp``, ``saas``, ...: its :meth:`Method.propose`).

    Args:
        domain: the grid and its trial identity.
        X: ``n_c x d`` completed points; Y: their ``n_c x m`` maximised objectives (finite).
        pending: ``n_p x d`` queued or running points; failed: ``n_f x d`` failed points.
        n: how many points to propose.
        seed: the study seed (mixed with the history size, so successive calls differ).
        settings: the method and its levers (default: ``gp``; :mod:`autopeft.optimize.methods`).
        state: the study's optimiser memory (warm starts, caches), optional.
        warm: what the study takes from earlier studies (see the module docstring), optional.
    """
    settings = settings or parse_optimizer()
    method = method_of(settings)
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
    related = warm.related if warm is not None and _models_related(warm, method) else None
    n_fill = (
        n if method.space_filling else _space_filling_count(settings, d, history, X.shape[0], n, related is not None)
    )
    out = space_filling(domain, n_fill, seed, history, taken, scramble=method.design == "sobol")
    sourced += [(point, method.design) for point in out]
    if len(out) < n:
        extra = torch.tensor(out, dtype=torch.double).reshape(-1, d)
        past = History(domain, X, Y, torch.cat([pending, extra]), seed, history, taken, state, related)
        sourced += [(point, method.name) for point in method.propose(settings, past, n - len(out))]
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


def _models_related(warm: Warm, method: Method[MethodSettings]) -> bool:
    """Whether the model learns from the earlier studies: a method that ``learns_related`` (``gp``; SAAS has
    no multi-task form here: it keeps its own data and only re-evaluates the seeds) with enough of them."""
    return method.learns_related and warm.related is not None and warm.related.X.shape[0] >= MIN_MODEL_POINTS


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
    settings: MethodSettings, d: int, history: int, completed: int, n: int, related: bool = False
) -> int:
    """How many of the ``n`` proposals of a model-based method come from its space-filling design: all of
    them until the model has ``MIN_MODEL_POINTS`` results, then the rest of ``n_initial`` (none with related data)."""
    if completed < MIN_MODEL_POINTS:
        return n
    if related:
        return 0
    return min(n, max(0, settings.n_initial_for(d) - history))


def points_tensor(points: Sequence[Sequence[float]], d: int, what: str) -> torch.Tensor:
    """``len(points) x d`` double tensor, with an :class:`OptimizerError` naming ``what`` on bad shapes."""
    try:
        t = torch.tensor([list(map(float, p)) for p in points], dtype=torch.double)
    except (TypeError, ValueError) as err:
        raise OptimizerError(f"{what}: points must be sequences of numbers ({err})") from None
    return t.reshape(-1, d) if t.numel() == 0 else t
