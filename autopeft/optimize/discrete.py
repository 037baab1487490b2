"""Maximising an acquisition function over a grid of ordered discrete dimensions.

Every dimension is an ordered list of values, so the search moves in bin indices:

1. score a pool of candidates: scrambled Sobol points (space-filling) and mutations of
   the current Pareto-optimal configurations (where improvement is likely);
2. start ``num_restarts`` local searches from the best distinct candidates; a step
   scores every single-coordinate change (any other value of one dimension) and the
   combinations of the best of them, and moves to the best point;
3. return the best scored point that is a *new* trial (its key is not taken).

All points stay on bin centres, so there is no rounding gap between what is scored
and what is proposed. Shapes: ``idx`` tensors are ``... x d`` long bin indices.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

from autopeft.optimize.domain import from_index

#: Points scored per acquisition call (bounds memory; the GP posterior is batched over them).
CHUNK = 512
#: Scored points tried, best first, when looking for one that is not taken yet.
MAX_KEY_CHECKS = 2000
#: A move must raise the log acquisition value by more than this (0.5%) to count.
MIN_GAIN = 5e-3

Scorer = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SearchBudget:
    """How hard one greedy step searches."""

    raw_samples: int
    num_restarts: int
    steps: int


def line_moves(cards: torch.Tensor) -> torch.Tensor:
    """``K x 2`` long tensor of every (dimension, value) pair: ``K = sum n_i``."""
    n = cards.long()
    dims = torch.repeat_interleave(torch.arange(n.shape[0]), n)
    values = torch.cat([torch.arange(int(c)) for c in n.tolist()])
    return torch.stack([dims, values], dim=-1)


def neighbours(idx: torch.Tensor, move: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every point one coordinate away from each of ``r x d`` points: ``r x K x d`` indices and an
    ``r x K`` mask of the moves that change something."""
    r, K = idx.shape[0], move.shape[0]
    out = idx.unsqueeze(1).expand(r, K, idx.shape[1]).clone()
    dims = move[:, 0].expand(r, K)
    changed = out.gather(2, dims.unsqueeze(-1)).squeeze(-1) != move[:, 1]
    out.scatter_(2, dims.unsqueeze(-1), move[:, 1].expand(r, K).unsqueeze(-1))
    return out, changed


def combined(
    idx: torch.Tensor, move: torch.Tensor, gains: torch.Tensor, sizes: tuple[int, ...] = (2, 4, 8, 10**9)
) -> torch.Tensor:
    """Points that apply several single-coordinate improvements at once: for one point
    (``d``), the best move of each dimension with a positive gain (``K`` gains), the
    ``k`` best of them for each ``k`` in ``sizes``: ``c x d`` (``c`` may be 0)."""
    d = idx.shape[0]
    best_gain = torch.full((d,), -torch.inf, dtype=gains.dtype).scatter_reduce(0, move[:, 0], gains, "amax")
    order = torch.argsort(best_gain, descending=True)
    positive = order[best_gain[order] > MIN_GAIN]
    out = []
    for k in sizes:
        if positive.numel() < 2 or (out and k > positive.numel()):
            break
        x = idx.clone()
        for dim in positive[:k].tolist():
            in_dim = torch.nonzero(move[:, 0] == dim).flatten()
            x[dim] = move[in_dim[torch.argmax(gains[in_dim])], 1]
        out.append(x)
    return torch.stack(out) if out else idx.new_empty(0, d)


def score(acqf: Scorer, idx: torch.Tensor, cards: torch.Tensor) -> torch.Tensor:
    """Acquisition values of ``N x d`` grid points as single candidates: ``N``."""
    values = []
    with torch.no_grad():
        for chunk in idx.split(CHUNK):
            if chunk.shape[0]:
                values.append(acqf(from_index(chunk, cards).unsqueeze(-2)))
    return torch.cat(values) if values else torch.empty(0, dtype=torch.double)


def sobol_indices(n: int, cards: torch.Tensor, seed: int) -> torch.Tensor:
    """``n x d`` bin indices of a scrambled Sobol sequence."""
    engine = torch.quasirandom.SobolEngine(cards.shape[0], scramble=True, seed=seed)
    return torch.minimum(torch.floor(engine.draw(n, dtype=torch.double) * cards).long(), cards.long() - 1)


