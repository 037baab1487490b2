"""Scoring a model on rows of a task: logits, predictions, metrics."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from autopeft.tasks.metrics import compute_metrics
from autopeft.train.batching import Rows, column, eval_batches, model_inputs, to_device

if TYPE_CHECKING:
    from datasets import Dataset
    from torch import nn

    from autopeft.tasks.data import TaskData


def task_loss(logits: torch.Tensor, labels: torch.Tensor, regression: bool) -> torch.Tensor:
    """Cross-entropy for classes, mean squared error for a regression target (in fp32)."""
    if regression:
        return F.mse_loss(logits.squeeze(-1).float(), labels.float())
    return F.cross_entropy(logits.float(), labels)


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA under ``auto``; ``bf16`` asks for it on any device, ``fp32`` never."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    data: Rows,
    indices: Sequence[int],
    *,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    precision: str = "auto",
) -> np.ndarray:
    """``len(indices) x num_labels`` float32 logits, in the order of ``indices``; model in eval mode."""
    was_training = model.training
    model.eval()
    out: np.ndarray | None = None
    try:
        for positions, batch in eval_batches(data, indices, batch_size, pad_id):
            with autocast_for(device, precision):
                logits = model(**model_inputs(to_device(batch, device))).logits.float().cpu().numpy()
            if out is None:
                out = np.zeros((len(indices), logits.shape[-1]), dtype=np.float32)
            out[positions] = logits
    finally:
        model.train(was_training)
    return out if out is not None else np.zeros((0, 1), dtype=np.float32)


def predictions_from_logits(logits: np.ndarray, regression: bool) -> np.ndarray:
    """Class indices (argmax) or the regression output."""
    return logits[:, 0] if regression else logits.argmax(axis=-1)


def score(
    model: nn.Module,
    task: TaskData,
    data: Dataset,
    indices: Sequence[int],
    *,
    batch_size: int,
    device: torch.device,
    precision: str = "auto",
) -> dict[str, float]:
    """The task's metrics (its objective first) on ``indices`` of ``data``."""
    pad_id = pad_id_of(task.tokenizer)
    logits = predict_logits(
        model, data, indices, batch_size=batch_size, pad_id=pad_id, device=device, precision=precision
    )
    labels = column(data, "labels")[np.asarray(indices, dtype=np.int64)]
    return compute_metrics(task.metric_names, predictions_from_logits(logits, task.is_regression), labels)


def pad_id_of(tokenizer: object) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    return 0 if pad is None else int(pad)
