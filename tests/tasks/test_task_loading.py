"""Reading GLUE-style files as task descriptions say, the data directory search, and bad input."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from autopeft.errors import TaskError
from autopeft.tasks import load_task_data, read_labeled, resolve_data_dir, resolve_task
from autopeft.tasks.data import tokenize
from autopeft.tasks.spec import TaskSpec


def _csv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _write(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding=encoding)
    return path


@pytest.mark.parametrize("name,subdir", [("rte", "RTE"), ("mrpc", "MRPC"), ("sst2", "SST-2")])
def test_builtin_tasks_read_like_the_csv_module(glue_dir: Path, name: str, subdir: str) -> None:
    spec = resolve_task(name, str(glue_dir))
    folder = resolve_data_dir(spec)
    assert folder == (glue_dir / subdir).resolve()
    rows = read_labeled(spec, folder / "train.tsv", spec.labels)
    expected = _csv_rows(folder / "train.tsv")
    header, body = expected[0], expected[1:]
    assert rows.num_rows == len(body)
    first_text = header.index(spec.text_columns[0])
    assert rows["text_a"] == [r[first_text] for r in body]
    label_col = header.index(spec.label_column)
    assert rows["labels"] == [spec.labels.index(r[label_col]) for r in body]


def test_mrpc_bom_and_bare_quotes(glue_dir: Path) -> None:
    spec = resolve_task("mrpc", str(glue_dir))
    raw = (glue_dir / "MRPC" / "train.tsv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the fixture keeps the BOM of the shipped file
    rows = read_labeled(spec, resolve_data_dir(spec) / "train.tsv", spec.labels)
    body = _csv_rows(glue_dir / "MRPC" / "train.tsv")[1:]
    assert rows["text_a"] == [r[3] for r in body] and rows["text_b"] == [r[4] for r in body]
    quoted = [t for t in list(rows["text_a"]) + list(rows["text_b"]) if '"' in t]
    assert len(quoted) >= 3 and any(t.startswith('"') for t in quoted)  # a CSV reader would eat these quotes


def test_task_folder_itself_is_a_data_dir(glue_dir: Path) -> None:
    spec = resolve_task({"name": "rte", "data_dir": str(glue_dir / "RTE")})
    assert resolve_data_dir(spec) == (glue_dir / "RTE").resolve()


def test_data_dir_from_environment_then_cwd(glue_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AUTOPEFT_DATA_DIR", str(glue_dir))
    assert resolve_data_dir(resolve_task("sst2")) == (glue_dir / "SST-2").resolve()
    monkeypatch.delenv("AUTOPEFT_DATA_DIR")
    (tmp_path / "data").mkdir()
    shutil.copytree(glue_dir, tmp_path / "data" / "glue")
    monkeypatch.chdir(tmp_path)
    assert resolve_data_dir(resolve_task("sst2")) == (tmp_path / "data" / "glue" / "SST-2").resolve()


def test_missing_data_lists_where_it_looked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TaskError) as err:
        resolve_data_dir(resolve_task("rte"))
    message = str(err.value)
    assert str(tmp_path / "data" / "glue" / "RTE" / "train.tsv") in message
    assert "AUTOPEFT_DATA_DIR" in message and "--data" in message
    assert "shared" not in message  # the library knows no folder of this project's machines (issue 15)


def test_headerless_single_sentence_task_from_json(tmp_path: Path, tiny_dir: Path) -> None:
    """CoLA's layout: no header, source / label / original label / sentence; Matthews correlation."""
    lines = [f"src{i}\t{i % 2}\t*\tsentence number {i} is {'fine' if i % 2 else 'bad'}" for i in range(30)]
    _write(tmp_path / "train.tsv", lines)
    _write(tmp_path / "dev.tsv", lines[:10])
    spec = resolve_task(
        {
            "name": "cola-like",
            "data_dir": str(tmp_path),
            "header": False,
            "text_columns": [3],
            "label_column": 1,
            "metric": "matthews",
        }
    )
    data = load_task_data(spec, tiny_dir, 32)
    assert data.labels == ["0", "1"]
    assert data.train.num_rows == 30  # the first row is data, not a header
    assert data.train["labels"][:4] == [0, 1, 0, 1]
    assert data.dev().num_rows == 10
    assert "token_type_ids" in data.train.column_names and max(data.train["length"]) <= 32


def test_regression_task_from_json(tmp_path: Path, tiny_dir: Path) -> None:
    """STS-B's layout: a header, a sentence pair and a float score."""
    lines = ["index\ts1\ts2\tscore"] + [f"{i}\tfirst {i}\tsecond {i}\t{i / 7:.3f}" for i in range(20)]
    _write(tmp_path / "train.tsv", lines)
    spec = TaskSpec(
        name="sts-like",
        data_dir=str(tmp_path),
        text_columns=["s1", "s2"],
        label_column="score",
        kind="regression",
        metric="pearson",
        extra_metrics=["spearman"],
    )
    data = load_task_data(spec, tiny_dir, 16)
    assert data.labels is None and data.num_labels == 1
    assert np.allclose(data.train["labels"], [round(i / 7, 3) for i in range(20)], atol=1e-6)


