"""Loading a saved trial (:mod:`autopeft.saving`) back onto its base model, for prediction; saving a trial
that :mod:`autopeft.train` trained."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from autopeft.config import parse_config
from autopeft.encoder import ModelShape, is_bundled, load_model, load_tokenizer, resolve_model_dir
from autopeft.errors import ModelError
from autopeft.handle import PeftHandle, inject
from autopeft.modules import FAMILIES
from autopeft.saving import FORMAT, FORMAT_VERSION, INFO_FILE, WEIGHTS_FILE, header, write_saved
from autopeft.shape import shape_of
from autopeft.tasks.data import tokenize_columns
from autopeft.tasks.files import encode_labels, encode_regression, read_columns
from autopeft.tasks.metrics import compute_metrics
from autopeft.tasks.spec import TaskSpec
from autopeft.train.evaluate import pad_id_of, predict_logits, predictions_from_logits
from autopeft.train.trial import TrainedTrial, resolve_device

if TYPE_CHECKING:
    from torch import nn


def save_trained(trained: TrainedTrial, out: str | os.PathLike[str]) -> Path:
    """Write ``trained`` to the new directory ``out``; merges the model in place first."""
    return write_saved(trained.handle, lambda: _info(trained), out)


def _info(trained: TrainedTrial) -> dict[str, Any]:
    data = trained.task
    return {
        **header(),
        "model": None if is_bundled(trained.model_dir) else str(trained.model_dir),
        "model_shape": trained.handle.shape.to_json(),
        "task": data.spec.model_copy(update={"data_dir": str(data.data_dir)}).model_dump(mode="json"),
        "labels": data.labels,
        "num_labels": data.num_labels,
        "problem_type": "regression" if data.is_regression else "single_label_classification",
        "max_length": data.max_length,
        "config": trained.config.to_json(),
        "training": trained.settings.model_dump(mode="json"),
        "result": trained.result.to_json(),
    }


@dataclass
class TrainedModel:
    """A saved trial loaded onto its base model, ready to predict."""

    model: nn.Module
    tokenizer: Any
    handle: PeftHandle
    #: None for a save without a task (:func:`save_handle`): then only :meth:`logits` on tokenised input.
    task: TaskSpec | None
    labels: list[str] | None
    max_length: int
    device: torch.device
    info: dict[str, Any]

    @property
    def is_regression(self) -> bool:
        if self.task is None:
            return self.info.get("problem_type") == "regression"
        return self.task.kind == "regression"

    def _need_task(self) -> TaskSpec:
        if self.task is None or self.tokenizer is None:
            raise ModelError("this save has no task description (saved from Python with handle.save); use .model")
        return self.task

    def logits(self, rows: Mapping[str, Sequence[str]], batch_size: int = 64) -> np.ndarray:
        """``n x num_labels`` logits for rows given as ``text_a`` (and ``text_b``) columns."""
        texts = {c: list(rows[c]) for c in ("text_a", "text_b") if c in rows}
        tokens = tokenize_columns(texts, self.tokenizer, self.max_length)
        return predict_logits(
            self.model,
            tokens,
            range(len(tokens["length"])),
            batch_size=batch_size,
            pad_id=pad_id_of(self.tokenizer),
            device=self.device,
            precision="fp32",
        )

    def predict(self, texts: Sequence[str | tuple[str, str]], batch_size: int = 64) -> list[str | float]:
        """Label names (or regression outputs) for single texts or ``(text_a, text_b)`` pairs."""
        task = self._need_task()
        pairs = [t if isinstance(t, tuple) else (t,) for t in texts]
        columns = {"text_a": [p[0] for p in pairs]}
        if len(task.text_columns) > 1:
            columns["text_b"] = [p[1] if len(p) > 1 else "" for p in pairs]
        return self.decode(self.logits(columns, batch_size))

    def decode(self, logits: np.ndarray) -> list[str | float]:
        out = predictions_from_logits(logits, self.is_regression)
        return [float(v) for v in out] if self.is_regression else [self.labels[int(i)] for i in out]

    def predict_file(self, path: str | os.PathLike[str]) -> tuple[list[str | float], dict[str, float] | None]:
        """Predictions for a file in the task's format, and the task's metrics when it has labels."""
        task = self._need_task()
        rows = read_columns(task, Path(path), need_label=False)
        logits = self.logits(rows)
        if "labels" not in rows:
            return self.decode(logits), None
        raw = list(rows["labels"])
        if self.is_regression:
            gold = encode_regression(raw, Path(path), self.task)
        else:
            gold = encode_labels(raw, self.labels, Path(path), self.task)
        names = [self.task.metric, *self.task.extra_metrics]
        return self.decode(logits), compute_metrics(names, predictions_from_logits(logits, self.is_regression), gold)


def load_trained(
    path: str | os.PathLike[str], *, model: str | os.PathLike[str] | nn.Module | None = None, device: str = "cpu"
) -> TrainedModel:
    """Load a directory written by :func:`save_trained` or :func:`save_handle` onto its base model.

    ``model``: another base model directory, or a base model already loaded (a fresh, un-injected
    ``...ForSequenceClassification`` of the same architecture, injected in place)."""
    from safetensors.torch import load_file
    from torch import nn

    folder = Path(path).expanduser()
    info = _read_info(folder)
    task = TaskSpec.model_validate(info["task"]) if info.get("task") else None
    labels = info["labels"]
    regression = (task.kind if task is not None else info.get("problem_type")) == "regression"
    num_labels = int(info.get("num_labels") or (1 if regression else len(labels)))
    if isinstance(model, nn.Module):
        base, model_dir, tokenizer = model, None, None
    else:
        model_dir = resolve_model_dir(model if model is not None else info["model"])
        problem = "regression" if regression else "single_label_classification"
        base = load_model(model_dir, num_labels, problem_type=problem)
        tokenizer = _tokenizer_or_none(model_dir, required=task is not None)
    _check_shape(shape_of(base), info["model_shape"], model_dir)
    config = parse_config(info["config"])
    prepared = {
        name: load_file(str(folder / f"{FAMILIES[name].artifact}.safetensors"))
        for name in config.families()
        if FAMILIES[name].artifact is not None and (folder / f"{FAMILIES[name].artifact}.safetensors").is_file()
    }
    handle = inject(base, config, prepared=prepared)
    handle.merge()
    handle.load_peft_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    dev = resolve_device(device)
    base.to(dev).eval()
    max_length = int(info["max_length"]) if info.get("max_length") else 512
    return TrainedModel(base, tokenizer, handle, task, labels, max_length, dev, info)


def _tokenizer_or_none(model_dir: Path, *, required: bool) -> Any:
    """The model's tokenizer; a weights-only base is fine for a save without a task (no ``predict``)."""
    try:
        return load_tokenizer(model_dir)
    except ModelError:
        if required:
            raise
        return None


def _read_info(folder: Path) -> dict[str, Any]:
    info_path = folder / INFO_FILE
    if not info_path.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise ModelError(f"{str(folder)!r} is not a saved autopeft trial (no {INFO_FILE} and {WEIGHTS_FILE})")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ModelError(f"cannot read {str(info_path)!r}: {err}") from None
    if info.get("format") != FORMAT or info.get("version") != FORMAT_VERSION:
        raise ModelError(
            f"{str(info_path)!r} has format {info.get('format')!r} version {info.get('version')!r}; "
            f"this autopeft reads {FORMAT!r} version {FORMAT_VERSION}"
        )
    return info


def _check_shape(shape: ModelShape, saved: dict[str, Any], model_dir: Path | None) -> None:
    """The weights only fit the model they were trained on: compare what the shape records."""
    now = shape.to_json()
    diff = [k for k in ("model_type", "n_layers", "hidden", "backbone_params") if now.get(k) != saved.get(k)]
    if diff:
        k = diff[0]
        raise ModelError(
            f"the saved weights were trained on a model with {k}={saved.get(k)!r}, but "
            f"{repr(str(model_dir)) if model_dir else 'the model given'} "
            f"has {k}={now.get(k)!r}; pass the original model with --model"
        )
