"""Injecting a configuration into a model: :func:`inject` -> :class:`PeftHandle`.

>>> handle = inject(model, {"lora": {"rank": 8}, "bitfit": {}})
>>> handle.accounting().peft_params
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autopeft.accounting import ParamCount
from autopeft.config import PeftConfig, parse_config
from autopeft.encoder import EncoderLayout, ModelShape
from autopeft.errors import ConfigError
from autopeft.modules.base import InjectContext, Injected
from autopeft.modules.registry import FAMILIES
from autopeft.shape import shape_of


@dataclass
class PeftHandle:
    """A model with a configuration injected: what it trains, how much, and how to export it."""

    model: nn.Module
    layout: EncoderLayout
    config: PeftConfig
    shape: ModelShape
    injected: dict[str, Injected]
    #: What the families' prepare steps produced (FISH's mask, names before injection), saved with the weights.
    prepared: dict[str, Any] = field(default_factory=dict)
    merged: bool = False

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.layout.head_named_parameters()]

    def peft_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Trained parameters of each family (the head excluded)."""
        return {name: inj.trained() for name, inj in self.injected.items()}

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Everything the optimiser should update: PEFT parameters and the task head."""
        seen: dict[int, nn.Parameter] = {}
        for params in self.peft_parameters().values():
            for p in params:
                seen.setdefault(id(p), p)
        for p in self.head_parameters():
            seen.setdefault(id(p), p)
        return list(seen.values())

    @property
    def stochastic(self) -> bool:
        """Training passes are stochastic (AdaMix routing): the trainer adds a consistency term."""
        return not self.merged and any(inj.stochastic for inj in self.injected.values())

    def accounting(self) -> ParamCount:
        """Parameter counts read off the live model (see :func:`autopeft.accounting.estimate`)."""
        by_family: dict[str, int] = {}
        counted: set[int] = set()
        for name, params in self.peft_parameters().items():
            fresh = [p for p in params if id(p) not in counted]
            counted.update(id(p) for p in fresh)
            by_family[name] = sum(p.numel() for p in fresh)
        head = sum(p.numel() for p in self.head_parameters())
        merged = {n: FAMILIES[n].merged_count(s, self.shape) for n, s in self.config.families().items()}
        if self.merged:
            merged = dict(by_family)
        return ParamCount.build(by_family, head, self.shape.backbone_params, sum(merged.values()))

    def merge(self) -> None:
        """Collapse AdaMix experts and fold prefix MLPs: the inference/export form."""
        for inj in self.injected.values():
            if inj.merge is not None:
                inj.merge()
        self.merged = True

    def save(
        self, out: str | os.PathLike[str], *, model: str | os.PathLike[str] | None = None, labels: Any = None
    ) -> Path:
        """Write the trained tensors (merged first, in place) and the configuration to the new directory
        ``out``, for :func:`autopeft.load` and ``autopeft export``. ``model``: the base model directory to
        record (default: the model's ``name_or_path``); ``labels``: label names in class-index order."""
        from autopeft.saving import save_handle

        return save_handle(self, out, model=model, labels=labels)

    def peft_state_dict(self) -> dict[str, torch.Tensor]:
        """Trained tensors (PEFT and head) by their names in the injected model."""
        wanted = {id(p) for p in self.trainable_parameters()}
        return {n: p.detach().clone() for n, p in self.model.named_parameters() if id(p) in wanted}

    def load_peft_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load tensors saved by :meth:`peft_state_dict` into an identically injected model."""
        own = dict(self.model.named_parameters())
        expected = {n for n, p in own.items() if id(p) in {id(q) for q in self.trainable_parameters()}}
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            detail = f"missing {sorted(missing)[:3]}" if missing else f"unexpected {sorted(unexpected)[:3]}"
            raise ConfigError(f"saved weights do not match the configuration: {detail}")
        with torch.no_grad():
            for name, tensor in state.items():
                own[name].copy_(tensor.to(own[name].device, own[name].dtype))


def trained_whole(model: nn.Module, config: PeftConfig | Mapping[str, Any]) -> set[str]:
    """Backbone parameter names (before injection) that the families of ``config`` train whole."""
    config, layout = parse_config(config), EncoderLayout(model)
    return set().union(*(FAMILIES[n].trains_whole(s, layout) for n, s in config.families().items()))


def inject(
    model: nn.Module, config: PeftConfig | Mapping[str, Any], *, prepared: Mapping[str, Any] | None = None
) -> PeftHandle:
    """Freeze ``model``'s backbone and add the families of ``config``; the head stays trainable.

    ``prepared`` holds, by family name, what :mod:`autopeft.train.prepare`
    estimated from data (FISH: its mask, backbone parameter names as in the model before injection);
    :func:`autopeft.train.train_trial` runs those steps.
    """
    config = parse_config(config)
    if getattr(model, "_autopeft_injected", False):
        raise ConfigError("this model already has a configuration injected; start from a fresh copy")
    layout = EncoderLayout(model)
    shape = shape_of(model)
    config.check_fits(shape)
    families = config.families()
    prepared = {name: value for name, value in (prepared or {}).items() if name in families}
    ctx = InjectContext(
        backbone_names={id(p): n for n, p in layout.backbone_named_parameters()},
        trained_whole=trained_whole(model, config),
        prepared=prepared,
    )
    for p in layout.backbone.parameters():
        p.requires_grad_(False)
    for _, p in layout.head_named_parameters():
        p.requires_grad_(True)
    injected = {name: FAMILIES[name].inject(layout, settings, ctx) for name, settings in families.items()}
    model._autopeft_injected = True
    return PeftHandle(model=model, layout=layout, config=config, shape=shape, injected=injected, prepared=prepared)
