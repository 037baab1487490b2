"""Task files in every format (tsv, csv, jsonl, parquet, arrow): the same rows, the same errors, the same roots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autopeft.errors import TaskError
from autopeft.tasks import load_task_data, read_labeled, resolve_task
from autopeft.tasks.files import read_rows

COLUMNS = {"text_columns": ["sentence1", "sentence2"], "label_column": "label"}
FILES = {"csv": "train.csv", "jsonl": "train.jsonl", "parquet": "train.parquet", "arrow": "train"}


def _rte_rows(glue_dir: Path, split: str = "train") -> list[dict]:
    rows = read_rows(resolve_task("rte"), glue_dir / "RTE" / f"{split}.tsv", need_label=True)
    return [{"sentence1": a, "sentence2": b, "label": y} for a, b, y in zip(rows["text_a"], rows["text_b"], rows["labels"])]


def write(fmt: str, rows: list[dict], path: Path) -> Path:
    """``rows`` (dicts) in ``fmt`` at ``path``, as a person would write them (pandas-free)."""
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        import csv

        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["sentence1", "sentence2", "label"])
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "parquet":
        datasets.Dataset.from_list(rows).to_parquet(str(path))
    else:
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


def _task(fmt: str, folder: Path, **extra) -> dict:
    return {"name": f"rte-{fmt}", "format": fmt, "data_dir": str(folder), "labels": ["entailment", "not_entailment"],
            **COLUMNS, **extra}


@pytest.mark.parametrize("fmt", list(FILES))
def test_every_format_reads_the_same_rows_as_the_tsv(fmt, glue_dir, tiny_dir, tmp_path) -> None:
    folder = tmp_path / fmt
    for split in ("train", "dev"):
        write(fmt, _rte_rows(glue_dir, split), folder / FILES[fmt].replace("train", split))
    spec = resolve_task(_task(fmt, folder))
    assert spec.train_file == FILES[fmt] and spec.model_dump()["format"] == fmt
    tsv = load_task_data(resolve_task("rte", str(glue_dir)), tiny_dir, 32)
    got = load_task_data(spec, tiny_dir, 32)
    for column in ("input_ids", "labels"):
        assert got.train[column] == tsv.train[column] and got.dev()[column] == tsv.dev()[column]


def test_jsonl_labels_may_be_numbers_and_targets_floats(tmp_path) -> None:
    rows = [{"s": "good", "y": 1}, {"s": "bad", "y": 0}, {"s": "fine", "y": 1}]
    path = write("jsonl", rows, tmp_path / "train.jsonl")
    spec = resolve_task({"name": "t", "format": "jsonl", "text_columns": ["s"], "label_column": "y"})
    assert read_labeled(spec, path, ["0", "1"])["labels"] == [1, 0, 1]
    reg = [{"s": "a", "score": 0.5}, {"s": "b", "score": 4.25}]
    regression = resolve_task({"name": "r", "format": "parquet", "text_columns": ["s"], "label_column": "score",
                               "kind": "regression", "metric": "pearson"})
    assert read_labeled(regression, write("parquet", reg, tmp_path / "r.parquet"), None)["labels"] == [0.5, 4.25]


BAD = [
    ("missing column", lambda rows: [{k: v for k, v in r.items() if k != "sentence2"} for r in rows],
     "column 'sentence2' is not in"),
    ("label outside the set", lambda rows: rows[:3] + [{**rows[3], "label": "maybe"}] + rows[4:],
     "is not in the label set"),
    ("empty", lambda rows: [], "is empty"),
    ("missing value", lambda rows: rows[:2] + [{**rows[2], "sentence1": None}] + rows[3:], "has no value in data row 3"),
]


@pytest.mark.parametrize("fmt", list(FILES))
@pytest.mark.parametrize("case, change, message", BAD, ids=[b[0] for b in BAD])
def test_bad_files_are_one_line_task_errors(fmt, case, change, message, glue_dir, tiny_dir, tmp_path) -> None:
    if fmt == "csv" and case == "missing value":
        pytest.skip("a csv cell cannot be null: an empty text is a text")
    folder = tmp_path / fmt
    rows = change(_rte_rows(glue_dir))
    if fmt == "parquet" and not rows:
        (folder).mkdir(parents=True)
        (folder / FILES[fmt]).write_bytes(b"")
    elif fmt == "arrow" and not rows:
        import datasets

        features = datasets.Features({k: datasets.Value("string") for k in ("sentence1", "sentence2", "label")})
        datasets.Dataset.from_dict({k: [] for k in features}, features=features).save_to_disk(str(folder / "train"))
    elif fmt == "csv" and not rows:
        folder.mkdir(parents=True)
        (folder / FILES[fmt]).write_text("")
    else:
        write(fmt, rows, folder / FILES[fmt])
    with pytest.raises(TaskError, match=message) as err:
        load_task_data(resolve_task(_task(fmt, folder)), tiny_dir, 32)
    assert "\n" not in str(err.value)


def test_a_file_that_is_not_its_format_says_so(tiny_dir, tmp_path) -> None:
    (tmp_path / "train.jsonl").write_text("this is not json\n")
    with pytest.raises(TaskError, match=r"cannot read .*train.jsonl.* as jsonl"):
        load_task_data(resolve_task(_task("jsonl", tmp_path)), tiny_dir, 32)
    with pytest.raises(TaskError, match="header=false is for tsv and csv"):
        resolve_task({**_task("parquet", tmp_path), "header": False, "text_columns": [0], "label_column": 1})


@pytest.mark.parametrize("fmt", list(FILES))
def test_a_worker_reads_every_format_only_under_its_roots(fmt, glue_dir, tiny_dir, tmp_path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(fmt, _rte_rows(glue_dir), outside / fmt / FILES[fmt])
    task = resolve_task({**_task(fmt, outside / fmt)})
    with pytest.raises(TaskError, match="outside"):
        load_task_data(task, tiny_dir, 32, roots=[root])
    inside = write(fmt, _rte_rows(glue_dir), root / fmt / FILES[fmt])
    assert load_task_data(resolve_task(_task(fmt, inside.parent)), tiny_dir, 32, roots=[root]).train.num_rows > 0
    if fmt == "arrow":  # a file of the dataset folder linked from outside the roots is refused too
        data = next(p for p in inside.iterdir() if p.suffix == ".arrow")
        data.unlink()
        data.symlink_to(next(p for p in (outside / fmt / "train").iterdir() if p.suffix == ".arrow"))
        with pytest.raises(TaskError, match="outside"):
            load_task_data(resolve_task(_task(fmt, inside.parent)), tiny_dir, 32, roots=[root])


def test_autopeft_train_reads_a_jsonl_task_and_says_what_is_wrong_in_one_line(glue_dir, tiny_dir, tmp_path, capsys):
    from autopeft.cli import main

    for split in ("train", "dev"):
        write("jsonl", _rte_rows(glue_dir, split), tmp_path / "nli" / f"{split}.jsonl")
    task = json.dumps(_task("jsonl", tmp_path / "nli"))
    quick = ["--model", str(tiny_dir), "--max-steps", "2", "--batch-size", "8", "--max-length", "16", "--no-progress"]
    assert main(["train", "--task", task, "--config", '{"bitfit": {}}', "--dev", "--json", *quick]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["dev"]["accuracy"] >= 0
    wrong = json.dumps({**_task("jsonl", tmp_path / "nli"), "label_column": "gold"})
    assert main(["train", "--task", wrong, "--config", '{"bitfit": {}}', *quick]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autopeft train: error: column 'gold' is not in") and "\n" not in err
