"""qLogNEHVI with a bounded baseline and the study's pending trials.

Cost of qLogNEHVI grows with its baseline (the observed points whose joint posterior
is sampled). Points deep behind the front almost never lie on a sampled front, so
the baseline is first capped to the ``max_baseline`` points of best non-domination
rank, then pruned as botorch's ``prune_baseline=True`` does (points with zero
estimated probability of being Pareto-optimal go). Pending trials (queued or
running) and the points already chosen for this batch join the baseline, as
botorch's ``X_pending`` with cached box decompositions does: their fantasised
outcomes count as achieved, so the next choice goes elsewhere.

Two implementations of the same estimator (:class:`Acquisition`):
``cached`` (default for GPs, :mod:`.nehvi`) computes the baseline's part once per
greedy step; ``botorch`` is botorch's class itself (used for SAAS models, and to
check and measure the cached one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch

from autopeft.pareto import pareto_ranks

if TYPE_CHECKING:
    from botorch.models.model import Model


class Acquisition(Protocol):
    """Scores single candidates; pending points can be added between greedy steps."""

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        """``b x 1 x d`` candidates -> ``b`` log-NEHVI values."""
        ...

    def add_pending(self, X: torch.Tensor) -> None:
        """``k x d`` more points whose outcomes count as achieved."""
        ...


def cap_baseline(X: torch.Tensor, Z: torch.Tensor, limit: int) -> torch.Tensor:
    """At most ``limit`` rows of ``X`` (``n x d``), those of best non-domination rank of
    ``Z`` (``n x m``, maximised; ties broken by position): ``min(n, limit) x d``."""
    if X.shape[0] <= limit:
        return X
    order = torch.argsort(pareto_ranks(Z, enough=limit), stable=True)
    return X[order[:limit]]


def build_acquisition(
    model: Model,
    X: torch.Tensor,
    Z: torch.Tensor,
    ref_point: torch.Tensor,
    X_pending: torch.Tensor,
    mc_samples: int,
    max_baseline: int,
    seed: int,
    cached: bool,
) -> Acquisition:
    """The acquisition function for one proposal.

    Args:
        model: fitted ``ModelListGP`` of the ``m`` transformed objectives.
        X: ``n x d`` observed points; Z: their ``n x m`` transformed objectives.
        ref_point: ``m`` reference point in model units.
        X_pending: ``p x d`` points being evaluated (``p`` may be 0).
        mc_samples: quasi-MC samples; max_baseline: baseline cap; seed: seeds the samples.
        cached: the cached single-candidate implementation (GP models only) or botorch's.
    """
    baseline = cap_baseline(X, Z, max_baseline)
    if cached:
        return _CachedNEHVI(model, baseline, ref_point, X_pending, mc_samples, seed)
    return _BotorchNEHVI(model, baseline, ref_point, X_pending, mc_samples, seed)


def prune_baseline(model: Model, X: torch.Tensor, ref: torch.Tensor, num_samples: int, seed: int) -> torch.Tensor:
    """The rows of ``X`` (``r x d``) that are Pareto-optimal and better than ``ref`` (``m``) under
    at least one of ``num_samples`` joint posterior samples: botorch's
    ``prune_inferior_points_multi_objective`` criterion, with an ``O(r log r)`` front per
    sample for two objectives. Keeps at least the point of best posterior mean sum."""
    from botorch.sampling.normal import SobolQMCNormalSampler
    from botorch.utils.multi_objective.pareto import is_non_dominated

    from autopeft.pareto import nondominated_2d

    with torch.no_grad():
        posterior = model.posterior(X)
        samples = SobolQMCNormalSampler(torch.Size([num_samples]), seed=seed % (2**31))(posterior)  # S x r x m
        front = nondominated_2d(samples) if samples.shape[-1] == 2 else is_non_dominated(samples, deduplicate=False)
        keep = (front & (samples > ref).all(dim=-1)).any(dim=0)
        if not keep.any():
            keep[int(torch.argmax(posterior.mean.sum(-1)))] = True
    return X[keep]


class _CachedNEHVI:
    """:class:`~autopeft.optimize.nehvi.FastLogNEHVI` on the pruned baseline plus pending points."""

    #: Posterior samples used to prune the baseline (botorch uses 2048; a point kept by
    #: mistake costs a little time, one dropped by mistake had probability < 1/512 to matter).
    PRUNE_SAMPLES = 512

    def __init__(
        self, model: Model, baseline: torch.Tensor, ref: torch.Tensor, pending: torch.Tensor, mc: int, seed: int
    ) -> None:
        from autopeft.optimize.nehvi import FastLogNEHVI

        pruned = prune_baseline(model, baseline, ref, self.PRUNE_SAMPLES, seed + 1)
        self._fast = FastLogNEHVI(list(model.models), torch.cat([pruned, pending]), ref, mc, seed)

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        return self._fast(X)

    def add_pending(self, X: torch.Tensor) -> None:
        self._fast.set_baseline(torch.cat([self._fast.X_baseline, X]))


def use_pure_torch_kernel() -> None:
    """Make botorch's qLogNEHVI use its pure-PyTorch path, never its JIT-compiled C++ kernel.

    On first use botorch compiles ``logei_fused_ext`` (``-march=native``) into the user's
    ``~/.cache/torch_extensions``: a 40 s stall in the middle of a study, a C++ compiler needed,
    a binary that other CPUs sharing that home cannot run, and, when the process is stopped
    while it compiles (a server stopped in its first minute), a lock file left behind on which
    every later proposal waits forever. The pure path is the same estimator, the one botorch
    falls back to without a compiler. A kernel already loaded in this process is kept.
    """
    from botorch.acquisition.multi_objective import logei

    if getattr(logei, "_C", None) is None and hasattr(logei, "_load_attempted"):
        logei._load_attempted = True


class _BotorchNEHVI:
    """botorch's ``qLogNoisyExpectedHypervolumeImprovement`` (``prune_baseline=True``, cached root where
    the model supports it: not for the multi-task GPs of a warm-started study)."""

    def __init__(
        self, model: Model, baseline: torch.Tensor, ref: torch.Tensor, pending: torch.Tensor, mc: int, seed: int
    ) -> None:
        from botorch.acquisition.cached_cholesky import supports_cache_root
        from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
        from botorch.models.fully_bayesian import MCMC_DIM
        from botorch.sampling.normal import SobolQMCNormalSampler
        from botorch.utils.transforms import is_ensemble

        use_pure_torch_kernel()
        self._pending = pending
        self._acqf = qLogNoisyExpectedHypervolumeImprovement(
            model=model,
            ref_point=ref,
            X_baseline=baseline,
            sampler=SobolQMCNormalSampler(sample_shape=torch.Size([mc]), seed=seed % (2**31)),
            X_pending=pending if pending.shape[0] else None,
            prune_baseline=True,
            cache_root=supports_cache_root(model),
            marginalize_dim=MCMC_DIM if is_ensemble(model) else None,
        )

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        return self._acqf(X).detach()

    def add_pending(self, X: torch.Tensor) -> None:
        self._pending = torch.cat([self._pending, X])
        self._acqf.set_X_pending(self._pending)
