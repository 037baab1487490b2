"""``sobol``: every trial from the study's scrambled Sobol sequence (a space-filling baseline, no model)."""

from __future__ import annotations

from typing import Literal

from autopeft.optimize.methods.base import Method, MethodSettings, register


class SobolSettings(MethodSettings):
    """``{"method": "sobol"}``; ``n_initial`` only bounds the warm start's configurations."""

    method: Literal["sobol"] = "sobol"


@register
class Sobol(Method[SobolSettings]):
    name = "sobol"
    settings_type = SobolSettings
    design = "sobol"
    space_filling = True