def mutate(parents: torch.Tensor, n: int, cards: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``n x d`` mutations of ``p x d`` parents: 1-3 dimensions each moved by +-1 or +-2 bins
    (one in four: a uniform new value)."""
    d = cards.shape[0]
    pick = torch.randint(parents.shape[0], (n,), generator=gen)
    out = parents[pick].clone()
    n_changes = 1 + torch.randint(3, (n,), generator=gen)
    for c in range(3):
        rows = torch.nonzero(n_changes > c).flatten()
        dims = torch.randint(d, (rows.numel(),), generator=gen)
        n_i = cards.long()[dims]
        step = torch.randint(1, 3, (rows.numel(),), generator=gen) * (
            2 * torch.randint(2, (rows.numel(),), generator=gen) - 1
        )
        local = (out[rows, dims] + step).clamp(min=0)
        local = torch.minimum(local, n_i - 1)
        uniform = (torch.rand(rows.numel(), generator=gen, dtype=torch.double) * n_i).long()
        jump = torch.rand(rows.numel(), generator=gen) < 0.25
        out[rows, dims] = torch.where(jump, uniform, local)
    return out


def local_search(
    acqf: Scorer, starts: torch.Tensor, start_values: torch.Tensor, cards: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hill climbing from ``r x d`` starts (values ``r``), all searches scored together: each
    step scores every single-coordinate change and the combinations of the best ones
    (:func:`combined`; near-additive acquisition surfaces are climbed in a few steps), and
    each search moves to its best point if that improves. Returns every point scored
    (``N x d``) and their values (``N``)."""
    move = line_moves(cards)
    cur, cur_val = starts.clone(), start_values.clone()
    seen_idx, seen_val = [starts], [start_values]
    active = torch.arange(cur.shape[0])
    for _ in range(steps):
        if active.numel() == 0:
            break
        nb, changed = neighbours(cur[active], move)
        vals = torch.full(changed.shape, -torch.inf, dtype=torch.double)
        vals[changed] = score(acqf, nb[changed], cards)
        combos = [combined(cur[a], move, vals[k] - cur_val[a]) for k, a in enumerate(active.tolist())]
        combo_vals = score(acqf, torch.cat(combos), cards).split([c.shape[0] for c in combos])
        seen_idx += [nb[changed], *combos]
        seen_val += [vals[changed], *combo_vals]
        still = []
        for k, a in enumerate(active.tolist()):
            cand = torch.cat([nb[k][changed[k]], combos[k]])
            cand_vals = torch.cat([vals[k][changed[k]], combo_vals[k]])
            best = int(torch.argmax(cand_vals))
            if cand_vals[best] > cur_val[a] + MIN_GAIN:
                cur[a], cur_val[a] = cand[best], cand_vals[best]
                still.append(a)
        active = torch.tensor(still, dtype=torch.long)
    return torch.cat(seen_idx), torch.cat(seen_val)


def distinct_top(idx: torch.Tensor, values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best distinct rows of ``N x d`` indices by ``N`` values: ``k' x d`` and ``k'``."""
    order = torch.argsort(values, descending=True, stable=True)
    chosen: list[int] = []
    taken: set[tuple[int, ...]] = set()
    for i in order.tolist():
        row = tuple(idx[i].tolist())
        if row not in taken:
            taken.add(row)
            chosen.append(i)
            if len(chosen) == k:
                break
    sel = torch.tensor(chosen, dtype=torch.long)
    return idx[sel], values[sel]


def first_new(
    idx: torch.Tensor,
    values: torch.Tensor,
    cards: torch.Tensor,
    key: Callable[[torch.Tensor], Hashable],
    taken: set[Hashable],
) -> torch.Tensor | None:
    """The best-valued row of ``N x d`` indices whose key is not in ``taken`` (``d``), or None."""
    order = torch.argsort(values, descending=True, stable=True)
    tried: set[tuple[int, ...]] = set()
    for i in order.tolist():
        row = tuple(idx[i].tolist())
        if row in tried:
            continue
        tried.add(row)
        if key(from_index(idx[i], cards)) not in taken:
            return idx[i]
        if len(tried) >= MAX_KEY_CHECKS:
            break
    return None


def maximize(
    acqf: Scorer,
    cards: torch.Tensor,
    parents: torch.Tensor,
    budget: SearchBudget,
    seed: int,
    key: Callable[[torch.Tensor], Hashable],
    taken: set[Hashable],
) -> torch.Tensor | None:
    """The best new grid point found (``d`` bin indices), or None when every scored point is taken.

    Args:
        acqf: maps ``b x 1 x d`` points to ``b`` acquisition values.
        cards: ``d`` numbers of values per dimension.
        parents: ``p x d`` bin indices to mutate (the current Pareto set; may be empty).
        budget: pool size, restarts and steps.
        seed: seeds the Sobol pool and the mutations.
        key: identity of a trial at a point (``d`` bin centres).
        taken: keys that may not be proposed.
    """
    gen = torch.Generator().manual_seed(seed)
    n_mut = budget.raw_samples // 2 if parents.shape[0] else 0
    pool = [sobol_indices(budget.raw_samples - n_mut, cards, seed)]
    if n_mut:
        pool.append(mutate(parents, n_mut, cards, gen))
    pool_idx = torch.cat(pool)
    pool_val = score(acqf, pool_idx, cards)
    starts, start_vals = distinct_top(pool_idx, pool_val, budget.num_restarts)
    ls_idx, ls_val = local_search(acqf, starts, start_vals, cards, budget.steps)
    return first_new(torch.cat([ls_idx, pool_idx]), torch.cat([ls_val, pool_val]), cards, key, taken)
