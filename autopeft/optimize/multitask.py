"""Multi-task GPs over (configuration, study): the model of a warm-started study.

One botorch :class:`~botorch.models.MultiTaskGP` per objective, on the new study's trials
(task 0) and the earlier studies' trials its space encodes (task ``k`` for the ``k``-th earlier
study). The covariance is the intrinsic coregionalisation model
``k((x, s), (x', s')) = k_x(x, x') * B[s, s']``: ``k_x`` is the study's usual kernel
(:mod:`.kernels`) and ``B`` a learned positive task covariance (botorch's
``PositiveIndexKernel``), so the model learns from the data how far the earlier studies'
results predict the new one's; each task has its own constant mean and its own noise. Outcomes
are transformed per task before the model sees them (:mod:`.transforms`, the study's
``outcome_transform``: a study on MRPC (F1) and one on SST-2 (accuracy) are on their own scales),
so no task's level or spread leaks into another's.

Why this model (Swersky et al. 2013, "Multi-task Bayesian optimization"; what Ax uses for
transfer): where the new study has few results, the posterior of task 0 leans on the earlier
observations through ``B``, so the first model-based proposals already know where good
configurations lie; as the new study's own results come in and disagree, ``B``'s off-diagonal
shrinks and the model follows its own data. Proposals, the acquisition's baseline, the
reference point, the front and the hypervolume are the new study's alone (``output_tasks=[0]``).

Costs: the earlier observations are capped so that at most ``fit_points`` rows are fitted
(:func:`autopeft.optimize.gp.fit_subset` on them: their best Pareto ranks first, then evenly
spread); hyperparameters are warm-started from the previous proposal like :mod:`.gp`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from autopeft.optimize.gp import fit_subset, fit_with_fallback
from autopeft.optimize.kernels import make_kernel
from autopeft.optimize.settings import KernelName, OutcomeTransform
from autopeft.optimize.state import OptimizerState
from autopeft.optimize.transforms import fit_transform

if TYPE_CHECKING:
    from botorch.models import ModelListGP, MultiTaskGP

    from autopeft.optimize.warm import Related


def per_task_transform(Y: torch.Tensor, task: torch.Tensor, kind: OutcomeTransform) -> torch.Tensor:
    """``n x m`` objectives transformed within each task (``task``: ``n`` indices): ``n x m``."""
    Z = torch.empty_like(Y)
    for t in torch.unique(task).tolist():
        rows = task == t
        Z[rows] = fit_transform(Y[rows], kind)[0]
    return Z


def cap_related(Zr: torch.Tensor, own: int, fit_points: int) -> torch.Tensor:
    """Indices (ascending) of the related rows kept so that ``own`` plus them stay within ``fit_points``
    (at least a few: the earlier studies are the point of a warm start)."""
    return fit_subset(Zr, max(fit_points - own, min(fit_points, 16)))


def related_rows(
    related: Related, own: int, cards: Sequence[int], kind: OutcomeTransform, fit_points: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The related rows the model fits beside the study's ``own`` trials: snapped points (``n_r x d``),
    objectives transformed within each task (``n_r x m``) and tasks (``n_r``), capped to ``fit_points``."""
    from autopeft.optimize.domain import snap

    Zr = per_task_transform(related.Y.to(torch.double), related.task, kind)
    keep = cap_related(Zr, own, fit_points)
    Xr = snap(related.X[keep], torch.tensor(list(cards), dtype=torch.double))
    return Xr, Zr[keep], related.task[keep]


def fit_multitask_list(
    X: torch.Tensor,
    Z: torch.Tensor,
    Xr: torch.Tensor,
    Zr: torch.Tensor,
    task: torch.Tensor,
    cards: Sequence[int],
    state: OptimizerState | None,
    warm_start: bool,
    kernel: KernelName = "rbf+additive",
) -> ModelListGP:
    """A ``ModelListGP`` of one multi-task GP per objective; each predicts the new study (task 0).

    Args:
        X: ``n x d`` points of the new study's completed trials; Z: their ``n x m`` transformed objectives.
        Xr: ``n_r x d`` related points; Zr: their ``n_r x m`` objectives, transformed within each task.
        task: ``n_r`` task indices of the related rows (``>= 1``).
        cards: values per dimension (the additive kernel works on bins).
        state: where the previous hyperparameters are read from and the new ones kept.
        warm_start: start from ``state``'s hyperparameters when they fit this model.
        kernel: the kernel over configurations (:mod:`.kernels`).
    """
    from botorch.models import ModelListGP

    inputs = torch.cat(
        [
            torch.cat([X, torch.zeros(X.shape[0], 1, dtype=X.dtype)], dim=-1),
            torch.cat([Xr, task.to(X.dtype).unsqueeze(-1)], dim=-1),
        ]
    )
    targets = torch.cat([Z, Zr])
    models, how = [], []
    for j in range(Z.shape[-1]):
        name = f"mtgp[{j}]:{kernel}"
        cached = state.hyperparameters.get(name) if (state is not None and warm_start) else None
        y = targets[:, j : j + 1]
        fitted, warm = fit_with_fallback(lambda y=y: _model(inputs, y, kernel, cards), cached)
        if state is not None:
            state.hyperparameters[name] = {k: v.detach().clone() for k, v in fitted.named_parameters()}
        models.append(fitted)
        how.append(warm)
    if state is not None:
        state.last_fit, state.fitted_n = ("warm" if all(how) else "cold"), X.shape[0]
    return ModelListGP(*models)


def _model(inputs: torch.Tensor, y: torch.Tensor, kernel: KernelName, cards: Sequence[int]) -> MultiTaskGP:
    """A multi-task GP on ``n x (d + 1)`` inputs (the task last) and ``n x 1`` targets, predicting task 0.

    No outcome transform: targets are already transformed within each task (one standardisation
    over all tasks would mix their scales)."""
    from botorch.models import MultiTaskGP

    return MultiTaskGP(
        inputs,
        y,
        task_feature=-1,
        output_tasks=[0],
        covar_module=make_kernel(kernel, cards),
        outcome_transform=None,
    )


def task_correlation(model: MultiTaskGP) -> torch.Tensor:
    """The fitted task correlation matrix ``B`` normalised to a unit diagonal: ``T x T`` (for tests and logs)."""
    with torch.no_grad():
        index_kernel = model.covar_module.kernels[-1]
        B = index_kernel.covar_matrix.to_dense() if hasattr(index_kernel, "covar_matrix") else None
        if B is None:
            raise TypeError(f"no task covariance in {type(index_kernel).__name__}")
        d = B.diagonal().sqrt()
        return B / (d.unsqueeze(-1) * d.unsqueeze(-2))
