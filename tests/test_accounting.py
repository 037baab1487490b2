"""Counts from the model's shape alone agree with counts read off the injected model."""

from __future__ import annotations

import copy

import pytest

from autopeft.accounting import estimate
from autopeft.config import parse_config
from autopeft.handle import inject
from autopeft.shape import model_shape, shape_of
from autopeft.space import build_space
from tests.conftest import tiny_model
from tests.modules.test_families import random_fish_mask


@pytest.mark.parametrize("kind", ["bert", "roberta"])
@pytest.mark.parametrize("space", ["grouped", "full"])
def test_estimate_equals_the_count_of_the_injected_model(kind, space):
    base = tiny_model(kind)
    shape = shape_of(base)
    configs = build_space(space, shape).sample(12, seed=7)
    for config in configs:
        model = copy.deepcopy(base)
        mask = random_fish_mask(model, config, config.fish.fraction) if config.fish else None
        handle = inject(model, config, prepared={"fish": mask} if mask is not None else None)
        live, est = handle.accounting(), estimate(config, shape)
        assert live == est, config.to_json()
        handle.merge()
        assert handle.accounting().peft_params == est.merged_params


def test_reference_counts_on_the_bundled_minilm():
    """Hand-derived counts for MiniLM (6 layers, hidden 384, intermediate 1536)."""
    pass

    shape = model_shape(None)
    lora = estimate({"lora": {"rank": 8, "targets": ["query", "value"]}}, shape)
    assert lora.peft_params == 6 * 2 * 8 * (384 + 384)
    assert estimate({"serial_adapter": {"size": 64}}, shape).peft_params == 6 * (2 * 384 * 64 + 64 + 384)
    assert estimate({"prefix": {"length": 16}}, shape).peft_params == 6 * 2 * 16 * 384
    assert estimate({"bitfit": {}}, shape).peft_params == 6 * (3 * 384 + 384 + 384 + 1536 + 384 + 384)
    assert estimate({"fish": {"fraction": 0.005}}, shape).peft_params == round(0.005 * shape.backbone_params)
    full = estimate({"full": {}}, shape)
    assert full.param_fraction == 1.0 and full.head_params == 384 * 2 + 2


def test_param_fraction_is_relative_to_the_backbone():
    shape = shape_of(tiny_model("bert"))
    count = estimate(parse_config({"bitfit": {"layers": [0]}}), shape)
    assert count.param_fraction == count.peft_params / shape.backbone_params
    assert count.to_json()["by_family"] == {"bitfit": shape.layer_bias_params[0]}
