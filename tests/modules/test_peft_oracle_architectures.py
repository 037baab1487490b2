"""HF peft as the oracle on every architecture beyond BERT and RoBERTa (tests/modules/test_peft_oracle.py).

LoRA, DoRA and (IA)³ on separate linears: peft with the same targets (regexes built from the
layout) must count the same parameters and, with the same weights, give the same logits.
ModernBERT's query, key and value are row blocks of the fused ``attn.Wqkv``: autopeft adapts
each block on its own, which peft expresses as one adapter on ``Wqkv`` whose weights are zero
(LoRA's B), one ((IA)³) or the row norms (DoRA's magnitude) outside the chosen blocks; the
logits must agree, and autopeft must count exactly peft's entries that are not held there.
Prefix tuning is compared where peft can run it (XLM-R, ELECTRA: peft passes prefixes as
``past_key_values``); DistilBERT and ModernBERT take autopeft's prefix through transformers'
AttentionInterface (test_prefix.py); DeBERTa-v2 refuses it (test_architectures.py).
"""

from __future__ import annotations

import copy
import re

import pytest
import torch

from autopeft.handle import inject
from autopeft.layouts import ARCHITECTURES
from tests.conftest import batch, lane, tiny_model

peft = pytest.importorskip("peft")

KINDS = ["xlm-roberta", "electra", "distilbert", "deberta-v2", "modernbert"]
ALL = ["query", "key", "value", "attention_output", "intermediate", "output"]
LORA_CASES = [
    ({"rank": 4, "alpha": 8, "targets": ["query", "value"]}, None),
    ({"rank": 2, "targets": ["key", "attention_output", "intermediate", "output"]}, [0, 2]),
    ({"rank": 3, "alpha": 5, "targets": ALL}, [1]),
]
IA3_CASES = [({}, None), ({"targets": ["query", "value", "intermediate", "output"]}, [0, 2])]


def _fused(kind: str, targets: list[str]) -> dict[str, list[str]]:
    """Fused linear path -> the chosen targets that are parts of it (in part order)."""
    out: dict[str, list[str]] = {}
    for t in targets:
        where = ARCHITECTURES[kind].linears[t]
        if where.part is not None:
            out.setdefault(where.path, []).append(t)
    return {p: sorted(ts, key=lambda t: ARCHITECTURES[kind].linears[t].part[0]) for p, ts in out.items()}


def _regex(kind: str, targets: list[str], layers: list[int] | None) -> str:
    arch = ARCHITECTURES[kind]
    chosen = "|".join(str(i) for i in (layers or range(3)))
    paths = "|".join(sorted({re.escape(arch.linears[t].path) for t in targets}))
    return rf".*\.{re.escape(arch.layers)}\.({chosen})\.({paths})$"


def _ours(name: str) -> str:
    return name.removeprefix("base_model.model.").replace(".default", "")


def _layer_prefix(kind: str, oracle_name: str) -> str:
    """``...layers.1.attn.Wqkv.lora_A.default.weight`` -> ``layers.1.`` part of our name (backbone included)."""
    arch = ARCHITECTURES[kind]
    m = re.search(rf"^(.*\.{re.escape(arch.layers)}\.\d+\.)", _ours(oracle_name))
    return m.group(1)


def _compare(ours, oracle, base):
    ids, mask = batch(pad_id=base.config.pad_token_id or 0)
    expected = oracle(input_ids=ids, attention_mask=mask).logits
    got = ours(input_ids=ids, attention_mask=mask).logits
    assert (got - expected).abs().max() < 1e-5
    assert (got - base(input_ids=ids, attention_mask=mask).logits).abs().max() > 1e-6


def _wrapped(ours, prefix: str, path: str, target_count: int):
    """The chain of our wrappers around the fused linear at ``prefix + path``, innermost first."""
    module = ours.get_submodule((prefix + path).rstrip("."))
    chain = []
    while hasattr(module, "base_layer"):
        chain.append(module)
        module = module.base_layer
    assert len(chain) == target_count
    return list(reversed(chain))


