"""Prefix tuning reaches the attention on this transformers release, or fails at injection."""

from __future__ import annotations

import copy

import pytest
import torch

from autopeft.errors import ConfigError
from autopeft.handle import inject
from autopeft.modules import prefix
from tests.conftest import batch, tiny_model

#: BERT and RoBERTa take the prefix as a cache argument; DistilBERT and ModernBERT through transformers'
#: AttentionInterface (their self-attention has no cache argument).
PREFIX_KINDS = ["bert", "roberta", "distilbert", "modernbert"]


@pytest.mark.parametrize("kind", PREFIX_KINDS)
def test_the_attention_sees_the_prefix_keys(kind):
    model = tiny_model(kind)
    model.config._attn_implementation = "eager"  # attention weights are returned by eager attention
    inject(model, {"prefix": {"length": 4, "layers": [0, 2]}})
    ids, mask = batch(pad_id=model.config.pad_token_id or 0)
    attentions = model(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
    assert [a.shape[-1] for a in attentions] == [ids.shape[1] + 4, ids.shape[1], ids.shape[1] + 4]
    # every query gives the prefix positions some weight, padded keys none
    assert (attentions[0][..., :4] > 0).all()
    assert (attentions[0][-1, :, :, -3:] == 0).all()


@pytest.mark.parametrize("kind", PREFIX_KINDS)
def test_a_zero_and_a_random_prefix_give_different_outputs(kind):
    base = tiny_model(kind)
    zero, rand = copy.deepcopy(base), copy.deepcopy(base)
    inject(zero, {"prefix": {"length": 3}})
    inject(rand, {"prefix": {"length": 3}})
    with torch.no_grad():
        for kv in zero.base_model.autopeft_prefix.kv.values():
            kv.zero_()
        for kv in rand.base_model.autopeft_prefix.kv.values():
            kv.normal_(0.0, 1.0)
    ids, mask = batch(pad_id=base.config.pad_token_id or 0)
    plain = base.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    got_zero = zero.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    got_rand = rand.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (got_zero - got_rand).abs().max() > 1e-2
    # even a zero prefix takes attention weight away from the real tokens
    assert (got_zero - plain).abs().max() > 1e-3


def test_the_cache_argument_is_read_from_the_attention_signature():
    model = tiny_model("bert")
    attention = model.base_model.encoder.layer[0].attention.self
    assert prefix.cache_argument(attention) in ("cache", "past_key_values", "past_key_value")


def test_a_release_that_ignores_the_prefix_fails_at_injection(monkeypatch):
    """If transformers renames the argument again, injection says so instead of training without a prefix."""
    monkeypatch.setattr(prefix, "cache_argument", lambda attention: "renamed_cache")
    model = tiny_model("bert")
    with pytest.raises(ConfigError, match="prefix tuning is not supported with transformers .*ignored the prefix"):
        inject(model, {"prefix": {"length": 2}})
    # nothing is left behind: the model runs as before
    assert not hasattr(model.base_model, "autopeft_prefix")
    ids, mask = batch()
    assert torch.allclose(model(input_ids=ids, attention_mask=mask).logits, tiny_model("bert")(input_ids=ids, attention_mask=mask).logits)


def test_an_attention_without_a_cache_argument_fails_at_injection():
    class NoCache(torch.nn.Module):
        def forward(self, hidden_states, attention_mask=None):
            return hidden_states

    with pytest.raises(ConfigError, match="takes none of"):
        prefix.cache_argument(NoCache())


@pytest.mark.parametrize("kind", ["distilbert", "modernbert"])
def test_through_the_attention_interface_only_the_chosen_layers_change_and_sdpa_matches_eager(kind):
    from autopeft.encoder import EncoderLayout

    base = tiny_model(kind)
    sdpa = copy.deepcopy(base)
    inject(sdpa, {"prefix": {"length": 3, "layers": [1]}})
    layout = EncoderLayout(sdpa)
    assert layout.attention(1).config is not sdpa.config  # only layer 1 is rerouted
    assert layout.attention(0).config is layout.attention(2).config is sdpa.config
    assert sdpa.config._attn_implementation == "sdpa"
    eager = copy.deepcopy(base)
    eager.config._attn_implementation = "eager"
    inject(eager, {"prefix": {"length": 3, "layers": [1]}})
    eager.base_model.autopeft_prefix.load_state_dict(sdpa.base_model.autopeft_prefix.state_dict())
    ids, mask = batch(pad_id=base.config.pad_token_id or 0)
    got = sdpa(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(got, eager(input_ids=ids, attention_mask=mask).logits, atol=1e-5)
    assert (got - base(input_ids=ids, attention_mask=mask).logits).abs().max() > 1e-5


def test_an_attention_that_neither_takes_a_cache_nor_dispatches_is_refused():
    model = tiny_model("deberta-v2")
    with pytest.raises(ConfigError, match="^prefix is not supported on deberta-v2: its self-attention "
                       r"\(DisentangledSelfAttention\) neither takes a key/value cache"):
        inject(model, {"prefix": {"length": 2}})
    assert not hasattr(model.base_model, "autopeft_prefix")
