"""``autopeft.apply``, ``autopeft.load`` and ``autopeft.count``: autopeft's configurations in your own code.

>>> model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
>>> handle = autopeft.apply(model, {"lora": {"rank": 8}}, seed=0)
>>> trainer = Trainer(model=model, ...); trainer.train()   # only the PEFT parameters and the head train
>>> handle.save("runs/mine")
>>> autopeft.load("runs/mine").model                      # the base model with the trained tensors

Any encoder autopeft supports works (see :mod:`autopeft.encoder`); the configuration is the
canonical JSON of :mod:`autopeft.config`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from autopeft.accounting import ParamCount
    from autopeft.config import PeftConfig
    from autopeft.handle import PeftHandle
    from autopeft.train.saved import TrainedModel

def apply(
    model: nn.Module,
    config: PeftConfig | Mapping[str, Any],
    *,
    seed: int | None = None,
    prepared: Mapping[str, Any] | None = None,
) -> PeftHandle:
    """Freeze ``model``'s backbone, inject ``config``'s families (in place) and return the handle.

    The handle gives the trained parameters (:meth:`~autopeft.modules.PeftHandle.trainable_parameters`,
    by family: ``peft_parameters``), the counts (``accounting()``), ``merge()`` (the inference form:
    AdaMix experts averaged, prefix MLPs folded) and ``save(dir)``. ``seed``: re-initialise the task head
    and draw the new modules from this seed, as ``autopeft train --seed`` does, so that a run of your
    own loop starts where autopeft's would. ``prepared``: what a family estimates from data before
    injection (FISH's mask; :func:`autopeft.train.estimate_fish_mask`), by family name.
    """
    from autopeft.handle import inject

    if seed is not None:
        import torch

        from autopeft.train.trial import reset_head

        reset_head(model, seed)
        torch.manual_seed(seed)
    return inject(model, config, prepared=prepared)


def load(
    path: str | os.PathLike[str], model: str | os.PathLike[str] | nn.Module | None = None, *, device: str = "cpu"
) -> TrainedModel:
    """A saved trial (``autopeft train --save``, ``autopeft study retrain --save``, ``handle.save``) on its
    base model: ``.model`` (in eval mode, ready for inference), ``.handle``, and for saves with a task
    ``.predict(texts)`` and ``.predict_file(path)``. ``model``: another base model directory, or a fresh
    base model already loaded (injected in place); default: the one it was trained on."""
    from autopeft.train.saved import load_trained

    return load_trained(path, model=model, device=device)


def count(
    config: PeftConfig | Mapping[str, Any], model: nn.Module | str | os.PathLike[str] | None = None
) -> ParamCount:
    """What ``config`` trains on ``model`` (a loaded model, a model directory, or None for the bundled
    MiniLM), from its shape alone: nothing is injected or loaded beyond the model's config."""
    from torch import nn

    from autopeft.accounting import estimate
    from autopeft.shape import model_shape, shape_of

    shape = shape_of(model) if isinstance(model, nn.Module) else model_shape(model)
    return estimate(config, shape)
