"""Decoder LLMs train as encoders do (issue 29): tiny random Llama, Mistral, Qwen2 and Qwen3 with a real tokenizer.

A mixed configuration (LoRA + serial adapter + prefix) trains on each; the classifier pools each
row's last real token whichever side the padding is on; a tokenizer without a pad token gets one;
gradient checkpointing computes the same training as without.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from autopeft.encoder import load_model, load_tokenizer
from autopeft.handle import inject
from autopeft.train import run_trial
from tests.conftest import DECODER_KINDS
from tests.train.conftest import tiny_encoder

MIXED = {
    "lora": {"rank": 2, "targets": ["query", "value", "down"]},
    "serial_adapter": {"size": 4},
    "prefix": {"length": 3},
}
TWO_STEPS = {"max_steps": 2, "batch_size": 4, "max_length": 32, "max_search_examples": 8, "learning_rate": 0.01}


@pytest.fixture(scope="module", params=DECODER_KINDS)
def decoder_dir(request, tmp_path_factory) -> Path:
    return tiny_encoder.build_tiny_encoder(tmp_path_factory.mktemp(f"tiny-{request.param}"), kind=request.param)


def test_a_mixed_configuration_trains_two_steps_on_each_decoder(decoder_dir, glue_dir):
    result = run_trial({"name": "sst2", "data_dir": str(glue_dir / "SST-2")}, decoder_dir, MIXED, TWO_STEPS)
    assert result.steps == 2 and len(result.losses) == 2 and all(map(torch.isfinite, torch.tensor(result.losses)))
    assert set(result.by_family) == {"lora", "serial_adapter", "prefix"} and result.peft_params > 0
    assert 0.0 <= result.metric <= 1.0


def test_gradient_checkpointing_trains_the_same_steps(decoder_dir, glue_dir):
    task = {"name": "sst2", "data_dir": str(glue_dir / "SST-2")}
    plain = run_trial(task, decoder_dir, MIXED, TWO_STEPS)
    checkpointed = run_trial(task, decoder_dir, MIXED, {**TWO_STEPS, "gradient_checkpointing": True})
    assert checkpointed.losses == pytest.approx(plain.losses, rel=1e-4, abs=1e-5)
    assert checkpointed.metric == pytest.approx(plain.metric)


def test_the_last_real_token_is_pooled_whichever_side_is_padded(decoder_dir):
    model = load_model(decoder_dir, 2).eval()
    tokenizer = load_tokenizer(decoder_dir)
    handle_model = copy.deepcopy(model)
    inject(handle_model, {"prefix": {"length": 2}, "lora": {"rank": 2}})
    rows = ["a fine film", "the worst movie of the year , by far"]
    for m in (model, handle_model):
        alone = torch.cat([m(**tokenizer([r], return_tensors="pt")).logits for r in rows])
        for side in ("right", "left"):
            tokenizer.padding_side = side
            batch = tokenizer(rows, return_tensors="pt", padding=True)
            assert (batch["input_ids"] == tokenizer.pad_token_id).any()
            position_ids = None
            if side == "left":  # left padding: the real tokens are numbered from 0, as generation numbers them
                position_ids = (batch["attention_mask"].cumsum(1) - 1).clamp(min=0)
                if m is handle_model:
                    position_ids = position_ids + 2  # after the prefix
            got = m(**batch, position_ids=position_ids).logits
            assert torch.allclose(got, alone, atol=1e-5), side


def test_a_tokenizer_without_a_pad_token_pads_with_its_end_token(tmp_path):
    """The model's classifier then skips that id to find each row's last real token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoConfig, AutoModel, PreTrainedTokenizerFast

    from autopeft.layouts import ARCHITECTURES

    words = ["<unk>", "<s>", "</s>", "good", "bad", "film"]
    raw = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(tmp_path)
    config = ARCHITECTURES["llama"].example_config(vocab_size=len(words), pad_token_id=None, eos_token_id=2)
    AutoModel.from_config(config).save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).pad_token_id is None

    tokenizer = load_tokenizer(tmp_path)
    assert tokenizer.pad_token == "</s>" and tokenizer.pad_token_id == 2
    model = load_model(tmp_path, 2)
    assert model.config.pad_token_id == 2
    batch = tokenizer(["good film", "bad"], return_tensors="pt", padding=True)
    assert model(**batch).logits.shape == (2, 2)


def test_gradient_checkpointing_recomputes_each_layer_in_the_backward_pass(decoder_dir):
    from autopeft.train.loop import enable_gradient_checkpointing

    model = load_model(decoder_dir, 2)
    inject(model, MIXED)
    calls = []
    model.base_model.layers[0].self_attn.register_forward_pre_hook(lambda *_: calls.append(1))
    ids = torch.tensor([[5, 6, 7, 8]])
    model.train()
    model(input_ids=ids, labels=torch.tensor([1])).loss.backward()
    assert len(calls) == 1
    enable_gradient_checkpointing(model)
    calls.clear()
    model(input_ids=ids, labels=torch.tensor([1])).loss.backward()
    assert len(calls) == 2  # the forward, and its recomputation for the gradients
