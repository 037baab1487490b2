"""FISH masks: which backbone weights to train, chosen by empirical Fisher information.

Empirical Fisher (Sung et al., "Training Neural Networks with Fixed Sparse Masks"):
for each candidate weight, the mean over ``samples`` training examples of the
squared gradient of that example's loss at its true label,
``F_j = 1/N sum_i (d loss_i / d theta_j)^2``. Per-example gradients come from a loop
with batch size 1 (each example at its own length, no padding), in eval mode so that
dropout does not add noise to the estimate. The mask keeps the global top-k entries,
``k = fish.mask_size(backbone_params)``, over the candidates of
:func:`autopeft.modules.fish.candidates` (backbone weights not trained whole by
another family); the task head is never in the mask because it is always trained.

IRD (Iterative Range Decreasing, seed 004) refines which samples and which
parameters the estimate rests on. With ``R = IRD_ROUNDS`` rounds, ``P`` candidate
entries and target ``k``:

* round ``t = 0..R-1`` runs one Fisher pass over the sample set ``S_t`` (``S_0``: the
  ``samples`` drawn examples), giving the mean Fisher ``F_t`` over ``S_t`` and, for
  each sample, its Fisher mass inside the current parameter range ``R_t``
  (``R_0``: every candidate);
* the range shrinks to the ``m_{t+1}`` entries of ``R_t`` with the highest ``F_t``,
  where ``m_t = round(P * (k / P) ** (t / R))`` decreases geometrically to ``m_R = k``;
* the sample set shrinks to the ``ceil(IRD_SAMPLE_KEEP * |S_t|)`` samples of ``S_t``
  with the highest Fisher mass inside ``R_t`` (not after the last round);
* the mask is ``R_R``: the top-k of the last round's Fisher within the last range.

So later rounds estimate Fisher on the samples that carry the most information about
the parameters still in the running, and the range narrows in steps rather than at
once. It costs ``1 + 1/2 + 1/4 + 1/8`` times the gradients of plain FISH.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from autopeft.errors import ConfigError
from autopeft.train.batching import collate, model_inputs, to_device
from autopeft.train.evaluate import pad_id_of, task_loss
from autopeft.train.loop import Progress, ShouldStop, TrialStopped

if TYPE_CHECKING:
    from torch import nn

    from autopeft.modules.fish import Fish
    from autopeft.tasks.data import TaskData

IRD_ROUNDS = 4
IRD_SAMPLE_KEEP = 0.5
FishMask = dict[str, torch.Tensor]


def estimate_fish_mask(
    model: nn.Module,
    fish: Fish,
    candidates: Mapping[str, torch.nn.Parameter],
    task: TaskData,
    indices: Sequence[int],
    *,
    seed: int,
    device: torch.device,
    progress: Progress = False,
    should_stop: ShouldStop = None,
) -> FishMask:
    """The FISH (or IRD) mask of ``fish`` over ``candidates`` of ``model`` before injection, on the CPU.

    ``candidates`` are the backbone parameters the mask may select (:func:`autopeft.modules.fish.candidates`).
    ``indices`` are the rows of ``task.train`` the samples are drawn from (the training
    part of the split, never the search split); ``seed`` draws them. Tensors with no
    selected entry are left out; the selected entries add up to exactly k.
    """
    k = fish.mask_size(_backbone_size(model))
    available = sum(p.numel() for p in candidates.values())
    if k > available:
        raise ConfigError(
            f"fish.fraction {fish.fraction:g} selects {k} weights, but only {available} backbone weights are "
            "not already trained by another family"
        )
    rows = np.random.default_rng(seed).choice(np.asarray(indices), size=min(fish.samples, len(indices)), replace=False)
    passes = _ird_pass_sizes(len(rows)) if fish.ird else [len(rows)]
    with (
        _gradients_only_for(model, candidates.values()),
        _ticker(progress, sum(passes), "fish mask (IRD)" if fish.ird else "fish mask", should_stop) as tick,
    ):
        estimator = _Fisher(model, candidates, task, device, tick)
        mask = estimator.ird(rows, k) if fish.ird else estimator.top_k(estimator.accumulate(rows, None)[0], k, None)
    return {name: m.cpu() for name, m in mask.items() if bool(m.any())}


class _Fisher:
    """Per-example squared gradients of the candidates, accumulated over sample sets."""

    def __init__(self, model: nn.Module, params: Mapping[str, torch.Tensor], task: TaskData, device, tick) -> None:
        self.model, self.task, self.device, self.tick = model, task, device, tick
        self.names, self.params = list(params), list(params.values())
        self.pad_id = pad_id_of(task.tokenizer)

    def accumulate(
        self, rows: np.ndarray, in_range: Mapping[str, torch.Tensor] | None
    ) -> tuple[dict[str, torch.Tensor], np.ndarray]:
        """Mean Fisher over ``rows``, and each row's Fisher mass inside ``in_range`` (None: everywhere)."""
        fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in zip(self.names, self.params, strict=True)}
        mass = np.zeros(len(rows), dtype=np.float64)
        for pos, row in enumerate(rows):
            batch = to_device(collate(self.task.train[[int(row)]], self.pad_id), self.device)
            loss = task_loss(self.model(**model_inputs(batch)).logits, batch["labels"], self.task.is_regression)
            grads = torch.autograd.grad(loss, self.params, allow_unused=True)
            total = torch.zeros((), dtype=torch.float64, device=self.device)
            for name, grad in zip(self.names, grads, strict=True):
                if grad is None:
                    continue
                squared = grad.float().square()
                fisher[name].add_(squared)
                total += (squared if in_range is None else squared * in_range[name]).sum(dtype=torch.float64)
            mass[pos] = float(total)
            self.tick()
        for f in fisher.values():
            f.div_(len(rows))
        return fisher, mass

    def top_k(
        self, fisher: Mapping[str, torch.Tensor], k: int, in_range: Mapping[str, torch.Tensor] | None
    ) -> dict[str, torch.Tensor]:
        """Boolean masks of the ``k`` largest Fisher entries overall (within ``in_range`` when given)."""
        flat = torch.cat([f.reshape(-1) for f in fisher.values()])
        if in_range is not None:
            allowed = torch.cat([in_range[n].reshape(-1) for n in fisher])
            flat = flat.masked_fill(~allowed, -math.inf)
        chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
        chosen[torch.topk(flat, k, sorted=False).indices] = True
        out, start = {}, 0
        for name, f in fisher.items():
            out[name] = chosen[start : start + f.numel()].view(f.shape)
            start += f.numel()
        return out

    def ird(self, rows: np.ndarray, k: int) -> dict[str, torch.Tensor]:
        """Iterative Range Decreasing (see the module docstring for the exact procedure)."""
        total = sum(p.numel() for p in self.params)
        in_range: dict[str, torch.Tensor] | None = None
        for t in range(IRD_ROUNDS):
            size = k if t == IRD_ROUNDS - 1 else round(total * (k / total) ** ((t + 1) / IRD_ROUNDS))
            fisher, mass = self.accumulate(rows, in_range)
            in_range = self.top_k(fisher, max(size, k), in_range)
            if t < IRD_ROUNDS - 1:
                keep = max(1, math.ceil(IRD_SAMPLE_KEEP * len(rows)))
                rows = rows[np.argsort(-mass, kind="stable")[:keep]]
        return in_range


