"""autopeft: multi-objective Bayesian search over parameter-efficient fine-tuning configurations.

The Python API, for your own training loop (``transformers.Trainer`` or any other)::

    import autopeft
    handle = autopeft.apply(model, {"lora": {"rank": 8, "targets": ["query", "value"]}})
    handle.accounting().peft_params      # counts: peft_params, head_params, param_fraction, by_family
    handle.trainable_parameters()        # what the optimiser should update (PEFT and the task head)
    ...                                  # train model as usual
    handle.save("runs/mine")             # then autopeft.load("runs/mine"), autopeft export ...
    autopeft.count({"lora": {"rank": 8}}, model)   # counts without touching the model

Names are imported on first use: ``import autopeft`` loads neither torch nor transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from autopeft._version import __version__

_EXPORTS = {"apply": "python_api", "load": "python_api", "count": "python_api"}

__all__ = ["__version__", "apply", "count", "load"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"autopeft.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'autopeft' has no attribute {name!r}")


if TYPE_CHECKING:
    from autopeft.python_api import apply, count, load
