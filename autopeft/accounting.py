"""Parameter accounting: how many parameters a configuration trains.

``peft_params`` counts what the configuration trains, the task head excluded (FISH:
the selected entries); ``head_params`` is the head; ``param_fraction`` is
``peft_params / backbone_params``; ``merged_params`` is what is kept after merging
for inference (AdaMix experts averaged, prefix MLP folded). :func:`estimate` needs
only the model's shape; :meth:`autopeft.modules.PeftHandle.accounting` reads the
same numbers off an injected model, and tests check they agree. Each family counts itself
(:meth:`autopeft.modules.base.Family.count`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autopeft.config import PeftConfig, parse_config
from autopeft.encoder import ModelShape
from autopeft.modules.registry import FAMILIES


@dataclass(frozen=True)
class ParamCount:
    peft_params: int
    head_params: int
    backbone_params: int
    merged_params: int
    by_family: dict[str, int]

    @classmethod
    def build(cls, by_family: Mapping[str, int], head: int, backbone: int, merged: int) -> ParamCount:
        fams = {k: int(v) for k, v in by_family.items()}
        return cls(sum(fams.values()), int(head), int(backbone), int(merged), fams)

    @property
    def param_fraction(self) -> float:
        return self.peft_params / self.backbone_params

    def to_json(self) -> dict[str, Any]:
        return {
            "peft_params": self.peft_params,
            "head_params": self.head_params,
            "backbone_params": self.backbone_params,
            "param_fraction": self.param_fraction,
            "merged_params": self.merged_params,
            "by_family": dict(self.by_family),
        }


def estimate(config: PeftConfig | Mapping[str, Any], shape: ModelShape) -> ParamCount:
    """Exact counts for ``config`` on a model of ``shape``, without building anything."""
    config = parse_config(config)
    config.check_fits(shape)
    fams = config.families()
    by_family = {name: FAMILIES[name].count(s, shape) for name, s in fams.items()}
    merged = sum(FAMILIES[name].merged_count(s, shape) for name, s in fams.items())
    return ParamCount.build(by_family, shape.head_params, shape.backbone_params, merged)
