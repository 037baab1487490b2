"""BitFit: the bias terms of the chosen layers are trained, nothing is added (refused where there are none)."""

from __future__ import annotations

from typing import ClassVar

from autopeft.encoder import EncoderLayout, ModelShape
from autopeft.modules.base import Family, InjectContext, Injected, LayerSettings, register


class BitFit(LayerSettings):
    """The bias terms of the chosen layers are trained."""


@register
class BitFitFamily(Family[BitFit]):
    name = "bitfit"
    settings_type = BitFit
    order = 60
    unfoldable = None
    placement = "switch"
    space_field = "enabled"
    off = False
    check_settings: ClassVar[dict] = {}

    def inject(self, layout: EncoderLayout, settings: BitFit, ctx: InjectContext) -> Injected:
        params = []
        for i in settings.layer_set(layout.n_layers):
            for name, p in layout.layer(i).named_parameters():
                if name.endswith("bias") and id(p) in ctx.backbone_names:
                    p.requires_grad_(True)
                    params.append(p)
        return Injected(params=params)

    def unsupported(self, layout: EncoderLayout) -> str | None:
        if not any(n.endswith("bias") for layer in layout.layers for n, _ in layer.named_parameters()):
            return "its layers have no bias terms (the model was built without biases)"
        return None

    def count(self, settings: BitFit, shape: ModelShape) -> int:
        return sum(shape.layer_bias_params[i] for i in settings.layer_set(shape.n_layers))

    def trains_whole(self, settings: BitFit, layout: EncoderLayout) -> set[str]:
        names = {id(p): n for n, p in layout.backbone_named_parameters()}
        return {
            names[id(p)]
            for i in settings.layer_set(layout.n_layers)
            for n, p in layout.layer(i).named_parameters()
            if n.endswith("bias") and id(p) in names
        }
