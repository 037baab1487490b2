"""Work on training data before injection: what a family of the configuration needs estimated from the
task, by family name (FISH's mask, from empirical Fisher information).

A value is kept in the worker's memory between trials (``PrepareInput.memo``) and, for FISH, on disk
under ``$AUTOPEFT_CACHE_DIR/fish``, so that a restarted worker does not estimate it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from autopeft.modules.fish import Fish, FishMask, candidates
from autopeft.train import fisher

if TYPE_CHECKING:
    from torch import nn

    from autopeft.config import PeftConfig


@dataclass(frozen=True)
class PrepareInput:
    """What a preparation may use: the model before injection, the task and the trial's settings."""

    model: nn.Module
    model_dir: Path
    data: Any  # autopeft.tasks.data.TaskData
    #: Rows of ``data.train`` the trial trains on (never the search split).
    train_rows: list[int]
    settings: Any  # autopeft.train.settings.TrainingSettings
    device: torch.device
    #: Backbone parameter names (before injection) the configuration's families train whole.
    trained_whole: frozenset[str]
    #: ``memo(key, compute)``: values kept by the worker between trials.
    memo: Callable[[str, Callable[[], Any]], Any]
    progress: Any = False
    should_stop: Callable[[], bool] | None = None
    #: Strings that identify the model's weights and the task's data, for cache keys.
    model_key: str = ""
    task_key: str = ""


def prepare_fish_mask(settings: Fish, inp: PrepareInput) -> FishMask:
    """The mask, from memory, else disk, else estimated on ``inp.train_rows`` (then stored in both)."""
    names = list(candidates(inp.model, inp.trained_whole))
    key = json.dumps(
        {
            "model": inp.model_key,
            "task": inp.task_key,
            "max_length": inp.settings.max_length,
            "samples": settings.samples,
            "fraction": settings.fraction,
            "ird": settings.ird,
            "seed": inp.settings.seed,
            "split": [inp.settings.search_split, inp.settings.split_seed, inp.settings.max_train_examples],
            "candidates": hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest(),
            "num_labels": inp.data.num_labels,
        },
        sort_keys=True,
        default=str,
    )

    def from_disk_or_estimate() -> FishMask:
        mask = load_cached_mask(key)
        if mask is None:
            mask = fisher.estimate_fish_mask(
                inp.model,
                settings,
                candidates(inp.model, inp.trained_whole),
                inp.data,
                inp.train_rows,
                seed=inp.settings.seed,
                device=inp.device,
                progress=inp.progress,
                should_stop=inp.should_stop,
            )
            save_cached_mask(key, mask)
        return mask

    mask = inp.memo(f"fish:{key}", from_disk_or_estimate)
    # Model order, whatever order the cache stored: the optimiser's parameter order (and so the
    # floating-point sums of gradient clipping) must not depend on where the mask came from.
    return {name: mask[name] for name in names if name in mask}


#: Family -> its preparation; a family not named here needs nothing from the data.
PREPARATIONS: dict[str, Callable[[Any, PrepareInput], Any]] = {"fish": prepare_fish_mask}


def prepare(config: PeftConfig, inp: PrepareInput) -> dict[str, Any]:
    """What each family of ``config`` needs from the data, by family name (for ``inject(prepared=...)``)."""
    return {name: PREPARATIONS[name](settings, inp) for name, settings in config.families().items() if name in PREPARATIONS}


def _mask_path(key: str) -> Path:
    from autopeft.tasks.files import cache_dir

    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return cache_dir() / "fish" / f"{digest}.safetensors"


def load_cached_mask(key: str) -> FishMask | None:
    """The mask saved under ``key``, or None (absent, unreadable, or saved for another key)."""
    from safetensors import safe_open

    path = _mask_path(key)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("key") != key:
                return None
            return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (OSError, ValueError, RuntimeError):
        return None


def save_cached_mask(key: str, mask: FishMask) -> None:
    """Write the mask atomically; a cache that cannot be written is skipped, not an error."""
    from safetensors.torch import save_file

    path, tmp = _mask_path(key), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        save_file({n: m.contiguous() for n, m in mask.items()}, tmp, metadata={"key": key})
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
