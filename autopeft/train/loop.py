"""The training loop of one trial: AdamW over PEFT parameters and the head, linear
warm-up/decay, periodic scoring on the search split, early stopping, best state kept.

Only :meth:`PeftHandle.trainable_parameters` reach the optimiser, so the optimiser's
memory and the update cost scale with what the configuration trains. AdaMix
(``serial_adapter.experts > 1``) runs each batch twice through independently routed
experts and adds the consistency term of seed 001 to the mean task loss.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from autopeft.errors import AutoPeftError, TrainingError
from autopeft.modules import consistency_loss
from autopeft.train.batching import endless, model_inputs, to_device, train_loader
from autopeft.train.evaluate import autocast_for, pad_id_of, score, task_loss

if TYPE_CHECKING:
    from autopeft.handle import PeftHandle
    from autopeft.tasks.data import Split, TaskData
    from autopeft.train.settings import TrainingSettings

#: ``callback(step, total)``; ``True`` shows a tqdm bar on stderr; ``False``/None is silent.
Progress = bool | Callable[[int, int], None] | None
ShouldStop = Callable[[], bool] | None
#: ``on_evaluation(step, metric, total_steps) -> go on``: called after every evaluation with the
#: objective on the search split; False ends training at once (the best state is kept) and the
#: result is marked ``pruned`` (the server's early-stopping rule stopped it).
OnEvaluation = Callable[[int, float, int], bool] | None


class TrialStopped(AutoPeftError):
    """The caller's ``should_stop`` asked the trial to end (e.g. SIGTERM on a worker); not a failure."""


@dataclass
class LoopResult:
    """What training produced; the model holds the best state when it returns."""

    steps: int
    best_step: int
    best_metrics: dict[str, float]
    stopped_early: bool
    losses: list[float]
    examples: int
    train_seconds: float
    eval_seconds: float
    evaluations: list[dict[str, float]] = field(default_factory=list)
    #: ``on_evaluation`` returned False: training ended early by the caller's rule, not by patience.
    pruned: bool = False


def total_steps(settings: TrainingSettings, steps_per_epoch: int) -> int:
    """``max_steps`` when given, else ``epochs`` passes (rounded up)."""
    if settings.max_steps is not None:
        return settings.max_steps
    return max(1, math.ceil((settings.epochs or 3.0) * steps_per_epoch))


def param_groups(handle: PeftHandle, settings: TrainingSettings) -> list[dict]:
    """AdamW groups: per-family (and head) learning rate, no weight decay on biases and norms."""
    names = {id(p): n for n, p in handle.model.named_parameters()}
    rate_of = {id(p): settings.head_learning_rate or settings.learning_rate for p in handle.head_parameters()}
    for family, params in handle.peft_parameters().items():
        for p in params:
            rate_of.setdefault(id(p), settings.family_learning_rates.get(family, settings.learning_rate))
    grouped: dict[tuple[float, float], list[torch.nn.Parameter]] = defaultdict(list)
    for p in handle.trainable_parameters():
        lr = rate_of.get(id(p), settings.learning_rate)
        name = names.get(id(p), "")
        decay = 0.0 if name.endswith("bias") or "norm" in name.lower() else settings.weight_decay
        grouped[(lr, decay)].append(p)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in grouped.items()]


