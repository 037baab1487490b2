"""From a study body to what the server stores and proposes with.

:func:`prepare_study` checks everything a study names against the library (task,
model shape, space, baselines) and raises :mod:`autopeft.errors` with a message that
names the offending value. :class:`StudyContexts` keeps one built space per study, so
proposals never rebuild it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.api.errors import InvalidRequestError
from autopeft.api.records import NewStudy, NewTrial, Report, StudyRecord
from autopeft.config import PeftConfig, parse_config
from autopeft.errors import ConfigError, ModelError, SpaceError
from autopeft.optimize import OptimizerState
from autopeft.space import Space, build_space
from autopeft.tasks.spec import METRIC_RANGES, resolve_task

if TYPE_CHECKING:
    from autopeft.accounting import ParamCount
    from autopeft.api.schemas.studies import StudyCreate
    from autopeft.encoder import ModelShape

log = logging.getLogger("autopeft.api")

#: Limits on a model config sent by a client, checked before anything is built from it.
HF_LIMITS = {
    "num_hidden_layers": 256,
    "hidden_size": 32_768,
    "intermediate_size": 262_144,
    "num_attention_heads": 1024,
    "max_position_embeddings": 1 << 20,
    "vocab_size": 10_000_000,
    # DistilBERT's names for the same sizes
    "n_layers": 256,
    "dim": 32_768,
    "hidden_dim": 262_144,
    "n_heads": 1024,
}


class MemoSpace(Space):
    """A space whose decode is memoised: decoding is deterministic and configurations are frozen,
    so the optimiser's duplicate checks over thousands of trials cost a lookup each."""

    def __init__(self, space: Space, size: int = 200_000) -> None:
        self.__dict__.update(space.__dict__)  # the built space as it is (building it again costs as much)
        self._memo: OrderedDict[tuple[float, ...], PeftConfig] = OrderedDict()
        self._memo_size = size
        self._memo_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (for a proposal's process) without the memo and its lock."""
        state = dict(self.__dict__)
        state["_memo"], state["_memo_lock"] = OrderedDict(), None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._memo_lock = threading.Lock()

    def decode(self, x: Sequence[float]) -> PeftConfig:
        key = tuple(float(v) for v in x)
        with self._memo_lock:
            hit = self._memo.get(key)
            if hit is not None:
                self._memo.move_to_end(key)
                return hit
        config = super().decode(key)
        with self._memo_lock:
            self._memo[key] = config
            if len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)
        return config


def config_key(config: PeftConfig, n_layers: int) -> str:
    """The stored key of a configuration: SHA-256 of its canonical key (fits any index)."""
    return hashlib.sha256(config.key(n_layers).encode()).hexdigest()


#: transformers' lazy imports are not safe to race from several threads: shapes are built one at a time.
_SHAPE_LOCK = threading.Lock()


@lru_cache(maxsize=64)
def _shape_from_json(hf_json: str, num_labels: int) -> ModelShape:
    from autopeft.encoder import config_from_dict
    from autopeft.shape import shape_of_config

    try:
        with _SHAPE_LOCK:
            return shape_of_config(config_from_dict(json.loads(hf_json)), num_labels)
    except ModelError:
        raise
    except Exception as err:  # noqa: BLE001 - a client's JSON goes into transformers and torch, which raise anything
        raise ModelError(f"cannot build the model that model_config describes: {type(err).__name__}: {err}") from None


def shape_from_hf_config(hf_config: Mapping[str, Any], num_labels: int) -> ModelShape:
    """The shape of the classifier an HF ``config.json`` describes (cached by content)."""
    _check_hf_config(hf_config)
    return _shape_from_json(json.dumps(hf_config, sort_keys=True), num_labels)


def _check_hf_config(hf_config: Mapping[str, Any]) -> None:
    if not isinstance(hf_config.get("model_type"), str) or not hf_config["model_type"]:
        raise ModelError("model_config has no model_type (it should be the contents of the model's config.json)")
    for name, limit in HF_LIMITS.items():
        value = hf_config.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise ModelError(f"model_config.{name} = {value!r} is not an integer in 1..{limit}")


def read_model_config(
    model: str | None, sent: Mapping[str, Any] | None, roots: Sequence[Path] = ()
) -> tuple[dict[str, Any], bool]:
    """The model's ``config.json`` and whether this server read it: read here when ``model`` is a folder
    under the server's model ``roots`` (real paths; the bundled and packaged models always), else as the client
    sent it.

    Nothing outside the roots is read or looked at, and the error for a model the server cannot read is
    the same whether or not its folder exists, so a request learns nothing about the server's disk.
    """
    from autopeft.encoder import (
        BUNDLED_NAME,
        CONFIG_FILE,
        bundled_model_dir,
        check_files_inside,
        model_dir_under,
        read_config_json,
        resolve_model_dir,
    )
    from autopeft.gguf import PACKAGED

    if model in (None, "", BUNDLED_NAME):
        return read_config_json(bundled_model_dir()), True
    if model in PACKAGED:  # a packaged model (the llm extra), like the bundled one: always readable
        return read_config_json(resolve_model_dir(model)), True
    found = model_dir_under(model, roots)
    if found is not None:
        check_files_inside(found, roots, "this server may read", SERVER_MODELS_FLAG)  # before any file is opened
        if (found / CONFIG_FILE).is_file():
            return read_config_json(found), True
    if sent is not None:
        return dict(sent), False
    listed = ", ".join(str(r) for r in roots) or "only the bundled model"
    raise ModelError(
        f"model {model!r} is not a model folder under this server's model folders ({listed}), so the server "
        "cannot read its shape: send the contents of its config.json as model_config (`autopeft study create` "
        f"does this when it can read the model), or {SERVER_MODELS_FLAG}"
    )


