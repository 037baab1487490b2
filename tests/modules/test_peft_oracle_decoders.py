"""HF peft as the oracle on the decoder LLMs (issue 29): tiny random Llama, Mistral, Qwen2 and Qwen3.

LoRA, DoRA and (IA)³ on the seven projections (``q/k/v/o_proj``, ``gate/up/down_proj``) and
prefix tuning: peft with the same targets must count the same parameters and, with the same
weights, give the same logits, padded rows included (the classifier pools each row's last
real token). The prefix keys and values are as wide as the key/value heads (grouped-query
attention: 2 of them for 4 query heads here), and the real tokens are numbered after the
prefix, as peft's cache numbers them, so the logits agree without any position correction.
"""

from __future__ import annotations

import copy

import pytest
import torch

from autopeft.handle import inject
from tests.conftest import batch, lane, tiny_model
from tests.modules.test_peft_oracle_architectures import _compare, _ours, _regex

peft = pytest.importorskip("peft")

DECODERS = ["llama", "mistral", "qwen2", "qwen3"]
SEVEN = ["query", "key", "value", "attention_output", "gate", "up", "down"]
LORA_CASES = [
    ({"rank": 4, "alpha": 8, "targets": ["query", "value"]}, None),
    ({"rank": 2, "targets": ["key", "attention_output", "gate", "down"]}, [0, 2]),
    ({"rank": 3, "alpha": 5, "targets": SEVEN}, [1]),
]
#: (our settings, peft's targets and feed-forward modules): omitted targets are peft's Llama defaults.
IA3_CASES = [
    ({}, ["key", "value", "down"], None),
    ({"targets": ["query", "up", "down"]}, ["query", "up", "down"], [0, 2]),
]


@pytest.mark.parametrize("kind", lane(DECODERS))
@pytest.mark.parametrize("settings, layers", LORA_CASES)
@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_lora_and_dora_match_peft_on_decoders(kind, settings, layers, dora):
    base = tiny_model(kind)
    ours = copy.deepcopy(base)
    handle = inject(ours, {"lora": {**settings, "dora": dora, **({"layers": layers} if layers else {})}})
    oracle_cfg = peft.LoraConfig(
        task_type=peft.TaskType.SEQ_CLS,
        r=settings["rank"],
        lora_alpha=settings.get("alpha", 2 * settings["rank"]),
        target_modules=_regex(kind, settings["targets"], layers),
        init_lora_weights=False,  # random B: the update is not zero
        use_dora=dora,
    )
    oracle = peft.get_peft_model(copy.deepcopy(base), oracle_cfg).eval()
    params = dict(ours.named_parameters())
    oracle_count = 0
    with torch.no_grad():
        for name, p in oracle.named_parameters():
            if "lora_" not in name:
                continue
            oracle_count += p.numel()
            if "lora_magnitude_vector" in name:
                params[_ours(name).replace(".lora_magnitude_vector.weight", ".magnitude")].copy_(p)
            else:
                params[_ours(name)].copy_(p)
    assert handle.accounting().by_family["lora"] == oracle_count
    _compare(ours, oracle, base)


@pytest.mark.parametrize("kind", lane(DECODERS))
@pytest.mark.parametrize("settings, targets, layers", IA3_CASES)
def test_ia3_matches_peft_on_decoders(kind, settings, targets, layers):
    base = tiny_model(kind)
    ours = copy.deepcopy(base)
    handle = inject(ours, {"ia3": {**settings, **({"layers": layers} if layers else {})}})
    oracle_cfg = peft.IA3Config(
        task_type=peft.TaskType.SEQ_CLS,
        target_modules=_regex(kind, targets, layers),
        feedforward_modules=_regex(kind, ["down"], layers),
    )
    oracle = peft.get_peft_model(copy.deepcopy(base), oracle_cfg).eval()
    params = dict(ours.named_parameters())
    g = torch.Generator().manual_seed(3)
    oracle_count = 0
    with torch.no_grad():
        for name, p in oracle.named_parameters():
            if "ia3_l" in name:
                oracle_count += p.numel()
                p.copy_(1 + 0.5 * torch.randn(p.shape, generator=g))
                params[_ours(name)].copy_(p.flatten())
    assert handle.accounting().by_family["ia3"] == oracle_count
    _compare(ours, oracle, base)


