"""The worker: claim a trial, train it with :mod:`autopeft.train`, report, repeat.

>>> from autopeft.client import ServerClient
>>> from autopeft.worker import Worker
>>> Worker(ServerClient("http://server:8000", api_key="..."), device="cuda:0").run()

It talks to the server through :class:`autopeft.client.ServerClient`, the REST client that
``autopeft study`` and the demo use too. ``Worker`` is imported on first use, so that the cli can
register ``autopeft worker`` (:mod:`.command`) where the worker extra is not installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {"Worker": "loop"}

__all__ = ["Worker"]

if TYPE_CHECKING:
    from autopeft.worker.loop import Worker


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'autopeft.worker' has no attribute {name!r}")
    return getattr(importlib.import_module(f"autopeft.worker.{_EXPORTS[name]}"), name)
