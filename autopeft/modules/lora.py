"""LoRA: a low-rank update ``B @ A`` scaled by ``alpha / rank`` on named linear layers.

Initialised as in HF peft (A: Kaiming-uniform, B: zero), so a new LoRA is the identity.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from autopeft.config import LoRA
from autopeft.encoder import EncoderLayout, ModelShape
from autopeft.modules.base import Family, InjectContext, Injected, register


class LoRALinear(nn.Module):
    """Wraps a frozen ``nn.Linear`` (kept as ``base_layer``) with a trainable low-rank update."""

    def __init__(self, base_layer: nn.Linear, rank: int, scaling: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.base_layer = base_layer
        device = base_layer.weight.device
        self.lora_A = nn.Linear(base_layer.in_features, rank, bias=False, device=device)
        self.lora_B = nn.Linear(rank, base_layer.out_features, bias=False, device=device)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.scaling = scaling
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    @property
    def in_features(self) -> int:
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        return self.base_layer.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = self.lora_B(self.lora_A(self.dropout(x).to(self.lora_A.weight.dtype)))
        return self.base_layer(x) + (update * self.scaling).to(x.dtype)


@register
class LoRAFamily(Family):
    name = "lora"

    def inject(self, layout: EncoderLayout, settings: LoRA, ctx: InjectContext) -> Injected:
        wrapped = []
        for i, rank in settings.sizes(layout.n_layers).items():
            for target in settings.targets:
                parent, attr = layout.linear(i, target)
                base = getattr(parent, attr)
                lora = LoRALinear(base, rank, settings.scaling(rank), settings.dropout)
                setattr(parent, attr, lora)
                wrapped.append(lora)
        return Injected(modules=[m for w in wrapped for m in (w.lora_A, w.lora_B)])

    def count(self, settings: LoRA, shape: ModelShape) -> int:
        per_rank = sum(sum(shape.linear_shapes[t]) for t in settings.targets)
        return sum(rank * per_rank for rank in settings.sizes(shape.n_layers).values())
