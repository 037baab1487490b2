"""HF peft is the oracle for the families it has: same counts, same logits with the same weights."""

from __future__ import annotations

import copy
import re

import pytest
import torch

from autopeft.encoder import LINEAR_PATHS
from autopeft.handle import inject
from tests.conftest import batch

peft = pytest.importorskip("peft")


def _peft_trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _position_ids(kind: str, mask: torch.Tensor, shift: int, padding_idx: int = 1) -> torch.Tensor:
    """Positions HF peft's prefix tuning gives real tokens (shifted by the prefix length)."""
    if kind == "roberta":
        return (torch.cumsum(mask, dim=1) + shift) * mask + padding_idx
    return (torch.arange(mask.shape[1]) + shift).expand(mask.shape[0], -1)


LORA_CASES = [
    ({"rank": 4, "alpha": 8, "targets": ["query", "value"]}, None),
    ({"rank": 2, "targets": ["key", "attention_output", "intermediate", "output"]}, [0, 2]),
    ({"rank": 3, "alpha": 5, "targets": ["query", "key", "value", "attention_output", "intermediate", "output"]}, [1]),
]


@pytest.mark.parametrize("settings, layers", LORA_CASES)
def test_lora_matches_peft(base_model, encoder_kind, settings, layers):
    ours_cfg = {"lora": {**settings, **({"layers": layers} if layers else {})}}
    ours = copy.deepcopy(base_model)
    handle = inject(ours, ours_cfg)

    chosen = "|".join(str(i) for i in (layers or range(3)))
    paths = "|".join(re.escape(LINEAR_PATHS[t]) for t in settings["targets"])
    oracle_cfg = peft.LoraConfig(
        task_type=peft.TaskType.SEQ_CLS,
        r=settings["rank"],
        lora_alpha=settings.get("alpha", 2 * settings["rank"]),
        target_modules=rf".*\.layer\.({chosen})\.({paths})$",
        init_lora_weights=False,  # random A and B, so the update is not zero
    )
    oracle = peft.get_peft_model(copy.deepcopy(base_model), oracle_cfg).eval()

    count = handle.accounting()
    assert count.peft_params + count.head_params == _peft_trainable(oracle)
    assert count.by_family["lora"] == sum(p.numel() for n, p in oracle.named_parameters() if "lora_" in n)

    ours_params = dict(ours.named_parameters())
    with torch.no_grad():
        for name, p in oracle.named_parameters():
            if "lora_" in name:
                ours_params[name.removeprefix("base_model.model.").replace(".default", "")].copy_(p)
    ids, mask = batch(pad_id=base_model.config.pad_token_id)
    expected = oracle(input_ids=ids, attention_mask=mask).logits
    got = ours(input_ids=ids, attention_mask=mask).logits
    assert (got - expected).abs().max() < 1e-5
    assert (got - base_model(input_ids=ids, attention_mask=mask).logits).abs().max() > 1e-4


DORA_CASES = [
    ({"rank": 4, "alpha": 8, "targets": ["query", "value"]}, None),
    ({"rank": 2, "targets": ["key", "attention_output", "intermediate", "output"]}, [0, 2]),
]


@pytest.mark.parametrize("settings, layers", DORA_CASES)
def test_dora_matches_peft(base_model, encoder_kind, settings, layers):
    ours_cfg = {"lora": {**settings, "dora": True, **({"layers": layers} if layers else {})}}
    oracle_cfg = peft.LoraConfig(
        task_type=peft.TaskType.SEQ_CLS,
        r=settings["rank"],
        lora_alpha=settings.get("alpha", 2 * settings["rank"]),
        target_modules=_target_regex(settings["targets"], layers),
        init_lora_weights=False,  # random A and B, so the update (and the magnitude) is not trivial
        use_dora=True,
    )
    oracle = peft.get_peft_model(copy.deepcopy(base_model), oracle_cfg).eval()
    ours = copy.deepcopy(base_model)
    handle = inject(ours, ours_cfg)

    count = handle.accounting()
    assert count.peft_params + count.head_params == _peft_trainable(oracle)
    assert count.by_family["lora"] == sum(
        p.numel() for n, p in oracle.named_parameters() if "lora_" in n and p.requires_grad
    )
    ours_params = dict(ours.named_parameters())
    with torch.no_grad():
        for name, p in oracle.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                ours_params[name.removeprefix("base_model.model.").replace(".default", "")].copy_(p)
            elif "lora_magnitude_vector" in name:
                where = name.removeprefix("base_model.model.").replace(".lora_magnitude_vector.default.weight", "")
                ours_params[f"{where}.magnitude"].copy_(p)
    ids, mask = batch(pad_id=base_model.config.pad_token_id)
    expected = oracle(input_ids=ids, attention_mask=mask).logits
    got = ours(input_ids=ids, attention_mask=mask).logits
    assert (got - expected).abs().max() < 1e-5
    assert (got - base_model(input_ids=ids, attention_mask=mask).logits).abs().max() > 1e-4


IA3_CASES = [
    ({}, None),  # keys, values and the feed-forward activations, every layer
    ({"targets": ["query", "value", "intermediate", "output"]}, [0, 2]),
]


