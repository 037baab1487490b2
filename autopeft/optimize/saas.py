"""Fully Bayesian SAAS GPs (Eriksson & Jankowiak 2021), sampled with NUTS in pyro.

The SAAS prior puts a half-Cauchy(0.1) global shrinkage on all inverse squared
length-scales and half-Cauchy(1) local ones: most dimensions are "off" unless the
data insist, which suits PEFT spaces where a few sizes matter and many bits do not.
AutoPEFT uses it with qNEHVI.

botorch's own ``fit_fully_bayesian_model_nuts`` runs NumPyro/JAX, which this
product does not ship; the same model (priors of botorch's ``SaasPyroModel``) is
written here for pyro (installed), and the posterior samples are loaded into
botorch's :class:`~botorch.models.fully_bayesian.SaasFullyBayesianSingleTaskGP`
machinery (a batched GP over the samples, ``GaussianMixturePosterior``), so the
acquisition marginalises over the samples exactly as with botorch's model.

Cost is bounded by the settings: ``saas_warmup`` + ``saas_samples`` NUTS
iterations of at most ``2^saas_max_tree_depth - 1`` leapfrog steps, each one
Cholesky of the ``n x n`` kernel; ``saas_samples / saas_thinning`` samples are kept
(the acquisition's cost is linear in them). botorch's defaults (512 + 256, depth 6,
16 kept) cost minutes per objective on a CPU; ours (24 + 24, depth 4, 8 kept) several
seconds at 50 trials, and with a study's state the samples are reused (the GPs
condition on new data) until the data has grown by ``refit_growth``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import torch

from autopeft.optimize.gp import lazy_keep
from autopeft.optimize.runtime import derive_seed
from autopeft.optimize.state import OptimizerState

if TYPE_CHECKING:
    from botorch.models import ModelListGP
    from botorch.models.fully_bayesian import SaasFullyBayesianSingleTaskGP

#: Added to the kernel diagonal in the pyro model for numerical stability.
JITTER = 1e-6


@dataclass(frozen=True)
class Nuts:
    """The NUTS budget of one SAAS fit: ``warmup`` + ``samples`` iterations of at most
    ``2^max_tree_depth - 1`` leapfrog steps; every ``thinning``-th sample is kept."""

    warmup: int = 24
    samples: int = 24
    thinning: int = 3
    max_tree_depth: int = 4


def fit_saas_list(
    X: torch.Tensor,
    Z: torch.Tensor,
    nuts: Nuts,
    seed: int,
    state: OptimizerState | None = None,
    reuse_samples: bool = True,
    refit_growth: float = 0.1,
) -> ModelListGP:
    """A ``ModelListGP`` of one fully Bayesian SAAS GP per column of ``Z``.

    With a ``state`` and ``reuse_samples``, the last posterior samples of the hyperparameters
    are kept (the GPs only condition on the new data) until the data has grown by
    ``refit_growth`` since they were drawn, as for :func:`~autopeft.optimize.gp.fit_gp_list`
    but from the first model on (``lazy_refit_from`` does not apply: NUTS is the cost).

    Args:
        X: ``n x d`` inputs in ``[0, 1]^d``; Z: ``n x m`` transformed objectives.
        nuts: NUTS budget; seed: seeds each chain (global torch RNG, forked by the caller).
        state: the study's memory (samples of the last NUTS run).
    """
    from botorch.models import ModelListGP

    names = [f"saas[{j}]" for j in range(Z.shape[-1])]
    cached = [state.hyperparameters.get(k) if (state is not None and reuse_samples) else None for k in names]
    n = X.shape[0]
    # NUTS dominates the cost of saas, so its samples are reused at any study size
    reuse = lazy_keep(state, cached, n, refit_growth, 0)
    models = []
    for j, name in enumerate(names):
        torch.manual_seed(derive_seed(seed, j) % (2**63))
        samples = cached[j] if reuse else None
        model, samples = fit_saas(X, Z[:, j : j + 1], nuts, samples)
        if state is not None:
            state.hyperparameters[name] = samples
        models.append(model)
    if state is not None:
        state.last_fit = "conditioned" if reuse else "cold"
        state.fitted_n = state.fitted_n if reuse else n
    return ModelListGP(*models)


def fit_saas(
    X: torch.Tensor, z: torch.Tensor, nuts: Nuts, samples: dict[str, torch.Tensor] | None = None
) -> tuple[SaasFullyBayesianSingleTaskGP, dict[str, torch.Tensor]]:
    """One SAAS GP on ``n x d`` inputs and ``n x 1`` targets, with given hyperparameter samples
    or new ones from NUTS; returns the model and the samples."""
    model = _saas_model_class()(X, z)
    if samples is None:
        samples = run_nuts(model.train_inputs[0], model.train_targets, nuts)
    model.load_samples(samples)
    return model, samples


def saas_log_joint_model(X: torch.Tensor, y: torch.Tensor) -> None:
    """The pyro model: SAAS length-scales, Gamma output scale and noise, Normal mean, Matern-5/2.

    ``X``: ``n x d``; ``y``: ``n`` standardised targets (observed).
    """
    import pyro
    import pyro.distributions as dist

    kw = {"dtype": X.dtype}
    n, d = X.shape
    outputscale = pyro.sample("outputscale", dist.Gamma(torch.tensor(2.0, **kw), torch.tensor(0.15, **kw)))
    mean = pyro.sample("mean", dist.Normal(torch.tensor(0.0, **kw), torch.tensor(1.0, **kw)))
    noise = pyro.sample("noise", dist.Gamma(torch.tensor(0.9, **kw), torch.tensor(10.0, **kw)))
    tausq = pyro.sample("kernel_tausq", dist.HalfCauchy(torch.tensor(0.1, **kw)))
    inv_length_sq = pyro.sample("_kernel_inv_length_sq", dist.HalfCauchy(torch.ones(d, **kw)))
    k = outputscale * matern52(X, (tausq * inv_length_sq).rsqrt())
    k = k + (noise + JITTER) * torch.eye(n, **kw)
    pyro.sample("Y", dist.MultivariateNormal(mean.expand(n), covariance_matrix=k), obs=y)


def matern52(X: torch.Tensor, lengthscale: torch.Tensor) -> torch.Tensor:
    """Matern-5/2 kernel matrix ``n x n`` of ``n x d`` inputs with ``d`` length-scales."""
    Xs = X / lengthscale
    sq = (Xs.unsqueeze(-2) - Xs.unsqueeze(-3)).pow(2).sum(-1)
    r = (sq + 1e-12).sqrt() * math.sqrt(5.0)
    return (1.0 + r + r.pow(2) / 3.0) * torch.exp(-r)


def run_nuts(X: torch.Tensor, y: torch.Tensor, nuts: Nuts) -> dict[str, torch.Tensor]:
    """Thinned posterior samples: ``mean``, ``outputscale``, ``noise`` (``S``) and
    ``lengthscale`` (``S x d``), with ``S = ceil(nuts.samples / nuts.thinning)``."""
    import pyro
    from pyro.infer import MCMC, NUTS

    pyro.clear_param_store()
    kernel = NUTS(saas_log_joint_model, jit_compile=False, full_mass=True, max_tree_depth=nuts.max_tree_depth)
    mcmc = MCMC(kernel, num_samples=nuts.samples, warmup_steps=nuts.warmup, disable_progbar=True)
    mcmc.run(X, y)
    raw = {k: v[:: nuts.thinning].detach().to(X.dtype) for k, v in mcmc.get_samples().items()}
    return {
        "mean": raw["mean"],
        "outputscale": raw["outputscale"],
        "noise": raw["noise"],
        "lengthscale": (raw["kernel_tausq"].unsqueeze(-1) * raw["_kernel_inv_length_sq"]).rsqrt(),
    }


@lru_cache(maxsize=1)
def _saas_model_class() -> type:
    """botorch's SAAS model class without its JAX model: built from pyro samples instead."""
    from botorch.models.fully_bayesian import SaasFullyBayesianSingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from botorch.models.utils.gpytorch_modules import MIN_INFERRED_NOISE_LEVEL
    from gpytorch.constraints import GreaterThan
    from gpytorch.kernels import MaternKernel, ScaleKernel
    from gpytorch.likelihoods import GaussianLikelihood
    from gpytorch.means import ConstantMean
    from gpytorch.models.exact_gp import ExactGP

    class PyroSaasGP(SaasFullyBayesianSingleTaskGP):
        """``SaasFullyBayesianSingleTaskGP`` whose samples come from :func:`run_nuts`."""

        def __init__(self, train_X: torch.Tensor, train_Y: torch.Tensor) -> None:
            transform = Standardize(m=1)
            transform.train()
            y, _ = transform(train_Y)
            self._num_outputs = 1
            self._input_batch_shape = torch.Size()
            X_tf, y_tf, _ = self._transform_tensor_args(X=train_X, Y=y)
            ExactGP.__init__(self, train_inputs=X_tf, train_targets=y_tf, likelihood=GaussianLikelihood())
            self.mean_module = self.covar_module = self.likelihood = None
            self.outcome_transform = transform

        def load_samples(self, samples: dict[str, torch.Tensor]) -> None:
            """Build the batched GP (batch = samples) from :func:`run_nuts`'s output."""
            s = samples["mean"].shape[0]
            batch, kw = torch.Size([s]), {"dtype": samples["mean"].dtype}
            mean = ConstantMean(batch_shape=batch).to(**kw)
            mean.constant = samples["mean"].reshape(s)
            covar = ScaleKernel(
                MaternKernel(nu=2.5, ard_num_dims=samples["lengthscale"].shape[-1], batch_shape=batch),
                batch_shape=batch,
            ).to(**kw)
            covar.outputscale = samples["outputscale"].reshape(s)
            covar.base_kernel.lengthscale = samples["lengthscale"].reshape(s, 1, -1)
            lik = GaussianLikelihood(batch_shape=batch, noise_constraint=GreaterThan(MIN_INFERRED_NOISE_LEVEL)).to(**kw)
            lik.noise_covar.noise = samples["noise"].clamp_min(MIN_INFERRED_NOISE_LEVEL).reshape(s, 1)
            self.mean_module, self.covar_module, self.likelihood = mean, covar, lik
            self.eval()

    return PyroSaasGP
