"""``autopeft export``: a saved trial as an HF peft adapter or a plain transformers model, same logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autopeft.cli import main
from autopeft.train import load_trained, save_trained, train_trial

SETTINGS = {"max_steps": 6, "batch_size": 16, "learning_rate": 3e-2, "max_length": 32, "eval_every": 6}
TEXTS = [
    ("the cat sat on the mat", "a cat was sitting"),
    ("stocks fell sharply on monday", "markets rose"),
    ("he said it was good", "it was good, he said, and more words here"),
]


def _saved(tiny_dir: Path, glue_dir: Path, tmp_path: Path, config: dict) -> Path:
    trained = train_trial("rte", tiny_dir, config, SETTINGS, data_dir=glue_dir)
    return save_trained(trained, tmp_path / "saved")


def _inputs(tokenizer) -> dict[str, torch.Tensor]:
    first, second = zip(*TEXTS, strict=True)
    return dict(tokenizer(list(first), list(second), padding=True, return_tensors="pt"))


def _logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**inputs).logits


def _base(tiny_dir: Path):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(tiny_dir, num_labels=2, attn_implementation="sdpa")


PEFT_CASES = {
    "lora": {"lora": {"rank": 2, "alpha": 8}},
    "lora-per-layer-ranks": {"lora": {"rank": {"0": 2, "1": 4}, "targets": ["key", "attention_output", "output"]}},
    "dora": {"lora": {"rank": 2, "dora": True, "targets": ["query", "value", "intermediate"], "layers": [1]}},
    "ia3": {"ia3": {}},
    "ia3-layer": {"ia3": {"targets": ["query", "output"], "layers": [0]}},
    "lora+bitfit": {"lora": {"rank": 2}, "bitfit": {}},
}


@pytest.mark.parametrize("name", list(PEFT_CASES))
def test_peft_adapter_gives_the_same_logits(name, tiny_dir, glue_dir, tmp_path) -> None:
    peft = pytest.importorskip("peft")
    saved = _saved(tiny_dir, glue_dir, tmp_path, PEFT_CASES[name])
    out = tmp_path / "adapter"
    assert main(["export", str(saved), "--to", "peft", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["modules_to_save"] == ["classifier"] and config["task_type"] == "SEQ_CLS"

    ours = load_trained(saved)
    inputs = _inputs(ours.tokenizer)
    expected = _logits(ours.model, inputs)
    base = _base(tiny_dir)
    plain = _logits(base, inputs)
    loaded = peft.PeftModel.from_pretrained(base, str(out))
    got = _logits(loaded, inputs)
    assert (got - expected).abs().max() < 1e-5
    assert (got - plain).abs().max() > 1e-4  # the adapter and the head were loaded, not left at random


MERGED_CASES = {
    "lora+ia3": {"lora": {"rank": 2, "targets": ["query", "value", "output"]}, "ia3": {}},
    "dora": {"lora": {"rank": 2, "dora": True, "targets": ["query", "intermediate"]}},
    "fish+bitfit": {"fish": {"fraction": 0.02, "samples": 8}, "bitfit": {"layers": [1]}},
    "full": {"full": {}},
}


@pytest.mark.parametrize("name", list(MERGED_CASES))
def test_merged_model_loads_without_autopeft_and_gives_the_same_logits(name, tiny_dir, glue_dir, tmp_path) -> None:
    from transformers import AutoModelForSequenceClassification

    saved = _saved(tiny_dir, glue_dir, tmp_path, MERGED_CASES[name])
    out = tmp_path / "merged"
    assert main(["export", str(saved), "--to", "merged", str(out)]) == 0
    ours = load_trained(saved)
    inputs = _inputs(ours.tokenizer)
    expected = _logits(ours.model, inputs)
    plain = AutoModelForSequenceClassification.from_pretrained(str(out))
    assert type(plain.bert.encoder.layer[0].attention.self.query) is torch.nn.Linear
    assert plain.config.id2label == {0: "entailment", 1: "not_entailment"}
    got = _logits(plain, inputs)
    assert (got - expected).abs().max() < 1e-5
    assert (got - _logits(_base(tiny_dir), inputs)).abs().max() > 1e-4
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(str(out))("the cat")["input_ids"] == ours.tokenizer("the cat")["input_ids"]


REFUSED = [
    ({"serial_adapter": {"size": 4}}, "merged", "serial_adapter cannot fold into the weights"),
    ({"prefix": {"length": 2}}, "merged", "prefix cannot fold into the weights"),
    ({"parallel_adapter": {"size": 4}}, "peft", "HF peft has no parallel_adapter"),
    ({"lora": {"rank": 2}, "ia3": {}}, "peft", "one method"),
    ({"prefix": {"length": 2}}, "peft", "shifts the positions"),
    ({"lora": {"rank": 2}, "bitfit": {"layers": [0]}}, "peft", "all biases or none"),
]


@pytest.mark.parametrize("config, to, reason", REFUSED)
def test_what_cannot_be_exported_is_refused_in_one_line(config, to, reason, tiny_dir, glue_dir, tmp_path, capsys):
    saved = _saved(tiny_dir, glue_dir, tmp_path, config)
    capsys.readouterr()  # what training printed (the first test to train a configuration prints progress)
    out = tmp_path / "out"
    assert main(["export", str(saved), "--to", to, str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autopeft export: error: cannot export") and reason in err and "\n" not in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_export_refuses_an_existing_output_and_a_non_trial(tiny_dir, glue_dir, tmp_path, capsys) -> None:
    saved = _saved(tiny_dir, glue_dir, tmp_path, {"lora": {"rank": 2}})
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    assert main(["export", str(saved), "--to", "peft", str(tmp_path / "taken")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "taken"), "--to", "merged", str(tmp_path / "new")]) == 2
    assert "not a saved autopeft trial" in capsys.readouterr().err
