"""What the model-based methods share: a model of the data, qLogNEHVI, and a discrete search.

Not a method itself (the registry does not import it): ``gp`` and ``saas`` subclass
:class:`BayesianMethod`, each saying how its model is fitted (:meth:`BayesianMethod.fit`), and their
settings subclass :class:`BayesianSettings`, the fields of the acquisition and its search.

A proposal: the objectives are transformed (:mod:`..transforms`), the model is fitted (or reused
from the study's state when the data did not change), qLogNEHVI is built with the pending points
and a reference point (:mod:`..acquisition`, :mod:`..reference`), and each of the ``n`` points is the
best the discrete local search finds (:mod:`..discrete`), joining the pending points before the next.
"""

from __future__ import annotations

import hashlib
import time
from abc import abstractmethod
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, ClassVar, TypeVar

from pydantic import Field

from autopeft.optimize.methods.base import History, Method, MethodSettings
from autopeft.optimize.settings import OutcomeTransform, ReferencePoint

if TYPE_CHECKING:
    import torch

    from autopeft.optimize.acquisition import Acquisition
    from autopeft.optimize.domain import Domain
    from autopeft.optimize.state import OptimizerState


class BayesianSettings(MethodSettings):
    """The fields every model-based method has: the acquisition, its search, and the cost levers."""

    renamed: ClassVar[dict[str, str]] = {"warm_start": "reuse_hyperparameters"}

    reference: ReferencePoint | None = Field(None, description="Override of the data-driven reference point.")
    outcome_transform: OutcomeTransform = Field(
        "copula", description="copula (rank -> normal scores, AutoPEFT's choice) or standardize."
    )
    mc_samples: int = Field(64, ge=8, le=1024, description="Quasi-MC samples of the acquisition function.")
    raw_samples: int = Field(256, ge=16, le=16_384, description="Candidates scored before local search.")
    num_restarts: int = Field(3, ge=1, le=64, description="Local searches started from the best candidates.")
    local_search_steps: int = Field(5, ge=0, le=1000, description="Moves per local search at most.")
    max_baseline: int = Field(
        96, ge=4, le=100_000, description="Observed points the acquisition keeps as its baseline (best Pareto ranks)."
    )
    reuse_hyperparameters: bool = Field(
        True,
        description="Start each model fit from the previous proposal's hyperparameters (or samples). "
        "Deprecated name: warm_start (accepted for one release; the study's own warm_start is another thing).",
    )
    refit_growth: float = Field(
        0.1,
        ge=0.0,
        le=10.0,
        description="With reuse_hyperparameters: refit them once the data grew by this fraction.",
    )
    threads: int = Field(1, ge=1, le=256, description="torch threads while proposing (a server stays responsive).")


B = TypeVar("B", bound=BayesianSettings)


