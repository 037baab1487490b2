"""Writing a model with a configuration injected (:class:`~autopeft.handle.PeftHandle`) as a saved trial.

A saved trial is a directory:

* ``trained.json``: format tag, the configuration, the task description, the label
  set, max length, the model reference (null: the bundled MiniLM) and its shape, the
  training settings and the trial's result;
* ``peft.safetensors``: the tensors the configuration trained, task head included, in
  their inference form (AdaMix experts averaged, prefix MLP folded);
* ``<artifact>.safetensors``: what a family prepared from data and needs again to be
  injected (``fish_mask.safetensors``: the FISH mask, when the configuration has ``fish``).

Only what was trained is stored; the frozen backbone comes from the base model, so a
LoRA save of MiniLM is a few hundred kilobytes. Writing goes to a temporary sibling
directory that is renamed at the end: a failed save leaves nothing behind. Reading it back
is :mod:`autopeft.train.saved`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from autopeft._version import __version__
from autopeft.encoder import is_bundled
from autopeft.errors import TrainingError
from autopeft.modules.registry import FAMILIES

if TYPE_CHECKING:
    import torch
    from torch import nn

    from autopeft.config import PeftConfig
    from autopeft.encoder import ModelShape


class Savable(Protocol):
    """What writing needs of a :class:`~autopeft.handle.PeftHandle` (the handle itself saves through here)."""

    model: nn.Module
    config: PeftConfig
    shape: ModelShape
    prepared: dict[str, Any]

    def merge(self) -> None: ...

    def peft_state_dict(self) -> dict[str, torch.Tensor]: ...

FORMAT = "autopeft-trained"
FORMAT_VERSION = 1
INFO_FILE, WEIGHTS_FILE = "trained.json", "peft.safetensors"


def check_save_path(out: str | os.PathLike[str]) -> Path:
    """The path to save to; refuses an existing non-empty path, or one under a file, before any training is spent.
    Missing parent folders are made when saving."""
    path = Path(out).expanduser()
    if path.exists() and not (path.is_dir() and not any(path.iterdir())):
        raise TrainingError(f"save path {str(path)!r} already exists; choose a new one")
    existing = next(p for p in path.absolute().parents if p.exists())
    if not existing.is_dir():
        raise TrainingError(f"cannot save to {str(path)!r}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise TrainingError(f"cannot save to {str(path)!r}: folder {str(existing)!r} is not writable")
    return path


def save_handle(
    handle: Savable,
    out: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] | None = None,
    labels: Sequence[str] | None = None,
) -> Path:
    """Write a model injected by :func:`autopeft.apply` (trained by any loop) to the new directory ``out``,
    for :func:`load_trained` / :func:`autopeft.load`; merges the model in place first.

    ``model``: the base model directory to record (default: the model's ``name_or_path`` when it is a
    directory); ``labels``: the label names in class-index order (default: the model's ``id2label``)."""
    config = handle.model.config
    base = model if model is not None else getattr(config, "name_or_path", None)
    base_dir = Path(base).expanduser().resolve() if base and Path(base).expanduser().is_dir() else None
    problem = getattr(config, "problem_type", None)
    num_labels = int(config.num_labels)
    if labels is None and problem != "regression":
        names = getattr(config, "id2label", None) or {}
        labels = [str(names.get(i, names.get(str(i), i))) for i in range(num_labels)]

    def info() -> dict[str, Any]:
        return {
            **header(),
            "model": None if base_dir is None or is_bundled(base_dir) else str(base_dir),
            "model_shape": handle.shape.to_json(),
            "task": None,
            "labels": list(labels) if labels is not None else None,
            "num_labels": num_labels,
            "problem_type": problem,
            "max_length": None,
            "config": handle.config.to_json(),
            "training": None,
            "result": None,
        }

    return write_saved(handle, info, out)


def write_saved(handle: Savable, info: Callable[[], dict[str, Any]], out: str | os.PathLike[str]) -> Path:
    from safetensors.torch import save_file

    path = check_save_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)  # ``--save runs/lora8`` in a fresh clone
    handle.merge()
    weights = {name: t.detach().cpu().contiguous() for name, t in handle.peft_state_dict().items()}
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary output folder
        save_file(weights, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
        for name, value in handle.prepared.items():
            artifact = FAMILIES[name].artifact
            if artifact is not None:
                tensors = {n: t.detach().cpu().contiguous() for n, t in value.items()}
                save_file(tensors, str(tmp / f"{artifact}.safetensors"), metadata={"format": FORMAT})
        (tmp / INFO_FILE).write_text(json.dumps(info(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def header() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "autopeft_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# -- writing folders ----------------------------------------------------------------------------------------
def write_dir(out: Path, write: Callable[[Path], None]) -> Path:
    """Write into a temporary sibling of ``out`` and rename it at the end: a failure leaves nothing."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        tmp.chmod(0o755)
        write(tmp)
        if out.exists():  # an empty folder (check_save_path refused any other)
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
