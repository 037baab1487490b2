"""One trial end to end on a tiny BERT and the fixture GLUE samples."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from autopeft.accounting import estimate
from autopeft.config import parse_config
from autopeft.errors import TrainingError
from autopeft.handle import inject
from autopeft.shape import model_shape
from autopeft.train import TrialCache, TrialStopped, run_trial, train_trial
from autopeft.train.evaluate import score
from autopeft.train.loop import param_groups
from autopeft.train.settings import TrainingSettings
from autopeft.train.trial import resolve_device

#: Full-batch steps (36 training rows) on a dropout-free model: the step losses are the training loss.
FAST = {
    "max_steps": 30,
    "batch_size": 64,
    "learning_rate": 1e-2,
    "max_length": 32,
    "warmup_ratio": 0.0,
    "search_split": 0.25,
    "eval_every": 10,
}

FAMILIES = {
    "serial_adapter": {"serial_adapter": {"size": 8}},
    "adamix": {"serial_adapter": {"size": 8, "experts": 3}},
    "parallel_adapter": {"parallel_adapter": {"size": 8}},
    "prefix": {"prefix": {"length": 4}},
    "prefix_mlp": {"prefix": {"length": 4, "reparameterize": True, "hidden": 16}},
    "lora": {"lora": {"rank": 4}},
    "dora": {"lora": {"rank": 4, "dora": True}},
    "ia3": {"ia3": {}},
    "bitfit": {"bitfit": {}},
    "fish": {"fish": {"fraction": 0.05, "samples": 16}},
    "full": {"full": {}},
    "combination": {
        "serial_adapter": {"size": 4, "layers": [1], "experts": 2},
        "parallel_adapter": {"size": 4, "layers": [0]},
        "lora": {"rank": 2, "targets": ["query", "value", "intermediate"]},
        "bitfit": {"layers": [0]},
        "prefix": {"length": 2},
        "fish": {"fraction": 0.01, "samples": 8, "ird": True},
    },
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_trains_and_reduces_training_loss(name: str, tiny_dir: Path, glue_dir: Path) -> None:
    config = FAMILIES[name]
    result = run_trial("sst2", tiny_dir, config, FAST, data_dir=glue_dir)
    assert result.steps == 30 and len(result.losses) == 30
    assert result.losses[-1] < 0.85 * result.losses[0], result.losses
    expected = estimate(config, model_shape(tiny_dir, 2))
    assert result.peft_params == expected.peft_params
    assert result.param_fraction == pytest.approx(expected.peft_params / expected.backbone_params)
    assert result.head_params == expected.head_params
    assert 0.0 <= result.metric <= 1.0 and result.metric == result.metrics["search"]["accuracy"]
    assert result.train_examples == 36 and result.search_examples == 12


def test_frozen_backbone_stays_frozen(tiny_dir: Path, glue_dir: Path) -> None:
    """Only PEFT parameters and the head reach the optimiser: the wrapped base weights do not move."""
    cache = TrialCache()
    trained = train_trial("sst2", tiny_dir, FAMILIES["lora"], FAST, data_dir=glue_dir, cache=cache)
    base = next(iter(cache._models.values()))
    layer, base_layer = trained.handle.model.bert.encoder.layer[0], base.bert.encoder.layer[0]
    query = layer.attention.self.query
    assert torch.equal(query.base_layer.weight, base_layer.attention.self.query.weight)
    assert torch.equal(layer.intermediate.dense.weight, base_layer.intermediate.dense.weight)
    assert query.lora_B.weight.abs().sum() > 0
    assert not torch.equal(trained.handle.model.classifier.weight, base.classifier.weight)


def test_fish_moves_only_masked_entries(tiny_dir: Path, glue_dir: Path) -> None:
    cache = TrialCache()
    trained = train_trial("sst2", tiny_dir, FAMILIES["fish"], FAST, data_dir=glue_dir, cache=cache)
    base = dict(next(iter(cache._models.values())).named_parameters())
    model = trained.handle.model
    mask = trained.handle.prepared["fish"]
    moved = 0
    for name, m in mask.items():
        module_name, _, attr = name.rpartition(".")
        weight = getattr(model.get_submodule(module_name), attr)  # parametrised: base + sparse delta
        changed = weight.detach() != base[name]
        assert not (changed & ~m).any(), name
        moved += int(changed.sum())
    assert moved > 0.5 * sum(int(m.sum()) for m in mask.values())


def test_same_seed_same_metric_different_seed_differs(tiny_dir: Path, glue_dir: Path) -> None:
    config = {"serial_adapter": {"size": 8, "experts": 3}, "fish": {"fraction": 0.02, "samples": 8}}
    settings = {**FAST, "batch_size": 8, "max_steps": 12, "eval_every": 4}  # shuffled mini-batches, random routing
    first = run_trial("sst2", tiny_dir, config, settings, data_dir=glue_dir)
    cache = TrialCache()
    again = [run_trial("sst2", tiny_dir, config, settings, data_dir=glue_dir, cache=cache) for _ in range(2)]
    for other in again:  # fresh, then from the cached base model and cached mask
        assert other.metric == first.metric
        assert other.losses == first.losses
    reseeded = run_trial("sst2", tiny_dir, config, {**settings, "seed": 1}, data_dir=glue_dir)
    assert reseeded.losses != first.losses


def test_early_stopping_keeps_best_state(tiny_dir: Path, glue_dir: Path) -> None:
    settings = {**FAST, "learning_rate": 1e-9, "eval_every": 2, "patience": 1, "max_steps": 20}
    result = run_trial("sst2", tiny_dir, FAMILIES["lora"], settings, data_dir=glue_dir)
    assert result.stopped_early and result.steps == 4 and result.best_step == 2

    trained = train_trial("sst2", tiny_dir, FAMILIES["lora"], {**FAST, "eval_every": 3}, data_dir=glue_dir)
    split = trained.split
    rescored = score(
        trained.handle.model, trained.task, trained.task.train, split.search, batch_size=16, device=torch.device("cpu")
    )
    assert rescored["accuracy"] == trained.result.metric  # the model holds the best evaluation's state


def test_should_stop_and_progress_callback(tiny_dir: Path, glue_dir: Path) -> None:
    seen: list[tuple[int, int]] = []
    with pytest.raises(TrialStopped, match="at step 3 of 30"):
        run_trial(
            "sst2",
            tiny_dir,
            FAMILIES["lora"],
            FAST,
            data_dir=glue_dir,
            progress=lambda step, total: seen.append((step, total)),
            should_stop=lambda: len(seen) >= 3,
        )
    assert seen == [(1, 30), (2, 30), (3, 30)]
    assert not issubclass(TrialStopped, TrainingError)  # a worker gives the trial back rather than failing it


def test_without_progress_nothing_prints_a_progress_bar(tmp_path: Path, tiny_dir: Path, glue_dir: Path, capfd) -> None:
    """A worker with --no-progress (progress False) shows no bar, datasets' Map and Casting bars included."""
    import shutil

    shutil.copytree(glue_dir / "RTE", tmp_path / "RTE")  # files this process has not tokenised before
    run_trial("rte", tiny_dir, FAMILIES["lora"], {**FAST, "max_steps": 2}, data_dir=tmp_path, progress=False)
    err = capfd.readouterr().err
    assert "Map" not in err and "Casting" not in err and "it/s" not in err, err[-500:]


