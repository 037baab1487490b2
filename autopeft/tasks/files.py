"""Reading a task's delimited files, checked against the task description, under the data roots.

Every column is read as a string (labels too: "0" and "entailment" alike), with
quoting as the task says (GLUE TSV files contain bare ``"`` characters, so quoting is
off by default) and the task's encoding (``utf-8-sig`` strips MRPC's byte-order
mark). Columns are addressed by position internally, so headerless files and files
with odd header names read the same way; every row must have as many fields as the
header (or, without one, the first row). The result has the columns ``text_a`` (and
``text_b`` for sentence pairs) and ``labels`` (class index or float target).

A worker reads only under the data roots it was started with (``roots``): a task's
folder and files must resolve (symlinks and ``..`` followed) to a place inside one.
Errors name files, rows and columns; what a row holds (a label, a target) is only in
the local message, never in :meth:`~autopeft.errors.AutoPeftError.public_message`.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from autopeft.confine import inside, outside, real_roots
from autopeft.errors import TaskError
from autopeft.extras import require
from autopeft.tasks.spec import STRUCTURED_FORMATS, TaskSpec

if TYPE_CHECKING:
    from datasets import Dataset

#: Where to look for the GLUE root (relative to the working directory) when neither the task,
#: the caller nor ``$AUTOPEFT_DATA_DIR`` names a data directory.
DEFAULT_DATA_DIRS: tuple[str, ...] = ("data/glue",)
DATA_DIR_ENV = "AUTOPEFT_DATA_DIR"
CACHE_DIR_ENV = "AUTOPEFT_CACHE_DIR"
#: Longest field a row may have (csv's default of 128 KiB is short for documents).
MAX_FIELD_CHARS = 1 << 24


def cache_dir() -> Path:
    """Root of autopeft's on-disk caches (``$AUTOPEFT_CACHE_DIR`` or ``~/.cache/autopeft``)."""
    root = os.environ.get(CACHE_DIR_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "autopeft"


def default_data_dirs() -> list[Path]:
    """``$AUTOPEFT_DATA_DIR`` (several joined by ``os.pathsep``), else ``./data/glue``."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path.cwd() / d for d in DEFAULT_DATA_DIRS]


def resolve_data_dir(spec: TaskSpec, roots: Sequence[str | os.PathLike[str]] | None = None) -> Path:
    """The folder holding ``spec``'s training file.

    Without ``roots`` (``autopeft train``, a person's own files): the task's ``data_dir``
    (``--data`` ends up there), else ``$AUTOPEFT_DATA_DIR``, else ``./data/glue`` relative to
    the working directory. A base may be a GLUE root (its ``subdir`` is tried first) or the
    task's folder itself.

    With ``roots`` (a worker): the bases are the roots, or the task's ``data_dir`` (relative:
    below each root; absolute: it must be inside one), and the training and evaluation files
    must resolve to places inside a root, or :class:`TaskError` names the path and the roots.
    """
    if roots is not None:
        return _confined_data_dir(spec, real_roots(roots))
    bases = [Path(spec.data_dir).expanduser()] if spec.data_dir is not None else default_data_dirs()
    looked: list[str] = []
    for base in bases:
        for folder in ([base / spec.subdir] if spec.subdir else []) + [base]:
            if present(spec, folder / spec.train_file):
                return folder.resolve()
            looked.append(str(folder / spec.train_file))
    raise TaskError(
        f"no data for task {spec.name!r}: missing file {' and '.join(looked)}; give the data directory "
        f"(--data DIR, the task's data_dir, or ${DATA_DIR_ENV})"
    )


def _confined_data_dir(spec: TaskSpec, roots: Sequence[Path]) -> Path:
    flag = f"start it with --data DIR (or ${DATA_DIR_ENV}) naming a folder that holds it"
    if spec.data_dir is None:
        bases = roots
    else:
        given = Path(spec.data_dir).expanduser()
        bases = [given] if given.is_absolute() else [root / given for root in roots]
    looked: list[str] = []
    for base in bases:
        for folder in ([base / spec.subdir] if spec.subdir else []) + [base]:
            train = folder / spec.train_file
            if not inside(train, roots):  # before looking at it: nothing outside the roots is even probed
                raise TaskError(outside(f"task {spec.name!r}: file", train, roots, flag))
            if present(spec, train):
                evaluation = folder / spec.eval_file
                if not inside(evaluation, roots):
                    raise TaskError(outside(f"task {spec.name!r}: file", evaluation, roots, flag))
                for part in _folder_files(train) + _folder_files(evaluation):  # arrow: each file of the folders
                    if not inside(part, roots):
                        raise TaskError(outside(f"task {spec.name!r}: file", part, roots, flag))
                return Path(os.path.realpath(folder))
            looked.append(str(train))
    raise TaskError(
        f"no data for task {spec.name!r}: missing file {' and '.join(looked)} (this worker reads under "
        f"{', '.join(str(r) for r in roots) or 'no folder'}; add one with --data DIR or ${DATA_DIR_ENV})"
    )


def present(spec: TaskSpec, path: Path) -> bool:
    """Whether the task's file (for ``arrow``: its folder) is at ``path``."""
    return path.is_dir() if spec.format == "arrow" else path.is_file()


def _folder_files(path: Path) -> list[Path]:
    """The entries of a dataset folder (arrow), which must stay inside the roots like the folder itself."""
    return sorted(path.iterdir()) if path.is_dir() else []


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
    """:func:`read_columns` as a ``datasets.Dataset`` of strings (for training and tokenising in batches)."""
    import datasets

    columns = read_columns(spec, path, need_label=need_label)
    features = datasets.Features({name: datasets.Value("string") for name in columns})
    return datasets.Dataset.from_dict(columns, features=features)


def read_columns(spec: TaskSpec, path: Path, *, need_label: bool) -> dict[str, list[str]]:
    """Text columns (and the raw label column when the file has it) of ``path``, as strings:
    ``text_a`` (and ``text_b``), ``labels``. Delimited files need only the standard library (a bare
    install predicts from them); jsonl, parquet and arrow go through ``datasets`` (the worker extra).

    With ``need_label`` false a file without the label column (e.g. GLUE's test files)
    is accepted: the result then has no ``labels`` column.
    """
    if not present(spec, path):
        raise TaskError(f"missing {'folder' if spec.format == 'arrow' else 'file'} {str(path)!r} (task {spec.name!r})")
    if spec.format in STRUCTURED_FORMATS:
        require("worker", f"reading {spec.format} files")
        return _read_structured(spec, path, need_label=need_label)
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
    columns = _read_columns(spec, path, len(header), list(wanted.values()))
    return dict(zip(wanted, columns, strict=True))


def _read_structured(spec: TaskSpec, path: Path, *, need_label: bool) -> dict[str, list[str]]:
    """A jsonl, parquet or arrow file through ``datasets``, checked by the rules of delimited files:
    columns by name (or position), no empty file, every text and label present; values become strings."""
    table = _load_structured(spec, path)
    header = list(table.column_names)
    if table.num_rows == 0:
        raise TaskError(f"{str(path)!r} is empty (task {spec.name!r})")
    wanted = {"text_a": _column_index(spec, spec.text_columns[0], header, path)}
    if len(spec.text_columns) > 1:
        wanted["text_b"] = _column_index(spec, spec.text_columns[1], header, path)
    label_idx = _label_index(spec, header, path, need_label)
    if label_idx is not None:
        wanted["labels"] = label_idx
    if len(set(wanted.values())) < len(wanted):
        raise TaskError(f"task {spec.name!r} reads one column of {str(path)!r} for two roles: {wanted}")
    return {role: _strings(table[header[i]], header[i], path, spec) for role, i in wanted.items()}


def _load_structured(spec: TaskSpec, path: Path) -> Dataset:
    import datasets

    if (path.stat().st_size == 0) if spec.format != "arrow" else _no_shards(path):
        raise TaskError(f"{str(path)!r} is empty (task {spec.name!r})")
    cache = str(cache_dir() / "datasets")
    try:
        if spec.format == "jsonl":
            loaded = datasets.Dataset.from_json(str(path), cache_dir=cache, keep_in_memory=True)
        elif spec.format == "parquet":
            loaded = datasets.Dataset.from_parquet(str(path), cache_dir=cache, keep_in_memory=True)
        else:
            loaded = datasets.load_from_disk(str(path), keep_in_memory=True)
    except Exception as err:  # noqa: BLE001 - datasets and pyarrow raise many kinds for a malformed file
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TaskError(f"cannot read {str(path)!r} as {spec.format} (task {spec.name!r}): {reason[:300]}") from None
    if not isinstance(loaded, datasets.Dataset):
        raise TaskError(
            f"{str(path)!r} holds several splits ({', '.join(loaded)}); point train_file and eval_file at one each"
        )
    return loaded


def _no_shards(folder: Path) -> bool:
    """A dataset folder saved with no rows lists no data files (and ``datasets`` cannot load it)."""
    import json

    try:
        return not json.loads((folder / "state.json").read_text(encoding="utf-8")).get("_data_files")
    except (OSError, ValueError, AttributeError):
        return False  # not a dataset folder: loading it says why


def _strings(values: list, column: str, path: Path, spec: TaskSpec) -> list[str]:
    """Column values as strings (a label 1 reads as "1", as in a TSV file); a missing value is an error."""
    out = []
    for row, value in enumerate(values):
        if value is None:
            where = f"data row {row + 1} of {str(path)!r}"
            raise TaskError(f"column {column!r} has no value in {where} (task {spec.name!r})")
        if isinstance(value, (dict, list)):
            raise TaskError(f"column {column!r} holds a {type(value).__name__} in data row {row + 1} of {str(path)!r}")
        out.append(str(value).lower() if isinstance(value, bool) else str(value))
    return out


def class_names(raw_labels: list[str]) -> list[str]:
    """The sorted distinct labels (numerically when they are all integers: "2" before "10")."""
    distinct = set(raw_labels)
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return sorted(distinct)


def encode_labels(raw: list[str], labels: list[str] | None, path: Path, spec: TaskSpec) -> list[int]:
    """Class index of each label; a label outside the set is an error naming its row and file
    (and, in the local message only, the label and the set)."""
    names = labels if labels is not None else class_names(raw)
    index = {name: i for i, name in enumerate(names)}
    out = []
    for row, value in enumerate(raw):
        if value not in index:
            where = f"in data row {row + 1} of {str(path)!r}"
            raise TaskError(
                f"label {value!r} {where} is not in the label set {names} of task {spec.name!r}",
                public=f"a label {where} is not in the label set of task {spec.name!r}",
            )
        out.append(index[value])
    return out


def encode_regression(raw: list[str], path: Path, spec: TaskSpec) -> list[float]:
    """Float targets; a value that is not a finite number is an error naming its row and file
    (and, in the local message only, the value)."""
    out = []
    for row, value in enumerate(raw):
        try:
            target = float(value)
        except ValueError:
            target = math.nan
        if not math.isfinite(target):
            where = f"in data row {row + 1} of {str(path)!r}"
            kind = f"(task {spec.name!r} is a regression task)"
            raise TaskError(
                f"target {value!r} {where} is not a finite number {kind}",
                public=f"the target {where} is not a finite number {kind}",
            )
        out.append(target)
    return out


def _csv_quoting(spec: TaskSpec) -> int:
    return csv.QUOTE_NONE if spec.quoting == "none" else csv.QUOTE_MINIMAL


def _first_rows(spec: TaskSpec, path: Path) -> tuple[list[str], bool]:
    """The header (or, without one, the first row, to count the columns), and whether more rows follow."""
    try:
        with path.open(encoding=spec.encoding, newline="") as f:
            rows = (r for r in _reader(spec, f) if not _blank(r))
            first, second = next(rows, None), next(rows, None)
    except UnicodeDecodeError as err:
        raise TaskError(f"cannot read {str(path)!r} as {spec.encoding}: {err.reason} at byte {err.start}") from None
    except UnicodeError:  # a codec that fails otherwise (idna, punycode): nothing of the file is quoted
        raise TaskError(f"cannot read {str(path)!r} as {spec.encoding}: the file is not in that encoding") from None
    except csv.Error as err:
        raise TaskError(f"cannot read {str(path)!r} as task {spec.name!r} describes it: {err}") from None
    except OSError as err:
        raise TaskError(f"cannot read {str(path)!r}: {err.strerror}") from None
    if first is None:
        raise TaskError(f"{str(path)!r} is empty (task {spec.name!r})")
    return first, second is not None


def _reader(spec: TaskSpec, f: object) -> csv._reader:  # type: ignore[name-defined]
    if csv.field_size_limit() < MAX_FIELD_CHARS:
        csv.field_size_limit(MAX_FIELD_CHARS)
    return csv.reader(f, delimiter=spec.delimiter, quoting=_csv_quoting(spec))  # type: ignore[arg-type]


def _blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


def _read_columns(spec: TaskSpec, path: Path, n_fields: int, wanted: list[int]) -> list[list[str]]:
    """The ``wanted`` columns of every data row (blank lines skipped); a row with another number of
    fields than the header (or the first row) is an error naming the file, the row and the counts."""
    columns: list[list[str]] = [[] for _ in wanted]
    first = "its header" if spec.header else "its first row"
    line = 0
    try:
        with path.open(encoding=spec.encoding, newline="") as f:
            reader = _reader(spec, f)
            rows = (r for r in reader if not _blank(r))
            if spec.header:
                next(rows, None)
            for n, row in enumerate(rows, start=1):
                line = reader.line_num
                if len(row) != n_fields:
                    raise TaskError(
                        f"{str(path)!r}, line {line} (data row {n}): {len(row)} fields where {first} has "
                        f"{n_fields} (task {spec.name!r}; delimiter {spec.delimiter!r}, quoting {spec.quoting!r})"
                    )
                for column, i in zip(columns, wanted, strict=True):
                    column.append(row[i])
    except UnicodeDecodeError as err:
        raise TaskError(f"cannot read {str(path)!r} as {spec.encoding}: {err.reason} after line {line}") from None
    except UnicodeError:
        raise TaskError(f"cannot read {str(path)!r} as {spec.encoding}: not in that encoding (line {line})") from None
    except csv.Error as err:
        raise TaskError(
            f"cannot read {str(path)!r} as task {spec.name!r} describes it: {err} (after line {line})"
        ) from None
    except OSError as err:
        raise TaskError(f"cannot read {str(path)!r}: {err.strerror}") from None
    return columns


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
