"""The folders a worker may read: its data roots (``--data``, ``$AUTOPEFT_DATA_DIR``) and model roots
(``--models``; by default the bundled model and the data roots).

A study names files and a model by path, and every worker would otherwise open whatever it
names. A worker resolves each path (symlinks and ``..`` followed) and reads it only if it lies
inside one of its roots; anything else fails the trial with a message that names the path and
the roots, and nothing outside the roots is opened or even looked at.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PathLike = str | os.PathLike[str]


def real_roots(roots: Sequence[PathLike]) -> tuple[Path, ...]:
    """The roots as real paths (a root may itself be a symlink: the operator chose it)."""
    return tuple(Path(os.path.realpath(Path(r).expanduser())) for r in roots)


def inside(path: PathLike, roots: Sequence[Path]) -> bool:
    """Whether ``path``, symlinks and ``..`` resolved, is one of ``roots`` (real paths) or below one."""
    real = Path(os.path.realpath(Path(path).expanduser()))
    return any(real == root or real.is_relative_to(root) for root in roots)


def outside(what: str, path: PathLike, roots: Sequence[Path], flag: str) -> str:
    """The message for a path outside the roots: the path and the roots, nothing read from either."""
    listed = ", ".join(str(r) for r in roots) or "none"
    return f"{what} {str(path)!r} is outside the folders this worker may read ({listed}); {flag}"


@dataclass(frozen=True)
class Roots:
    """Where a worker may read task data and models (real paths)."""

    data: tuple[Path, ...]
    models: tuple[Path, ...]

    @classmethod
    def of(cls, data: Sequence[PathLike] | None = None, models: Sequence[PathLike] | None = None) -> Roots:
        """Data roots: ``data`` and ``$AUTOPEFT_DATA_DIR`` (several joined by ``os.pathsep``), or when
        neither names one, ``./data/glue`` and ``../shared/data/glue``. Model roots: ``models``, or by
        default the bundled model's folder and the data roots."""
        from autopeft.encoder import bundled_model_dir
        from autopeft.tasks.files import DATA_DIR_ENV, default_data_dirs

        env = [p for p in os.environ.get(DATA_DIR_ENV, "").split(os.pathsep) if p]
        chosen = [*(data or []), *env]
        data_roots = _unique(real_roots(chosen or default_data_dirs()))
        model_roots = real_roots(models) if models else (*real_roots([bundled_model_dir()]), *data_roots)
        return cls(data_roots, _unique(model_roots))


def _unique(paths: Sequence[Path]) -> tuple[Path, ...]:
    return tuple(dict.fromkeys(paths))
