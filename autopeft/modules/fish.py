"""FISH: train only the backbone entries a sparse mask selects (Sung et al.; IRD, seed 004).

The mask is estimated from training data before injection (empirical Fisher,
:mod:`autopeft.train.fisher`, through :mod:`autopeft.train.prepare`, which also caches it). Injection
gives each masked tensor a parametrisation ``W0 + scatter(delta)`` whose only trainable part
is ``delta``, one value per selected entry: frozen entries cannot move, whatever the optimiser
or weight decay does, and the optimiser holds state for the selected entries alone.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import nn
from torch.nn.utils import parametrize

from autopeft.encoder import EncoderLayout, ModelShape
from autopeft.errors import ConfigError
from autopeft.modules.base import Family, FamilySettings, InjectContext, Injected, register

#: Backbone parameter name (before injection) -> boolean mask of the entries to train.
FishMask = dict[str, torch.Tensor]


class Fish(FamilySettings):
    """A sparse mask over backbone weights chosen by empirical Fisher information."""

    fraction: float = Field(gt=0.0, le=1.0, allow_inf_nan=False, description="Share of backbone weights trained.")
    samples: int = Field(1024, ge=1, le=10_000_000, description="Training examples used to estimate Fisher.")
    ird: bool = Field(False, description="Choose samples and parameters by Iterative Range Decreasing.")

    def mask_size(self, backbone_params: int) -> int:
        """Number of backbone entries the mask unfreezes."""
        return max(1, min(backbone_params, round(self.fraction * backbone_params)))


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
class FishFamily(Family[Fish]):
    name = "fish"
    settings_type = Fish
    order = 70
    unfoldable = None
    placement = "global"
    space_field = "fraction"
    check_settings: ClassVar[dict] = {"fraction": 0.001, "samples": 2}
    artifact = "fish_mask"

    def inject(self, layout: EncoderLayout, settings: Fish, ctx: InjectContext) -> Injected:
        mask = ctx.prepared.get(self.name)
        if mask is None:
            raise ConfigError(
                "fish needs a mask estimated from training data (autopeft.train estimates it); none was given"
            )
        owners = _owners(layout.model)
        by_name = {name: pid for pid, name in ctx.backbone_names.items()}
        deltas = []
        for name, entries in mask.items():
            pid = by_name.get(name)
            if pid is None:
                raise ConfigError(f"fish mask names {name!r}, which is not a backbone parameter of this model")
            module, attr = owners[pid]
            param = getattr(module, attr)
            if entries.shape != param.shape or entries.dtype != torch.bool:
                raise ConfigError(
                    f"fish mask for {name!r} must be a bool tensor of shape {tuple(param.shape)}, "
                    f"got {entries.dtype} {tuple(entries.shape)}"
                )
            if param.requires_grad or not entries.any():  # trained whole by another family, or empty
                continue
            delta = SparseDelta(entries.to(param.device))
            parametrize.register_parametrization(module, attr, delta, unsafe=True)
            deltas.append(delta)
        return Injected(modules=deltas)

    def count(self, settings: Fish, shape: ModelShape) -> int:
        return settings.mask_size(shape.backbone_params)

    def summary_extra(self, settings: Fish) -> str:
        return f"{100 * settings.fraction:g}%" + (" ird" if settings.ird else "")

    def prepare_for_check(self, settings: Fish, model: nn.Module, trained_whole: set[str]) -> FishMask:
        g = torch.Generator().manual_seed(0)
        return {
            name: torch.rand(p.shape, generator=g) < max(settings.fraction, 1e-3)
            for name, p in candidates(model, trained_whole).items()
        }


def candidates(model: nn.Module, trained_whole: set[str] | frozenset[str]) -> dict[str, nn.Parameter]:
    """Backbone parameters a FISH mask may select: all but those other families train whole.

    Names are those of the model before injection; ``model`` must not be injected yet.
    """
    return {n: p for n, p in EncoderLayout(model).backbone_named_parameters() if n not in trained_whole}


def _owners(model: nn.Module) -> dict[int, tuple[nn.Module, str]]:
    """id of each parameter -> (module holding it directly, attribute name)."""
    out = {}
    for module in model.modules():
        for attr, p in module.named_parameters(recurse=False):
            out.setdefault(id(p), (module, attr))
    return out


__all__ = ["Fish", "FishFamily", "FishMask", "candidates"]
