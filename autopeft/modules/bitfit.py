"""BitFit: the bias terms of the chosen encoder layers are trained, nothing is added."""

from __future__ import annotations

from autopeft.config import BitFit
from autopeft.encoder import EncoderLayout, ModelShape
from autopeft.modules.base import Family, InjectContext, Injected, register


@register
class BitFitFamily(Family):
    name = "bitfit"

    def inject(self, layout: EncoderLayout, settings: BitFit, ctx: InjectContext) -> Injected:
        params = []
        for i in settings.layer_set(layout.n_layers):
            for name, p in layout.layer(i).named_parameters():
                if name.endswith("bias") and id(p) in ctx.backbone_names:
                    p.requires_grad_(True)
                    params.append(p)
        return Injected(params=params)

    def count(self, settings: BitFit, shape: ModelShape) -> int:
        return sum(shape.layer_bias_params[i] for i in settings.layer_set(shape.n_layers))
