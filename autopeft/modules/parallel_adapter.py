"""Parallel adapter: a bottleneck beside the feed-forward block, output scaled (He et al.)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from autopeft.encoder import EncoderLayout, ModelShape
from autopeft.modules.base import Family, InjectContext, Injected, SizedSettings, SizeSpec, check_size, register
from autopeft.modules.bottleneck import Bottleneck, adapted_output, bottleneck_params, device_of
from autopeft.modules.serial_adapter import MAX_ADAPTER_FACTOR, Activation


class ParallelAdapter(SizedSettings):
    """Bottleneck beside the feed-forward block, its output multiplied by ``scaling``."""

    size_field: ClassVar[str | None] = "size"
    size: SizeSpec = Field(description="Bottleneck width.")
    scaling: float = Field(4.0, gt=0, le=1e3, allow_inf_nan=False, description="Output scale s.")
    activation: Activation = Field("relu", description="Non-linearity inside the bottleneck.")

    @field_validator("size")
    @classmethod
    def _size(cls, v: SizeSpec) -> SizeSpec:
        return check_size(v, "size")


@register
class ParallelAdapterFamily(Family[ParallelAdapter]):
    name = "parallel_adapter"
    settings_type = ParallelAdapter
    order = 20
    unfoldable = "a parallel adapter is a nonlinear bottleneck beside the feed-forward block, not a weight change"
    placement = "sized"
    space_field = "size"
    check_settings: ClassVar[dict] = {"size": 2}

    def inject(self, layout: EncoderLayout, settings: ParallelAdapter, ctx: InjectContext) -> Injected:
        hidden = layout.model.config.hidden_size
        adapters = []
        for i, size in settings.sizes(layout.n_layers).items():
            out = adapted_output(layout, i)
            device = device_of(out.base_layer)
            out.parallel = Bottleneck(hidden, size, 1, settings.activation).to(device)
            out.parallel_scaling = settings.scaling
            adapters.append(out.parallel)
        return Injected(modules=adapters)

    def count(self, settings: ParallelAdapter, shape: ModelShape) -> int:
        return sum(bottleneck_params(shape.hidden, s) for s in settings.sizes(shape.n_layers).values())

    def size_limit(self, settings: ParallelAdapter, shape: ModelShape) -> int:
        return MAX_ADAPTER_FACTOR * shape.hidden
