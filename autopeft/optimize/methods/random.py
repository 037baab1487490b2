"""``random``: every trial drawn uniformly at random (the plainest baseline, no model)."""

from __future__ import annotations

from typing import Literal

from autopeft.optimize.methods.base import Method, MethodSettings, register


class RandomSettings(MethodSettings):
    """``{"method": "random"}``; ``n_initial`` only bounds the warm start's configurations."""

    method: Literal["random"] = "random"


@register
class Random(Method[RandomSettings]):
    name = "random"
    settings_type = RandomSettings
    design = "random"
    space_filling = True
