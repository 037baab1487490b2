"""Serial adapter: a bottleneck after the feed-forward block (Pfeiffer placement).

With ``experts > 1`` it is AdaMix (seed 001): stochastic routing among experts while
training, the experts' mean in evaluation, :func:`consistency_loss` for the trainer,
and merging into a single adapter for export.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from autopeft.encoder import EncoderLayout, ModelShape
from autopeft.modules.base import Family, InjectContext, Injected, SizedSettings, SizeSpec, check_size, register
from autopeft.modules.bottleneck import Bottleneck, adapted_output, bottleneck_params, device_of

Activation = Literal["relu", "gelu", "tanh", "silu"]
MAX_EXPERTS = 16
#: A bottleneck may be at most this many times the hidden size.
MAX_ADAPTER_FACTOR = 4


class SerialAdapter(SizedSettings):
    """Bottleneck after the feed-forward block (Pfeiffer placement); ``experts > 1`` is AdaMix."""

    size_field: ClassVar[str | None] = "size"
    size: SizeSpec = Field(description="Bottleneck width.")
    experts: int = Field(1, ge=1, le=MAX_EXPERTS, description="AdaMix experts; 1 is a plain adapter.")
    activation: Activation = Field("relu", description="Non-linearity inside the bottleneck.")

    @field_validator("size")
    @classmethod
    def _size(cls, v: SizeSpec) -> SizeSpec:
        return check_size(v, "size")


@register
class SerialAdapterFamily(Family[SerialAdapter]):
    name = "serial_adapter"
    settings_type = SerialAdapter
    order = 10
    unfoldable = "a serial adapter is a nonlinear bottleneck after the feed-forward block, not a weight change"
    placement = "sized"
    space_field = "size"
    check_settings: ClassVar[dict] = {"size": 2, "experts": 2}

    def inject(self, layout: EncoderLayout, settings: SerialAdapter, ctx: InjectContext) -> Injected:
        hidden = layout.model.config.hidden_size
        adapters = []
        for i, size in settings.sizes(layout.n_layers).items():
            out = adapted_output(layout, i)
            device = device_of(out.base_layer)
            out.serial = Bottleneck(hidden, size, settings.experts, settings.activation).to(device)
            adapters.append(out.serial)

        def merge() -> None:
            for a in adapters:
                a.merge()

        return Injected(modules=adapters, merge=merge, stochastic=settings.experts > 1)

    def count(self, settings: SerialAdapter, shape: ModelShape) -> int:
        return settings.experts * self.merged_count(settings, shape)

    def merged_count(self, settings: SerialAdapter, shape: ModelShape) -> int:
        return sum(bottleneck_params(shape.hidden, s) for s in settings.sizes(shape.n_layers).values())

    def size_limit(self, settings: SerialAdapter, shape: ModelShape) -> int:
        return MAX_ADAPTER_FACTOR * shape.hidden

    def summary_extra(self, settings: SerialAdapter) -> str:
        return f"x{settings.experts} experts" if settings.experts > 1 else ""


def consistency_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """AdaMix consistency: symmetric KL between two stochastically routed passes.

    ``logits_a`` and ``logits_b`` are ``batch x classes``; for regression (one output)
    the squared difference is used instead.
    """
    if logits_a.shape[-1] == 1:
        return F.mse_loss(logits_a.float(), logits_b.float())
    log_a = F.log_softmax(logits_a.float(), dim=-1)
    log_b = F.log_softmax(logits_b.float(), dim=-1)
    kl_ab = F.kl_div(log_b, log_a, log_target=True, reduction="batchmean")
    kl_ba = F.kl_div(log_a, log_b, log_target=True, reduction="batchmean")
    return 0.5 * (kl_ab + kl_ba)