def test_on_evaluation_false_ends_training_keeps_best_state_and_marks_pruned(tiny_dir: Path, glue_dir: Path) -> None:
    """The early-stopping hook: called at each evaluation with (step, metric, total); False ends training at once."""
    calls: list[tuple[int, float, int]] = []

    def hook(step: int, metric: float, total: int) -> bool:
        calls.append((step, metric, total))
        return len(calls) < 3

    settings = {**FAST, "eval_every": 3}
    trained = train_trial("sst2", tiny_dir, FAMILIES["lora"], settings, data_dir=glue_dir, on_evaluation=hook)
    result = trained.result
    assert [(s, t) for s, _, t in calls] == [(3, 30), (6, 30), (9, 30)]
    assert result.pruned and result.stopped_early and result.steps == 9 and len(result.losses) == 9
    assert result.curve == [(s, m) for s, m, _ in calls]
    assert result.metric == max(m for _, m, _ in calls) and result.best_step in (3, 6, 9)
    model, task, search = trained.handle.model, trained.task, trained.split.search
    rescored = score(model, task, task.train, search, batch_size=16, device=torch.device("cpu"))
    assert rescored["accuracy"] == result.metric  # the best evaluation's state, not the last step's
    assert result.to_json()["pruned"] is True

    calls.clear()
    full = run_trial("sst2", tiny_dir, FAMILIES["lora"], settings, data_dir=glue_dir, on_evaluation=lambda *a: True)
    assert not full.pruned and full.steps == 30 and [s for s, _ in full.curve] == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_regression_task_from_json_trains(tmp_path: Path, tiny_dir: Path) -> None:
    rng = np.random.default_rng(0)
    words = ["good", "bad", "film", "story", "the", "a", "fun", "dull"]
    rows = []
    for i in range(40):
        sent = rng.choice(words, 6)
        rows.append(f"{i}\t{' '.join(sent[:3])}\t{' '.join(sent[3:])}\t{(list(sent).count('good') * 1.5):.2f}")
    _write(tmp_path / "train.tsv", ["id\ta\tb\tscore", *rows])
    _write(tmp_path / "dev.tsv", ["id\ta\tb\tscore", *rows[:10]])
    task = {
        "name": "sts-like",
        "data_dir": str(tmp_path),
        "text_columns": ["a", "b"],
        "label_column": "score",
        "kind": "regression",
        "metric": "pearson",
        "extra_metrics": ["spearman"],
    }
    result = run_trial(task, tiny_dir, FAMILIES["lora"], {**FAST, "evaluate_dev": True})
    assert result.metric_name == "pearson"
    assert set(result.metrics["search"]) == set(result.metrics["dev"]) == {"pearson", "spearman"}
    assert result.losses[-1] < 0.85 * result.losses[0]


