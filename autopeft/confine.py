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


#: Most entries a folder checked by :func:`entries_outside` may hold (a model folder holds a few dozen).
MAX_FOLDER_ENTRIES = 10_000


def entries_outside(folder: PathLike, roots: Sequence[Path], limit: int = MAX_FOLDER_ENTRIES) -> list[str] | None:
    """The entries of ``folder`` (at any depth) that resolve outside ``roots``, as paths relative to it.

    A file inside an allowed folder may be a symlink to anywhere; whoever reads the folder's files
    (``from_pretrained`` reads several) checks them all here first. Linked folders inside the roots
    are walked too, each real folder once. None when the folder holds more than ``limit`` entries.
    """
    outside_: list[str] = []
    seen: set[str] = set()
    count = 0
    for here, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(here)
        if real in seen:  # a link back to a folder already walked
            dirs[:] = []
            continue
        seen.add(real)
        kept = []
        for name in [*dirs, *files]:
            count += 1
            if count > limit:
                return None
            path = os.path.join(here, name)
            if not inside(path, roots):
                outside_.append(os.path.relpath(path, folder))
            elif name in dirs:
                kept.append(name)
        dirs[:] = [d for d in dirs if d in kept]
    return sorted(outside_)
