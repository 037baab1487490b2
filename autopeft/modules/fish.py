"""FISH: train only the backbone entries a sparse mask selects (Sung et al.; IRD, seed 004).

The mask itself is estimated from data by :mod:`autopeft.train` (empirical Fisher);
here it is applied. Each masked tensor gets a parametrisation ``W0 + scatter(delta)``
whose only trainable part is ``delta``, one value per selected entry: frozen entries
cannot move, whatever the optimiser or weight decay does, and the optimiser holds
state for the selected entries alone.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from autopeft.config import Fish, PeftConfig
from autopeft.encoder import EncoderLayout, ModelShape
from autopeft.errors import ConfigError
from autopeft.modules.base import Family, InjectContext, Injected, register


class SparseDelta(nn.Module):
    """Parametrisation adding a trainable value at each selected (flattened) index."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        index = mask.reshape(-1).nonzero().squeeze(1)
        self.register_buffer("index", index)
        self.delta = nn.Parameter(torch.zeros(index.numel(), device=mask.device))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        flat = weight.reshape(-1).index_add(0, self.index, self.delta.to(weight.dtype))
        return flat.view_as(weight)


@register
class FishFamily(Family):
    name = "fish"

    def inject(self, layout: EncoderLayout, settings: Fish, ctx: InjectContext) -> Injected:
        if ctx.fish_mask is None:
            raise ConfigError(
                "fish needs a mask estimated from training data (autopeft.train estimates it); none was given"
            )
        owners = _owners(layout.model)
        by_name = {name: pid for pid, name in ctx.backbone_names.items()}
        deltas = []
        for name, mask in ctx.fish_mask.items():
            pid = by_name.get(name)
            if pid is None:
                raise ConfigError(f"fish mask names {name!r}, which is not a backbone parameter of this model")
            module, attr = owners[pid]
            param = getattr(module, attr)
            if mask.shape != param.shape or mask.dtype != torch.bool:
                raise ConfigError(
                    f"fish mask for {name!r} must be a bool tensor of shape {tuple(param.shape)}, "
                    f"got {mask.dtype} {tuple(mask.shape)}"
                )
            if param.requires_grad or not mask.any():  # trained whole by another family, or empty
                continue
            delta = SparseDelta(mask.to(param.device))
            parametrize.register_parametrization(module, attr, delta, unsafe=True)
            deltas.append(delta)
        return Injected(modules=deltas)

    def count(self, settings: Fish, shape: ModelShape) -> int:
        return settings.mask_size(shape.backbone_params)


def _owners(model: nn.Module) -> dict[int, tuple[nn.Module, str]]:
    """id of each parameter -> (module holding it directly, attribute name)."""
    out = {}
    for module in model.modules():
        for attr, p in module.named_parameters(recurse=False):
            out.setdefault(id(p), (module, attr))
    return out


def fish_candidates(model: nn.Module, config: PeftConfig) -> dict[str, nn.Parameter]:
    """Backbone parameters a FISH mask may select: all but those other families train whole.

    Names are those of the model before injection; ``model`` must not be injected yet.
    """
    layout = EncoderLayout(model)
    excluded: set[str] = set()
    if config.bitfit is not None:
        prefix = _layer_prefix(layout)
        for i in config.bitfit.layer_set(layout.n_layers):
            excluded.update(
                f"{prefix}{i}.{n}" for n, _ in layout.layer(i).named_parameters() if n.endswith("bias")
            )
    return {n: p for n, p in layout.backbone_named_parameters() if n not in excluded}


def _layer_prefix(layout: EncoderLayout) -> str:
    for name, module in layout.model.named_modules():
        if module is layout.layers:
            return name + "."
    raise ConfigError("cannot locate the encoder layers")