#: How a server operator lets the server read more models.
SERVER_MODELS_FLAG = "start the server with `autopeft serve --models DIR` naming a folder above it"


def study_shape(model: str | None, hf_config: Mapping[str, Any], read_here: bool, num_labels: int) -> ModelShape:
    """The shape of the model ``hf_config`` describes. When this server read that config from its own disk
    (``read_here``), an error says what is wrong without quoting the file (the server log has it)."""
    try:
        return shape_from_hf_config(hf_config, num_labels)
    except ModelError as err:
        if not read_here:
            raise
        log.warning("the config.json of model %r cannot be built: %s", model, err)
        from autopeft.layouts import supported_model_types

        supported = supported_model_types()
        reason = (
            f"its model_type is not one autopeft supports ({', '.join(supported)})"
            if hf_config.get("model_type") not in supported
            else "the server log says why; its contents are not shown here"
        )
        raise ModelError(
            f"model {model!r}: the config.json this server read does not describe a model it can build ({reason})"
        ) from None


#: How far a reported ``param_fraction`` may be from ``peft_params / backbone`` (relative). Both counts are
#: integers the server knows, so the only honest difference is the rendering of a float: 1e-6 admits a
#: fraction printed with 7 significant digits (or stored as float32) and nothing else.
FRACTION_RTOL = 1e-6


def metric_range(study: StudyRecord) -> tuple[str, tuple[float, float]]:
    """The name of the metric a study maximises and the values it can take."""
    name = str(study.task.get("metric", "accuracy"))
    return name, METRIC_RANGES.get(name, (float("-inf"), float("inf")))


def check_metric(metric: float, study: StudyRecord) -> None:
    """Refuse a value of the study's metric outside its range (:class:`InvalidRequestError`, naming the value)."""
    name, (lo, hi) = metric_range(study)
    if not lo <= metric <= hi:
        raise InvalidRequestError(f"metric: {metric!r} is outside the range [{lo:g}, {hi:g}] of {name}")


def check_report(report: Report, study: StudyRecord, backbone_params: int, expected: ParamCount | None) -> None:
    """Refuse a result no trial of ``study`` can have (:class:`InvalidRequestError`, naming the value).

    ``metric`` and every entry of ``metrics`` must lie in the range of the metric it names.
    ``peft_params`` must be exactly ``expected`` (what the trial's configuration trains on the study's
    model, :func:`autopeft.accounting.estimate`: an exact integer that tests check against the injected
    model for every family and architecture, FISH's mask size and full fine-tuning included) and
    ``param_fraction`` must be ``peft_params / backbone_params`` within :data:`FRACTION_RTOL`.
    ``expected`` None (a configuration the library no longer parses): only the two must agree.
    """
    check_metric(report.metric, study)
    for key, value in (report.metrics or {}).items():
        check_named_metric(key, value)
    if expected is not None and report.peft_params != expected.peft_params:
        raise InvalidRequestError(
            f"peft_params {report.peft_params} is not what this trial's configuration trains on the study's model "
            f"({expected.peft_params} parameters, {100 * expected.param_fraction:.4g}% of the backbone)"
        )
    exact = report.peft_params / backbone_params
    if not math.isclose(report.param_fraction, exact, rel_tol=FRACTION_RTOL, abs_tol=0.0):
        raise InvalidRequestError(
            f"param_fraction {report.param_fraction!r} is not peft_params {report.peft_params} over the model's "
            f"{backbone_params} backbone parameters ({exact!r})"
        )


def check_named_metric(key: str, value: float) -> None:
    """A ``metrics`` entry names a metric (``dev_accuracy``, ``f1``, ``accuracy_dev``: one part of its name,
    split at ``_``) and lies in that metric's range. Other numbers belong in ``extra``."""
    named = [m for m in key.split("_") if m in METRIC_RANGES]
    if not named:
        raise InvalidRequestError(
            f"metrics.{key}: names no metric ({', '.join(METRIC_RANGES)}, with a split such as dev_accuracy); "
            "other numbers go in extra"
        )
    for name in named:
        low, high = METRIC_RANGES[name]
        if not low <= value <= high:
            raise InvalidRequestError(f"metrics.{key}: {value!r} is outside the range [{low:g}, {high:g}] of {name}")


def build_study_space(space: str | Mapping[str, Any], shape: ModelShape) -> MemoSpace:
    return MemoSpace(build_space(space, shape))


