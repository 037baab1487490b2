"""Saving trained PEFT weights and loading them back onto the base model gives the same predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from autopeft.errors import ModelError, TrainingError
from autopeft.train import load_trained, save_trained, train_trial
from autopeft.train.evaluate import predict_logits

SETTINGS = {
    "max_steps": 12,
    "batch_size": 16,
    "learning_rate": 1e-2,
    "max_length": 32,
    "evaluate_dev": True,
    "eval_every": 6,
}

CONFIGS = {
    "adamix+prefix_mlp+lora": {
        "serial_adapter": {"size": 8, "experts": 3},
        "prefix": {"length": 3, "reparameterize": True, "hidden": 16},
        "lora": {"rank": 2},
    },
    "fish+bitfit": {"fish": {"fraction": 0.02, "samples": 8}, "bitfit": {"layers": [1]}},
    "dora+ia3": {"lora": {"rank": 2, "dora": True}, "ia3": {"targets": ["value", "output"]}},
    "full": {"full": {}},
}


def _dev_logits(model, trained_task) -> np.ndarray:
    dev = trained_task.dev()
    return predict_logits(model, dev, range(dev.num_rows), batch_size=8, pad_id=0, device=torch.device("cpu"))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_saved_trial_reloads_to_identical_predictions(name: str, tiny_dir: Path, glue_dir: Path, tmp_path: Path):
    trained = train_trial("mrpc", tiny_dir, CONFIGS[name], SETTINGS, data_dir=glue_dir)
    before = _dev_logits(trained.handle.model, trained.task)  # AdaMix: the mean of the experts, unmerged
    out = save_trained(trained, tmp_path / "saved")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["trained.json", "peft.safetensors"] + (["fish_mask.safetensors"] if "fish" in name else [])
    )
    loaded = load_trained(out)
    assert loaded.handle.merged
    after = _dev_logits(loaded.model, trained.task)
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5)
    assert np.array_equal(after.argmax(-1), before.argmax(-1))
    info = json.loads((out / "trained.json").read_text())
    assert info["model"] == str(tiny_dir.resolve()) and info["config"] == trained.config.to_json()
    assert info["result"]["metric"] == trained.result.metric


def test_adamix_is_saved_merged(tiny_dir: Path, glue_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    trained = train_trial("mrpc", tiny_dir, {"serial_adapter": {"size": 8, "experts": 4}}, SETTINGS, data_dir=glue_dir)
    out = save_trained(trained, tmp_path / "adamix")
    weights = load_file(str(out / "peft.safetensors"))
    downs = [t for n, t in weights.items() if n.endswith("serial.down_weight")]
    assert downs and all(t.shape[0] == 1 for t in downs)  # experts averaged into one adapter


def test_predict_file_and_texts(tiny_dir: Path, glue_dir: Path, tmp_path: Path) -> None:
    trained = train_trial("sst2", tiny_dir, {"lora": {"rank": 2}}, SETTINGS, data_dir=glue_dir)
    out = save_trained(trained, tmp_path / "sst2")
    loaded = load_trained(out)
    predictions, metrics = loaded.predict_file(glue_dir / "SST-2" / "dev.tsv")
    assert metrics == pytest.approx(trained.result.metrics["dev"])
    assert set(predictions) <= {"0", "1"} and len(predictions) == trained.task.dev().num_rows
    first_text = (glue_dir / "SST-2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1].split("\t")[0]
    assert loaded.predict([first_text]) == predictions[:1]
    unlabeled = tmp_path / "test.tsv"
    unlabeled.write_text("index\tsentence\n0\ta good film\n1\ta dull story\n", encoding="utf-8")
    preds, none = loaded.predict_file(unlabeled)
    assert len(preds) == 2 and none is None


def test_existing_path_refused_and_failed_save_leaves_nothing(tiny_dir, glue_dir, tmp_path, monkeypatch) -> None:
    trained = train_trial("sst2", tiny_dir, {"bitfit": {}}, {**SETTINGS, "evaluate_dev": False}, data_dir=glue_dir)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(TrainingError, match="already exists"):
        save_trained(trained, tmp_path / "taken")

    import safetensors.torch

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_trained(trained, tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_loading_onto_another_model_or_a_non_trial_is_refused(tiny_dir, glue_dir, tmp_path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_helper", Path(__file__).with_name("tiny_encoder.py"))
    helper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helper)
    other = helper.build_tiny_encoder(tmp_path / "wider", hidden=48)
    trained = train_trial(
        "sst2", tiny_dir, {"lora": {"rank": 2}}, {**SETTINGS, "evaluate_dev": False}, data_dir=glue_dir
    )
    out = save_trained(trained, tmp_path / "saved")
    with pytest.raises(ModelError, match=r"hidden=32.*has hidden=48"):
        load_trained(out, model=other)
    with pytest.raises(ModelError, match="not a saved autopeft trial"):
        load_trained(tmp_path)
