"""What every PEFT family implements, and the registry that maps names to families.

A family turns its settings (a model from :mod:`autopeft.config`) into trainable
modules inside an encoder (:meth:`Family.inject`) and knows, from the model's shape
alone, how many parameters that will train (:meth:`Family.count`). Tests check that
the two agree for every family.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch
    from torch import nn

    from autopeft.encoder import EncoderLayout, ModelShape


@dataclass
class Injected:
    """What one family added to a model: new modules and/or existing parameters it unfroze."""

    modules: list[nn.Module] = field(default_factory=list)
    params: list[nn.Parameter] = field(default_factory=list)
    #: Called by :meth:`PeftHandle.merge` (AdaMix averaging, prefix folding); None: nothing to merge.
    merge: Any = None

    def trained(self) -> list[nn.Parameter]:
        out = {id(p): p for p in self.params}
        for m in self.modules:
            for p in m.parameters():
                if p.requires_grad:
                    out.setdefault(id(p), p)
        return list(out.values())


@dataclass
class InjectContext:
    """Inputs some families need besides their settings, gathered before any family ran."""

    #: id of each backbone parameter -> its name in the model before injection.
    backbone_names: dict[int, str] = field(default_factory=dict)
    #: FISH: parameter name (before injection) -> boolean mask of the entries to train.
    fish_mask: dict[str, torch.Tensor] | None = None


class Family(ABC):
    """One PEFT family. Subclasses are stateless; state lives in the modules they inject."""

    name: ClassVar[str]

    @abstractmethod
    def inject(self, layout: EncoderLayout, settings: Any, ctx: InjectContext) -> Injected:
        """Add the family's modules to the model and return what it trains."""

    @abstractmethod
    def count(self, settings: Any, shape: ModelShape) -> int:
        """Parameters the family trains, from the model's shape alone."""

    def merged_count(self, settings: Any, shape: ModelShape) -> int:
        """Parameters the family keeps after merging for inference (default: all it trains)."""
        return self.count(settings, shape)


FAMILIES: dict[str, Family] = {}


def register(cls: type[Family]) -> type[Family]:
    """Class decorator: make a family available by its name."""
    FAMILIES[cls.name] = cls()
    return cls
