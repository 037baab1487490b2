"""Benchmark problems for the optimiser: two PEFT-shaped problems and two botorch test functions.

Every problem is a grid of ordered discrete dimensions (bin centres in ``[0, 1]``)
with two maximised objectives, so every method sees exactly the same choices:

- ``peft_autopeft`` / ``peft_full``: our real ``autopeft`` (d = 9) and ``full``
  (d = 33) spaces over the bundled MiniLM's shape. The cost is the *real*
  ``param_fraction`` of the decoded configuration (``autopeft.accounting.estimate``),
  as ``-log10`` (:func:`autopeft.pareto.to_objectives`); the metric is a smooth,
  saturating, noisy function of per-layer capacity with interactions
  (:func:`peft_metric`). The benchmark's hypervolume reference is (0.55, 0): at
  least the frozen encoder's metric, at most all the parameters.
- ``dtlz2_d16`` / ``zdt1_d16``: botorch's DTLZ2 (2 objectives) and ZDT1 with
  d = 16, negated (maximised), each coordinate on a 21-value grid (21 is odd, so
  DTLZ2's optimum 0.5 is on the grid), with botorch's reference points.

Hypervolumes are of the noiseless objectives of the evaluated points (the noise
only misleads the optimiser, it does not decide the score).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch

from autopeft.accounting import estimate
from autopeft.config import PeftConfig
from autopeft.optimize.domain import GridDomain, SpaceDomain
from autopeft.pareto import fraction_objective, hypervolume, pareto_mask
from autopeft.shape import model_shape
from autopeft.space import Space, build_space

#: Frozen-encoder metric (the head alone), the top a PEFT configuration approaches, and the noise.
BASE_METRIC, GAIN, NOISE_SD = 0.55, 0.20, 0.005
#: Values per coordinate of the test functions' grid.
TEST_GRID = 21


@dataclass
class Problem:
    """A benchmark problem: a grid, noisy and noiseless objectives, a hypervolume reference."""

    name: str
    cards: list[int]
    ref_point: tuple[float, float]
    #: ``n x d`` points -> (noisy objectives ``n x 2``, noiseless ``n x 2``), both maximised.
    evaluate: Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]
    key: Callable[[tuple[float, ...]], Hashable]
    space: Space | None = None
    exact_max_hypervolume: Callable[[], float] | None = None
    info: dict[str, object] = field(default_factory=dict)

    @property
    def d(self) -> int:
        return len(self.cards)

    def hypervolume(self, y_true: np.ndarray) -> float:
        """Hypervolume of noiseless objectives ``n x 2`` against the problem's reference."""
        if len(y_true) == 0:
            return 0.0
        return hypervolume(torch.as_tensor(y_true, dtype=torch.double), self.ref_point)


# -- PEFT-shaped problems ------------------------------------------------------------------------

#: Per-family weight and scale of a layer's log-capacity ``a * log2(1 + size / s)``.
_FAMILY_WEIGHTS = {
    "serial_adapter": (1.0, 8.0),
    "parallel_adapter": (1.1, 8.0),
    "prefix": (0.7, 4.0),
    "lora": (0.9, 4.0),
}


