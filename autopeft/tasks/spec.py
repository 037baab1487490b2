"""Task descriptions: which files, which columns, which labels, which metric.

A task is given as a built-in name (``"rte"``, ``"mrpc"``, ``"sst2"``), as a
built-in name with its data directory (``{"name": "rte", "data_dir": "/data/RTE"}``),
or as a full description (:class:`TaskSpec` fields). Paths are resolved where the
task is loaded (on the worker), so resolving a task here never touches the disk.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from autopeft.errors import TaskError
from autopeft.inputs import validate_object

Metric = Literal["accuracy", "f1", "matthews", "pearson", "spearman"]
Format = Literal["tsv", "csv", "jsonl", "parquet", "arrow"]
#: Default training and evaluation files of each format (``arrow``: folders written by ``Dataset.save_to_disk``).
FORMAT_FILES: dict[str, tuple[str, str]] = {
    "tsv": ("train.tsv", "dev.tsv"),
    "csv": ("train.csv", "dev.csv"),
    "jsonl": ("train.jsonl", "dev.jsonl"),
    "parquet": ("train.parquet", "dev.parquet"),
    "arrow": ("train", "dev"),
}
#: Formats whose columns carry names and types: read through ``datasets``, not as delimited text.
STRUCTURED_FORMATS = ("jsonl", "parquet", "arrow")
METRICS: tuple[str, ...] = ("accuracy", "f1", "matthews", "pearson", "spearman")
#: The values each metric can take (a loss, if one is added, is ``(0, inf)``): the server refuses a
#: result outside its metric's range, and a study's hypervolume is measured from the lower end.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "f1": (0.0, 1.0),
    "matthews": (-1.0, 1.0),
    "pearson": (-1.0, 1.0),
    "spearman": (-1.0, 1.0),
}
#: Longest path, column name and label, most labels and largest column index a description may give.
MAX_PATH, MAX_NAME, MAX_LABELS, MAX_COLUMN = 4096, 1000, 10_000, 100_000
Column = Annotated[str, Field(min_length=1, max_length=MAX_NAME)] | Annotated[int, Field(le=MAX_COLUMN)]


def check_text_encoding(name: str) -> None:
    """Refuse an encoding that does not turn bytes into text: codecs also holds bytes-to-bytes and
    str-to-str transforms (``zlib_codec``, ``rot13``), which a file cannot be read with."""
    try:
        codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown encoding {name!r}") from None
    try:
        "".encode(name)
        b"".decode(name)
    except (LookupError, UnicodeError):  # UnicodeError: the 'undefined' codec, which refuses everything
        raise ValueError(f"encoding {name!r} is not a text encoding; use one such as utf-8 or latin-1") from None


class TaskSpec(BaseModel):
    """A GLUE-style task in delimited text files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, description="Task name (a built-in name, or your own).")
    format: Format = Field(
        "tsv",
        description="tsv (GLUE, the default), csv, jsonl (one JSON object a line), parquet, or arrow (a folder written "
        "by datasets' save_to_disk). The file defaults follow it (train.csv, ..., the folders train and dev).",
    )
    data_dir: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_PATH,
        description="Directory of the files (for built-ins: the task folder or the GLUE root holding it).",
    )
    subdir: str | None = Field(
        None, min_length=1, max_length=MAX_NAME, description="Folder of this task below a GLUE root (built-ins set it)."
    )
    train_file: str = Field(
        "train.tsv", min_length=1, max_length=MAX_PATH, description="Training file, relative to data_dir."
    )
    eval_file: str = Field(
        "dev.tsv", min_length=1, max_length=MAX_PATH, description="Evaluation (dev) file, relative to data_dir."
    )
    delimiter: str = Field("\t", min_length=1, max_length=1, description="Column separator.")
    quoting: Literal["none", "csv"] = Field(
        "none", description='none: quotes are ordinary characters (GLUE TSV); csv: standard CSV quoting with ".'
    )
    encoding: str = Field(
        "utf-8-sig", min_length=1, max_length=40, description="File encoding (utf-8-sig also strips a BOM)."
    )
    header: bool = Field(True, description="Whether the first row names the columns.")
    text_columns: list[Column] = Field(
        min_length=1, max_length=2, description="One text column, or two for sentence pairs (names or indices)."
    )
    label_column: Column = Field(description="Column of the label (name or index).")
    kind: Literal["classification", "regression"] = "classification"
    labels: list[Annotated[str, Field(max_length=MAX_NAME)]] | None = Field(
        None,
        max_length=MAX_LABELS,
        description="Label set for classification, in class-index order; omitted: sorted labels of train.",
    )
    metric: Metric = Field("accuracy", description="The metric a study optimises.")
    extra_metrics: list[Metric] = Field(
        default_factory=list, max_length=len(METRICS), description="Also reported, not optimised."
    )

    @model_validator(mode="before")
    @classmethod
    def _format_defaults(cls, data: Any) -> Any:
        """Files (and, for csv, the delimiter and quoting) default to what the format uses."""
        if not isinstance(data, dict) or data.get("format") in (None, "tsv") or data["format"] not in FORMAT_FILES:
            return data
        train, dev = FORMAT_FILES[data["format"]]
        data = {"train_file": train, "eval_file": dev, **data}
        if data["format"] == "csv":
            data = {"delimiter": ",", "quoting": "csv", **data}
        return data

    @model_serializer(mode="wrap")
    def _without_default_format(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A TSV task dumps as before the field existed: stored studies, cache keys and older workers agree."""
        body = handler(self)
        if body.get("format") == "tsv":
            body.pop("format")
        return body

    @model_validator(mode="after")
    def _columns_and_encoding(self) -> TaskSpec:
        for col in [*self.text_columns, self.label_column]:
            if isinstance(col, int) and col < 0:
                raise ValueError(f"column index {col} is negative")
            if isinstance(col, str) and not self.header:
                raise ValueError(f"column {col!r} is a name, but the files have no header row; give its index")
        if self.format in STRUCTURED_FORMATS and not self.header:
            raise ValueError(f"header=false is for tsv and csv files; {self.format} columns always have names")
        check_text_encoding(self.encoding)
        return self

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        if self.kind == "regression":
            if self.labels is not None:
                raise ValueError("a regression task has no label set")
            bad = [m for m in [self.metric, *self.extra_metrics] if m not in ("pearson", "spearman")]
            if bad:
                raise ValueError(f"metric {bad[0]!r} needs classes; a regression task uses pearson or spearman")
        else:
            bad = [m for m in [self.metric, *self.extra_metrics] if m in ("pearson", "spearman")]
            if bad:
                raise ValueError(f"metric {bad[0]!r} is for regression; this task is a classification task")
            if self.labels is not None and len(set(self.labels)) != len(self.labels):
                raise ValueError(f"labels repeat a value: {self.labels}")
            if self.labels is not None and len(self.labels) < 2:
                raise ValueError("a classification task needs at least two labels")
        if self.metric == "f1" and self.labels is not None and len(self.labels) != 2:
            raise ValueError("f1 is defined here for two classes; use accuracy or matthews")
        return self

    @property
    def num_labels(self) -> int | None:
        """Outputs of the head: 1 for regression, the label count when known, else None."""
        if self.kind == "regression":
            return 1
        return len(self.labels) if self.labels is not None else None


BUILTIN_TASKS: dict[str, TaskSpec] = {
    "rte": TaskSpec(
        name="rte",
        subdir="RTE",
        text_columns=["sentence1", "sentence2"],
        label_column="label",
        labels=["entailment", "not_entailment"],
        metric="accuracy",
    ),
    "mrpc": TaskSpec(
        name="mrpc",
        subdir="MRPC",
        text_columns=["#1 String", "#2 String"],
        label_column="Quality",
        labels=["0", "1"],
        metric="f1",
        extra_metrics=["accuracy"],
    ),
    "sst2": TaskSpec(
        name="sst2",
        subdir="SST-2",
        text_columns=["sentence"],
        label_column="label",
        labels=["0", "1"],
        metric="accuracy",
    ),
}


def resolve_task(task: str | Mapping[str, Any] | TaskSpec, data_dir: str | None = None) -> TaskSpec:
    """The :class:`TaskSpec` for a built-in name, a name with ``data_dir``, or a full description.

    ``data_dir`` (e.g. from ``--data``) is used when the task itself names none.
    """
    if isinstance(task, TaskSpec):
        spec = task
    elif isinstance(task, str):
        spec = _builtin(task)
    elif isinstance(task, Mapping):
        body = dict(task)
        if set(body) <= {"name", "data_dir"} and "name" in body:
            spec = _builtin(str(body["name"])).model_copy(update={"data_dir": body.get("data_dir")})
        else:
            spec = validate_object(TaskSpec, body, "task description", TaskError, first=True, got=False)
    else:
        raise TaskError(f"a task is a name or a JSON object, got {type(task).__name__}")
    if spec.data_dir is None and data_dir is not None:
        spec = spec.model_copy(update={"data_dir": str(data_dir)})
    return spec


def _builtin(name: str) -> TaskSpec:
    key = name.lower().replace("-", "")
    if key not in BUILTIN_TASKS:
        raise TaskError(f"unknown task {name!r} (built-in: {', '.join(BUILTIN_TASKS)}; or give a task description)")
    return BUILTIN_TASKS[key]
