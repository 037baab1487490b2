"""Warm start: what a new study takes from the earlier studies it names (docs/warm_start.md).

Two things, both read afresh at every proposal (a still-running earlier study contributes what it
has by then), and both only from configurations that the new space encodes exactly
(:meth:`autopeft.space.Space.encode`: the family exists in the space, each size is one of its
values, every layer index is within the new model's layers):

- seeds: each earlier study's Pareto-front configurations, queued as the new study's first
  trials (``source: "warm_start"``) and trained again on the new task: their earlier results
  are never copied;
- related observations: every completed trial of the earlier studies, as data of a related task
  (one task per earlier study) for the multi-task GP (:mod:`.multitask`).

Pure: the server reads the earlier trials from storage and passes them here as
:class:`EarlierTrial` values; the engine takes a :class:`WarmStart`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autopeft.errors import ConfigError, SpaceError

if TYPE_CHECKING:
    import torch

    from autopeft.space import Space

#: What a trial of the new study that re-evaluates an earlier front configuration is marked with.
WARM_SOURCE = "warm_start"

#: Point of an earlier trial in the new space (None: the space cannot encode it), by (study id, trial id).
PointCache = dict[tuple[int, int], tuple[float, ...] | None]


@dataclass(frozen=True)
class EarlierTrial:
    """A completed trial of an earlier study, as plain data."""

    study_id: int
    trial_id: int
    config: Mapping[str, Any]
    metric: float
    param_fraction: float


@dataclass(frozen=True)
class WarmStart:
    """What the optimiser of a warm-started study receives.

    Attributes:
        x, metric, param_fraction, task: the related observations (earlier completed trials
            the new space encodes): points, objectives, and the task of each (``1..K``: the
            position of its study in ``warm_start.studies``; the new study is task 0).
        seeds: earlier front points to train first, in the order to queue them.
        slots: how many more warm-start trials the study may queue.
    """

    x: tuple[tuple[float, ...], ...] = ()
    metric: tuple[float, ...] = ()
    param_fraction: tuple[float, ...] = ()
    task: tuple[int, ...] = ()
    seeds: tuple[tuple[float, ...], ...] = ()
    slots: int = 0
    #: Earlier completed trials in all, encodable or not (for logs and summaries).
    seen: int = field(default=0, compare=False)

    @property
    def n_related(self) -> int:
        return len(self.x)


def encoded(space: Space, config: Mapping[str, Any]) -> tuple[float, ...] | None:
    """The canonical point of ``config`` in ``space``; None when the space cannot encode it exactly
    (a family it lacks, a size off its ladder, a layer the model does not have, ...)."""
    try:
        return tuple(space.encode(config))
    except (SpaceError, ConfigError):
        return None


def build_warm_start(
    space: Space,
    studies: Sequence[int],
    trials: Sequence[EarlierTrial],
    slots: int,
    cache: PointCache | None = None,
) -> WarmStart:
    """The warm start of a study in ``space`` from the completed ``trials`` of the earlier ``studies``.

    Args:
        space: the new study's space (built for its model).
        studies: the earlier studies' ids, in the order the study names them (task ``i + 1``).
        trials: their completed trials; trials of other studies are ignored.
        slots: warm-start trials the study may still queue (``max_configs`` minus those it has).
        cache: points already encoded, by (study id, trial id); it gains the new ones.
    """
    cache = {} if cache is None else cache
    task_of = {int(s): i + 1 for i, s in enumerate(studies)}
    by_study: dict[int, list[tuple[EarlierTrial, tuple[float, ...] | None]]] = {s: [] for s in task_of}
    for t in trials:
        if t.study_id not in task_of or not (math.isfinite(t.metric) and math.isfinite(t.param_fraction)):
            continue
        key = (t.study_id, t.trial_id)
        if key not in cache:
            cache[key] = encoded(space, t.config)
        by_study[t.study_id].append((t, cache[key]))
    related = [(task_of[t.study_id], x, t) for s in by_study for t, x in by_study[s] if x is not None]
    fronts = [[x for _, x in front_of(by_study[s]) if x is not None] for s in task_of]
    return WarmStart(
        x=tuple(x for _, x, _ in related),
        metric=tuple(float(t.metric) for _, _, t in related),
        param_fraction=tuple(float(t.param_fraction) for _, _, t in related),
        task=tuple(task for task, _, _ in related),
        seeds=tuple(interleave(fronts)),
        slots=max(0, int(slots)),
        seen=sum(len(v) for v in by_study.values()),
    )


def front_of(
    results: Sequence[tuple[EarlierTrial, tuple[float, ...] | None]],
) -> list[tuple[EarlierTrial, tuple[float, ...] | None]]:
    """An earlier study's Pareto front (of all its completed trials, as the study reports it), in
    :func:`spread_order`."""
    from autopeft.pareto import pareto_mask, to_objectives

    if not results:
        return []
    y = to_objectives([t.metric for t, _ in results], [t.param_fraction for t, _ in results])
    idx = [int(i) for i in pareto_mask(y).nonzero().flatten()]
    order = spread_order([float(y[i, 0]) for i in idx], [float(y[i, 1]) for i in idx])
    return [results[idx[k]] for k in order]


def spread_order(metrics: Sequence[float], costs: Sequence[float]) -> list[int]:
    """Indices of a front's points so that every prefix spreads along it: the best metric first,
    then, each time, the point farthest in the cost objective (``-log10 param_fraction``) from those
    already chosen (ties: the better metric, then the lower index). A study that may re-evaluate
    only a few front configurations gets both ends and the middle, not one end."""
    n = len(metrics)
    if n == 0:
        return []
    first = min(range(n), key=lambda i: (-metrics[i], i))
    chosen, rest = [first], set(range(n)) - {first}
    while rest:
        nxt = min(rest, key=lambda i: (-min(abs(costs[i] - costs[c]) for c in chosen), -metrics[i], i))
        chosen.append(nxt)
        rest.remove(nxt)
    return chosen


def interleave(lists: Sequence[Sequence[tuple[float, ...]]]) -> list[tuple[float, ...]]:
    """Round robin over the earlier studies' fronts (each in its own order), without repeats: with
    a small ``max_configs`` every earlier study contributes."""
    out: list[tuple[float, ...]] = []
    seen: set[tuple[float, ...]] = set()
    for k in range(max((len(x) for x in lists), default=0)):
        for points in lists:
            if k < len(points) and points[k] not in seen:
                seen.add(points[k])
                out.append(points[k])
    return out


@dataclass(frozen=True)
class Related:
    """The related observations as the engine models them (``n_r`` rows, ``d`` dimensions).

    ``X``: ``n_r x d`` points; ``Y``: ``n_r x m`` maximised objectives; ``task``: ``n_r`` task
    indices (``>= 1``; the new study is task 0).
    """

    X: torch.Tensor
    Y: torch.Tensor
    task: torch.Tensor


def related_tensors(warm: WarmStart, d: int) -> Related:
    """:class:`Related` of a warm start's observations (:class:`OptimizerError` on a bad point)."""
    import torch

    from autopeft.errors import OptimizerError
    from autopeft.optimize.domain import check_points
    from autopeft.pareto import to_objectives

    X = torch.tensor([list(x) for x in warm.x], dtype=torch.double).reshape(-1, d)
    check_points(X, d, "warm start")
    try:
        Y = to_objectives(list(warm.metric), list(warm.param_fraction))
    except ValueError as err:
        raise OptimizerError(f"warm start: {err}") from None
    return Related(X, Y, torch.tensor(list(warm.task), dtype=torch.long))
