"""The Python API: ``autopeft.apply / load / count``, and training through ``transformers.Trainer``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import autopeft
from autopeft.train import train_trial

SETTINGS = {"max_steps": 8, "batch_size": 8, "learning_rate": 1e-2, "max_length": 32, "seed": 3}


def _base(tiny_dir: Path):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(tiny_dir, num_labels=2)


def test_import_autopeft_is_light() -> None:
    """``import autopeft`` and looking at the API load neither torch nor transformers."""
    code = (
        "import sys, autopeft; autopeft.__all__; "
        "heavy = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]; "
        "assert not heavy, heavy; autopeft.apply; assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("config", [{"lora": {"rank": 2}, "bitfit": {}}, {"ia3": {}, "prefix": {"length": 2}}])
def test_trainer_through_apply_gets_the_metric_of_autopeft_train(config, tiny_dir, glue_dir, tmp_path) -> None:
    """Same seed, data, batches, optimiser and schedule: Trainer reaches autopeft train's metric.

    The batches come from autopeft's loader (Trainer's own sampler draws another order); AdamW
    (``adamw_torch``), weight decay off for biases and norms, linear warm-up/decay, clipping at 1.0
    and the loss are Trainer's. The logits agree to 1e-5, not bit for bit: clipping sums the
    gradient norms over the parameters in another order, and Adam turns that rounding noise into
    whole steps for tensors whose gradient is zero in exact arithmetic (BitFit's key biases: softmax
    ignores them), so those tensors differ while the function does not.
    """
    from transformers import Trainer, TrainingArguments

    from autopeft.train.batching import train_loader
    from autopeft.train.evaluate import pad_id_of, predict_logits, score

    ours = train_trial("rte", tiny_dir, config, {**SETTINGS, "eval_every": SETTINGS["max_steps"]}, data_dir=glue_dir)
    data, split = ours.task, ours.split
    model = _base(tiny_dir)
    handle = autopeft.apply(model, config, seed=SETTINGS["seed"])
    assert handle.accounting() == ours.handle.accounting()

    class SameBatches(Trainer):
        def get_train_dataloader(self):
            return train_loader(data.train, split.train, 8, pad_id_of(data.tokenizer), SETTINGS["seed"])

    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        max_steps=SETTINGS["max_steps"],
        per_device_train_batch_size=SETTINGS["batch_size"],
        learning_rate=SETTINGS["learning_rate"],
        weight_decay=0.01,
        warmup_steps=round(0.06 * SETTINGS["max_steps"]),
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        optim="adamw_torch",
        seed=SETTINGS["seed"],
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        eval_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    SameBatches(model=model, args=args).train()
    theirs = score(model, data, data.train, split.search, batch_size=16, device=torch.device("cpu"), precision="fp32")
    assert theirs[data.spec.metric] == ours.result.metric
    logits = [
        predict_logits(m, data.train, split.search, batch_size=16, pad_id=0, device=torch.device("cpu"))
        for m in (model, ours.handle.model)
    ]
    np.testing.assert_allclose(logits[0], logits[1], atol=1e-5, rtol=0)


def test_apply_save_load_and_export_round_trip(tiny_dir, tmp_path) -> None:
    from tests.conftest import batch

    model = _base(tiny_dir)
    handle = autopeft.apply(model, {"lora": {"rank": 2, "targets": ["query", "value", "output"]}}, seed=0)
    assert all(not p.requires_grad for n, p in model.bert.named_parameters() if "lora_" not in n)
    assert {id(p) for p in handle.trainable_parameters()} == {id(p) for p in model.parameters() if p.requires_grad}
    with torch.no_grad():
        for p in handle.peft_parameters()["lora"]:
            p.normal_(0, 0.3)  # as if trained
    ids, mask = batch(vocab=100, pad_id=0)
    expected = model.eval()(input_ids=ids, attention_mask=mask).logits
    out = handle.save(tmp_path / "mine", labels=["no", "yes"])
    loaded = autopeft.load(out)
    torch.testing.assert_close(loaded.model(input_ids=ids, attention_mask=mask).logits, expected, atol=1e-6, rtol=0)
    onto = autopeft.load(out, _base(tiny_dir))  # a base model already loaded
    torch.testing.assert_close(onto.model(input_ids=ids, attention_mask=mask).logits, expected, atol=1e-6, rtol=0)
    from transformers import AutoModelForSequenceClassification

    from autopeft.cli import main

    assert main(["export", str(out), "--to", "merged", str(tmp_path / "merged")]) == 0
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged")
    assert plain.config.id2label == {0: "no", 1: "yes"}
    torch.testing.assert_close(plain(input_ids=ids, attention_mask=mask).logits, expected, atol=1e-5, rtol=0)


def test_count_agrees_with_the_injected_model(tiny_dir) -> None:
    config = {"lora": {"rank": 4, "dora": True}, "ia3": {"layers": [1]}, "serial_adapter": {"size": 8}}
    before = autopeft.count(config, tiny_dir)
    model = _base(tiny_dir)
    assert autopeft.count(config, model) == before
    handle = autopeft.apply(model, config)
    assert handle.accounting().peft_params == before.peft_params
    assert before.param_fraction == pytest.approx(before.peft_params / before.backbone_params)
    assert np.isclose(sum(before.by_family.values()), before.peft_params)


def test_apply_refuses_a_model_twice_and_fish_without_a_mask(tiny_dir) -> None:
    from autopeft.errors import ConfigError

    model = _base(tiny_dir)
    autopeft.apply(model, {"bitfit": {}})
    with pytest.raises(ConfigError, match="already has a configuration"):
        autopeft.apply(model, {"bitfit": {}})
    with pytest.raises(ConfigError, match="fish needs a mask"):
        autopeft.apply(_base(tiny_dir), {"fish": {"fraction": 0.01}})
