"""Every family: identity when zero-initialised, trains exactly what it owns, composes with others."""

from __future__ import annotations

import copy

import pytest
import torch

from autopeft.handle import inject, trained_whole
from autopeft.modules.fish import candidates
from tests.conftest import batch

ZERO_INIT = [
    {"serial_adapter": {"size": 8}},
    {"serial_adapter": {"size": 4, "experts": 3, "layers": [0, 2]}},
    {"parallel_adapter": {"size": 8, "scaling": 2.0}},
    {"lora": {"rank": 4, "targets": ["query", "key", "value", "attention_output", "intermediate", "output"]}},
    {"bitfit": {}},
    {"full": {}},
    {"fish": {"fraction": 0.05}},
    {"ia3": {}},
    {"ia3": {"targets": ["query", "attention_output", "intermediate", "output"], "layers": [1]}},
    {"lora": {"rank": 2, "dora": True, "targets": ["query", "output"]}},
    {"serial_adapter": {"size": 4}, "parallel_adapter": {"size": 4}, "lora": {"rank": 2}, "bitfit": {"layers": [1]}},
    {"lora": {"rank": 2, "dora": True}, "ia3": {"targets": ["value", "output"]}, "bitfit": {}},
]

TRAINED = [
    *ZERO_INIT,
    {"prefix": {"length": 3, "layers": [0, 2]}},
    {"prefix": {"length": {"0": 2, "1": 5}, "reparameterize": True, "hidden": 8}},
    {
        "serial_adapter": {"size": 4, "experts": 2},
        "parallel_adapter": {"size": 2},
        "prefix": {"length": 2},
        "lora": {"rank": 2, "targets": ["query", "output"]},
        "bitfit": {"layers": [0]},
        "fish": {"fraction": 0.01},
    },
]


def candidates_of(model, config):
    """The backbone parameters a FISH mask of ``config`` may select."""
    return candidates(model, trained_whole(model, config))


def random_fish_mask(model, config, fraction: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """A mask with exactly round(fraction * backbone params) entries, spread over the candidates."""
    from autopeft.shape import shape_of

    candidates = candidates_of(model, config)
    sizes = {n: p.numel() for n, p in candidates.items()}
    k = config.fish.mask_size(shape_of(model).backbone_params)
    g = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(sum(sizes.values()), generator=g)[:k]
    flat = torch.zeros(sum(sizes.values()), dtype=torch.bool)
    flat[chosen] = True
    out, start = {}, 0
    for name, p in candidates.items():
        out[name] = flat[start : start + p.numel()].view_as(p)
        start += p.numel()
    return out


def _inject(model, config):
    from autopeft.config import parse_config

    parsed = parse_config(config)
    mask = random_fish_mask(model, parsed, parsed.fish.fraction) if parsed.fish else None
    return inject(model, parsed, prepared={"fish": mask} if mask is not None else None)


@pytest.mark.parametrize("config", ZERO_INIT, ids=lambda c: "+".join(c))
def test_zero_initialised_families_leave_the_output_unchanged(base_model, model_copy, config):
    _inject(model_copy, config)
    ids, mask = batch(pad_id=base_model.config.pad_token_id)
    expected = base_model(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(model_copy(input_ids=ids, attention_mask=mask).logits, expected, atol=1e-6)


@pytest.mark.parametrize("config", TRAINED, ids=lambda c: "+".join(c))
def test_training_changes_exactly_what_the_configuration_owns(base_model, model_copy, config):
    originals = [(n, p, p.detach().clone()) for n, p in model_copy.named_parameters()]
    handle = _inject(model_copy, config)
    trainable = handle.trainable_parameters()
    trainable_ids = {id(p) for p in trainable}
    assert {id(p) for p in model_copy.parameters() if p.requires_grad} == trainable_ids
    start = {id(p): p.detach().clone() for p in trainable}

    model_copy.train()
    opt = torch.optim.AdamW(trainable, lr=1e-2, weight_decay=0.1)
    ids, mask = batch(pad_id=base_model.config.pad_token_id)
    for _ in range(4):
        opt.zero_grad()
        model_copy(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1])).loss.backward()
        opt.step()

    for name, p, before in originals:  # backbone tensors it does not train keep their exact values
        if id(p) not in trainable_ids:
            assert torch.equal(p.detach(), before), f"{name} moved"
    for family, params in handle.peft_parameters().items():
        assert params, f"{family} trains nothing"
        assert any(not torch.equal(p.detach(), start[id(p)]) for p in params), f"{family} did not train"
    assert any(not torch.equal(p.detach(), start[id(p)]) for p in handle.head_parameters())