def test_labels_default_to_sorted_train_labels_numerically(tmp_path: Path, tiny_dir: Path) -> None:
    _write(tmp_path / "train.tsv", ["text\tlabel"] + [f"row {i}\t{[2, 10, 1][i % 3]}" for i in range(12)])
    spec = TaskSpec(name="three", data_dir=str(tmp_path), text_columns=["text"], label_column="label")
    assert load_task_data(spec, tiny_dir, 16).labels == ["1", "2", "10"]


def test_tokenised_data_is_cached_per_max_length(glue_dir: Path, tiny_dir: Path) -> None:
    spec = resolve_task("rte", str(glue_dir))
    first = load_task_data(spec, tiny_dir, 24)
    assert load_task_data(spec, tiny_dir, 24) is first
    other = load_task_data(spec, tiny_dir, 48)
    assert other is not first
    assert max(first.train["length"]) == 24 and max(other.train["length"]) > 24


def test_search_split_is_seeded_and_disjoint(glue_dir: Path, tiny_dir: Path) -> None:
    data = load_task_data(resolve_task("sst2", str(glue_dir)), tiny_dir, 32)
    a, b = data.split(0.25, seed=3), data.split(0.25, seed=3)
    assert np.array_equal(a.search, b.search) and np.array_equal(a.train, b.train)
    assert len(a.search) == 12 and len(a.train) == 36
    assert not set(a.search) & set(a.train)
    assert not np.array_equal(a.search, data.split(0.25, seed=4).search)
    capped = data.split(0.25, seed=3, max_train=10, max_search=5)
    assert set(capped.search) <= set(a.search) and len(capped.search) == 5
    assert set(capped.train) <= set(a.train) and len(capped.train) == 10


# -- bad input ---------------------------------------------------------------------------------


def _one_sentence(tmp_path: Path, **fields) -> TaskSpec:
    body = {
        "name": "mine",
        "data_dir": str(tmp_path),
        "text_columns": ["text"],
        "label_column": "label",
        "labels": ["neg", "pos"],
        **fields,
    }
    return TaskSpec.model_validate(body)


def test_label_outside_the_set_names_label_row_and_file(tmp_path: Path, tiny_dir: Path) -> None:
    path = _write(tmp_path / "train.tsv", ["text\tlabel", "a\tpos", "b\tneg", "c\tmaybe"])
    with pytest.raises(TaskError) as err:
        load_task_data(_one_sentence(tmp_path), tiny_dir, 16)
    message = str(err.value)
    assert "'maybe'" in message and "data row 3" in message and str(path) in message


def test_missing_column_is_named(tmp_path: Path, tiny_dir: Path) -> None:
    _write(tmp_path / "train.tsv", ["sentence\tlabel", "a\tpos"])
    with pytest.raises(TaskError, match=r"column 'text' is not in .*columns: 'sentence', 'label'"):
        load_task_data(_one_sentence(tmp_path), tiny_dir, 16)
    spec = _one_sentence(tmp_path, text_columns=[0], label_column=5)
    with pytest.raises(TaskError, match=r"column 5 is not in .*it has 2 columns"):
        load_task_data(spec, tiny_dir, 16)


def test_empty_file_and_header_only_file(tmp_path: Path, tiny_dir: Path) -> None:
    _write(tmp_path / "train.tsv", [])
    with pytest.raises(TaskError, match="is empty"):
        load_task_data(_one_sentence(tmp_path), tiny_dir, 16)
    _write(tmp_path / "train.tsv", ["text\tlabel"])
    with pytest.raises(TaskError, match="no data rows"):
        load_task_data(_one_sentence(tmp_path), tiny_dir, 16)


def test_missing_dev_file_is_named_when_used(tmp_path: Path, tiny_dir: Path) -> None:
    _write(tmp_path / "train.tsv", ["text\tlabel", "a\tpos", "b\tneg"])
    data = load_task_data(_one_sentence(tmp_path), tiny_dir, 16)
    with pytest.raises(TaskError, match=r"missing file .*dev\.tsv"):
        data.dev()


def test_max_length_below_eight(glue_dir: Path, tiny_dir: Path) -> None:
    with pytest.raises(TaskError, match="max_length 7 is below 8"):
        load_task_data(resolve_task("rte", str(glue_dir)), tiny_dir, 7)
    with pytest.raises(TaskError, match="max_length 4"):
        tokenize(None, None, 4)


