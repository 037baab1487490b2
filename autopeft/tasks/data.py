"""A task's data, tokenised once per process, and the seeded split that scores a study.

:func:`load_task_data` reads the training file, fixes the label set, tokenises it and
keeps the result in a small in-process cache keyed by (tokenizer directory, task
description, data directory and file stamps, max length): a worker that runs many
trials on one task tokenises it once. The dev file is read and tokenised on first use.

The study objective is scored on a held-out slice of the *training* file
(:meth:`TaskData.split`), chosen by ``split_seed`` alone so that every trial of a
study is scored on the same examples and dev stays clean for the final report.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autopeft.errors import TaskError
from autopeft.tasks.files import class_names, read_labeled, read_rows, resolve_data_dir
from autopeft.tasks.spec import TaskSpec

if TYPE_CHECKING:
    from datasets import Dataset

MIN_MAX_LENGTH = 8
#: Tokenised tasks kept per process (a worker rarely alternates between more).
CACHE_SIZE = 8

_cache: OrderedDict[tuple, TaskData] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Split:
    """Row indices into :attr:`TaskData.train`: what is trained on and what scores the study."""

    train: np.ndarray
    search: np.ndarray


@dataclass
class TaskData:
    """A task read and tokenised: ``train`` has input columns, ``labels`` and ``length``."""

    spec: TaskSpec
    data_dir: Path
    labels: list[str] | None
    train: Dataset
    tokenizer: Any = field(repr=False)
    max_length: int = 128
    _dev: Dataset | None = field(default=None, repr=False)

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_regression(self) -> bool:
        return self.spec.kind == "regression"

    @property
    def metric_names(self) -> list[str]:
        return list(dict.fromkeys([self.spec.metric, *self.spec.extra_metrics]))

    def dev(self) -> Dataset:
        """The tokenised evaluation file (read on first use)."""
        if self._dev is None:
            rows = read_labeled(self.spec, self.data_dir / self.spec.eval_file, self.labels)
            self._dev = tokenize(rows, self.tokenizer, self.max_length)
        return self._dev

    def split(self, fraction: float, seed: int, max_train: int | None = None, max_search: int | None = None) -> Split:
        """Hold out ``fraction`` of the training rows (at least one) to score the objective.

        The held-out rows depend on ``seed`` and ``fraction`` only; ``max_train`` and
        ``max_search`` cap each side by a seeded random subset.
        """
        n = self.train.num_rows
        n_search = max(1, round(fraction * n))
        if n - n_search < 1:
            raise TaskError(
                f"the training file of task {self.spec.name!r} has {n} rows: too few to hold out "
                f"a search split of {fraction:g} and still train"
            )
        order = np.random.default_rng(seed).permutation(n)
        search, train = order[:n_search], order[n_search:]
        if max_search is not None:
            search = search[:max_search]
        if max_train is not None:
            train = train[:max_train]
        return Split(train=np.sort(train), search=np.sort(search))


@contextmanager
def datasets_progress(enabled: bool) -> Iterator[None]:
    """``datasets``' own progress bars (Map, Casting the dataset) on or off for a block, then as they were."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    if enabled:
        datasets.enable_progress_bars()
    else:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_disabled:
            datasets.disable_progress_bars()
        else:
            datasets.enable_progress_bars()


def load_task_data(
    spec: TaskSpec, model_dir: str | Path, max_length: int, roots: Sequence[str | os.PathLike[str]] | None = None
) -> TaskData:
    """The task's training data tokenised for the model at ``model_dir`` (cached per process).

    ``roots``: the only folders the task's files may be in (a worker's data roots); None: anywhere.
    """
    if max_length < MIN_MAX_LENGTH:
        raise TaskError(f"max_length {max_length} is below {MIN_MAX_LENGTH} tokens")
    data_dir = resolve_data_dir(spec, roots)
    key = (str(model_dir), spec.model_dump_json(), str(data_dir), _stamp(data_dir / spec.train_file), max_length)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    data = _build(spec, data_dir, Path(model_dir), max_length)
    with _cache_lock:
        _cache[key] = data
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return data


def clear_cache() -> None:
    """Forget every tokenised task (tests; a worker that switches to other data)."""
    with _cache_lock:
        _cache.clear()


def _build(spec: TaskSpec, data_dir: Path, model_dir: Path, max_length: int) -> TaskData:
    labels = spec.labels
    if spec.kind == "classification" and labels is None:
        raw = read_rows(spec, data_dir / spec.train_file, need_label=True).data.column("labels").to_pylist()
        labels = class_names(raw)
        if len(labels) < 2:
            single = f"the training file of task {spec.name!r} has a single label"
            raise TaskError(f"{single} {labels}; need two or more", public=f"{single}; need two or more")
    rows = read_labeled(spec, data_dir / spec.train_file, labels)
    tokenizer = tokenizer_for(str(model_dir))
    train = tokenize(rows, tokenizer, max_length)
    return TaskData(spec, data_dir, labels, train, tokenizer, max_length)


@lru_cache(maxsize=8)
def tokenizer_for(model_dir: str) -> Any:
    """The tokenizer of a model directory, loaded once per process."""
    from autopeft.encoder import load_tokenizer

    return load_tokenizer(Path(model_dir))


def tokenize(rows: Dataset, tokenizer: Any, max_length: int) -> Dataset:
    """Token ids of each row (pairs truncated longest-first), with ``length`` for batching by size."""
    check_max_length(max_length)
    text_columns = [c for c in ("text_a", "text_b") if c in rows.column_names]
    return rows.map(
        lambda batch: tokenize_columns(batch, tokenizer, max_length),
        batched=True,
        batch_size=1000,
        remove_columns=text_columns,
        keep_in_memory=True,
        load_from_cache_file=False,
    )


def tokenize_columns(columns: dict[str, list], tokenizer: Any, max_length: int) -> dict[str, list]:
    """:func:`tokenize` on plain columns (``text_a`` and maybe ``text_b``): token columns and ``length``."""
    check_max_length(max_length)
    texts = [columns[c] for c in ("text_a", "text_b") if c in columns]
    out = dict(tokenizer(*texts, truncation=True, max_length=max_length))
    out["length"] = [len(ids) for ids in out["input_ids"]]
    return out


def check_max_length(max_length: int) -> None:
    if max_length < MIN_MAX_LENGTH:
        raise TaskError(f"max_length {max_length} is below {MIN_MAX_LENGTH} tokens")


def task_key(spec: TaskSpec, data_dir: Path | None = None) -> str:
    """A stable string naming the task's description and data (for cache keys); ``data_dir``: where
    the task was found (default: where :func:`resolve_data_dir` finds it)."""
    data_dir = data_dir if data_dir is not None else resolve_data_dir(spec)
    body = {"spec": spec.model_dump(mode="json"), "dir": str(data_dir), "stamp": _stamp(data_dir / spec.train_file)}
    return json.dumps(body, sort_keys=True)


def _stamp(path: Path) -> tuple[int, int]:
    """Size and modification time: a changed file is a different task."""
    if path.is_dir():  # an arrow dataset folder: its files
        stamps = [_stamp(p) for p in sorted(path.iterdir()) if p.is_file()]
        return sum(s for s, _ in stamps), max((t for _, t in stamps), default=path.stat().st_mtime_ns)
    st = path.stat()
    return st.st_size, st.st_mtime_ns
