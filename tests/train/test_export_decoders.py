"""``autopeft export --to peft`` on a decoder (issue 29): a tiny random Llama with a real tokenizer.

LoRA, DoRA, (IA)³ with peft's Llama defaults and a prefix in every layer load with
``PeftModel.from_pretrained`` and give the logits autopeft gave, padded rows included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autopeft.cli import main
from autopeft.train import load_trained, save_trained, train_trial
from tests.train.conftest import tiny_encoder

SETTINGS = {"max_steps": 4, "batch_size": 16, "learning_rate": 3e-2, "max_length": 32, "eval_every": 4}
CASES = {
    "lora": {"lora": {"rank": 2, "targets": ["query", "value", "gate", "down"]}},
    "dora-per-layer-ranks": {
        "lora": {"rank": {"0": 2, "1": 4}, "targets": ["key", "attention_output", "up"], "dora": True}
    },
    "ia3": {"ia3": {}},
    "prefix": {"prefix": {"length": 3}},
    "prefix-reparameterized": {"prefix": {"length": 2, "reparameterize": True, "hidden": 8}},
}


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return tiny_encoder.build_tiny_encoder(tmp_path_factory.mktemp("tiny-llama-export"), kind="llama")


@pytest.mark.parametrize("name", list(CASES))
def test_a_decoder_adapter_loads_in_peft_with_the_same_logits(name, llama_dir, glue_dir, tmp_path):
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForSequenceClassification

    trained = train_trial({"name": "sst2", "data_dir": str(glue_dir / "SST-2")}, llama_dir, CASES[name], SETTINGS)
    saved = save_trained(trained, tmp_path / "saved")
    out = tmp_path / "adapter"
    assert main(["export", str(saved), "--to", "peft", str(out)]) == 0
    assert json.loads((out / "adapter_config.json").read_text())["modules_to_save"] == ["score"]

    ours = load_trained(saved)
    inputs = ours.tokenizer(["a fine film", "the worst movie of the year , by far"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = ours.model.eval()(**inputs).logits
        base = AutoModelForSequenceClassification.from_pretrained(llama_dir, num_labels=2).eval()
        plain = base(**inputs).logits
        got = peft.PeftModel.from_pretrained(base, str(out)).eval()(**inputs).logits
    assert (got - expected).abs().max() < 1e-5
    assert (got - plain).abs().max() > 1e-4


def test_a_prefix_of_some_layers_is_refused_for_peft_in_one_line(llama_dir, glue_dir, tmp_path, capsys):
    config = {"prefix": {"length": 2, "layers": [0]}}
    trained = train_trial({"name": "sst2", "data_dir": str(glue_dir / "SST-2")}, llama_dir, config, SETTINGS)
    saved = save_trained(trained, tmp_path / "saved")
    assert main(["export", str(saved), "--to", "peft", str(tmp_path / "adapter")]) == 2
    err = capsys.readouterr().err
    assert "peft's prefix tuning puts one length in every layer" in err and err.count("\n") == 1
