"""The canonical configuration JSON: accepted as DESIGN.md writes it, refused clearly otherwise."""

from __future__ import annotations

import json

import pytest

from autopeft.config import PeftConfig, load_config, parse_config
from autopeft.encoder import ModelShape
from autopeft.errors import ConfigError
from autopeft.shape import shape_of
from tests.conftest import tiny_model

DESIGN_EXAMPLE = {
    "serial_adapter": {"size": 64, "layers": [0, 1, 2, 3, 4, 5], "experts": 1},
    "parallel_adapter": {"size": 32, "layers": [2, 3], "scaling": 4.0},
    "prefix": {"length": 16, "layers": [0, 1, 2, 3, 4, 5]},
    "lora": {"rank": 8, "alpha": 16, "targets": ["query", "value"], "layers": [0, 5]},
    "bitfit": {"layers": [0, 1, 2, 3, 4, 5]},
    "fish": {"fraction": 0.005, "samples": 1024, "ird": False},
}


def test_design_example_is_accepted_as_written():
    config = parse_config(DESIGN_EXAMPLE)
    assert list(config.families()) == list(DESIGN_EXAMPLE)
    assert config.lora.scaling(8) == 2.0
    assert config.parallel_adapter.sizes(6) == {2: 32, 3: 32}
    assert config.fish.mask_size(1_000_000) == 5000


def test_missing_layers_means_every_layer_and_missing_family_is_off():
    config = parse_config({"lora": {"rank": 4}})
    assert config.lora.sizes(3) == {0: 4, 1: 4, 2: 4}
    assert config.serial_adapter is None and list(config.families()) == ["lora"]


def test_per_layer_sizes_and_canonical_key():
    a = parse_config({"serial_adapter": {"size": {"0": 8, "2": 8}}})
    b = parse_config({"serial_adapter": {"size": 8, "layers": [2, 0]}})
    assert a.key(3) == b.key(3)
    c = parse_config({"serial_adapter": {"size": {"0": 8, "2": 16}}})
    assert c.key(3) != a.key(3)
    assert c.canonical(3)["serial_adapter"]["size"] == {"0": 8, "2": 16}
    assert parse_config(c.to_json()).key(3) == c.key(3)


def test_lora_alpha_defaults_to_twice_the_rank():
    assert parse_config({"lora": {"rank": 4}}).lora.scaling(4) == 2.0
    assert parse_config({"lora": {"rank": 4, "alpha": 8}}).lora.scaling(4) == 2.0
    assert parse_config({"lora": {"rank": 4, "alpha": 4}}).lora.scaling(4) == 1.0


@pytest.mark.parametrize(
    "body, message",
    [
        ({"adapter": {"size": 8}}, "unknown family 'adapter'"),
        ({"lora": {"rank": 8, "rnk": 3}}, "unknown field 'rnk' in lora"),
        ({"lora": {"rank": 0}}, "lora.rank"),
        ({"lora": {"rank": 4, "targets": ["qkv"]}}, "'qkv' is not one of"),
        ({"lora": {"rank": 4, "targets": []}}, "lora.targets"),
        ({"serial_adapter": {"size": 8, "layers": [1, 1]}}, "more than once"),
        ({"serial_adapter": {"size": 8, "layers": [-1]}}, ">= 0"),
        ({"serial_adapter": {"size": 8, "experts": 0}}, "serial_adapter.experts"),
        ({"serial_adapter": {"size": {"0": 8}, "layers": [1]}}, "give one of the two"),
        ({"fish": {"fraction": 0}}, "fish.fraction"),
        ({"fish": {"fraction": 1.5}}, "fish.fraction"),
        ({"parallel_adapter": {"size": 8, "scaling": float("nan")}}, "parallel_adapter.scaling"),
        ({"full": {}, "lora": {"rank": 2}}, "full fine-tuning already trains everything"),
        ({"prefix": {"length": "long"}}, "prefix.length"),
    ],
)
def test_malformed_configurations_are_refused_with_the_reason(body, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(body)


@pytest.fixture(scope="module")
def shape() -> ModelShape:
    return shape_of(tiny_model("bert"))


@pytest.mark.parametrize(
    "body, message",
    [
        ({"lora": {"rank": 4, "layers": [3]}}, "layer 3 does not exist; the model has layers 0..2"),
        ({"bitfit": {"layers": [7]}}, "layer 7 does not exist"),
        ({"serial_adapter": {"size": 129}}, "out of range"),
        ({"lora": {"rank": 33}}, "out of range"),
        ({"prefix": {"length": 81}}, "out of range"),
    ],
)
def test_configurations_that_do_not_fit_the_model_are_refused(shape, body, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(body).check_fits(shape)


def test_load_config_reads_inline_json_and_files(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"bitfit": {}}))
    assert load_config(str(path)) == PeftConfig(bitfit={})
    assert load_config('{"bitfit": {}}') == PeftConfig(bitfit={})
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config('{"bitfit": ')
    with pytest.raises(ConfigError, match="neither JSON nor an existing file"):
        load_config("missing.json")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        load_config("[1, 2]")
    with pytest.raises(ConfigError, match="NaN is not allowed"):
        load_config('{"parallel_adapter": {"size": 2, "scaling": NaN}}')


@pytest.mark.parametrize(
    "body, message",
    [
        ({"serial_adapter": {"size": 8, "layers": [0] * 200_000}}, "at most 1024"),
        ({"serial_adapter": {"size": 8, "layers": [0, 1, 0, 1]}}, r"\[0, 1\] more than once"),
        ({"serial_adapter": {"size": 8, "layers": [10**30]}}, "below 1024"),
        ({"serial_adapter": {"size": {str(i): 8 for i in range(5000)}}}, "at most 1024"),
        ({"serial_adapter": {"size": {"99999": 8}}}, "not in 0..1023"),
        ({"lora": {"rank": 10**12}}, "at most 1048576"),
        ({"prefix": {"length": {"0": 10**40}}}, "at most 1048576"),
    ],
)
def test_configuration_sizes_and_layer_lists_are_bounded(body, message):
    import time

    start = time.monotonic()
    with pytest.raises(ConfigError, match=message):
        parse_config(body)
    assert time.monotonic() - start < 2.0  # a duplicate check over a long list was quadratic
