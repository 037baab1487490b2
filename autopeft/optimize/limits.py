"""Limits on a method's settings that keep one proposal's cost bounded (a server checks them at creation).

Each method's fields have their own ranges (:mod:`autopeft.optimize.methods`); a few multiply into the
cost of one proposal, so the product is bounded too. The defaults sit well inside every limit; a server
still abandons a proposal that overruns its time budget (docs/server.md, "Fairness").
"""

from __future__ import annotations

from autopeft.errors import OptimizerError
from autopeft.optimize.methods.base import MethodSettings

#: NUTS leapfrog steps of one SAAS fit at most: ``(saas_warmup + saas_samples) * 2**saas_max_tree_depth``
#: (the defaults take 768).
MAX_NUTS_STEPS = 8192
#: Candidates scored before the local search, at most (the default is 256).
MAX_RAW_SAMPLES = 4096
#: Local-search moves of one proposed point at most: ``num_restarts * local_search_steps`` (each move scores
#: every neighbour, about two per dimension; the defaults take 15).
MAX_LOCAL_MOVES = 320
#: Quasi-MC samples of the acquisition at most (the default is 64).
MAX_MC_SAMPLES = 512


def check_cost(settings: MethodSettings) -> None:
    """Raise :class:`OptimizerError` naming the limit and the value when ``settings`` would make one proposal
    costlier than the limits above allow."""
    fields = settings.model_dump()
    if "saas_warmup" in fields:
        steps = (fields["saas_warmup"] + fields["saas_samples"]) * 2 ** fields["saas_max_tree_depth"]
        if steps > MAX_NUTS_STEPS:
            raise OptimizerError(
                f"optimizer: (saas_warmup {fields['saas_warmup']} + saas_samples {fields['saas_samples']}) x "
                f"2^saas_max_tree_depth {fields['saas_max_tree_depth']} = {steps:,} NUTS steps per fit, over the limit "
                f"of {MAX_NUTS_STEPS:,} (MAX_NUTS_STEPS) that keeps one proposal within a server's time budget"
            )
    if fields.get("raw_samples", 0) > MAX_RAW_SAMPLES:
        raise OptimizerError(
            f"optimizer: raw_samples {fields['raw_samples']} is over the limit of {MAX_RAW_SAMPLES} (MAX_RAW_SAMPLES)"
        )
    if "num_restarts" in fields:
        moves = fields["num_restarts"] * fields["local_search_steps"]
        if moves > MAX_LOCAL_MOVES:
            raise OptimizerError(
                f"optimizer: num_restarts {fields['num_restarts']} x local_search_steps {fields['local_search_steps']} "
                f"= {moves} local-search moves per point, over the limit of {MAX_LOCAL_MOVES} (MAX_LOCAL_MOVES)"
            )
    if fields.get("mc_samples", 0) > MAX_MC_SAMPLES:
        raise OptimizerError(
            f"optimizer: mc_samples {fields['mc_samples']} is over the limit of {MAX_MC_SAMPLES} (MAX_MC_SAMPLES)"
        )
