"""Parallel adapter: a bottleneck beside the feed-forward block, output scaled (He et al.)."""

from __future__ import annotations

from autopeft.config import ParallelAdapter
from autopeft.encoder import EncoderLayout, ModelShape
from autopeft.modules.base import Family, InjectContext, Injected, register
from autopeft.modules.bottleneck import Bottleneck, adapted_output, bottleneck_params


@register
class ParallelAdapterFamily(Family):
    name = "parallel_adapter"

    def inject(self, layout: EncoderLayout, settings: ParallelAdapter, ctx: InjectContext) -> Injected:
        hidden = layout.model.config.hidden_size
        adapters = []
        for i, size in settings.sizes(layout.n_layers).items():
            out = adapted_output(layout.layer(i))
            device = out.base_layer.dense.weight.device
            out.parallel = Bottleneck(hidden, size, 1, settings.activation).to(device)
            out.parallel_scaling = settings.scaling
            adapters.append(out.parallel)
        return Injected(modules=adapters)

    def count(self, settings: ParallelAdapter, shape: ModelShape) -> int:
        return sum(bottleneck_params(shape.hidden, s) for s in settings.sizes(shape.n_layers).values())
