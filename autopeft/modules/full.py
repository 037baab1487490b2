"""Full fine-tuning: every backbone weight is trained. A baseline, never a search choice."""

from __future__ import annotations

from typing import ClassVar

from autopeft.encoder import EncoderLayout, ModelShape
from autopeft.modules.base import Family, FamilySettings, InjectContext, Injected, register


class Full(FamilySettings):
    """Full fine-tuning: every backbone weight is trained (a baseline, not a search choice)."""


@register
class FullFamily(Family[Full]):
    name = "full"
    settings_type = Full
    order = 90
    unfoldable = None
    exclusive = "full fine-tuning already trains everything"
    check_settings: ClassVar[dict] = {}

    def inject(self, layout: EncoderLayout, settings: Full, ctx: InjectContext) -> Injected:
        params = [p for _, p in layout.backbone_named_parameters()]
        for p in params:
            p.requires_grad_(True)
        return Injected(params=params)

    def count(self, settings: Full, shape: ModelShape) -> int:
        return shape.backbone_params

    def trains_whole(self, settings: Full, layout: EncoderLayout) -> set[str]:
        return {n for n, _ in layout.backbone_named_parameters()}
