"""Every PEFT family of this package: a new family is a new file here, named in the import below.

The import is written out (no discovery by file name) so that the import checker sees every
family module, and with it every import a family makes. :data:`FAMILIES` maps names to
families in canonical order (``Family.order``), the order of configurations, summaries and spaces.
"""

from __future__ import annotations

from typing import Any

from autopeft.modules import (  # noqa: F401 - each module registers its family when imported
    base,
    bitfit,
    fish,
    full,
    ia3,
    lora,
    parallel_adapter,
    prefix,
    serial_adapter,
)

FAMILIES: dict[str, base.Family[Any]] = dict(sorted(base.FAMILIES.items(), key=lambda item: item[1].order))