def _ird_pass_sizes(n: int) -> list[int]:
    sizes = [n]
    for _ in range(IRD_ROUNDS - 1):
        sizes.append(max(1, math.ceil(IRD_SAMPLE_KEEP * sizes[-1])))
    return sizes


def _backbone_size(model: nn.Module) -> int:
    from autopeft.encoder import EncoderLayout

    return sum(p.numel() for _, p in EncoderLayout(model).backbone_named_parameters())


@contextlib.contextmanager
def _gradients_only_for(model: nn.Module, params: Iterator[torch.nn.Parameter]) -> Iterator[None]:
    """Eval mode, gradients only for ``params``; flags and mode restored afterwards."""
    flags = {id(p): p.requires_grad for p in model.parameters()}
    wanted = {id(p) for p in params}
    was_training = model.training
    for p in model.parameters():
        p.requires_grad_(id(p) in wanted)
    model.eval()
    try:
        yield
    finally:
        for p in model.parameters():
            p.requires_grad_(flags[id(p)])
        model.train(was_training)


@contextlib.contextmanager
def _ticker(progress: Progress, total: int, desc: str, should_stop: ShouldStop) -> Iterator[Callable[[], None]]:
    """A function to call once per example: advances the bar, honours ``should_stop``."""
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, unit="ex", dynamic_ncols=True, leave=False)

    def tick() -> None:
        if should_stop is not None and should_stop():
            raise TrialStopped("trial stopped by the caller while estimating the fish mask")
        if bar is not None:
            bar.update(1)

    try:
        yield tick
    finally:
        if bar is not None:
            bar.close()
