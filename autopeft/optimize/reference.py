"""The acquisition's reference point, in the model's (transformed) objective units.

A fixed reference point can leave a study without signal: when no observation
beats it, every hypervolume improvement is zero until one does by luck (plain
BoTorch on DTLZ2 with the problem's reference). The default is therefore chosen
from the data: just below the worst point of the current Pareto front
(:func:`autopeft.pareto.data_reference_point`). A user may fix either coordinate
(:class:`~autopeft.optimize.settings.ReferencePoint`); it is mapped into model units
through the fitted outcome transform.
"""

from __future__ import annotations

import math

import torch

from autopeft.optimize.transforms import FittedTransform
from autopeft.pareto import data_reference_point


def acquisition_reference(
    Z: torch.Tensor, transform: FittedTransform, override: torch.Tensor | None = None
) -> torch.Tensor:
    """Reference point (``m``) in model units.

    Args:
        Z: ``n x m`` transformed, maximised objectives of the completed trials.
        transform: the map from objective units to model units fitted on them.
        override: ``m`` values in objective units, NaN where the data should decide.
    """
    ref = data_reference_point(Z)
    if override is None:
        return ref
    fixed = transform.map_point(torch.nan_to_num(override, nan=0.0))
    return torch.where(torch.isnan(override), ref, fixed)


def override_objectives(metric: float | None, param_fraction: float | None) -> torch.Tensor | None:
    """A user's reference (natural units) as maximised objectives ``(metric, -log10 fraction)``,
    NaN where not given; None when neither is given."""
    if metric is None and param_fraction is None:
        return None
    from autopeft.pareto import fraction_objective

    return torch.tensor(
        [
            math.nan if metric is None else float(metric),
            math.nan if param_fraction is None else fraction_objective(param_fraction),
        ],
        dtype=torch.double,
    )
