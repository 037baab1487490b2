"""The folders a worker may read: its data roots (``--data``, ``$AUTOPEFT_DATA_DIR``) and model roots
(``--models``; by default the bundled model and the data roots).

A worker reads a task's files and a model only inside its roots (:mod:`autopeft.confine`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autopeft.confine import PathLike, real_roots
from autopeft.encoder import bundled_model_dir
from autopeft.tasks.files import DATA_DIR_ENV, default_data_dirs


@dataclass(frozen=True)
class Roots:
    """Where a worker may read task data and models (real paths)."""

    data: tuple[Path, ...]
    models: tuple[Path, ...]

    @classmethod
    def of(cls, data: Sequence[PathLike] | None = None, models: Sequence[PathLike] | None = None) -> Roots:
        """Data roots: ``data`` and ``$AUTOPEFT_DATA_DIR`` (several joined by ``os.pathsep``), or when
        neither names one, ``./data/glue``. Model roots: ``models``, or by default the bundled model's
        folder and the data roots."""
        env = [p for p in os.environ.get(DATA_DIR_ENV, "").split(os.pathsep) if p]
        chosen = [*(data or []), *env]
        data_roots = _unique(real_roots(chosen or default_data_dirs()))
        model_roots = real_roots(models) if models else (*real_roots([bundled_model_dir()]), *data_roots)
        return cls(data_roots, _unique(model_roots))


def _unique(paths: Sequence[Path]) -> tuple[Path, ...]:
    return tuple(dict.fromkeys(paths))
