"""One trial, end to end: the unit of work of a worker and of ``autopeft train``.

>>> result = run_trial("rte", None, {"lora": {"rank": 8}}, {"max_steps": 200}, cache=cache)
>>> result.metric, result.param_fraction

:func:`train_trial` returns the trained model too (for ``--save``); :func:`run_trial`
keeps only the numbers. A :class:`TrialCache` carries what does not change between a
worker's trials: the base model (loaded once, copied per trial) and what families
prepared from data (FISH masks, also cached on disk by their family); tokenised tasks are cached per process by
:func:`autopeft.tasks.load_task_data`. Same seed, same configuration, same settings
give the same metric on CPU.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from autopeft.config import PeftConfig, parse_config
from autopeft.encoder import EncoderLayout, load_model, resolve_model_dir
from autopeft.errors import TaskError, TrainingError
from autopeft.handle import PeftHandle, inject, trained_whole
from autopeft.roots import Roots
from autopeft.tasks.data import Split, TaskData, datasets_progress, load_task_data, task_key
from autopeft.tasks.files import present
from autopeft.tasks.spec import TaskSpec, resolve_task
from autopeft.train.evaluate import score
from autopeft.train.loop import LoopResult, OnEvaluation, Progress, ShouldStop, train
from autopeft.train.prepare import PrepareInput, prepare
from autopeft.train.settings import TrainingSettings, parse_training

if TYPE_CHECKING:
    from torch import nn

TaskArg = str | Mapping[str, Any] | TaskSpec


@dataclass(frozen=True)
class TrialResult:
    """The numbers a trial reports. ``metric`` is the objective: ``metric_name`` on the search split,
    at the best evaluation. ``metrics`` holds every metric per split (``search``, and ``dev`` when asked)."""

    metric: float
    metric_name: str
    metrics: dict[str, dict[str, float]]
    peft_params: int
    head_params: int
    backbone_params: int
    merged_params: int
    param_fraction: float
    by_family: dict[str, int]
    steps: int
    best_step: int
    stopped_early: bool
    train_examples: int
    search_examples: int
    examples_per_second: float
    train_seconds: float
    eval_seconds: float
    #: Spent in the families' prepare steps before training (FISH's mask estimation).
    prepare_seconds: float
    device: str
    final_loss: float
    #: ``on_evaluation`` ended training (the study's early-stopping rule): the result is partial.
    pruned: bool = False
    #: ``(step, metric)`` of every evaluation on the search split.
    curve: list[tuple[int, float]] = field(default_factory=list)
    #: Training loss of every step (left out of :meth:`to_json`).
    losses: list[float] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("losses")
        return out


@dataclass
class TrainedTrial:
    """A finished trial with its model, for saving (:func:`autopeft.train.save_trained`) or inspection."""

    result: TrialResult
    handle: PeftHandle
    task: TaskData
    split: Split
    model_dir: Path
    config: PeftConfig
    settings: TrainingSettings


class TrialCache:
    """Kept between a worker's trials: base models (per model dir and head shape) and what families
    prepared from data (FISH masks; the ``max_prepared`` most recent, families keep their own disk caches).

    Base models stay on the CPU, untouched; each trial trains a deep copy.
    """

    def __init__(self, max_models: int = 2, max_prepared: int = 8) -> None:
        self.max_models = max_models
        self.max_prepared = max_prepared
        self._models: OrderedDict[tuple, nn.Module] = OrderedDict()
        self._prepared: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def fresh_model(self, model_dir: Path, num_labels: int, regression: bool) -> nn.Module:
        """A trainable copy of the base model with a ``num_labels`` head (head to be re-initialised)."""
        key = (str(model_dir), num_labels, regression)
        with self._lock:
            base = self._models.get(key)
            if base is None:
                problem = "regression" if regression else "single_label_classification"
                base = load_model(model_dir, num_labels, problem_type=problem).eval()
                self._models[key] = base
                while len(self._models) > self.max_models:
                    self._models.popitem(last=False)
            self._models.move_to_end(key)
            return copy.deepcopy(base)

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """The prepared value stored under ``key``, else ``compute()`` (then stored)."""
        with self._lock:
            if key in self._prepared:
                self._prepared.move_to_end(key)
                return self._prepared[key]
        value = compute()
        with self._lock:
            self._prepared[key] = value
            while len(self._prepared) > self.max_prepared:
                self._prepared.popitem(last=False)
        return value


def run_trial(
    task: TaskArg,
    model: str | os.PathLike[str] | None,
    config: PeftConfig | Mapping[str, Any],
    training: TrainingSettings | Mapping[str, Any] | None = None,
    *,
    device: str | torch.device = "cpu",
    cache: TrialCache | None = None,
    progress: Progress = False,
    should_stop: ShouldStop = None,
    on_evaluation: OnEvaluation = None,
    data_dir: str | os.PathLike[str] | None = None,
    roots: Roots | None = None,
) -> TrialResult:
    """Train and score one configuration; see :func:`train_trial` (this keeps only the numbers)."""
    return train_trial(
        task,
        model,
        config,
        training,
        device=device,
        cache=cache,
        progress=progress,
        should_stop=should_stop,
        on_evaluation=on_evaluation,
        data_dir=data_dir,
        roots=roots,
    ).result


def train_trial(
    task: TaskArg,
    model: str | os.PathLike[str] | None,
    config: PeftConfig | Mapping[str, Any],
    training: TrainingSettings | Mapping[str, Any] | None = None,
    *,
    device: str | torch.device = "cpu",
    cache: TrialCache | None = None,
    progress: Progress = False,
    should_stop: ShouldStop = None,
    on_evaluation: OnEvaluation = None,
    data_dir: str | os.PathLike[str] | None = None,
    roots: Roots | None = None,
    whole_train: bool = False,
) -> TrainedTrial:
    """Load ``task`` and ``model`` (None: the bundled MiniLM), inject ``config``, train, score.

    ``progress``: True for tqdm bars on stderr, or ``callback(step, total)``.
    ``should_stop``: polled every step; when it returns True, :class:`TrialStopped` is raised.
    ``on_evaluation(step, metric, total_steps)``: called after each evaluation; False ends training at
    once, keeps the best state and marks the result ``pruned`` (a worker asks the server's rule).
    ``data_dir``: where the task's files are when the task names no folder (``autopeft train --data``).
    ``roots``: a worker's roots; task files and the model are read only inside them (``data_dir``
    is then ignored: the data roots are where the task is looked for).
    ``whole_train``: train on every row of the training file (:func:`autopeft.train.retrain.train_final`).
    Raises TaskError, ConfigError, ModelError or TrainingError for bad input.
    """
    with datasets_progress(progress is True):  # datasets' Map/Cast bars only where training shows its own
        return _train_trial(
            task,
            model,
            config,
            training,
            device=device,
            cache=cache,
            progress=progress,
            should_stop=should_stop,
            on_evaluation=on_evaluation,
            data_dir=data_dir,
            roots=roots,
            whole_train=whole_train,
        )


def _train_trial(
    task: TaskArg,
    model: str | os.PathLike[str] | None,
    config: PeftConfig | Mapping[str, Any],
    training: TrainingSettings | Mapping[str, Any] | None = None,
    *,
    device: str | torch.device = "cpu",
    cache: TrialCache | None = None,
    progress: Progress = False,
    should_stop: ShouldStop = None,
    on_evaluation: OnEvaluation = None,
    data_dir: str | os.PathLike[str] | None = None,
    roots: Roots | None = None,
    whole_train: bool = False,
) -> TrainedTrial:
    confined = roots is not None
    spec = resolve_task(task, None if data_dir is None or confined else str(data_dir))
    config, settings = parse_config(config), parse_training(training)
    dev = resolve_device(device)
    model_dir = resolve_model_dir(model, roots.models if roots is not None else None)
    cache = cache if cache is not None else TrialCache()
    data = load_task_data(spec, model_dir, settings.max_length, roots.data if roots is not None else None)
    if settings.evaluate_dev and not present(spec, data.data_dir / spec.eval_file):  # fail before training
        raise TaskError(f"missing file {str(data.data_dir / spec.eval_file)!r} (task {spec.name!r}, evaluate_dev)")
    if whole_train:  # the final model: every training row, no search split (see autopeft.train.retrain)
        split = Split(train=np.arange(data.train.num_rows)[: settings.max_train_examples], search=np.arange(1))
    else:
        split = data.split(
            settings.search_split, settings.split_seed, settings.max_train_examples, settings.max_search_examples
        )
    with _deterministic(dev):
        try:
            return _train(
                spec, data, split, model_dir, config, settings, dev, cache, progress, should_stop, on_evaluation
            )
        except torch.cuda.OutOfMemoryError:  # also raised as torch.OutOfMemoryError on recent torch
            raise TrainingError(
                f"out of memory on {dev} with batch_size {settings.batch_size} and max_length "
                f"{settings.max_length}; lower them"
            ) from None


def _train(
    spec: TaskSpec,
    data: TaskData,
    split: Split,
    model_dir: Path,
    config: PeftConfig,
    settings: TrainingSettings,
    dev: torch.device,
    cache: TrialCache,
    progress: Progress,
    should_stop: ShouldStop,
    on_evaluation: OnEvaluation = None,
) -> TrainedTrial:
    torch.manual_seed(settings.seed)
    model = cache.fresh_model(model_dir, data.num_labels, data.is_regression)
    reset_head(model, settings.seed)
    model.to(dev)
    started = time.perf_counter()
    prepared = _prepare(model, model_dir, spec, data, split, config, settings, dev, cache, progress, should_stop)
    prepare_seconds = time.perf_counter() - started
    torch.manual_seed(settings.seed)  # PEFT initialisation does not depend on whether a prepared value was cached
    handle = inject(model, config, prepared=prepared)
    loop = train(
        handle,
        data,
        split,
        settings,
        device=dev,
        progress=progress,
        should_stop=should_stop,
        on_evaluation=on_evaluation,
    )
    metrics = {"search": loop.best_metrics}
    eval_seconds = loop.eval_seconds
    if settings.evaluate_dev:
        started = time.perf_counter()
        dev_rows = data.dev()
        metrics["dev"] = score(
            handle.model,
            data,
            dev_rows,
            range(dev_rows.num_rows),
            batch_size=2 * settings.batch_size,
            device=dev,
            precision=settings.precision,
        )
        eval_seconds += time.perf_counter() - started
    result = _result(handle, data, split, loop, metrics, eval_seconds, prepare_seconds, dev)
    return TrainedTrial(result, handle, data, split, model_dir, config, settings)


def _result(
    handle: PeftHandle,
    data: TaskData,
    split: Split,
    loop: LoopResult,
    metrics: dict[str, dict[str, float]],
    eval_seconds: float,
    prepare_seconds: float,
    dev: torch.device,
) -> TrialResult:
    count = handle.accounting()
    tail = loop.losses[-10:]
    return TrialResult(
        metric=loop.best_metrics[data.spec.metric],
        metric_name=data.spec.metric,
        metrics=metrics,
        peft_params=count.peft_params,
        head_params=count.head_params,
        backbone_params=count.backbone_params,
        merged_params=count.merged_params,
        param_fraction=count.param_fraction,
        by_family=dict(count.by_family),
        steps=loop.steps,
        best_step=loop.best_step,
        stopped_early=loop.stopped_early,
        train_examples=len(split.train),
        search_examples=len(split.search),
        examples_per_second=loop.examples / loop.train_seconds if loop.train_seconds > 0 else 0.0,
        train_seconds=loop.train_seconds,
        eval_seconds=eval_seconds,
        prepare_seconds=prepare_seconds,
        device=str(dev),
        final_loss=float(np.mean(tail)) if tail else float("nan"),
        pruned=loop.pruned,
        curve=[(int(e["step"]), float(e[data.spec.metric])) for e in loop.evaluations],
        losses=loop.losses,
    )


def _prepare(
    model: nn.Module,
    model_dir: Path,
    spec: TaskSpec,
    data: TaskData,
    split: Split,
    config: PeftConfig,
    settings: TrainingSettings,
    dev: torch.device,
    cache: TrialCache,
    progress: Progress,
    should_stop: ShouldStop,
) -> dict[str, Any]:
    """Run the prepare step of each family of ``config`` (before injection) on the training split."""
    inp = PrepareInput(
        model=model,
        model_dir=model_dir,
        data=data,
        train_rows=list(split.train),
        settings=settings,
        device=dev,
        trained_whole=frozenset(trained_whole(model, config)),
        memo=cache.memo,
        progress=progress,
        should_stop=should_stop,
        model_key=json.dumps([str(model_dir), _dir_stamp(model_dir)]),
        task_key=task_key(spec, data.data_dir),
    )
    return prepare(config, inp)


@torch.no_grad()
def reset_head(model: nn.Module, seed: int) -> None:
    """Initialise the task head's linear layers from ``seed`` alone (normal(0, initializer_range), zero bias),
    so a trial's head does not depend on what else the process has drawn from the global RNG."""
    layout = EncoderLayout(model)
    inside = {id(m) for m in layout.backbone.modules()}
    generator = torch.Generator().manual_seed(seed)
    std = float(getattr(model.config, "initializer_range", 0.02))
    for module in model.modules():
        if id(module) in inside or not isinstance(module, torch.nn.Linear):
            continue
        weight = torch.randn(module.weight.shape, generator=generator) * std
        module.weight.copy_(weight.to(module.weight.device, module.weight.dtype))
        if module.bias is not None:
            module.bias.zero_()


def resolve_device(device: str | torch.device) -> torch.device:
    """A usable torch device (``auto``: CUDA when there is one, else the CPU), or a TrainingError naming it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise TrainingError(f"unknown device {str(device)!r} (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"device {str(device)!r} is not available: torch sees no CUDA device here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise TrainingError(f"device {str(device)!r} does not exist ({torch.cuda.device_count()} CUDA devices)")
    elif dev.type != "cpu":
        raise TrainingError(f"device {str(device)!r} is not supported (use cpu, cuda or cuda:N)")
    return dev


@contextlib.contextmanager
def _deterministic(dev: torch.device) -> Iterator[None]:
    """Deterministic kernels for the trial (warn-only where none exists), previous mode restored."""
    if dev.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _dir_stamp(model_dir: Path) -> list[tuple[str, int, int]]:
    """Name, size and mtime of the files that define a model's weights."""
    files = sorted(p for p in model_dir.iterdir() if p.suffix in (".json", ".safetensors", ".bin") and p.is_file())
    return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