def test_malformed_rows_and_regression_targets(tmp_path: Path, tiny_dir: Path) -> None:
    _write(tmp_path / "train.tsv", ["text\tlabel", "a\tpos", "b\tneg\textra"])
    with pytest.raises(TaskError, match=r"train.tsv', line 3 \(data row 2\): 3 fields where its header has 2"):
        load_task_data(_one_sentence(tmp_path), tiny_dir, 16)
    _write(tmp_path / "train.tsv", ["text\tlabel", "a\tpos", "b"])
    with pytest.raises(TaskError, match=r"line 3 \(data row 2\): 1 fields where its header has 2"):  # a short row
        load_task_data(_one_sentence(tmp_path), tiny_dir, 16)
    _write(tmp_path / "train.tsv", ["text\tlabel", "a\tpos"])
    with pytest.raises(TaskError, match=r"reads one column .* for two roles"):
        load_task_data(_one_sentence(tmp_path, text_columns=["label"]), tiny_dir, 16)
    _write(tmp_path / "train.tsv", ["text\tlabel", "a\t0.5", "b\thigh"])
    spec = _one_sentence(tmp_path, labels=None, kind="regression", metric="pearson")
    with pytest.raises(TaskError, match=r"target 'high' in data row 2 .* not a finite number") as err:
        load_task_data(spec, tiny_dir, 16)
    assert "high" not in err.value.public_message() and "data row 2" in err.value.public_message()


@pytest.mark.parametrize("where", ["train", "dev"])
@pytest.mark.parametrize(
    "header, rows, expected",
    [
        (True, ["a\tb\t1\t0.5", "c\td"], r"line 3 \(data row 2\): 2 fields where its header has 4"),
        (True, ["a\tb\t1\t0.5", "c\td\t1\t0.5\textra"], r"line 3 \(data row 2\): 5 fields where its header has 4"),
        (False, ["a\tb\t1\t0.5", "c\td"], r"line 2 \(data row 2\): 2 fields where its first row has 4"),
        (False, ["a\tb\t1\t0.5", "", "c\td\t1"], r"line 3 \(data row 2\): 3 fields where its first row has 4"),
    ],
)
def test_a_ragged_row_names_the_file_the_row_and_the_field_count(
    tmp_path: Path, tiny_dir: Path, capfd, header: bool, rows: list[str], expected: str, where: str
) -> None:
    """Issue 13, item 8: short rows were read as empty fields (then 'label '' ...'), long rows printed
    a pandas ParserError before our message. Train, dev and predict read files the same way."""
    good = ["one\ttwo\t1\t0.25", "three\tfour\t0\t0.75"]
    head = ["s1\ts2\tlabel\tscore"] if header else []
    _write(tmp_path / "train.tsv", head + (rows if where == "train" else good * 3))
    _write(tmp_path / "dev.tsv", head + (rows if where == "dev" else good))
    cols = (
        {"text_columns": ["s1", "s2"], "label_column": "label"}
        if header
        else {"text_columns": [0, 1], "label_column": 2}
    )
    spec = TaskSpec(name="pairs", data_dir=str(tmp_path), header=header, labels=["0", "1"], **cols)
    with pytest.raises(TaskError, match=expected) as err:
        load_task_data(spec, tiny_dir, 16).dev()
    assert f"{where}.tsv" in str(err.value)
    assert "Error" not in capfd.readouterr().err  # nothing printed before our message
    from autopeft.tasks import read_rows

    with pytest.raises(TaskError, match=expected):  # predict reads rows the same way
        read_rows(spec, tmp_path / f"{where}.tsv", need_label=False)


def test_a_label_outside_the_set_is_named_locally_but_not_in_the_public_message(tmp_path: Path, tiny_dir: Path):
    _write(tmp_path / "train.tsv", ["text\tlabel", "a\tpos", "b\tsecret-value"])
    with pytest.raises(TaskError) as err:
        load_task_data(_one_sentence(tmp_path), tiny_dir, 16)
    assert "'secret-value'" in str(err.value)
    public = err.value.public_message()
    assert "secret-value" not in public and "data row 2" in public and "train.tsv" in public
    _write(tmp_path / "train.tsv", ["text\tlabel", "a\tonly-one", "b\tonly-one"])
    with pytest.raises(TaskError, match="single label") as err:
        load_task_data(_one_sentence(tmp_path, labels=None), tiny_dir, 16)
    assert "only-one" in str(err.value) and "only-one" not in err.value.public_message()


def test_description_errors() -> None:
    with pytest.raises(TaskError, match="unknown task 'cola'"):
        resolve_task("cola")
    with pytest.raises(TaskError, match="column 'text' is a name, but the files have no header"):
        resolve_task({"name": "x", "header": False, "text_columns": ["text"], "label_column": 0})
    with pytest.raises(TaskError, match="unknown encoding 'klingon'"):
        resolve_task({"name": "x", "text_columns": [0], "label_column": 1, "encoding": "klingon"})
    with pytest.raises(TaskError, match=r"accuracy.*needs classes"):
        resolve_task({"name": "x", "text_columns": [0], "label_column": 1, "kind": "regression", "metric": "accuracy"})
