"""Run a proposal in a box: few torch threads, its own random streams, quiet warnings.

torch's thread count and global RNG are process-wide; a proposal sets them for its
own duration and restores them afterwards, so a server process keeps its threads
for requests and its random state is untouched by proposing.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: torch.set_num_threads is process-wide: proposals in two threads must not interleave it.
_THREADS_LOCK = threading.Lock()


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (the study seed and the size of its history)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h ^= (int(p) + 0x9E3779B97F4A7C15 + ((h << 6) & (2**64 - 1)) + (h >> 2)) & (2**64 - 1)
        h = (h * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    return h >> 1


@contextmanager
def sandbox(threads: int, seed: int) -> Iterator[None]:
    """Limit torch to ``threads`` threads and seed torch's RNG with ``seed``; restore both after."""
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
                torch.manual_seed(seed)
                _quiet_expected_warnings()
                yield
        finally:
            torch.set_num_threads(before)


def _quiet_expected_warnings() -> None:
    """Warnings that are expected here and say nothing to a study's owner."""
    from botorch.exceptions.warnings import InputDataWarning, NumericsWarning, OptimizationWarning
    from linear_operator.utils.warnings import NumericalWarning

    for category in (InputDataWarning, NumericsWarning, OptimizationWarning, NumericalWarning):
        warnings.simplefilter("ignore", category)
    # the multi-task GP's likelihood builds a sparse matrix; torch notes once that it skips invariant checks
    warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