@pytest.mark.parametrize("settings, layers", IA3_CASES)
def test_ia3_matches_peft(base_model, encoder_kind, settings, layers):
    from autopeft.modules.ia3 import IA3, INPUT_SCALED

    targets = IA3(**settings).targets_for("output")  # omitted: keys, values and the feed-forward output
    ours = copy.deepcopy(base_model)
    handle = inject(ours, {"ia3": {**settings, **({"layers": layers} if layers else {})}})
    oracle_cfg = peft.IA3Config(
        task_type=peft.TaskType.SEQ_CLS,
        target_modules=_target_regex(targets, layers),
        feedforward_modules=_target_regex([t for t in targets if t in INPUT_SCALED], layers),
        init_ia3_weights=True,
    )
    oracle = peft.get_peft_model(copy.deepcopy(base_model), oracle_cfg).eval()

    count = handle.accounting()
    assert count.peft_params + count.head_params == _peft_trainable(oracle)
    assert count.by_family["ia3"] == sum(p.numel() for n, p in oracle.named_parameters() if "ia3_l" in n)

    ours_params = dict(ours.named_parameters())
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # the same random vectors in both (ones would leave the model unchanged)
        for name, p in oracle.named_parameters():
            if "ia3_l" in name:
                p.copy_(1 + 0.5 * torch.randn(p.shape, generator=g))
                ours_params[name.removeprefix("base_model.model.").replace(".default", "")].copy_(p.flatten())
    ids, mask = batch(pad_id=base_model.config.pad_token_id)
    expected = oracle(input_ids=ids, attention_mask=mask).logits
    got = ours(input_ids=ids, attention_mask=mask).logits
    assert (got - expected).abs().max() < 1e-5
    assert (got - base_model(input_ids=ids, attention_mask=mask).logits).abs().max() > 1e-4


def _target_regex(targets: list[str], layers: list[int] | None) -> str:
    chosen = "|".join(str(i) for i in (layers or range(3)))
    paths = "|".join(re.escape(LINEAR_PATHS[t]) for t in targets)
    return rf".*\.layer\.({chosen})\.({paths})$"


@pytest.mark.parametrize("length, projection", [(5, None), (3, 16)])
def test_prefix_matches_peft(base_model, encoder_kind, length, projection):
    settings = {"length": length}
    if projection:
        settings |= {"reparameterize": True, "hidden": projection}
    ours = copy.deepcopy(base_model)
    handle = inject(ours, {"prefix": settings})
    oracle_cfg = peft.PrefixTuningConfig(
        task_type=peft.TaskType.SEQ_CLS,
        num_virtual_tokens=length,
        prefix_projection=projection is not None,
        encoder_hidden_size=projection or 32,
    )
    oracle = peft.get_peft_model(copy.deepcopy(base_model), oracle_cfg).eval()

    count = handle.accounting()
    assert count.peft_params + count.head_params == _peft_trainable(oracle)

    encoder = oracle.prompt_encoder["default"]
    bank = ours.base_model.autopeft_prefix
    with torch.no_grad():
        if projection:
            bank.embedding.load_state_dict(encoder.embedding.state_dict())
            bank.transform.load_state_dict(encoder.transform.state_dict())
        else:  # peft lays out [length, layers * 2 * hidden]: (layer, key/value) major
            weight = encoder.embedding.weight.view(length, 3, 2, 32)
            for i in range(3):
                bank.kv[str(i)].copy_(weight[:, i].transpose(0, 1))
    ids, mask = batch(pad_id=base_model.config.pad_token_id)
    try:
        expected = oracle(input_ids=ids, attention_mask=mask).logits
    except ValueError as err:  # the oracle itself, not autopeft: requirements.lock pins a pair that works
        if "does not support past key values" not in str(err):
            raise
        import transformers

        pytest.skip(f"peft {peft.__version__} cannot do prefix tuning with transformers {transformers.__version__}")
    # peft shifts the real tokens' positions by the prefix length; autopeft does not, so give
    # our model the shifted positions explicitly to compare the attention itself.
    positions = _position_ids(encoder_kind, mask, length)
    got = ours(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    assert (got - expected).abs().max() < 1e-5

    handle.merge()  # folding the MLP keeps the function
    folded = ours(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    assert (folded - expected).abs().max() < 1e-5
    assert handle.accounting().peft_params == length * 2 * 32 * 3


def test_prefix_keeps_positions_of_real_tokens():
    """Real tokens keep positions 0..n-1 after a prefix is added (HF peft would shift them)."""
    from tests.conftest import tiny_model

    ours = tiny_model("bert")
    inject(ours, {"prefix": {"length": 4}})
    ids, mask = batch()
    implicit = ours(input_ids=ids, attention_mask=mask).logits
    unshifted = ours(input_ids=ids, attention_mask=mask, position_ids=_position_ids("bert", mask, 0)).logits
    shifted = ours(input_ids=ids, attention_mask=mask, position_ids=_position_ids("bert", mask, 4)).logits
    assert torch.allclose(implicit, unshifted, atol=1e-6)
    assert not torch.allclose(implicit, shifted, atol=1e-4)
