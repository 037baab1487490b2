"""qLogNEHVI for one candidate at a time, with the baseline's samples computed once.

Sequential greedy optimisation only ever scores single candidates (q = 1) against
the baseline (observed points after pruning) plus the pending and already chosen
points. botorch's ``qLogNoisyExpectedHypervolumeImprovement`` recomputes, for every
candidate, the joint posterior of the candidate *and the whole baseline* against
all training points; here the baseline's part is computed once per greedy step:

- baseline samples ``F_B = mu_B + L_BB z_B`` (``S`` quasi-MC samples) and the box
  decomposition of each sample's front (botorch's ``FastNondominatedPartitioning``);
- for a candidate ``x``: ``f_x | F_B`` is Gaussian with mean ``mu_x + w' z_B`` and
  variance ``s2_x - w'w``, ``w = L_BB^-1 Sigma_Bx``, which is exactly botorch's
  cached-root low-rank update (``cache_root=True``), without the baseline rows;
- the log of the mean hypervolume improvement over samples (:func:`_log_ehvi`).

So the value is the same estimator as botorch's qLogNEHVI with q = 1 and
``incremental_nehvi`` (tests compare the two), at a fraction of the cost: a few
``n x d`` kernel rows and one ``n x n`` product per candidate.
Models: one botorch ``SingleTaskGP`` per objective, each with a ``Standardize``
outcome transform and no input transform (what :mod:`.gp` builds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from botorch.models import SingleTaskGP

#: Log value below every improving point, for points no sample improves with (see :func:`_log_ehvi`).
FLAT = 1e4
#: Added to posterior covariances before Cholesky factorisation.
JITTER = 1e-9


class CrossKernel:
    """``k(x, A)`` for many ``x`` against one fixed set ``A`` (``a x d``), reusing what depends
    on ``A`` alone: for :mod:`.kernels`' ``rbf+additive`` the additive part is ``phi(x) @ P_A``
    with ``P_A`` computed once; other kernels are evaluated as they are."""

    def __init__(self, kernel: torch.nn.Module, A: torch.Tensor) -> None:
        from gpytorch.kernels import AdditiveKernel, ScaleKernel

        from autopeft.optimize.kernels import AdditiveGridKernel

        self.kernel, self.A = kernel, A
        self._split = None
        if isinstance(kernel, AdditiveKernel) and len(kernel.kernels) == 2:
            prod, add = kernel.kernels
            if isinstance(add, ScaleKernel) and isinstance(add.base_kernel, AdditiveGridKernel):
                with torch.no_grad():
                    self._split = (prod, add.outputscale, add.base_kernel, add.base_kernel.projector(A))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``b x d`` -> ``b x a``."""
        with torch.no_grad():
            if self._split is None:
                return self.kernel(x, self.A).to_dense()
            prod, scale, add, proj = self._split
            return prod(x, self.A).to_dense() + scale * add.project(x, proj)


@dataclass(frozen=True)
class _GPCache:
    """What one objective's GP needs per candidate, precomputed (``n`` training points)."""

    model: SingleTaskGP
    k_train: CrossKernel  # k(., X_train)
    X_train: torch.Tensor  # n x d
    alpha: torch.Tensor  # n, K^-1 (y - c) in standardised units
    K_inv: torch.Tensor  # n x n
    constant: torch.Tensor  # scalar prior mean
    y_mean: torch.Tensor  # scalar, Standardize shift
    y_std: torch.Tensor  # scalar, Standardize scale


