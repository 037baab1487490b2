"""What a study's optimiser remembers between proposals (optional, in memory).

A server keeps one :class:`OptimizerState` per study and passes it to every
:func:`~autopeft.optimize.propose` call for that study. It only makes proposals
cheaper, never different in kind: GP fits start from the last hyperparameters,
an unchanged data set reuses the last fitted model, and configuration keys are not
decoded twice. Without it every proposal starts cold. Not thread-safe: proposals
for one study are serialised anyway (DESIGN.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass
class OptimizerState:
    """Memory of one study's optimiser."""

    #: Bin vector -> configuration key (decoding is the slow part of de-duplication).
    keys: dict[tuple[int, ...], str] = field(default_factory=dict)
    #: Model kind -> parameter name -> value, from the last fit (warm starts).
    hyperparameters: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    #: Number of trials the cached hyperparameters were fitted on.
    fitted_n: int = 0
    #: Fingerprint of the data and settings of the last fit, and the model fitted on it.
    fitted_for: str | None = None
    fitted_model: Any = None
    #: Seconds spent in each phase of the last proposal (for measurements and logs).
    timings: dict[str, float] = field(default_factory=dict)
    #: How the last model-based proposal got its model: "cold", "warm" (fitted from the last
    #: hyperparameters), "conditioned" (last hyperparameters, new data) or "reused" (same data).
    last_fit: str | None = None

    def forget_model(self) -> None:
        """Drop fitted models and hyperparameters (keys stay: they never go stale)."""
        self.hyperparameters.clear()
        self.fitted_for, self.fitted_model, self.last_fit, self.fitted_n = None, None, None, 0
