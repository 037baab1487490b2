"""Tasks: descriptions (:mod:`~autopeft.tasks.spec`), loaders through ``datasets``, metrics.

>>> spec = resolve_task("rte", data_dir="/data/glue")
>>> data = load_task_data(spec, model_dir, max_length=128)
>>> split = data.split(0.1, seed=0)

Names are imported on first use, so ``from autopeft.tasks.spec import TaskSpec`` (the
server's need) does not pull in ``datasets`` or ``scipy``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "BUILTIN_TASKS": "spec",
    "METRICS": "spec",
    "TaskSpec": "spec",
    "resolve_task": "spec",
    "Split": "data",
    "TaskData": "data",
    "clear_cache": "data",
    "load_task_data": "data",
    "task_key": "data",
    "tokenize": "data",
    "cache_dir": "files",
    "read_labeled": "files",
    "read_rows": "files",
    "resolve_data_dir": "files",
    "METRIC_FUNCTIONS": "metrics",
    "compute_metrics": "metrics",
}

__all__ = [
    "BUILTIN_TASKS",
    "METRICS",
    "METRIC_FUNCTIONS",
    "Split",
    "TaskData",
    "TaskSpec",
    "cache_dir",
    "clear_cache",
    "compute_metrics",
    "load_task_data",
    "read_labeled",
    "read_rows",
    "resolve_data_dir",
    "resolve_task",
    "task_key",
    "tokenize",
]

if TYPE_CHECKING:
    from autopeft.tasks.data import Split, TaskData, clear_cache, load_task_data, task_key, tokenize
    from autopeft.tasks.files import cache_dir, read_labeled, read_rows, resolve_data_dir
    from autopeft.tasks.metrics import METRIC_FUNCTIONS, compute_metrics
    from autopeft.tasks.spec import BUILTIN_TASKS, METRICS, TaskSpec, resolve_task


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'autopeft.tasks' has no attribute {name!r}")
    return getattr(importlib.import_module(f"autopeft.tasks.{_EXPORTS[name]}"), name)
