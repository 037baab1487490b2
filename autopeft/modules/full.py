"""Full fine-tuning: every backbone weight is trained. A baseline, never a search choice."""

from __future__ import annotations

from autopeft.config import Full
from autopeft.encoder import EncoderLayout, ModelShape
from autopeft.modules.base import Family, InjectContext, Injected, register


@register
class FullFamily(Family):
    name = "full"

    def inject(self, layout: EncoderLayout, settings: Full, ctx: InjectContext) -> Injected:
        params = [p for _, p in layout.backbone_named_parameters()]
        for p in params:
            p.requires_grad_(True)
        return Injected(params=params)

    def count(self, settings: Full, shape: ModelShape) -> int:
        return shape.backbone_params