def test_ia3_defaults_are_peft_defaults_for_llama():
    """Omitted targets: keys, values and the MLP's down projection (its input scaled), as peft's Llama defaults."""
    from peft.utils.constants import (
        TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FEEDFORWARD,
    )
    from peft.utils.constants import (
        TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as TARGETS,
    )

    from autopeft.layouts import ARCHITECTURES

    ours = copy.deepcopy(tiny_model("llama"))
    handle = inject(ours, {"ia3": {}})
    linears = ARCHITECTURES["llama"].linears
    wrapped = {name.rsplit(".", 1)[-1] for name, m in ours.named_modules() if hasattr(m, "ia3_l")}
    assert wrapped == set(TARGETS["llama"]) == {linears[t].attr for t in ("key", "value", "down")}
    inputs = {name.rsplit(".", 1)[-1] for name, m in ours.named_modules() if getattr(m, "scale_input", False)}
    assert inputs == set(FEEDFORWARD["llama"]) == {"down_proj"}
    assert handle.config.summary(3) == "ia3 @0-2"


@pytest.mark.parametrize("kind", lane(DECODERS))
@pytest.mark.parametrize("length, projection", [(5, None), (3, 16)])
def test_prefix_matches_peft_on_decoders(kind, length, projection):
    base = tiny_model(kind)
    settings = {"length": length} | ({"reparameterize": True, "hidden": projection} if projection else {})
    ours = copy.deepcopy(base)
    handle = inject(ours, {"prefix": settings})
    oracle_cfg = peft.PrefixTuningConfig(
        task_type=peft.TaskType.SEQ_CLS,
        num_virtual_tokens=length,
        prefix_projection=projection is not None,
        encoder_hidden_size=projection or 32,
    )
    oracle = peft.get_peft_model(copy.deepcopy(base), oracle_cfg).eval()
    trainable = sum(p.numel() for p in oracle.parameters() if p.requires_grad)
    count = handle.accounting()
    assert count.peft_params + count.head_params == trainable
    assert count.by_family["prefix"] == (2 * length * 3 * 16 if not projection else count.by_family["prefix"])

    encoder = oracle.prompt_encoder["default"]
    bank = ours.base_model.autopeft_prefix
    with torch.no_grad():
        if projection:
            bank.embedding.load_state_dict(encoder.embedding.state_dict())
            bank.transform.load_state_dict(encoder.transform.state_dict())
        else:  # peft: one row per virtual token, layer-major, key then value, 16 wide (2 heads of 8)
            weight = encoder.embedding.weight.view(length, 3, 2, 16)
            for i in range(3):
                bank.kv[str(i)].copy_(weight[:, i].transpose(0, 1))
    ids, mask = batch(pad_id=base.config.pad_token_id)
    expected = oracle(input_ids=ids, attention_mask=mask).logits
    got = ours(input_ids=ids, attention_mask=mask).logits
    assert (got - expected).abs().max() < 1e-5
    assert (got - base(input_ids=ids, attention_mask=mask).logits).abs().max() > 1e-4


@pytest.mark.parametrize("kind", lane(DECODERS))
def test_a_prefix_on_some_layers_sees_every_token_attend_it(kind):
    """Per-layer lengths: each chosen layer's attention gets its own prefix in front of every token's keys, under
    a causal mask (SDPA and eager alike, with and without padding)."""
    for attention in ("sdpa", "eager"):
        base = tiny_model(kind)
        base.config._attn_implementation = attention
        ours = copy.deepcopy(base)
        inject(ours, {"prefix": {"length": {"0": 2, "2": 4}}})
        ids, mask = batch(pad_id=base.config.pad_token_id)
        full = ours(input_ids=ids, attention_mask=torch.ones_like(mask)).logits
        # causal: a row's logits (pooled at its last token) do not depend on what follows its last real token
        cut = ours(input_ids=ids[:, :6], attention_mask=torch.ones_like(mask[:, :6])).logits
        longer = torch.cat([ids[:, :6], torch.zeros_like(ids[:, :3])], dim=1)
        padded = ours(input_ids=longer, attention_mask=torch.cat([mask[:, :6], torch.zeros_like(mask[:, :3])], 1))
        assert (padded.logits - cut).abs().max() < 1e-5
        assert full.shape == cut.shape == (3, 2)