def test_fish_masked_entries_only_and_weight_decay_spares_frozen_entries(base_model, model_copy):
    from autopeft.config import parse_config

    config = parse_config({"fish": {"fraction": 0.02}})
    mask = random_fish_mask(model_copy, config, 0.02)
    weights_before = {n: p.detach().clone() for n, p in model_copy.named_parameters()}
    handle = inject(model_copy, config, prepared={"fish": mask})
    assert handle.accounting().peft_params == sum(int(m.sum()) for m in mask.values())
    opt = torch.optim.AdamW(handle.trainable_parameters(), lr=1e-2, weight_decay=0.5)
    ids, attn = batch(pad_id=base_model.config.pad_token_id)
    model_copy.train()
    for _ in range(3):
        opt.zero_grad()
        model_copy(input_ids=ids, attention_mask=attn, labels=torch.tensor([0, 1, 0])).loss.backward()
        opt.step()
    modules = dict(model_copy.named_modules())
    for name, m in mask.items():
        module_name, attr = name.rsplit(".", 1)
        now = getattr(modules[module_name], attr).detach()
        changed = now != weights_before[name]
        assert not (changed & ~m).any(), f"{name}: an unmasked entry moved"
    total_changed = sum(
        int((getattr(modules[n.rsplit('.', 1)[0]], n.rsplit('.', 1)[1]).detach() != weights_before[n]).sum())
        for n in mask
    )
    assert total_changed > 0.5 * sum(int(m.sum()) for m in mask.values())


def test_fish_requires_a_mask_and_checks_its_shape(model_copy):
    from autopeft.errors import ConfigError

    with pytest.raises(ConfigError, match="needs a mask"):
        inject(copy.deepcopy(model_copy), {"fish": {"fraction": 0.01}})
    name, p = next(iter(model_copy.named_parameters()))
    with pytest.raises(ConfigError, match="must be a bool tensor of shape"):
        inject(copy.deepcopy(model_copy), {"fish": {"fraction": 0.01}}, prepared={"fish": {name: torch.ones(3, dtype=torch.bool)}})
    with pytest.raises(ConfigError, match="not a backbone parameter"):
        inject(model_copy, {"fish": {"fraction": 0.01}}, prepared={"fish": {"classifier.weight": torch.ones(1, dtype=torch.bool)}})


def test_fish_candidates_leave_out_what_bitfit_trains(model_copy):
    from autopeft.config import parse_config

    everything = candidates_of(model_copy, parse_config({"fish": {"fraction": 0.1}}))
    with_bitfit = candidates_of(model_copy, parse_config({"fish": {"fraction": 0.1}, "bitfit": {"layers": [1]}}))
    removed = set(everything) - set(with_bitfit)
    assert removed and all(".1." in n and n.endswith("bias") for n in removed)
    assert not any(n.startswith("classifier") for n in everything)


def test_state_dict_round_trip_gives_identical_outputs(base_model):
    config = {"serial_adapter": {"size": 4, "experts": 2}, "lora": {"rank": 2}, "prefix": {"length": 2}}
    trained = copy.deepcopy(base_model)
    handle = inject(trained, config)
    with torch.no_grad():
        for p in handle.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.1)
    handle.merge()
    state = handle.peft_state_dict()
    fresh = copy.deepcopy(base_model)
    reloaded = inject(fresh, config)
    reloaded.merge()
    reloaded.load_peft_state_dict(state)
    ids, mask = batch(pad_id=base_model.config.pad_token_id)
    assert torch.equal(trained(input_ids=ids, attention_mask=mask).logits, fresh(input_ids=ids, attention_mask=mask).logits)
