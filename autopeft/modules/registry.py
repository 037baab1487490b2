"""Every PEFT family of this package, found by importing its modules: a new family is a new file.

:data:`FAMILIES` maps names to families in canonical order (``Family.order``), the order of
configurations, summaries and spaces.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from autopeft.modules import base

#: Modules of the package that hold no family (and may import what imports the registry).
_NOT_FAMILIES = {"base", "registry", "handle"}


def _load() -> dict[str, base.Family[Any]]:
    package = importlib.import_module("autopeft.modules")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in _NOT_FAMILIES and not info.name.startswith("_"):
            importlib.import_module(f"autopeft.modules.{info.name}")
    return dict(sorted(base.FAMILIES.items(), key=lambda item: item[1].order))


FAMILIES: dict[str, base.Family[Any]] = _load()
