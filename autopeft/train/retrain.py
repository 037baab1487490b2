"""Training a chosen configuration for good: the whole training file, no search split, scored on dev.

A study scores its trials on a held-out slice of the training file so that dev stays clean;
once a configuration is chosen, :func:`train_final` trains it on every training row with the
study's settings and reports the dev metrics, for one seed or several (:func:`train_seeds`)
to see how much a result moves with the seed.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autopeft.train.settings import TrainingSettings, parse_training
from autopeft.train.trial import TaskArg, TrainedTrial, train_trial

#: No periodic scoring: the final state is the model (one check at the end, on one row, keeps the loop's contract).
NO_EVALUATION = 10_000_000


def final_settings(training: TrainingSettings | Mapping[str, Any] | None, seed: int) -> TrainingSettings:
    """The study's settings for a final model: this seed, dev scored, no early stopping or best-state pick."""
    settings = parse_training(training)
    return settings.model_copy(
        update={"seed": seed, "evaluate_dev": True, "eval_every": NO_EVALUATION, "patience": None}
    )


def train_final(
    task: TaskArg,
    model: str | os.PathLike[str] | None,
    config: Mapping[str, Any],
    training: TrainingSettings | Mapping[str, Any] | None,
    *,
    seed: int,
    **kwargs: Any,
) -> TrainedTrial:
    """Train ``config`` on the whole training file; ``result.metrics["dev"]`` is its score (``kwargs``: as
    :func:`~autopeft.train.trial.train_trial`)."""
    return train_trial(task, model, config, final_settings(training, seed), whole_train=True, **kwargs)


@dataclass(frozen=True)
class SeedSummary:
    """Dev metrics of the same configuration over several seeds."""

    seeds: list[int]
    metric_name: str
    values: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"seeds": self.seeds, "metric": self.metric_name, "dev": self.values, "mean": self.mean, "std": self.std}


def summarise(trained: Sequence[TrainedTrial], seeds: Sequence[int]) -> SeedSummary:
    name = trained[0].result.metric_name
    return SeedSummary(list(seeds), name, [t.result.metrics["dev"][name] for t in trained])