@pytest.mark.parametrize("kind", lane(KINDS, fast=("modernbert",)))
@pytest.mark.parametrize("settings, layers", LORA_CASES)
@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_lora_matches_peft(kind, settings, layers, dora):
    base = tiny_model(kind)
    rank, alpha = settings["rank"], settings.get("alpha", 2 * settings["rank"])
    fused = _fused(kind, settings["targets"])
    ours = copy.deepcopy(base)
    handle = inject(ours, {"lora": {**settings, "dora": dora, **({"layers": layers} if layers else {})}})
    oracle_cfg = peft.LoraConfig(
        task_type=peft.TaskType.SEQ_CLS,
        r=rank,
        lora_alpha=alpha,
        target_modules=_regex(kind, settings["targets"], layers),
        rank_pattern={re.escape(p): rank * len(ts) for p, ts in fused.items()},
        alpha_pattern={re.escape(p): alpha * len(ts) for p, ts in fused.items()},  # the same scale alpha / rank
        init_lora_weights=False,
        use_dora=dora,
    )
    oracle = peft.get_peft_model(copy.deepcopy(base), oracle_cfg).eval()

    params = dict(ours.named_parameters())
    oracle_count, held_at_zero = 0, 0
    with torch.no_grad():
        for name, p in oracle.named_parameters():
            if "lora_" not in name:
                continue
            oracle_count += p.numel()
            path = next((f for f in fused if f".{f}.lora_" in name), None)
            if path is None:
                if "lora_magnitude_vector" in name:
                    where = _ours(name).replace(".lora_magnitude_vector.weight", "")
                    params[f"{where}.magnitude"].copy_(p)
                else:
                    params[_ours(name)].copy_(p)
                continue
            # a fused linear: A stacks the parts' A; B is block-diagonal over (rows of a part, its rank)
            chain = _wrapped(ours, _layer_prefix(kind, name), path, len(fused[path]))
            if "lora_magnitude_vector" in name:  # rows outside the parts keep their norm: DoRA leaves them alone
                p.copy_(torch.linalg.norm(chain[0].base_layer.weight, dim=1))
                held_at_zero += p.numel()
                for lora in chain:
                    lora.magnitude.copy_(p[lora.rows] * (1 + 0.1 * torch.randn_like(lora.magnitude)))
                    p[lora.rows] = lora.magnitude
                    held_at_zero -= lora.magnitude.numel()
                continue
            if "lora_B" in name:
                p.zero_()
                held_at_zero += p.numel()
            for k, lora in enumerate(chain):
                cols = slice(k * rank, (k + 1) * rank)
                if "lora_A" in name:
                    lora.lora_A.weight.copy_(p[cols])
                else:
                    lora.lora_B.weight.copy_(torch.randn_like(lora.lora_B.weight))
                    p[lora.rows, cols] = lora.lora_B.weight
                    held_at_zero -= lora.lora_B.weight.numel()
    assert handle.accounting().by_family["lora"] == oracle_count - held_at_zero
    _compare(ours, oracle, base)


@pytest.mark.parametrize("kind", lane(KINDS, fast=("modernbert",)))
@pytest.mark.parametrize("settings, layers", IA3_CASES)
def test_ia3_matches_peft(kind, settings, layers):
    from autopeft.modules.ia3 import IA3, INPUT_SCALED

    base = tiny_model(kind)
    targets = IA3(**settings).targets_for("output")  # omitted: keys, values and the feed-forward output
    fused = _fused(kind, targets)
    ours = copy.deepcopy(base)
    handle = inject(ours, {"ia3": {**settings, **({"layers": layers} if layers else {})}})
    oracle_cfg = peft.IA3Config(
        task_type=peft.TaskType.SEQ_CLS,
        target_modules=_regex(kind, targets, layers),
        feedforward_modules=_regex(kind, [t for t in targets if t in INPUT_SCALED], layers),
        init_ia3_weights=True,
    )
    oracle = peft.get_peft_model(copy.deepcopy(base), oracle_cfg).eval()

    params = dict(ours.named_parameters())
    g = torch.Generator().manual_seed(3)
    oracle_count, held_at_one = 0, 0
    with torch.no_grad():
        for name, p in oracle.named_parameters():
            if "ia3_l" not in name:
                continue
            oracle_count += p.numel()
            path = next((f for f in fused if f".{f}.ia3_l" in name), None)
            if path is None:
                p.copy_(1 + 0.5 * torch.randn(p.shape, generator=g))
                params[_ours(name)].copy_(p.flatten())
                continue
            held_at_one += p.numel()  # peft scales every row of Wqkv; only the chosen parts move
            for scaled in _wrapped(ours, _layer_prefix(kind, name), path, len(fused[path])):
                scaled.ia3_l.copy_(1 + 0.5 * torch.randn(scaled.ia3_l.shape, generator=g))
                p.view(-1)[scaled.rows] = scaled.ia3_l
                held_at_one -= scaled.ia3_l.numel()
    assert handle.accounting().by_family["ia3"] == oracle_count - held_at_one
    _compare(ours, oracle, base)


def _position_ids(kind: str, mask: torch.Tensor, shift: int) -> torch.Tensor:
    if kind == "xlm-roberta":
        return (torch.cumsum(mask, dim=1) + shift) * mask + 1
    return (torch.arange(mask.shape[1]) + shift).expand(mask.shape[0], -1)


@pytest.mark.parametrize("kind", ["xlm-roberta", "electra"])
@pytest.mark.parametrize("length, projection", [(5, None), (3, 16)])
def test_prefix_matches_peft(kind, length, projection):
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

    encoder = oracle.prompt_encoder["default"]
    bank = ours.base_model.autopeft_prefix
    with torch.no_grad():
        if projection:
            bank.embedding.load_state_dict(encoder.embedding.state_dict())
            bank.transform.load_state_dict(encoder.transform.state_dict())
        else:
            weight = encoder.embedding.weight.view(length, 3, 2, 32)
            for i in range(3):
                bank.kv[str(i)].copy_(weight[:, i].transpose(0, 1))
    ids, mask = batch(pad_id=base.config.pad_token_id or 0)
    expected = oracle(input_ids=ids, attention_mask=mask).logits
    got = ours(input_ids=ids, attention_mask=mask, position_ids=_position_ids(kind, mask, length)).logits
    assert (got - expected).abs().max() < 1e-5