def prepare_study(
    body: StudyCreate, default_lease_s: float, default_retries: int, model_roots: Sequence[Path] = ()
) -> NewStudy:
    """Check a study body against the library and turn it into a :class:`~autopeft.api.records.NewStudy`;
    ``model_roots``: the folders the server reads model configs under (:func:`read_model_config`)."""
    from autopeft.optimize.limits import check_cost

    check_cost(body.optimizer)
    task = resolve_task(body.task)
    num_labels = task.num_labels or 2
    hf_config, read_here = read_model_config(body.model, body.hf_config, model_roots)
    shape = study_shape(body.model, hf_config, read_here, num_labels)
    space = build_study_space(body.space, shape)
    constraints = body.constraints if body.constraints is not None and body.constraints.active else None
    if constraints is not None:
        from autopeft.optimize.budget import check_budget

        check_budget(space, constraints, body.seed)
    return NewStudy(
        name=body.name,
        task=task.model_dump(mode="json"),
        model=body.model,
        hf_config=hf_config,
        num_labels=num_labels,
        space_name=space.name,
        space=space.to_json(),
        optimizer=body.optimizer,
        training=body.training,
        seed=body.seed,
        max_trials=body.max_trials,
        max_retries=default_retries if body.max_retries is None else body.max_retries,
        lease_seconds=body.lease_seconds or default_lease_s,
        early_stopping=body.early_stopping,
        warm_start=body.warm_start,
        constraints=constraints,
        baselines=baseline_trials(body, space),
    )


def task_kind(task: Mapping[str, Any]) -> str:
    """``classification`` or ``regression``: what a stored task description says it is."""
    return str(task.get("kind") or "classification")


def check_warm_start(studies: Sequence[int], task: Mapping[str, Any], earlier: Mapping[int, StudyRecord | None]) -> None:
    """Refuse a warm start from a study that does not exist or whose task is of another kind
    (:class:`InvalidRequestError`, 422, naming the study and why).

    Args:
        studies: the ids the new study names, in its order.
        task: the new study's resolved task description.
        earlier: each named id's stored study, None where there is none.
    """
    kind = task_kind(task)
    for study_id in studies:
        found = earlier.get(study_id)
        if found is None:
            raise InvalidRequestError(f"warm_start.studies: study {study_id} does not exist on this server")
        if task_kind(found.task) != kind:
            raise InvalidRequestError(
                f"warm_start.studies: study {study_id} ({found.name!r}) is a {task_kind(found.task)} task "
                f"({found.task.get('name')}), this study's task {task.get('name')!r} is a {kind} task; a warm start "
                "needs earlier studies of the same kind (their metrics would say nothing about this one)"
            )


def baseline_trials(body: StudyCreate, space: Space) -> tuple[NewTrial, ...]:
    """The study's hand-picked configurations, checked against the model; ``x`` is None outside the space."""
    if len(body.baselines) > body.max_trials:
        raise ConfigError(f"{len(body.baselines)} baselines do not fit in max_trials={body.max_trials}")
    out: list[NewTrial] = []
    seen: dict[str, int] = {}
    n = space.shape.n_layers
    for i, baseline in enumerate(body.baselines):
        try:
            config = parse_config(baseline.config)
            config.check_fits(space.shape)
        except ConfigError as err:
            raise ConfigError(f"baselines[{i}]: {err}") from None
        key = config_key(config, n)
        if key in seen:
            raise ConfigError(f"baselines[{i}] is the same configuration as baselines[{seen[key]}]")
        seen[key] = i
        out.append(NewTrial(config.to_json(), key, _point_in(space, config), "baseline", baseline.label))
    return tuple(out)


def _point_in(space: Space, config: PeftConfig) -> tuple[float, ...] | None:
    try:
        return tuple(space.encode(config))
    except (SpaceError, ConfigError):
        return None


@dataclass(frozen=True)
class StudyContext:
    """What proposing for a study needs, built once per study and process.

    ``state`` (the optimiser's warm starts and key cache), ``points`` (trial id -> point,
    as read so far) and ``warm_points`` (the earlier studies' trials a warm start read, encoded)
    change between proposals; proposals for one study never overlap.
    """

    space: MemoSpace
    state: OptimizerState = field(default_factory=OptimizerState)
    points: dict[int, tuple[float, ...] | None] = field(default_factory=dict)
    #: Earlier studies' trials as points of this space (None: it cannot encode them), by (study id, trial id).
    warm_points: dict[tuple[int, int], tuple[float, ...] | None] = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return self.space.shape.n_layers


class StudyContexts:
    """A thread-safe cache of :class:`StudyContext` by study id (studies never change their space)."""

    def __init__(self, size: int = 64) -> None:
        self._items: OrderedDict[int, StudyContext] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, study: StudyRecord) -> StudyContext:
        with self._lock:
            hit = self._items.get(study.id)
            if hit is not None:
                self._items.move_to_end(study.id)
                return hit
        shape = shape_from_hf_config(study.hf_config, study.num_labels)
        context = StudyContext(build_study_space(study.space, shape))
        with self._lock:
            self._items[study.id] = context
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return context

    def forget(self, study_id: int) -> None:
        with self._lock:
            self._items.pop(study_id, None)