class FastLogNEHVI:
    """Callable ``b x 1 x d`` candidates -> ``b`` log-NEHVI values against a fixed baseline.

    Args:
        models: one fitted GP per objective (``m`` of them).
        X_baseline: ``r x d`` points whose (joint) outcomes form the sampled fronts.
        ref_point: ``m`` reference point in model units.
        mc_samples: ``S``, quasi-MC samples; seed: seeds them (common to every candidate).
    """

    def __init__(
        self, models: list[SingleTaskGP], X_baseline: torch.Tensor, ref_point: torch.Tensor, mc_samples: int, seed: int
    ) -> None:
        self.gps = [_precompute(m) for m in models]
        self.ref_point = ref_point
        self.mc_samples = mc_samples
        self.seed = seed
        self.set_baseline(X_baseline)

    @property
    def X_baseline(self) -> torch.Tensor:
        """The ``r x d`` baseline (observed, pending and chosen points)."""
        return self._B

    def set_baseline(self, X_baseline: torch.Tensor) -> None:
        """Resample the baseline's joint outcomes and rebuild the per-sample box decompositions."""
        from botorch.utils.sampling import draw_sobol_normal_samples

        m, r, S = len(self.gps), X_baseline.shape[0], self.mc_samples
        z = draw_sobol_normal_samples(d=(r + 1) * m, n=S, dtype=torch.double, seed=self.seed % (2**31))
        z = z.reshape(S, m, r + 1)
        self._B = X_baseline
        self._z_x = z[..., r]  # S x m
        self._z_B = z[..., :r]  # S x m x r
        self._base = [self._baseline_terms(g, X_baseline) for g in self.gps]
        self._k_base = [CrossKernel(g.model.covar_module, X_baseline) for g in self.gps]
        samples = torch.stack(
            [
                g.y_mean + g.y_std * (mu + self._z_B[:, j] @ L.T)
                for j, (g, (mu, L, _)) in enumerate(zip(self.gps, self._base))
            ],
            dim=-1,
        )  # S x r x m
        self._lower, self._log_len = _cells(samples, self.ref_point)

    def _baseline_terms(self, g: _GPCache, B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``mu_B`` (``r``), ``L_BB`` (``r x r``) and ``K^-1 k(X, B)`` (``n x r``) in standardised units."""
        kXB = g.k_train(B).T
        A = g.K_inv @ kXB
        mu = g.constant + kXB.T @ g.alpha
        cov = _k(g, B, B) - kXB.T @ A
        L = torch.linalg.cholesky(_psd(cov))
        return mu, L, A

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        """``b x 1 x d`` candidates -> ``b`` log expected hypervolume improvements."""
        x = X.reshape(-1, X.shape[-1])
        f = torch.stack([self._candidate_samples(j, x) for j in range(len(self.gps))], dim=-1)  # S x b x m
        return _log_ehvi(f, self._lower, self._log_len)

    def _candidate_samples(self, j: int, x: torch.Tensor) -> torch.Tensor:
        """``S x b`` samples of objective ``j`` at ``b x d`` candidates, given the baseline samples."""
        g, (_, L, A) = self.gps[j], self._base[j]
        kxX = g.k_train(x)  # b x n
        mu = g.constant + kxX @ g.alpha
        var = _k_diag(g, x) - ((kxX @ g.K_inv) * kxX).sum(-1)
        cross = self._k_base[j](x) - kxX @ A  # b x r
        w = torch.linalg.solve_triangular(L, cross.T, upper=False)  # r x b
        cond_sd = (var - w.pow(2).sum(0)).clamp_min(1e-12).sqrt()
        f = mu + self._z_B[:, j] @ w + self._z_x[:, j : j + 1] * cond_sd  # S x b
        return g.y_mean + g.y_std * f


def _precompute(model: SingleTaskGP) -> _GPCache:
    """Training-set terms of a fitted ``SingleTaskGP`` with a ``Standardize`` transform."""
    from botorch.models.transforms.outcome import Standardize

    tf = getattr(model, "outcome_transform", None)
    if not isinstance(tf, Standardize) or getattr(model, "input_transform", None) is not None:
        raise TypeError("FastLogNEHVI needs SingleTaskGPs with a Standardize outcome transform and no input transform")
    X = model.train_inputs[0]
    y = model.train_targets
    with torch.no_grad():
        K = model.covar_module(X, X).to_dense() + model.likelihood.noise.reshape(-1)[0] * torch.eye(
            X.shape[0], dtype=X.dtype
        )
        L = torch.linalg.cholesky(_psd(K))
        K_inv = torch.cholesky_inverse(L)
        c = model.mean_module.constant.reshape(())
    return _GPCache(
        model,
        CrossKernel(model.covar_module, X),
        X,
        K_inv @ (y - c),
        K_inv,
        c,
        tf.means.reshape(()),
        tf.stdvs.reshape(()),
    )


def _k(g: _GPCache, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return g.model.covar_module(A, B).to_dense()


def _k_diag(g: _GPCache, A: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return g.model.covar_module(A, A, diag=True)


def _psd(C: torch.Tensor) -> torch.Tensor:
    """A symmetric matrix with jitter scaled to its diagonal, ready for Cholesky."""
    C = 0.5 * (C + C.T)
    return C + (JITTER * C.diagonal().abs().mean().clamp_min(1.0)) * torch.eye(C.shape[0], dtype=C.dtype)


def _cells(samples: torch.Tensor, ref_point: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-dominated cells of each sampled front: lower bounds and log side lengths, ``S x C x m``."""
    from botorch.utils.multi_objective.box_decompositions.non_dominated import FastNondominatedPartitioning
    from botorch.utils.multi_objective.box_decompositions.utils import _pad_batch_pareto_frontier

    S, _, m = samples.shape
    front = _pad_batch_pareto_frontier(Y=samples, ref_point=ref_point.unsqueeze(0).expand(S, m))
    bounds = FastNondominatedPartitioning(ref_point=ref_point, Y=front).get_hypercell_bounds()
    lower, upper = bounds[0], bounds[1].clamp_max(1e10)
    return lower, (upper - lower).log()


def _log_ehvi(f: torch.Tensor, lower: torch.Tensor, log_len: torch.Tensor) -> torch.Tensor:
    """Log expected hypervolume improvement of single points: ``S x b x m`` samples and
    ``S x C x m`` non-dominated cells (lower bounds, log side lengths) -> ``b``.

    Where some sample improves, this is ``log mean_s HVI_s`` with the exact improvement
    ``HVI_s = sum_c prod_j clamp(min(f_j, u_cj) - l_cj, 0)``; botorch's qLogEHVI smooths
    the clamp with a softplus of temperature 1e-6, which changes nothing at that scale.
    Where no sample improves (log 0), points are still ranked, below every improving
    one, by how close their most optimistic sample comes to a cell (``-FLAT - distance``),
    as the smoothed form's tail does, so a local search on a flat region keeps a slope.
    """
    lo = lower.unsqueeze(1)  # S x 1 x C x m
    gap = f.unsqueeze(-2) - lo  # S x b x C x m
    side = torch.minimum(gap, log_len.exp().unsqueeze(1)).clamp_min(0.0)
    hvi = side.prod(dim=-1).sum(dim=-1).mean(dim=0)  # b
    out = hvi.log()
    flat = hvi <= 0
    if flat.any():
        shortfall = (-gap[:, flat]).clamp_min(0.0).sum(-1)  # S x b' x C
        out[flat] = -FLAT - shortfall.amin(dim=-1).amin(dim=0)
    return out
