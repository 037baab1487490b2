"""Batches of tokenised rows, padded to the longest row of the batch (not to max_length).

Dynamic padding matters on CPU and for short-sentence tasks: SST-2 averages 13
tokens, so padding to 128 would cost ten times the compute. Evaluation batches rows
of similar length together for the same reason and puts predictions back in order.

Tokenised rows are a ``datasets.Dataset`` (training) or a dict of columns (prediction, which a
bare install runs without ``datasets``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Union

import numpy as np
import torch

if TYPE_CHECKING:
    from datasets import Dataset

#: Tokenised rows: a Dataset, or columns of equal length by name.
Rows = Union["Dataset", Mapping[str, Sequence]]

INPUT_COLUMNS = ("input_ids", "token_type_ids", "attention_mask")


def collate(rows: dict[str, list], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a column-wise batch (``Dataset[list_of_indices]``) into tensors."""
    width = max(rows["length"])
    batch = {}
    for key in INPUT_COLUMNS:
        if key not in rows:
            continue
        fill = pad_id if key == "input_ids" else 0
        padded = np.full((len(rows[key]), width), fill, dtype=np.int64)
        for i, ids in enumerate(rows[key]):
            padded[i, : len(ids)] = ids
        batch[key] = torch.from_numpy(padded)
    if "labels" in rows:
        batch["labels"] = torch.tensor(rows["labels"])
    return batch


def column(data: Rows, name: str) -> np.ndarray:
    """One column as a numpy array (through Arrow: a Python list of 67k SST-2 rows takes seconds)."""
    if isinstance(data, Mapping):
        return np.asarray(data[name])
    return np.asarray(data.select_columns([name]).with_format("numpy")[:][name])


def rows_at(data: Rows, indices: list[int]) -> dict[str, list]:
    """The rows at ``indices``, column-wise (what :func:`collate` takes)."""
    if isinstance(data, Mapping):
        return {name: [values[i] for i in indices] for name, values in data.items()}
    return data[indices]


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the encoder takes (everything but the labels)."""
    return {k: v for k, v in batch.items() if k in INPUT_COLUMNS}


def train_loader(
    data: Dataset, indices: Sequence[int], batch_size: int, pad_id: int, seed: int
) -> torch.utils.data.DataLoader:
    """Shuffled batches of ``indices``; the seeded generator makes every epoch's order reproducible."""
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        [int(i) for i in indices],
        batch_size=batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=lambda idx: collate(data[idx], pad_id),
    )


def endless(loader: torch.utils.data.DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    """Batches across epochs (each epoch reshuffled), for a step-counted loop."""
    while True:
        yield from loader


def eval_batches(
    data: Rows, indices: Sequence[int], batch_size: int, pad_id: int
) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """``(positions, batch)`` over ``indices`` sorted by length; positions index into ``indices``."""
    indices = np.asarray(indices, dtype=np.int64)
    lengths = column(data, "length")[indices]
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        positions = order[start : start + batch_size]
        yield positions, collate(rows_at(data, indices[positions].tolist()), pad_id)
