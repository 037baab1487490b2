"""Every cell of the support matrix, on a tiny random model of each architecture.

A cell marked supported: the family injects, leaves the output unchanged at initialisation
(all but prefix), its live parameter count equals the count from the model's shape alone,
and training moves exactly what it owns. A refused cell: injection, ``estimate`` and the
spaces refuse it with one line naming the family, the architecture and the reason.
"""

from __future__ import annotations

import copy

import pytest
import torch

from autopeft.accounting import estimate
from autopeft.config import parse_config
from autopeft.errors import ConfigError, SpaceError
from autopeft.handle import inject
from autopeft.layouts import ARCHITECTURES
from autopeft.modules import FAMILIES
from autopeft.modules.base import LINEAR_TARGETS
from autopeft.shape import shape_of, shape_of_config
from autopeft.space import build_space
from autopeft.support import support_matrix
from tests.conftest import ARCHITECTURE_KINDS, batch, lane, tiny_config, tiny_model
from tests.modules.test_families import random_fish_mask

#: One configuration per family that runs every code path of it (all linear targets, AdaMix, DoRA).
FAMILY_CONFIGS = {
    "serial_adapter": {"size": 4, "experts": 2, "layers": [0, 2]},
    "parallel_adapter": {"size": 4, "scaling": 2.0},
    "prefix": {"length": 3},
    "lora": {"rank": 2, "targets": list(LINEAR_TARGETS), "dora": True},
    "ia3": {"targets": list(LINEAR_TARGETS)},
    "bitfit": {},
    "fish": {"fraction": 0.05},
    "full": {},
}
CELLS = [(kind, family) for kind in ARCHITECTURE_KINDS for family in FAMILY_CONFIGS]


def _config(kind: str, family: str) -> dict:
    """``FAMILY_CONFIGS[family]`` with the targets this architecture has (an encoder's six, a decoder's seven)."""
    settings = dict(FAMILY_CONFIGS[family])
    if "targets" in settings:
        settings["targets"] = [t for t in settings["targets"] if t in ARCHITECTURES[kind].linears]
    return settings


def _inject(model, config):
    parsed = parse_config(config)
    mask = random_fish_mask(model, parsed, parsed.fish.fraction) if parsed.fish else None
    return inject(model, parsed, prepared={"fish": mask} if mask is not None else None)


def _pad(model) -> int:
    return model.config.pad_token_id or 0


def test_the_matrix_covers_every_architecture_and_every_family():
    matrix = support_matrix()
    assert list(matrix) == ARCHITECTURE_KINDS
    assert set(FAMILY_CONFIGS) == set(FAMILIES)
    for cells in matrix.values():
        assert list(cells) == list(FAMILIES)
        assert all(reason is None or (reason and "\n" not in reason) for reason in cells.values())


@pytest.mark.parametrize("kind, family", lane(CELLS))
def test_each_cell_of_the_support_matrix(kind, family):
    reason = support_matrix()[kind][family]
    base = tiny_model(kind)
    config = {family: _config(kind, family)}
    shape = shape_of_config(tiny_config(kind))
    if reason is not None:
        expected = f"{family} is not supported on {kind}: {reason}"
        with pytest.raises(ConfigError) as refused:
            _inject(copy.deepcopy(base), config)
        assert str(refused.value) == expected
        with pytest.raises(ConfigError, match=f"^{family} is not supported on {kind}: "):
            estimate(config, shape)
        return
    model = copy.deepcopy(base)
    handle = _inject(model, config)
    ids, mask = batch(pad_id=_pad(base))
    if family != "prefix":  # new modules are zero (or one, for (IA)3): the base model's function
        expected = base(input_ids=ids, attention_mask=mask).logits
        assert torch.allclose(model(input_ids=ids, attention_mask=mask).logits, expected, atol=1e-5)
    assert handle.accounting().peft_params == estimate(config, shape).peft_params
    _trains_exactly_what_it_owns(model, handle, ids, mask)