def train(
    handle: PeftHandle,
    task: TaskData,
    split: Split,
    settings: TrainingSettings,
    *,
    device: torch.device,
    progress: Progress = False,
    should_stop: ShouldStop = None,
    on_evaluation: OnEvaluation = None,
) -> LoopResult:
    """Train ``handle.model`` on ``split.train``; score on ``split.search``; keep the best state.

    ``on_evaluation(step, metric, total_steps)`` is called after each evaluation (see :data:`OnEvaluation`).
    """
    from transformers import get_linear_schedule_with_warmup

    model = handle.model
    if settings.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    loader = train_loader(task.train, split.train, settings.batch_size, pad_id_of(task.tokenizer), settings.seed)
    steps = total_steps(settings, len(loader))
    eval_every = min(settings.eval_every or len(loader), steps)
    optimizer = torch.optim.AdamW(param_groups(handle, settings))
    scheduler = get_linear_schedule_with_warmup(optimizer, round(settings.warmup_ratio * steps), steps)
    tracker = _BestTracker(handle, settings.patience)
    bar = _progress_bar(progress, steps, task.spec.name)
    batches = endless(loader)
    losses: list[float] = []
    examples, train_seconds, eval_seconds = 0, 0.0, 0.0
    model.train()
    step, pruned = 0, False
    try:
        while step < steps:
            if should_stop is not None and should_stop():
                raise TrialStopped(f"trial stopped by the caller at step {step} of {steps}")
            started = time.perf_counter()
            batch = to_device(next(batches), device)
            loss = _step(handle, batch, task.is_regression, settings, device)
            step += 1
            losses.append(_checked(loss, step, settings))
            _update(handle, optimizer, scheduler, settings)
            examples += int(batch["labels"].shape[0])
            train_seconds += _elapsed(started, device)
            _report(bar, progress, step, steps, losses[-1], tracker)
            if step % eval_every == 0 or step == steps:
                started = time.perf_counter()
                metrics = score(
                    model,
                    task,
                    task.train,
                    split.search,
                    batch_size=2 * settings.batch_size,
                    device=device,
                    precision=settings.precision,
                )
                eval_seconds += _elapsed(started, device)
                patience_out = tracker.update(metrics[task.spec.metric], metrics, step)
                if on_evaluation is not None and not on_evaluation(step, float(metrics[task.spec.metric]), steps):
                    pruned = True
                    break
                if patience_out:
                    break
    finally:
        if bar is not None:
            bar.close()
    tracker.restore()
    model.eval()
    return LoopResult(
        steps=step,
        best_step=tracker.best_step,
        best_metrics=tracker.best_metrics,
        stopped_early=step < steps,
        losses=losses,
        examples=examples,
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        evaluations=tracker.history,
        pruned=pruned,
    )


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """transformers' per-layer checkpointing, non-reentrant: gradients reach the PEFT parameters inside a layer
    although the frozen embeddings' output needs none."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise TrainingError(f"{type(model).__name__} does not support gradient checkpointing")
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _step(
    handle: PeftHandle,
    batch: dict[str, torch.Tensor],
    regression: bool,
    settings: TrainingSettings,
    device: torch.device,
) -> torch.Tensor:
    """Forward and backward of one batch; returns the loss (AdamW steps elsewhere)."""
    inputs, labels = model_inputs(batch), batch["labels"]
    with autocast_for(device, settings.precision):
        logits = handle.model(**inputs).logits
        loss = task_loss(logits, labels, regression)
        if handle.stochastic:
            logits_b = handle.model(**inputs).logits  # a second, independently routed pass
            loss = 0.5 * (loss + task_loss(logits_b, labels, regression))
            loss = loss + settings.adamix_consistency * consistency_loss(logits, logits_b)
    if torch.isfinite(loss):
        loss.backward()
    return loss.detach()


def _checked(loss: torch.Tensor, step: int, settings: TrainingSettings) -> float:
    value = float(loss)
    if not math.isfinite(value):
        raise TrainingError(
            f"the training loss is {value} at step {step} (learning rate {settings.learning_rate:g}); "
            "lower the learning rate or check the data"
        )
    return value


def _update(handle: PeftHandle, optimizer: torch.optim.Optimizer, scheduler, settings: TrainingSettings) -> None:
    if settings.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(handle.trainable_parameters(), settings.grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


class _BestTracker:
    """Keeps the trainable tensors of the best evaluation; counts evaluations for patience."""

    def __init__(self, handle: PeftHandle, patience: int | None) -> None:
        self.params = handle.trainable_parameters()
        self.patience = patience
        self.best = -math.inf
        self.best_step = 0
        self.best_metrics: dict[str, float] = {}
        self.best_state: list[torch.Tensor] | None = None
        self.since_best = 0
        self.history: list[dict[str, float]] = []

    def update(self, value: float, metrics: dict[str, float], step: int) -> bool:
        """Record an evaluation; True when patience has run out."""
        self.history.append({"step": step, **metrics})
        if value > self.best or self.best_state is None:
            self.best, self.best_step, self.best_metrics = value, step, dict(metrics)
            self.best_state = [p.detach().clone() for p in self.params]
            self.since_best = 0
            return False
        self.since_best += 1
        return self.patience is not None and self.since_best >= self.patience

    @torch.no_grad()
    def restore(self) -> None:
        if self.best_state is not None:
            for p, saved in zip(self.params, self.best_state, strict=True):
                p.copy_(saved)


def _elapsed(started: float, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def _progress_bar(progress: Progress, total: int, name: str):
    if progress is not True:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"train {name}", unit="step", dynamic_ncols=True, leave=False)


def _report(bar, progress: Progress, step: int, total: int, loss: float, tracker: _BestTracker) -> None:
    if bar is not None:
        bar.update(1)
        postfix = {"loss": f"{loss:.4f}"}
        if tracker.best_state is not None:
            postfix["best"] = f"{tracker.best:.4f}"
        bar.set_postfix(postfix, refresh=False)
    elif callable(progress):
        progress(step, total)
