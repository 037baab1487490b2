"""(IA)³: learned vectors that rescale keys, values and the feed-forward activations (Liu et al.).

Each target linear layer of the chosen layers gets a trained vector, initialised to ones:
for the feed-forward block's output linear (``output`` on encoders, ``down`` on decoders) it
scales the layer's input, the feed-forward activations, and for every other target its
output. Without ``targets`` these are peft's defaults: keys, values and the feed-forward
output linear. The same as HF peft's ``IA3Config`` with that linear as a feed-forward
module, which the oracle tests check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from pydantic import Field, field_validator
from torch import nn

from autopeft.encoder import EncoderLayout, ModelShape
from autopeft.modules.base import (
    LINEAR_TARGETS,
    Family,
    FamilySettings,
    InjectContext,
    Injected,
    LayerSettings,
    LinearTarget,
    check_targets,
    register,
    targets_summary,
)
from autopeft.peft_format import PEFT_PREFIX, PeftAdapter, module_regex

#: Targets scaled on their input (the feed-forward activations); the others are scaled on their output.
INPUT_SCALED = ("output", "down")


class IA3(LayerSettings):
    """Learned scaling vectors on the named linear layers of the chosen layers."""

    targets: list[LinearTarget] | None = Field(
        None,
        min_length=1,
        description="Linear layers whose output (input for output and down) is scaled; omitted means keys, values "
        "and the feed-forward output (output on encoders, down on decoders), as peft.",
    )

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else check_targets(v)

    def targets_for(self, feed_forward_output: str) -> list[str]:
        """The targets on a model whose feed-forward output linear is named ``feed_forward_output``."""
        return self.targets if self.targets is not None else check_targets(["key", "value", feed_forward_output])


class IA3Linear(nn.Module):
    """Wraps a frozen ``nn.Linear`` (kept as ``base_layer``); ``ia3_l`` scales its input or its output."""

    def __init__(self, base_layer: nn.Module, scale_input: bool, rows: slice | None = None) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.scale_input = scale_input
        #: The block of output rows scaled, when the target is a part of a fused linear (None: all).
        self.rows = None if scale_input else rows
        if scale_input:
            size = base_layer.in_features
        else:
            size = base_layer.out_features if rows is None else rows.stop - rows.start
        device = next(base_layer.parameters()).device  # the base may itself be wrapped (LoRA)
        self.ia3_l = nn.Parameter(torch.ones(size, device=device))

    @property
    def in_features(self) -> int:
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        return self.base_layer.out_features

    @torch.no_grad()
    def folded(self) -> nn.Linear:
        """The base layer with the scaling folded into its weight (columns for an input scaling, rows and the
        bias for an output scaling): the form of a merged export. The base must be a plain linear by now."""
        base = self.base_layer
        scale = self.ia3_l.to(base.weight)
        if self.scale_input:
            base.weight.mul_(scale.view(1, -1))
        else:
            base.weight.mul_(scale.view(-1, 1))
            if base.bias is not None:
                base.bias.mul_(scale)
        return base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale_input:
            return self.base_layer((x * self.ia3_l).to(x.dtype))
        result = self.base_layer(x)
        if self.rows is None:
            return (result * self.ia3_l).to(result.dtype)
        ones = result.new_ones(result.shape[-1])
        scale = torch.cat([ones[: self.rows.start], self.ia3_l.to(result.dtype), ones[self.rows.stop :]])
        return result * scale


@register
class IA3Family(Family[IA3]):
    name = "ia3"
    settings_type = IA3
    order = 50
    unfoldable = None
    peft_type = "IA3"
    placement = "switch"
    space_field = "enabled"
    off = False
    #: Every target (the self-check keeps those the model has).
    check_settings: ClassVar[dict] = {"targets": list(LINEAR_TARGETS)}

    def inject(self, layout: EncoderLayout, settings: IA3, ctx: InjectContext) -> Injected:
        wrapped = []
        targets = settings.targets_for(layout.architecture.feed_forward_output)
        for i in settings.layer_set(layout.n_layers):
            for target in targets:
                parent, attr, rows = layout.site(i, target)
                scaled = IA3Linear(getattr(parent, attr), scale_input=target in INPUT_SCALED, rows=rows)
                setattr(parent, attr, scaled)
                wrapped.append(scaled)
        return Injected(params=[w.ia3_l for w in wrapped])  # not the wrapped base layer (bitfit's biases)

    def count(self, settings: IA3, shape: ModelShape) -> int:
        targets = settings.targets_for(shape.feed_forward_output)
        per_layer = sum(shape.linear_shapes[t][0 if t in INPUT_SCALED else 1] for t in targets)
        return per_layer * len(settings.layer_set(shape.n_layers))

    def summary_extra(self, settings: IA3) -> str:
        return targets_summary(settings.targets) if settings.targets is not None else ""

    def peft_adapter(
        self, families: Mapping[str, FamilySettings], layout: EncoderLayout, shape: ModelShape
    ) -> PeftAdapter:
        """peft's ``IA3Config``: the scaled linear layers, the input-scaled ones as ``feedforward_modules``."""
        settings = families[self.name]
        layers = settings.layer_set(shape.n_layers)
        targets = settings.targets_for(shape.feed_forward_output)
        input_scaled = [t for t in targets if t in INPUT_SCALED]
        config = {
            "peft_type": self.peft_type,
            "target_modules": module_regex(layout, targets, layers),
            "feedforward_modules": module_regex(layout, input_scaled, layers) if input_scaled else [],
            "init_ia3_weights": True,
        }
        tensors = {}
        for name, module in layout.model.named_modules():
            if isinstance(module, IA3Linear):  # peft keeps (1, in) for feed-forward layers, (out, 1) for the others
                shape = (1, -1) if module.scale_input else (-1, 1)
                tensors[f"{PEFT_PREFIX}{name}.ia3_l"] = module.ia3_l.view(*shape)
        return config, tensors
