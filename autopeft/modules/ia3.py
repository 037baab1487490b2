"""(IA)³: learned vectors that rescale keys, values and the feed-forward activations (Liu et al.).

Each target linear layer of the chosen layers gets a trained vector, initialised to ones:
for ``output`` (the feed-forward block's second linear) it scales the layer's input, the
feed-forward activations, and for every other target its output (keys and values with the
default targets). The same as HF peft's ``IA3Config`` with ``output`` as a feed-forward
module, which the oracle tests check.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field, field_validator
from torch import nn

from autopeft.encoder import EncoderLayout, ModelShape
from autopeft.modules.base import (
    Family,
    InjectContext,
    Injected,
    LayerSettings,
    LinearTarget,
    check_targets,
    register,
    targets_summary,
)

#: Targets scaled on their input (the feed-forward activations); the others are scaled on their output.
INPUT_SCALED = ("output",)


class IA3(LayerSettings):
    """Learned scaling vectors on the named linear layers of the chosen layers."""

    targets: list[LinearTarget] = Field(
        ["key", "value", "output"], min_length=1, description="Linear layers whose output (input for output) is scaled."
    )

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        return check_targets(v)


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
    placement = "switch"
    space_field = "enabled"
    off = False
    check_settings: ClassVar[dict] = {"targets": ["query", "key", "value", "attention_output", "intermediate", "output"]}

    def inject(self, layout: EncoderLayout, settings: IA3, ctx: InjectContext) -> Injected:
        wrapped = []
        for i in settings.layer_set(layout.n_layers):
            for target in settings.targets:
                parent, attr, rows = layout.site(i, target)
                scaled = IA3Linear(getattr(parent, attr), scale_input=target in INPUT_SCALED, rows=rows)
                setattr(parent, attr, scaled)
                wrapped.append(scaled)
        return Injected(params=[w.ia3_l for w in wrapped])  # not the wrapped base layer (bitfit's biases)

    def count(self, settings: IA3, shape: ModelShape) -> int:
        per_layer = sum(shape.linear_shapes[t][0 if t in INPUT_SCALED else 1] for t in settings.targets)
        return per_layer * len(settings.layer_set(shape.n_layers))

    def summary_extra(self, settings: IA3) -> str:
        return targets_summary(settings.targets)