class BayesianMethod(Method[B]):
    """A model of the objectives, qLogNEHVI on it, and a discrete local search (see the module docstring)."""

    @abstractmethod
    def fit(
        self, settings: B, X: torch.Tensor, Z: torch.Tensor, cards: Sequence[int], history: History, seed: int
    ) -> object:
        """A botorch model of ``Z`` (``n x m`` transformed objectives) on ``X`` (``n x d``, bin centres):
        one output per objective. ``history.state`` keeps what the next fit may start from;
        ``history.related`` is set only for a method that ``learns_related``."""

    def cached_acquisition(self, settings: B, history: History) -> bool:
        """Whether the model suits the fast single-candidate qLogNEHVI (:mod:`..nehvi`): independent exact GPs."""
        return False

    def propose(self, settings: B, history: History, n: int) -> list[tuple[float, ...]]:
        """``n`` points by sequential greedy qLogNEHVI (each chosen point joins the pending ones); with
        ``history.related``, on a model of the study and the earlier ones (its baseline, reference point
        and Pareto parents are the study's own). The space-filling design fills in if the search finds
        nothing new."""
        import torch

        from autopeft.optimize.acquisition import build_acquisition
        from autopeft.optimize.domain import snap
        from autopeft.optimize.reference import acquisition_reference, override_objectives
        from autopeft.optimize.runtime import derive_seed, sandbox
        from autopeft.optimize.sobol import space_filling
        from autopeft.optimize.transforms import fit_transform

        domain, state = history.domain, history.state
        cards = torch.tensor(list(domain.cardinalities), dtype=torch.double)
        run_seed = derive_seed(history.seed, history.position)
        with sandbox(settings.threads, run_seed):
            t0 = time.perf_counter()
            Xs, pending_s = snap(history.X, cards), snap(history.pending, cards)
            Z, transform = fit_transform(history.Y.to(torch.double), settings.outcome_transform)
            model = self._model(settings, Xs, Z, list(domain.cardinalities), history, run_seed)
            t1 = time.perf_counter()
            user = settings.reference
            ref = acquisition_reference(
                Z, transform, override_objectives(user.metric, user.param_fraction) if user else None
            )
            acqf = build_acquisition(
                model,
                Xs,
                Z,
                ref,
                pending_s,
                settings.mc_samples,
                settings.max_baseline,
                run_seed,
                self.cached_acquisition(settings, history),
            )
            t2 = time.perf_counter()
            chosen = _greedy(acqf, domain, cards, Xs, Z, n, settings, run_seed, history.taken)
        if state is not None:
            state.timings = {"fit": t1 - t0, "acquisition": t2 - t1, "search": time.perf_counter() - t2}
        out = [domain.canonical(x.tolist()) for x in chosen]
        if len(out) < n:  # the acquisition found nothing new: fill with the space-filling design
            out += space_filling(domain, n - len(out), history.seed, history.position + len(out), history.taken)
        return out

    def _model(
        self, settings: B, X: torch.Tensor, Z: torch.Tensor, cards: Sequence[int], history: History, seed: int
    ) -> object:
        """The model, reused from the study's state when it was fitted on the same data with the same
        settings, else :meth:`fit`."""
        state: OptimizerState | None = history.state
        related = history.related
        fingerprint = _fingerprint(settings, X, Z, *((related.X, related.Y, related.task) if related else ()))
        if state is not None and state.fitted_for == fingerprint and state.fitted_model is not None:
            state.last_fit = "reused"
            return state.fitted_model
        model = self.fit(settings, X, Z, cards, history, seed)
        if state is not None:
            state.fitted_for, state.fitted_model = fingerprint, model
        return model


def _greedy(
    acqf: Acquisition,
    domain: Domain,
    cards: torch.Tensor,
    X: torch.Tensor,
    Z: torch.Tensor,
    n: int,
    settings: BayesianSettings,
    seed: int,
    taken: set[Hashable],
) -> list[torch.Tensor]:
    """Up to ``n`` new points (``d`` bin centres each), one acquisition maximisation at a time,
    each chosen point added to the acquisition's pending points and to ``taken``.

    ``X`` (``n_c x d``) and ``Z`` (``n_c x m``) give the Pareto set whose mutations seed the search.
    """
    from autopeft.optimize.discrete import SearchBudget, maximize
    from autopeft.optimize.domain import from_index, to_index
    from autopeft.optimize.runtime import derive_seed
    from autopeft.pareto import pareto_mask

    parents = to_index(X[pareto_mask(Z)], cards)
    budget = SearchBudget(settings.raw_samples, settings.num_restarts, settings.local_search_steps)
    chosen: list[torch.Tensor] = []
    for i in range(n):
        idx = maximize(acqf, cards, parents, budget, derive_seed(seed, i), lambda x: domain.key(x.tolist()), taken)
        if idx is None:
            break
        x = from_index(idx, cards)
        taken.add(domain.key(x.tolist()))
        chosen.append(x)
        if i + 1 < n:
            acqf.add_pending(x.unsqueeze(0))
    return chosen


def _fingerprint(settings: BayesianSettings, *data: torch.Tensor) -> str:
    """Digest of the settings and the training data (with the related rows, if any). A study's settings
    never change, so all of them are in it: a state shared between settings refits rather than reuses."""
    import torch

    h = hashlib.sha256()
    h.update(settings.model_dump_json().encode())
    h.update(f"tensors:{len(data)}".encode())
    for t in data:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().contiguous().to(torch.double).numpy().tobytes())
    return h.hexdigest()