def test_headerless_single_sentence_task_trains(tmp_path: Path, tiny_dir: Path, glue_dir: Path) -> None:
    """A CoLA-style file (no header, label in column 1, sentence in column 3) built from the SST-2 sample."""
    lines = (glue_dir / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    rows = [f"src\t{label}\t*\t{text}" for text, label in (line.split("\t") for line in lines)]
    _write(tmp_path / "in_domain_train.tsv", rows)
    _write(tmp_path / "in_domain_dev.tsv", rows[:12])
    task = {
        "name": "cola-like",
        "data_dir": str(tmp_path),
        "train_file": "in_domain_train.tsv",
        "eval_file": "in_domain_dev.tsv",
        "header": False,
        "text_columns": [3],
        "label_column": 1,
        "metric": "matthews",
        "extra_metrics": ["accuracy"],
    }
    result = run_trial(task, tiny_dir, FAMILIES["bitfit"], {**FAST, "evaluate_dev": True})
    assert result.metric_name == "matthews" and set(result.metrics["dev"]) == {"matthews", "accuracy"}
    assert result.train_examples + result.search_examples == len(rows)
    assert result.losses[-1] < 0.85 * result.losses[0]


def test_non_finite_loss_is_a_training_error(tmp_path: Path, tiny_dir: Path) -> None:
    _write(tmp_path / "train.tsv", ["text\tscore"] + [f"row {i}\t{1e30 if i % 2 else 0}" for i in range(10)])
    task = {
        "name": "huge",
        "data_dir": str(tmp_path),
        "text_columns": ["text"],
        "label_column": "score",
        "kind": "regression",
        "metric": "pearson",
    }
    with pytest.raises(TrainingError, match="training loss is inf at step 1"):
        run_trial(task, tiny_dir, FAMILIES["bitfit"], {**FAST, "search_split": 0.2})


def test_cache_loads_the_base_model_once_and_keeps_it_pristine(tiny_dir: Path, glue_dir: Path, monkeypatch) -> None:
    import autopeft.train.trial as trial_module

    calls = []
    real = trial_module.load_model
    monkeypatch.setattr(trial_module, "load_model", lambda *a, **k: calls.append(a) or real(*a, **k))
    cache = TrialCache()
    run_trial("sst2", tiny_dir, FAMILIES["full"], FAST, data_dir=glue_dir, cache=cache)
    base = next(iter(cache._models.values()))
    before = copy.deepcopy(base.state_dict())
    run_trial("sst2", tiny_dir, FAMILIES["full"], FAST, data_dir=glue_dir, cache=cache)
    assert len(calls) == 1
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())


def test_family_learning_rates_and_no_decay_groups(tiny_dir: Path) -> None:
    from autopeft.encoder import load_model

    handle = inject(load_model(tiny_dir, 2), parse_config({"lora": {"rank": 2}, "bitfit": {}}))
    settings = TrainingSettings(
        learning_rate=1e-3, family_learning_rates={"lora": 5e-3}, head_learning_rate=2e-2, weight_decay=0.1
    )
    groups = param_groups(handle, settings)
    lora_ids = {id(p) for p in handle.peft_parameters()["lora"]}
    head_ids = {id(p) for p in handle.head_parameters()}
    for group in groups:
        ids = {id(p) for p in group["params"]}
        assert group["lr"] == (5e-3 if ids <= lora_ids else 2e-2 if ids <= head_ids else 1e-3)
        assert ids <= lora_ids or ids <= head_ids or not ids & (lora_ids | head_ids)
    bias_group = next(g for g in groups if any(p is handle.model.classifier.bias for p in g["params"]))
    assert bias_group["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in groups) == len(handle.trainable_parameters())


def test_device_errors_name_the_device() -> None:
    with pytest.raises(TrainingError, match="'tpu'"):
        resolve_device("tpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="'cuda' is not available"):
            resolve_device("cuda")


def test_missing_dev_file_fails_before_training(tmp_path: Path, tiny_dir: Path) -> None:
    from autopeft.errors import TaskError

    _write(tmp_path / "train.tsv", ["text\tlabel"] + [f"row {i}\t{i % 2}" for i in range(10)])
    task = {"name": "no-dev", "data_dir": str(tmp_path), "text_columns": ["text"], "label_column": "label"}
    steps: list[int] = []
    with pytest.raises(TaskError, match=r"missing file .*dev\.tsv"):
        run_trial(
            task, tiny_dir, FAMILIES["bitfit"], {**FAST, "evaluate_dev": True}, progress=lambda s, t: steps.append(s)
        )
    assert steps == []
