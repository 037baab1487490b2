"""LoRA: a low-rank update ``B @ A`` scaled by ``alpha / rank`` on named linear layers.

Initialised as in HF peft (A: Kaiming-uniform, B: zero), so a new LoRA is the identity.
With ``dora`` it is DoRA (weight-decomposed LoRA, as HF peft's ``use_dora``): the adapted
weight ``W + s BA`` is split into a trained magnitude per output row and its direction,
``m * (W + s BA) / ||W + s BA||``, the norm treated as a constant in the backward pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from autopeft.encoder import EncoderLayout, ModelShape
from autopeft.modules.base import (
    LINEAR_TARGETS,
    Family,
    FamilySettings,
    InjectContext,
    Injected,
    LinearTarget,
    SizedSettings,
    SizeSpec,
    check_size,
    check_targets,
    register,
    targets_summary,
)
from autopeft.peft_format import PEFT_PREFIX, PeftAdapter, head_modules, module_regex


class LoRA(SizedSettings):
    """Low-rank update ``B @ A * alpha / rank`` on the named linear layers."""

    size_field: ClassVar[str | None] = "rank"
    added_fields: ClassVar[frozenset[str]] = frozenset({"dora"})
    rank: SizeSpec = Field(description="Rank r of the update.")
    alpha: float | None = Field(
        None, gt=0, le=1e4, allow_inf_nan=False, description="Scale numerator; omitted means 2 * rank."
    )
    targets: list[LinearTarget] = Field(["query", "value"], min_length=1, description="Linear layers to adapt.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    dora: bool = Field(False, description="DoRA: also train a magnitude per output row (HF peft's use_dora).")

    @field_validator("rank")
    @classmethod
    def _rank(cls, v: SizeSpec) -> SizeSpec:
        return check_size(v, "rank")

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        return check_targets(v)

    def scaling(self, rank: int) -> float:
        alpha = 2.0 * rank if self.alpha is None else self.alpha
        return alpha / rank


def base_linear(module: nn.Module) -> nn.Linear:
    """The ``nn.Linear`` under any number of wrappers (``base_layer`` chains: LoRA on two parts of a fused layer)."""
    while not isinstance(module, nn.Linear) and hasattr(module, "base_layer"):
        module = module.base_layer
    return module


class LoRALinear(nn.Module):
    """Wraps a frozen ``nn.Linear`` (kept as ``base_layer``) with a trainable low-rank update.

    ``rows``: the block of output rows the update applies to, when the target is a part of a fused
    linear (ModernBERT's query, key and value in ``Wqkv``); None: all of them.
    """

    def __init__(
        self, base_layer: nn.Module, rank: int, scaling: float, dropout: float = 0.0, rows: slice | None = None
    ) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.rows = rows
        linear = base_linear(base_layer)
        device = linear.weight.device
        out = linear.out_features if rows is None else rows.stop - rows.start
        self.lora_A = nn.Linear(linear.in_features, rank, bias=False, device=device)
        self.lora_B = nn.Linear(rank, out, bias=False, device=device)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.scaling = scaling
        #: DoRA's magnitude per output row (None: plain LoRA).
        self.magnitude: nn.Parameter | None = None
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    @property
    def in_features(self) -> int:
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        return self.base_layer.out_features

    def _base_weight(self) -> torch.Tensor:
        weight = base_linear(self.base_layer).weight
        return weight if self.rows is None else weight[self.rows]

    def _base_bias(self) -> torch.Tensor | None:
        bias = base_linear(self.base_layer).bias
        return bias if bias is None or self.rows is None else bias[self.rows]

    def delta_weight(self) -> torch.Tensor:
        """``s B A``, ``out x in`` (``out``: the rows the update applies to)."""
        return self.scaling * (self.lora_B.weight @ self.lora_A.weight)

    def weight_norm(self) -> torch.Tensor:
        """Row norms of ``W + s B A`` (``out``), without gradient (DoRA, section 4.3)."""
        with torch.no_grad():
            weight = self._base_weight()
            return torch.linalg.norm(weight + self.delta_weight().to(weight), dim=1)

    def use_dora(self) -> None:
        self.magnitude = nn.Parameter(self.weight_norm().clone())

    @torch.no_grad()
    def folded(self) -> nn.Linear:
        """The base layer with the update folded into its weight (``W + s B A``; DoRA: each row rescaled to
        its magnitude), computing what this layer computes in eval mode: the form of a merged export."""
        base = self.base_layer
        weight = base.weight + self.delta_weight().to(base.weight)
        if self.magnitude is not None:
            weight = weight * (self.magnitude / torch.linalg.norm(weight, dim=1)).to(weight).view(-1, 1)
        base.weight.copy_(weight)
        return base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        dropped = self.dropout(x).to(self.lora_A.weight.dtype)
        update = self.lora_B(self.lora_A(dropped))
        own = result if self.rows is None else result[..., self.rows]
        if self.magnitude is None:
            change = update * self.scaling
        else:
            scale = (self.magnitude / self.weight_norm()).view(1, -1)
            bias = self._base_bias()
            if self.rows is None and (isinstance(self.dropout, nn.Identity) or not self.training):
                base = own if bias is None else own - bias
            else:
                base = F.linear(dropped.to(x.dtype), self._base_weight())
            change = (scale - 1) * base + scale * update * self.scaling
        if self.rows is None:
            return result + change.to(x.dtype)
        before, after = self.rows.start, result.shape[-1] - self.rows.stop
        return result + F.pad(change.to(x.dtype), (before, after))


@register
class LoRAFamily(Family[LoRA]):
    name = "lora"
    settings_type = LoRA
    order = 40
    unfoldable = None
    peft_type = "LORA"
    peft_companions = frozenset({"bitfit"})
    placement = "sized"
    space_field = "rank"
    check_settings: ClassVar[dict] = {"rank": 2, "targets": list(LINEAR_TARGETS), "dora": True}

    def inject(self, layout: EncoderLayout, settings: LoRA, ctx: InjectContext) -> Injected:
        wrapped = []
        for i, rank in settings.sizes(layout.n_layers).items():
            for target in settings.targets:
                parent, attr, rows = layout.site(i, target)
                lora = LoRALinear(getattr(parent, attr), rank, settings.scaling(rank), settings.dropout, rows)
                if settings.dora:
                    lora.use_dora()
                setattr(parent, attr, lora)
                wrapped.append(lora)
        # the LoRA layers and magnitudes only: the wrapped base layer's bias may belong to bitfit
        return Injected(
            modules=[m for w in wrapped for m in (w.lora_A, w.lora_B)],
            params=[w.magnitude for w in wrapped if w.magnitude is not None],
        )

    def count(self, settings: LoRA, shape: ModelShape) -> int:
        per_rank = sum(sum(shape.linear_shapes[t]) for t in settings.targets)
        magnitudes = sum(shape.linear_shapes[t][1] for t in settings.targets) if settings.dora else 0
        return sum(rank * per_rank + magnitudes for rank in settings.sizes(shape.n_layers).values())

    def size_limit(self, settings: LoRA, shape: ModelShape) -> int:
        return min(min(shape.linear_shapes[t]) for t in settings.targets if t in shape.linear_shapes)

    def summary_size(self, sizes: str) -> str:
        return f"r{sizes}"

    def summary_extra(self, settings: LoRA) -> str:
        targets = targets_summary(settings.targets)
        return f"{targets} dora" if settings.dora else targets

    def peft_refusal(
        self, families: Mapping[str, FamilySettings], layout: EncoderLayout, shape: ModelShape
    ) -> str | None:
        bitfit = families.get("bitfit")
        if bitfit is not None and bitfit.layers is not None:
            return "peft trains all biases or none (bias='all'), and this bitfit trains some layers only"
        return None

    def peft_adapter(
        self, families: Mapping[str, FamilySettings], layout: EncoderLayout, shape: ModelShape
    ) -> PeftAdapter:
        """peft's ``LoraConfig`` (DoRA as ``use_dora``, per-layer ranks as ``rank_pattern``, BitFit as ``bias="all"``)."""
        settings = families[self.name]
        ranks = settings.sizes(shape.n_layers)
        first = next(iter(ranks.values()))
        config: dict[str, Any] = {
            "peft_type": self.peft_type,
            "r": first,
            "lora_alpha": settings.scaling(first) * first,
            "target_modules": module_regex(layout, settings.targets, list(ranks)),
            "lora_dropout": settings.dropout,
            "use_dora": settings.dora,
            "bias": "all" if "bitfit" in families else "none",
            "rank_pattern": {},
            "alpha_pattern": {},
        }
        arch = layout.architecture
        for layer, rank in ranks.items():
            if rank != first:  # peft matches pattern keys as whole trailing parts of module names
                for target in settings.targets:
                    key = f"{arch.layers}.{layer}.{arch.linears[target].path}"
                    config["rank_pattern"][key] = rank
                    config["alpha_pattern"][key] = settings.scaling(rank) * rank
        tensors: dict[str, torch.Tensor] = {}
        for name, module in layout.model.named_modules():
            if isinstance(module, LoRALinear):
                tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"] = module.lora_A.weight
                tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"] = module.lora_B.weight
                if module.magnitude is not None:
                    tensors[f"{PEFT_PREFIX}{name}.lora_magnitude_vector"] = module.magnitude
        if config["bias"] == "all":  # peft stores every bias of the model; those bitfit trained are among them
            head = tuple(f"{h}." for h in head_modules(layout))
            for name, p in layout.model.named_parameters():
                if name.endswith("bias") and not name.startswith(head):
                    tensors[f"{PEFT_PREFIX}{name}"] = p
        return config, tensors