def layer_capacity(config: PeftConfig, n_layers: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-capacity of each layer (``L``) and where prefix and parallel adapter meet (``L`` bools)."""
    fams = config.families()
    u = np.zeros(n_layers)
    for name, (a, s) in _FAMILY_WEIGHTS.items():
        fam = fams.get(name)
        if fam is None:
            continue
        boost = 1.0 + 0.3 * (getattr(fam, "experts", 1) - 1) if name == "serial_adapter" else 1.0
        width = len(fam.targets) / 2.0 if name == "lora" else 1.0
        for layer, size in fam.sizes(n_layers).items():
            u[layer] += a * math.log2(1.0 + size * boost * width / s)
    if "bitfit" in fams:
        for layer in fams["bitfit"].layer_set(n_layers):
            u[layer] += 0.8
    if "fish" in fams:
        u += 1.2 * math.log2(1.0 + fams["fish"].fraction / 0.0005)
    both = np.zeros(n_layers, dtype=bool)
    if "prefix" in fams and "parallel_adapter" in fams:
        both[list(set(fams["prefix"].layer_set(n_layers)) & set(fams["parallel_adapter"].layer_set(n_layers)))] = True
    return u, both


def peft_metric(config: PeftConfig, fraction: float, n_layers: int) -> float:
    """Noiseless task metric: saturating in per-layer capacity, upper layers weigh more,
    adjacent adapted layers help each other, prefix + parallel adapter in one layer interfere,
    and very large configurations overfit."""
    u, both = layer_capacity(config, n_layers)
    c = 1.0 - np.exp(-u / 4.0)
    w = 0.4 + np.arange(n_layers) / max(1, n_layers - 1)
    w = w / w.sum()
    synergy = float(np.mean(c[:-1] * c[1:])) if n_layers > 1 else 0.0
    quality = 0.75 * float(w @ c) + 0.25 * synergy - 0.08 * float(np.mean(both * c))
    gain = GAIN * (1.0 - math.exp(-3.0 * quality)) / (1.0 - math.exp(-3.0))
    overfit = 0.03 * max(0.0, math.log10(max(fraction, 1e-12)) + 1.5) ** 2
    return BASE_METRIC + gain - overfit


def _peft_problem(space_name: str) -> Problem:
    shape = model_shape(None)
    space = build_space(space_name, shape)
    domain = SpaceDomain(space)
    n = shape.n_layers

    @cache
    def truth(key: Hashable) -> tuple[float, float]:
        config = _configs[key]
        fraction = estimate(config, shape).param_fraction
        return peft_metric(config, fraction, n), fraction

    _configs: dict[Hashable, PeftConfig] = {}

    def evaluate(X: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        y = np.empty((len(X), 2))
        for i, x in enumerate(X):
            k = domain.key(list(x))
            if k not in _configs:
                _configs[k] = space.decode(list(x))
            metric, fraction = truth(k)
            y[i] = metric, fraction_objective(fraction)
        noisy = y.copy()
        noisy[:, 0] += rng.normal(0.0, NOISE_SD, len(X))
        return noisy, y

    problem = Problem(
        name=f"peft_{space_name}",
        cards=list(space.cardinalities),
        ref_point=(BASE_METRIC, 0.0),
        evaluate=evaluate,
        key=lambda x: domain.key(list(x)),
        space=space,
        info={"space": space_name, "model": "bundled MiniLM", "noise_sd": NOISE_SD},
    )
    if space_name == "autopeft":
        problem.exact_max_hypervolume = lambda: _enumerate_max_hv(problem)
    return problem


def _enumerate_max_hv(problem: Problem) -> float:
    """Exact best hypervolume: evaluate every grid point (57,600 for ``autopeft`` on MiniLM)."""
    grids = np.meshgrid(*[(np.arange(n) + 0.5) / n for n in problem.cards], indexing="ij")
    X = np.stack([g.ravel() for g in grids], axis=-1)
    _, y = problem.evaluate(X, np.random.default_rng(0))
    yt = torch.as_tensor(y)
    return problem.hypervolume(yt[pareto_mask(yt)].numpy())


# -- botorch test functions on a grid ---------------------------------------------------------------


def _test_problem(name: str, fn: object, best: Callable[[np.ndarray], np.ndarray]) -> Problem:
    d = fn.dim  # type: ignore[attr-defined]
    domain = GridDomain([TEST_GRID] * d)
    ref = tuple(float(v) for v in fn.ref_point)  # type: ignore[attr-defined]

    def evaluate(X: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            y = fn(torch.as_tensor(X, dtype=torch.double)).numpy()  # type: ignore[operator]
        return y.copy(), y

    problem = Problem(
        name=name,
        cards=[TEST_GRID] * d,
        ref_point=(ref[0], ref[1]),
        evaluate=evaluate,
        key=lambda x: domain.key(list(x)),
        info={"function": type(fn).__name__, "d": d, "grid": TEST_GRID},
    )

    def exact() -> float:
        centres = (np.arange(TEST_GRID) + 0.5) / TEST_GRID
        X = best(centres)
        return problem.hypervolume(evaluate(X, np.random.default_rng(0))[1])

    problem.exact_max_hypervolume = exact
    return problem


def _dtlz2() -> Problem:
    from botorch.test_functions.multi_objective import DTLZ2

    fn = DTLZ2(dim=16, num_objectives=2, negate=True)
    # Every point is dominated by the one with the same x0 and all other coordinates at 0.5.
    mid = (TEST_GRID // 2 + 0.5) / TEST_GRID
    return _test_problem("dtlz2_d16", fn, lambda c: np.column_stack([c, np.full((len(c), 15), mid)]))


def _zdt1() -> Problem:
    from botorch.test_functions.multi_objective import ZDT1

    fn = ZDT1(dim=16, negate=True)
    # Every point is dominated by the one with the same x0 and the others at their lowest value.
    low = 0.5 / TEST_GRID
    return _test_problem("zdt1_d16", fn, lambda c: np.column_stack([c, np.full((len(c), 15), low)]))


PROBLEMS: dict[str, Callable[[], Problem]] = {
    "peft_autopeft": lambda: _peft_problem("autopeft"),
    "peft_full": lambda: _peft_problem("full"),
    "dtlz2_d16": _dtlz2,
    "zdt1_d16": _zdt1,
}