def _trains_exactly_what_it_owns(model, handle, ids, mask):
    trainable = handle.trainable_parameters()
    trainable_ids = {id(p) for p in trainable}
    assert {id(p) for p in model.parameters() if p.requires_grad} == trainable_ids
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    start = {id(p): p.detach().clone() for p in trainable}
    model.train()
    opt = torch.optim.AdamW(trainable, lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1])).loss.backward()
        opt.step()
    for name, p in model.named_parameters():
        if id(p) not in trainable_ids:
            assert torch.equal(p.detach(), before[name]), f"{name} moved"
    for family, params in handle.peft_parameters().items():
        assert params, f"{family} trains nothing"
        assert any(not torch.equal(p.detach(), start[id(p)]) for p in params), f"{family} did not train"


def test_bitfit_runs_on_a_modernbert_built_with_biases():
    """The refusal is read from the model, not from its name: a ModernBERT with biases trains them."""
    biased = {"attention_bias": True, "mlp_bias": True, "norm_bias": True}
    shape = shape_of_config(tiny_config("modernbert", **biased))
    assert "bitfit" not in shape.unsupported
    model = tiny_model("modernbert", **biased)
    handle = inject(model, {"bitfit": {"layers": [1]}})
    assert handle.accounting().peft_params == estimate({"bitfit": {"layers": [1]}}, shape).peft_params > 0
    ids, mask = batch()
    _trains_exactly_what_it_owns(model, handle, ids, mask)


@pytest.mark.parametrize("kind", lane(ARCHITECTURE_KINDS))
def test_every_supported_family_together_round_trips_through_its_state_dict(kind):
    supported = [f for f, reason in support_matrix()[kind].items() if reason is None and f not in ("full", "fish")]
    config = {f: _config(kind, f) for f in supported}
    base = tiny_model(kind)
    trained = copy.deepcopy(base)
    handle = inject(trained, config)
    with torch.no_grad():
        for p in handle.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.1)
    handle.merge()
    fresh = copy.deepcopy(base)
    reloaded = inject(fresh, config)
    reloaded.merge()
    reloaded.load_peft_state_dict(handle.peft_state_dict())
    ids, mask = batch(pad_id=_pad(base))
    got = fresh(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(trained(input_ids=ids, attention_mask=mask).logits, got)
    assert (got - base(input_ids=ids, attention_mask=mask).logits).abs().max() > 1e-4


@pytest.mark.parametrize("kind", ARCHITECTURE_KINDS)
def test_built_in_spaces_offer_only_what_the_model_supports(kind):
    shape = shape_of_config(tiny_config(kind))
    refused = {f for f, reason in support_matrix()[kind].items() if reason is not None}
    for name in ("autopeft", "grouped", "full", "lora"):
        space = build_space(name, shape)
        assert not refused & set(space.spec.families), (name, space.spec.families)
        for x in torch.rand(8, space.d, generator=torch.Generator().manual_seed(0)).tolist():
            estimate(space.decode(x), shape)  # every decoded configuration fits


@pytest.mark.parametrize("kind, family", [("deberta-v2", "prefix"), ("modernbert", "bitfit")])
def test_a_space_naming_an_unsupported_family_is_refused(kind, family):
    shape = shape_of_config(tiny_config(kind))
    field = {"prefix": {"length": [0, 4]}, "bitfit": {"enabled": [False, True]}}[family]
    with pytest.raises(SpaceError, match=f"^{family} is not supported on {kind}: "):
        build_space({"families": {"lora": {"rank": [0, 2]}, family: field}}, shape)


@pytest.mark.parametrize("kind", ["distilbert", "deberta-v2", "modernbert"])
def test_a_fused_or_renamed_linear_is_named_as_everywhere(kind):
    """Every family names linears as LoRA's targets do; ModernBERT's query, key and value are parts of Wqkv."""
    model = tiny_model(kind)
    shape = shape_of(model)
    assert shape.linear_shapes["query"] == shape.linear_shapes["value"] == (32, 32)
    handle = inject(model, {"lora": {"rank": 2, "targets": ["query", "value"]}})
    assert handle.accounting().peft_params == 3 * 2 * 2 * (32 + 32)
