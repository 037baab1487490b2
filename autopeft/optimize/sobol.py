"""Space-filling proposals: a scrambled Sobol sequence (or uniform random draws).

The sequence is the study's (seeded by the study seed) and is continued where the
study's history ends, so the initial design of a study is one Sobol sequence even
when its points are proposed a few at a time. Points that are taken (or repeat
within the batch) are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch

from autopeft.errors import OptimizerError
from autopeft.optimize.domain import Domain
from autopeft.optimize.runtime import derive_seed

#: Draws at most before giving up on finding new points (the space is nearly exhausted).
MAX_DRAWS = 200_000


def space_filling(
    domain: Domain, n: int, seed: int, skip: int, taken: set[Hashable], scramble: bool = True
) -> list[tuple[float, ...]]:
    """``n`` new canonical points; ``taken`` gains their keys.

    Args:
        domain: the grid and its trial identity.
        n: points wanted.
        seed: the study seed.
        skip: points of the sequence already used by the study (its history size).
        taken: keys that may not be proposed.
        scramble: True: scrambled Sobol; False: uniform random draws.
    """
    d = len(domain.cardinalities)
    repair = getattr(domain, "repair", None)  # a parameter budget: draws are moved into it
    draw = _sobol(d, seed, skip) if scramble else _uniform(d, seed, skip)
    out: list[tuple[float, ...]] = []
    drawn = 0
    while len(out) < n:
        if drawn >= MAX_DRAWS:
            raise OptimizerError(
                f"found only {len(out)} of {n} new configurations in {drawn} draws: the space is (nearly) exhausted"
            )
        batch = draw(max(n, 16))
        drawn += batch.shape[0]
        for row in batch.tolist():
            if repair is not None and (row := repair(row)) is None:
                continue
            k = domain.key(row)
            if k not in taken:
                taken.add(k)
                out.append(domain.canonical(row))
                if len(out) == n:
                    break
    return out


def _sobol(d: int, seed: int, skip: int) -> Callable[[int], torch.Tensor]:
    engine = torch.quasirandom.SobolEngine(d, scramble=True, seed=seed % (2**31))
    if skip:
        engine.fast_forward(skip)
    return lambda k: engine.draw(k, dtype=torch.double)


def _uniform(d: int, seed: int, skip: int) -> Callable[[int], torch.Tensor]:
    gen = torch.Generator().manual_seed(derive_seed(seed, skip))
    return lambda k: torch.rand(k, d, generator=gen, dtype=torch.double)
