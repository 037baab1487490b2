"""Reading a task's delimited files through ``datasets``, checked against the task description.

Every column is read as a string (labels too: "0" and "entailment" alike), with
quoting as the task says (GLUE TSV files contain bare ``"`` characters, so quoting is
off by default) and the task's encoding (``utf-8-sig`` strips MRPC's byte-order
mark). Columns are addressed by position internally, so headerless files and files
with odd header names read the same way. The result has the columns ``text_a``
(and ``text_b`` for sentence pairs) and ``labels`` (class index or float target).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from autopeft.errors import TaskError
from autopeft.tasks.spec import TaskSpec

if TYPE_CHECKING:
    from datasets import Dataset

#: Where to look for the GLUE root when neither the task nor the caller names a data directory.
DEFAULT_DATA_DIRS: tuple[str, ...] = ("data/glue", "../shared/data/glue")
DATA_DIR_ENV = "AUTOPEFT_DATA_DIR"
CACHE_DIR_ENV = "AUTOPEFT_CACHE_DIR"


def cache_dir() -> Path:
    """Root of autopeft's on-disk caches (``$AUTOPEFT_CACHE_DIR`` or ``~/.cache/autopeft``)."""
    root = os.environ.get(CACHE_DIR_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "autopeft"


def resolve_data_dir(spec: TaskSpec) -> Path:
    """The folder holding ``spec``'s training file.

    Bases, in order: the task's ``data_dir`` (``--data`` ends up there), else
    ``$AUTOPEFT_DATA_DIR``, else ``./data/glue`` and ``../shared/data/glue`` relative to
    the working directory. A base may be a GLUE root (its ``subdir`` is tried first)
    or the task's folder itself.
    """
    if spec.data_dir is not None:
        bases = [Path(spec.data_dir).expanduser()]
    elif os.environ.get(DATA_DIR_ENV):
        bases = [Path(os.environ[DATA_DIR_ENV]).expanduser()]
    else:
        bases = [Path.cwd() / d for d in DEFAULT_DATA_DIRS]
    looked: list[str] = []
    for base in bases:
        for folder in ([base / spec.subdir] if spec.subdir else []) + [base]:
            if (folder / spec.train_file).is_file():
                return folder.resolve()
            looked.append(str(folder / spec.train_file))
    raise TaskError(
        f"no data for task {spec.name!r}: missing file {' and '.join(looked)}; give the data directory "
        f"(--data DIR, the task's data_dir, or ${DATA_DIR_ENV})"
    )


def read_labeled(spec: TaskSpec, path: Path, labels: list[str] | None) -> Dataset:
    """Read ``path`` as ``spec`` describes it; labels become class indices of ``labels`` (or floats)."""
    rows = read_rows(spec, path, need_label=True)
    raw = rows.data.column("labels").to_pylist()
    if spec.kind == "regression":
        encoded: list = encode_regression(raw, path, spec)
    else:
        encoded = encode_labels(raw, labels, path, spec)
    from datasets import Value

    rows = rows.remove_columns("labels").add_column("labels", encoded)
    return rows.cast_column("labels", Value("float32" if spec.kind == "regression" else "int64"))


def read_rows(spec: TaskSpec, path: Path, *, need_label: bool) -> Dataset:
    """Text columns (and the raw label column when the file has it) of ``path``, as strings.

    With ``need_label`` false a file without the label column (e.g. GLUE's test files)
    is accepted: the result then has no ``labels`` column.
    """
    if not path.is_file():
        raise TaskError(f"missing file {str(path)!r} (task {spec.name!r})")
    header, has_more_rows = _first_rows(spec, path)
    if spec.header and not has_more_rows:
        raise TaskError(f"{str(path)!r} has a header but no data rows (task {spec.name!r})")
    text_idx = [_column_index(spec, c, header, path) for c in spec.text_columns]
    label_idx = _label_index(spec, header, path, need_label)
    wanted = {"text_a": text_idx[0]}
    if len(text_idx) > 1:
        wanted["text_b"] = text_idx[1]
    if label_idx is not None:
        wanted["labels"] = label_idx
    if len(set(wanted.values())) < len(wanted):
        raise TaskError(f"task {spec.name!r} reads one column of {str(path)!r} for two roles: {wanted}")
    table = _load_strings(spec, path, len(header))
    table = table.select_columns([f"c{i}" for i in wanted.values()])
    return table.rename_columns({f"c{i}": name for name, i in wanted.items()})


def class_names(raw_labels: list[str]) -> list[str]:
    """The sorted distinct labels (numerically when they are all integers: "2" before "10")."""
    distinct = set(raw_labels)
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return sorted(distinct)


def encode_labels(raw: list[str], labels: list[str] | None, path: Path, spec: TaskSpec) -> list[int]:
    """Class index of each label; a label outside the set is an error naming it, its row and file."""
    names = labels if labels is not None else class_names(raw)
    index = {name: i for i, name in enumerate(names)}
    out = []
    for row, value in enumerate(raw):
        if value not in index:
            raise TaskError(
                f"label {value!r} in data row {row + 1} of {str(path)!r} is not in the label set {names} "
                f"of task {spec.name!r}"
            )
        out.append(index[value])
    return out


def encode_regression(raw: list[str], path: Path, spec: TaskSpec) -> list[float]:
    """Float targets; a value that is not a finite number is an error naming it, its row and file."""
    out = []
    for row, value in enumerate(raw):
        try:
            target = float(value)
        except ValueError:
            target = math.nan
        if not math.isfinite(target):
            raise TaskError(
                f"target {value!r} in data row {row + 1} of {str(path)!r} is not a finite number "
                f"(task {spec.name!r} is a regression task)"
            )
        out.append(target)
    return out


def _csv_quoting(spec: TaskSpec) -> int:
    return csv.QUOTE_NONE if spec.quoting == "none" else csv.QUOTE_MINIMAL


def _first_rows(spec: TaskSpec, path: Path) -> tuple[list[str], bool]:
    """The header (or, without one, the first row, to count the columns), and whether more rows follow."""
    try:
        with path.open(encoding=spec.encoding, newline="") as f:
            lines = (line for line in f if line.strip())
            first, second = next(lines, None), next(lines, None)
    except UnicodeDecodeError as err:
        raise TaskError(f"cannot read {str(path)!r} as {spec.encoding}: {err.reason} at byte {err.start}") from None
    except OSError as err:
        raise TaskError(f"cannot read {str(path)!r}: {err.strerror}") from None
    if first is None:
        raise TaskError(f"{str(path)!r} is empty (task {spec.name!r})")
    return next(csv.reader([first], delimiter=spec.delimiter, quoting=_csv_quoting(spec))), second is not None


def _column_index(spec: TaskSpec, column: str | int, header: list[str], path: Path) -> int:
    if isinstance(column, int):
        if column >= len(header):
            raise TaskError(
                f"column {column} is not in {str(path)!r}: it has {len(header)} columns (0..{len(header) - 1})"
            )
        return column
    if column not in header:
        raise TaskError(f"column {column!r} is not in {str(path)!r} (columns: {', '.join(map(repr, header))})")
    return header.index(column)


def _label_index(spec: TaskSpec, header: list[str], path: Path, need_label: bool) -> int | None:
    col = spec.label_column
    present = col < len(header) if isinstance(col, int) else col in header
    if not present and not need_label:
        return None
    return _column_index(spec, col, header, path)


def _load_strings(spec: TaskSpec, path: Path, n_columns: int) -> Dataset:
    """Every column as a string, named ``c0, c1, ...``; parse errors become :class:`TaskError`."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    names = [f"c{i}" for i in range(n_columns)]
    try:
        return datasets.load_dataset(
            "csv",
            data_files={"rows": str(path)},
            split="rows",
            delimiter=spec.delimiter,
            header=0 if spec.header else None,
            column_names=names,
            quoting=_csv_quoting(spec),
            encoding=spec.encoding,
            keep_default_na=False,
            na_filter=False,
            features=datasets.Features({n: datasets.Value("string") for n in names}),
            cache_dir=str(cache_dir() / "datasets"),
        )
    except Exception as err:  # datasets wraps pandas' parser errors; the root cause is the useful part
        raise TaskError(f"cannot read {str(path)!r} as task {spec.name!r} describes it: {_root_cause(err)}") from None


def _root_cause(err: BaseException) -> str:
    seen = {id(err)}
    while (nxt := err.__cause__ or err.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        err = nxt
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__
