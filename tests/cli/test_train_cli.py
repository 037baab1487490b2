"""``autopeft train`` and ``autopeft predict`` on a tiny BERT: output, saving, and one-line errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from autopeft.cli import main

_HELPER = Path(__file__).parents[1] / "train" / "tiny_encoder.py"
_spec = importlib.util.spec_from_file_location("autopeft_tiny_encoder_cli", _HELPER)
tiny_encoder = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny_encoder)

GLUE = tiny_encoder.FIXTURE_GLUE
QUICK = ["--max-steps", "4", "--batch-size", "16", "--max-length", "32", "--lr", "0.01", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return tiny_encoder.build_tiny_encoder(tmp_path_factory.mktemp("tiny-bert-cli"))


@pytest.fixture(autouse=True)
def quiet_machine(tmp_path_factory, monkeypatch):
    import torch

    monkeypatch.setenv("AUTOPEFT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "autopeft-cache-cli"))
    monkeypatch.delenv("AUTOPEFT_DATA_DIR", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(tiny_dir: Path, *extra: str, task: str = "rte", config: str = '{"lora": {"rank": 2}}') -> list[str]:
    return ["train", "--task", task, "--data", str(GLUE), "--model", str(tiny_dir), "--config", config, *QUICK, *extra]


def test_train_prints_json_with_metrics_and_counts(tiny_dir: Path, capsys) -> None:
    assert main(_train(tiny_dir, "--json", "--dev", task="mrpc")) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "mrpc" and out["metric_name"] == "f1"
    assert set(out["metrics"]["search"]) == {"f1", "accuracy"} and set(out["metrics"]["dev"]) == {"f1", "accuracy"}
    assert out["metric"] == out["metrics"]["search"]["f1"]
    assert out["steps"] == 4 and out["peft_params"] > 0 and 0 < out["param_fraction"] < 1
    assert out["train_seconds"] > 0 and out["eval_seconds"] > 0 and out["saved"] is None


def test_train_table_then_save_and_predict(tiny_dir: Path, tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "trained"
    config = '{"serial_adapter": {"size": 4, "experts": 2}}'
    assert main(_train(tiny_dir, "--save", str(out_dir), "--training", '{"evaluate_dev": true}', config=config)) == 0
    printed = capsys.readouterr().out
    for row in (
        "search accuracy",
        "dev accuracy",
        "peft_params",
        "param_fraction",
        "train seconds",
        "eval seconds",
        "steps",
    ):
        assert row in printed
    assert f"saved to {out_dir}" in printed
    assert (out_dir / "peft.safetensors").is_file() and (out_dir / "trained.json").is_file()

    dev = GLUE / "RTE" / "dev.tsv"
    assert main(["predict", "--trained", str(out_dir), "--input", str(dev)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 24 and set(lines) <= {"entailment", "not_entailment"}
    assert "24 rows; accuracy" in captured.err
    assert main(["predict", "--trained", str(out_dir), "--input", str(dev), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"] == lines


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


BAD_INPUTS = {
    "unknown task": (["--task", "cola"], "unknown task 'cola'"),
    "missing task file": (["--task", "tasks/cola.json"], "task file 'tasks/cola.json' does not exist"),
    "missing task file by path": (["--task", "/nonexistent/cola"], "task file '/nonexistent/cola' does not exist"),
    "ragged row": (["--task", "@ragged"], "line 3 (data row 2): 1 fields where its header has 2"),
    "missing data dir": (["--data", "/nonexistent/glue"], "missing file /nonexistent/glue/RTE/train.tsv"),
    "missing column": (
        [
            "--task",
            json.dumps({"name": "x", "data_dir": str(GLUE / "RTE"), "text_columns": ["nope"], "label_column": "label"}),
        ],
        "column 'nope' is not in",
    ),
    "label outside set": (["--task", "@labels"], "label 'maybe' in data row 2"),
    "empty file": (["--task", "@empty"], "is empty"),
    "max length below 8": (["--max-length", "4"], "max_length: Input should be greater than or equal to 8 (got 4)"),
    "bad config": (["--config", '{"lora": {"rank": 0}}'], "lora.rank: rank must be at least 1"),
    "config file missing": (["--config", "missing.json"], "'missing.json' is neither JSON nor an existing file"),
    "bad training": (["--training", '{"bogus": 1}'], "invalid training settings: bogus"),
    "bad device": (["--device", "tpu"], "'tpu'"),
    "missing model": (["--model", "/nonexistent/model"], "'/nonexistent/model' is not a directory"),
    "broken task json": (["--task", '{"name": '], "task description in inline JSON is not valid JSON"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_nothing_saved(case: str, tiny_dir: Path, tmp_path: Path, capsys) -> None:
    override, expected = BAD_INPUTS[case]
    args = _train(tiny_dir, "--save", str(tmp_path / "out"))
    if override[1].startswith("@"):  # a task description over a file written here
        kind = override[1][1:]
        body = {"labels": "text\tlabel\na\tpos\nb\tmaybe\n", "ragged": "text\tlabel\na\tpos\nb\n"}.get(kind, "")
        _write(tmp_path / "data" / "train.tsv", body)
        override = [
            "--task",
            json.dumps(
                {
                    "name": "mine",
                    "data_dir": str(tmp_path / "data"),
                    "text_columns": ["text"],
                    "label_column": "label",
                    "labels": ["neg", "pos"],
                }
            ),
        ]
    for flag, value in zip(override[::2], override[1::2], strict=True):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("autopeft train: error: ") and err.count("\n") == 1, err
    assert expected in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


def test_save_makes_missing_parent_folders_and_refuses_a_path_under_a_file(tiny_dir: Path, tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "runs" / "deeper" / "lora8"  # as ``--save runs/lora8`` in a fresh clone
    assert main(_train(tiny_dir, "--save", str(out_dir))) == 0
    assert (out_dir / "peft.safetensors").is_file()
    _write(tmp_path / "afile", "x")
    capsys.readouterr()
    assert main(_train(tiny_dir, "--save", str(tmp_path / "afile" / "out"))) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and err.count("\n") == 1


def test_save_to_existing_folder_refused_before_training(tiny_dir: Path, tmp_path: Path, capsys) -> None:
    _write(tmp_path / "taken" / "keep.txt", "mine")
    assert main(_train(tiny_dir, "--save", str(tmp_path / "taken"))) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]


def test_predict_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["predict", "--trained", str(tmp_path), "--input", "x.tsv"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autopeft predict: error: ") and "not a saved autopeft trial" in err and err.count("\n") == 1


@pytest.mark.slow
def test_training_every_family_warns_nothing_on_the_installed_transformers(tiny_dir: Path, tmp_path: Path) -> None:
    """Deprecation warnings of transformers break up the progress bars (and announce the next break): none."""
    import subprocess
    import sys

    config = json.dumps(
        {
            "serial_adapter": {"size": 4, "experts": 2},
            "parallel_adapter": {"size": 4},
            "prefix": {"length": 3},
            "lora": {"rank": 2, "targets": ["key", "output"]},
            "bitfit": {},
            "fish": {"fraction": 0.01, "samples": 8},
        }
    )
    cmd = [sys.executable, "-W", "error::FutureWarning", "-W", "error::DeprecationWarning:transformers"]
    done = subprocess.run(
        [*cmd, "-m", "autopeft", *_train(tiny_dir, "--dev", config=config)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**__import__("os").environ, "AUTOPEFT_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Warning" not in done.stderr, done.stderr[-2000:]
