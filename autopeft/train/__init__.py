"""One trial: build the model, inject a configuration, train, evaluate, count parameters.

The worker's entry point is :func:`run_trial` (or :func:`train_trial` when the model
is wanted too), with a :class:`TrialCache` kept across trials::

    cache = TrialCache()
    result = run_trial("rte", None, {"lora": {"rank": 8}}, {"max_steps": 500}, device="cuda", cache=cache,
                       should_stop=stop_event.is_set)
    result.metric, result.param_fraction

Names are imported on first use, so ``autopeft.train.settings`` stays light for the server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "TrainingSettings": "settings",
    "parse_training": "settings",
    "TrialCache": "trial",
    "TrialResult": "trial",
    "TrainedTrial": "trial",
    "run_trial": "trial",
    "train_trial": "trial",
    "resolve_device": "trial",
    "TrialStopped": "loop",
    "estimate_fish_mask": "fisher",
    "TrainedModel": "saved",
    "save_trained": "saved",
    "load_trained": "saved",
}

__all__ = [
    "TrainedModel",
    "TrainedTrial",
    "TrainingSettings",
    "TrialCache",
    "TrialResult",
    "TrialStopped",
    "estimate_fish_mask",
    "load_trained",
    "parse_training",
    "resolve_device",
    "run_trial",
    "save_trained",
    "train_trial",
]

if TYPE_CHECKING:
    from autopeft.train.fisher import estimate_fish_mask
    from autopeft.train.loop import TrialStopped
    from autopeft.train.saved import TrainedModel, load_trained, save_trained
    from autopeft.train.settings import TrainingSettings, parse_training
    from autopeft.train.trial import TrainedTrial, TrialCache, TrialResult, resolve_device, run_trial, train_trial


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'autopeft.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"autopeft.train.{_EXPORTS[name]}"), name)
