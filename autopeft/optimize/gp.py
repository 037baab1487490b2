"""Independent GPs per objective, fitted by maximum marginal likelihood.

One :class:`~botorch.models.SingleTaskGP` per objective (a ``ModelListGP``): inputs
are already in ``[0, 1]^d``, outcomes are transformed (:mod:`.transforms`) and
standardised inside the model; the kernel is :mod:`.kernels`' choice.

Cost levers, each optional:

- warm start: the last fit's hyperparameters start the next fit, which then needs a
  few L-BFGS iterations instead of a full run;
- lazy refit: from ``lazy_refit_from`` trials on, hyperparameters are refitted once the
  data has grown by ``refit_growth`` since the last fit; in between the GP only
  conditions on the new data;
- subsampled fit: beyond ``fit_points`` observations the hyperparameters are fitted
  on a subset (the best Pareto ranks first, the rest evenly spread), then the GP
  conditions on every observation with them; fitting is ``O(n^3)`` per iteration,
  conditioning once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from autopeft.optimize.kernels import make_kernel
from autopeft.optimize.settings import KernelName
from autopeft.optimize.state import OptimizerState

if TYPE_CHECKING:
    from botorch.models import ModelListGP, SingleTaskGP
    from gpytorch.models import ExactGP

#: L-BFGS iterations at most for a cold fit and for a warm-started one.
COLD_MAXITER, WARM_MAXITER = 100, 20

log = logging.getLogger(__name__)


def fit_gp_list(
    X: torch.Tensor,
    Z: torch.Tensor,
    cards: Sequence[int],
    state: OptimizerState | None,
    warm_start: bool,
    kernel: KernelName = "rbf+additive",
    fit_points: int = 256,
    refit_growth: float = 0.0,
    lazy_refit_from: int = 0,
) -> ModelListGP:
    """A fitted ``ModelListGP`` of one GP per column of ``Z``.

    Args:
        X: ``n x d`` training inputs in ``[0, 1]^d``.
        Z: ``n x m`` transformed objectives.
        cards: values per dimension (the additive kernel works on bins).
        state: where the previous hyperparameters are read from and the new ones kept.
        warm_start: start from ``state``'s hyperparameters when they fit this model.
        kernel: the covariance module (see :mod:`.kernels`).
        fit_points: largest training set the hyperparameters are fitted on.
        refit_growth: with ``warm_start``, keep the last hyperparameters (no fitting, only
            conditioning on the new data) until the data has grown by this fraction since
            they were fitted; 0 refits every time.
        lazy_refit_from: below this many trials, refit every time (hyperparameters move most
            early in a study; measured: skipping refits below 100 trials costs quality).
    """
    from botorch.models import ModelListGP

    n = X.shape[0]
    names = [f"gp[{j}]:{kernel}" for j in range(Z.shape[-1])]
    cached = [state.hyperparameters.get(k) if (state is not None and warm_start) else None for k in names]
    if lazy_keep(state, cached, n, refit_growth, lazy_refit_from):
        models = [_conditioned(X, Z[:, j : j + 1], c, kernel, cards) for j, c in enumerate(cached)]  # type: ignore[arg-type]
        if all(m is not None for m in models):
            state.last_fit = "conditioned"
            return ModelListGP(*models)
    sub = fit_subset(Z, fit_points)
    models, how = [], []
    for j, name in enumerate(names):
        fitted, warm = _fit_one(X[sub], Z[sub, j : j + 1], cached[j], kernel, cards)
        params = {k: v.detach().clone() for k, v in fitted.named_parameters()}
        if state is not None:
            state.hyperparameters[name] = params
        models.append(fitted if sub.numel() == n else _conditioned(X, Z[:, j : j + 1], params, kernel, cards))
        how.append(warm)
    if state is not None:
        state.last_fit, state.fitted_n = ("warm" if all(how) else "cold"), n
    return ModelListGP(*models)


def lazy_keep(
    state: OptimizerState | None, cached: list[object], n: int, refit_growth: float, lazy_refit_from: int
) -> bool:
    """Whether ``n`` trials may reuse the hyperparameters in ``state`` without refitting."""
    if state is None or any(c is None for c in cached) or n < lazy_refit_from:
        return False
    return n < state.fitted_n * (1.0 + refit_growth)


def fit_subset(Z: torch.Tensor, limit: int) -> torch.Tensor:
    """Indices (ascending) of at most ``limit`` of the ``n`` rows of ``Z`` (``n x m``): the
    first Pareto ranks up to half the limit, then rows evenly spaced over the rest."""
    from autopeft.pareto import pareto_ranks

    n = Z.shape[0]
    if n <= limit:
        return torch.arange(n)
    order = torch.argsort(pareto_ranks(Z, enough=limit // 2), stable=True)
    head, rest = order[: limit // 2], torch.sort(order[limit // 2 :]).values
    spread = rest[torch.linspace(0, rest.numel() - 1, limit - head.numel()).round().long()]
    return torch.sort(torch.cat([head, spread])).values


def _model(X: torch.Tensor, z: torch.Tensor, kernel: KernelName, cards: Sequence[int]) -> SingleTaskGP:
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize

    return SingleTaskGP(X, z, outcome_transform=Standardize(m=1), covar_module=make_kernel(kernel, cards))


def _fit_one(
    X: torch.Tensor, z: torch.Tensor, cached: dict[str, torch.Tensor] | None, kernel: KernelName, cards: Sequence[int]
) -> tuple[SingleTaskGP, bool]:
    """One GP on ``n x d`` inputs and ``n x 1`` targets; True when it was warm-started."""
    return fit_with_fallback(lambda: _model(X, z, kernel, cards), cached)


def fit_with_fallback(
    build: Callable[[], ExactGP], cached: dict[str, torch.Tensor] | None
) -> tuple[ExactGP, bool]:
    """The model ``build()`` makes, fitted by maximum marginal likelihood from ``cached`` hyperparameters
    when they fit it (True: warm-started), else from its defaults; a fit that fails is retried from the
    defaults, and a second failure keeps the defaults (a proposal never fails on a fit)."""
    from botorch.fit import fit_gpytorch_mll
    from gpytorch.mlls import ExactMarginalLogLikelihood

    model = build()
    warm = cached is not None and _load(model, cached)
    try:
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": WARM_MAXITER if warm else COLD_MAXITER}})
    except (ValueError, RuntimeError) as err:  # a step left the priors' support, or a Cholesky failed
        log.warning("GP fit failed (%s: %s); refitting from the default hyperparameters", type(err).__name__, err)
        model, warm = build(), False
        try:
            mll = ExactMarginalLogLikelihood(model.likelihood, model)
            fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": COLD_MAXITER}})
        except (ValueError, RuntimeError) as again:
            log.warning("GP fit failed again (%s); using the default hyperparameters", again)
            model = build()
    model.eval()
    return model, warm


def _conditioned(
    X: torch.Tensor, z: torch.Tensor, params: dict[str, torch.Tensor], kernel: KernelName, cards: Sequence[int]
) -> SingleTaskGP | None:
    """A GP on all ``n x d`` / ``n x 1`` data with given hyperparameters (no fitting); None
    when the parameters do not fit this model."""
    model = _model(X, z, kernel, cards)
    if not _load(model, params):
        return None
    model.eval()
    return model


def _load(model: torch.nn.Module, cached: dict[str, torch.Tensor]) -> bool:
    """Copy cached parameter values into ``model``; False (nothing copied) unless all match."""
    params = dict(model.named_parameters())
    if set(params) != set(cached) or any(params[k].shape != cached[k].shape for k in params):
        return False
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(cached[k])
    return True
