"""Reading only inside given folders (a worker's roots): resolve a path, check it lies inside one.

A study names files and a model by path, and every worker would otherwise open whatever it
names. A path is resolved (symlinks and ``..`` followed) and read only if it lies inside one
of the roots; anything else fails with a message that names the path and the roots, and
nothing outside the roots is opened or even looked at. :class:`autopeft.roots.Roots` holds a
worker's roots; :mod:`autopeft.encoder` and :mod:`autopeft.tasks.files` check paths here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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
