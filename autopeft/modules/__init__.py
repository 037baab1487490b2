"""PEFT families, one per file (see :mod:`autopeft.modules.base`); :data:`FAMILIES` lists them all.

They are injected by name with :func:`autopeft.handle.inject`. Names are imported on first use,
so importing a family module stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "FAMILIES": "registry",
    "consistency_loss": "serial_adapter",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"autopeft.modules.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'autopeft.modules' has no attribute {name!r}")


if TYPE_CHECKING:
    from autopeft.modules.registry import FAMILIES
    from autopeft.modules.serial_adapter import consistency_loss
