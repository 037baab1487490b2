"""Spaces: every vector decodes to a valid, countable configuration; encode inverts decode."""

from __future__ import annotations

import numpy as np
import pytest

from autopeft.accounting import estimate
from autopeft.encoder import ModelShape
from autopeft.errors import SpaceError
from autopeft.shape import model_shape, shape_of
from autopeft.space import build_space
from tests.conftest import lane, tiny_model


@pytest.fixture(scope="module", params=lane(["bert", "roberta"]))
def shape(request) -> ModelShape:
    return shape_of(tiny_model(request.param))


@pytest.mark.parametrize("name", ["autopeft", "grouped", "full", "lora"])
def test_random_vectors_decode_to_valid_countable_configurations_and_round_trip(shape, name):
    space = build_space(name, shape)
    rng = np.random.default_rng(0)
    n = shape.n_layers
    for x in rng.random((1000, space.d)):
        config = space.decode(x)
        config.check_fits(shape)
        count = estimate(config, shape)
        assert 0 <= count.param_fraction
        x2 = space.encode(config)
        assert space.decode(x2).key(n) == config.key(n)
        assert space.encode(space.decode(x2)) == x2  # canonical points are fixed points
    corners = [np.zeros(space.d), np.ones(space.d)]
    for x in corners:
        space.decode(x).check_fits(shape)


def test_autopeft_space_has_three_sizes_and_one_bit_per_layer(shape):
    space = build_space("autopeft", shape)
    assert space.d == 3 + shape.n_layers
    assert [d.name for d in space.dims[:3]] == ["serial_adapter.size", "parallel_adapter.size", "prefix.length"]
    assert all(d.values[0] == 0 for d in space.dims[:3])  # each ladder includes "off"
    minilm = build_space("autopeft", model_shape(None))
    assert minilm.d == 3 + 6
    assert minilm.dims[0].values == (0, 1, 2, 4, 8, 16, 32, 64, 128, 256)


def test_autopeft_bits_place_every_family_on_the_same_layers(shape):
    space = build_space("autopeft", shape)
    x = [space.dims[0].encode(8), space.dims[1].encode(0), space.dims[2].encode(4), 0.9, 0.1, 0.9]
    config = space.decode(x)
    assert config.to_json() == {"serial_adapter": {"size": 8, "layers": [0, 2]}, "prefix": {"length": 4, "layers": [0, 2]}}


def test_grouped_space_sizes_are_uniform_within_a_spindle_group():
    shape = model_shape(None)  # 6 layers -> groups [0], [1, 2], [3, 4], [5]
    space = build_space("grouped", shape)
    assert space.groups == [[0], [1, 2], [3, 4], [5]]
    assert space.d == 5 * 4
    for config in space.sample(200, seed=1):
        for family in config.families().values():
            if hasattr(family, "size_field") and family.size_field:
                sizes = family.sizes(6)
                for group in space.groups:
                    assert len({sizes[i] for i in group if i in sizes}) <= 1


def test_full_space_covers_every_family_and_the_extra_dimensions():
    space = build_space("full", model_shape(None))
    names = {d.name for d in space.dims}
    assert {"serial_adapter.experts", "lora.targets", "lora.dora", "fish.fraction"} <= names
    assert any(name.startswith("ia3.enabled") for name in names)
    assert space.d >= 30
    seen = set()
    for config in space.sample(300, seed=0):
        seen |= set(config.families())
    assert seen == {"serial_adapter", "parallel_adapter", "prefix", "lora", "ia3", "bitfit", "fish"}


def test_decoding_is_deterministic_and_sampling_is_seeded(shape):
    space = build_space("full", shape)
    a = [c.to_json() for c in space.sample(5, seed=3)]
    assert a == [c.to_json() for c in space.sample(5, seed=3)]
    assert a != [c.to_json() for c in space.sample(5, seed=4)]


def test_encode_refuses_what_the_space_cannot_express(shape):
    space = build_space("autopeft", shape)
    with pytest.raises(SpaceError, match="has no lora"):
        space.encode({"lora": {"rank": 2}})
    with pytest.raises(SpaceError, match="has no value 3"):
        space.encode({"serial_adapter": {"size": 3}})
    with pytest.raises(SpaceError, match="not in space"):  # bits are shared by every family
        space.encode({"serial_adapter": {"size": 4, "layers": [0]}, "prefix": {"length": 2, "layers": [1]}})
    grouped = build_space({"groups": [[0, 1], [2]], "families": {"lora": {"rank": [0, 2, 4]}}}, shape)
    with pytest.raises(SpaceError, match="different sizes"):
        grouped.encode({"lora": {"rank": {"0": 2, "1": 4}}})


def test_user_defined_space_with_choices_ranges_and_fixed_values(shape):
    spec = {
        "name": "mine",
        "groups": 2,
        "grouping": "uniform",
        "families": {
            "serial_adapter": {"size": {"min": 2, "max": 16, "log": True, "off": True}, "experts": [1, 2]},
            "lora": {
                "rank": [0, 4],
                "alpha": 8,
                "targets": {"choices": [["query", "value"], ["key"]]},
                "per_group": False,
            },
            "bitfit": {"enabled": [False, True]},
            "fish": {"fraction": {"min": 0.001, "max": 0.01, "log": True, "steps": 3}, "samples": 64},
        },
    }
    space = build_space(spec, shape)
    assert space.name == "mine"
    names = [d.name for d in space.dims]
    assert names == [
        "serial_adapter.size[g0]",
        "serial_adapter.size[g1]",
        "serial_adapter.experts",
        "lora.rank",
        "lora.targets",
        "bitfit.enabled[g0]",
        "bitfit.enabled[g1]",
        "fish.fraction",
    ]
    assert space.dims[0].values == (0, 2, 4, 8, 16)
    assert space.dims[-1].values == pytest.approx((0.001, 0.001 * 10**0.5, 0.01))
    for config in space.sample(100, seed=0):
        if config.lora:
            assert config.lora.alpha == 8 and config.lora.layer_set(shape.n_layers) == list(range(shape.n_layers))
        assert config.fish is not None and config.fish.samples == 64
        assert space.decode(space.encode(config)).key(shape.n_layers) == config.key(shape.n_layers)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nope", "unknown space 'nope'"),
        ({"families": {}}, "families"),
        ({"families": {"adapter": {"size": [1]}}}, "unknown family 'adapter'"),
        ({"families": {"lora": {"rank": [2], "ranks": 3}}}, "unknown field 'ranks' in lora"),
        ({"families": {"lora": {"alpha": 3}}}, "lora needs its 'rank'"),
        ({"families": {"lora": {"rank": [2], "layers": [0]}}}, "places families by groups"),
        ({"families": {"lora": {"rank": []}}}, "cannot be empty"),
        ({"families": {"lora": {"rank": [0]}}}, "every value turns the family off"),
        ({"families": {"lora": {"rank": [2, 64]}}}, "lora.rank=64 is invalid"),
        ({"families": {"lora": {"rank": {"min": 4, "max": 2}}}}, "min < max"),
        ({"families": {"lora": {"rank": [2, 2]}}}, "repeat a value"),
        ({"groups": 9, "families": {"lora": {"rank": [2]}}}, "between 1 and"),
        ({"families": {"fish": {"fraction": [0.01], "per_group": True}}, "groups": 2}, "fish is placed on the whole model"),
        ({"famlies": {}}, "unknown field 'famlies'"),
    ],
)
def test_malformed_spaces_are_refused_with_the_reason(shape, spec, message):
    with pytest.raises(SpaceError, match=message):
        build_space(spec, shape)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"families": {"serial_adapter": {"size": {"min": 0.5, "max": 64, "log": True, "steps": 4}}}}, "1 <= min"),
        ({"families": {"serial_adapter": {"size": {"min": -4, "max": 8}}}}, "0 <= min"),
        ({"families": {"serial_adapter": {"size": {"min": 1, "max": 1e300}}}}, "within"),
        ({"families": {"serial_adapter": {"size": {"min": 1, "max": 8, "steps": 10_000}}}}, "steps"),
        ({"families": {"serial_adapter": {"size": {"min": 1, "max": 8, "log": "yes"}}}}, "true or false"),
        ({"families": {"lora": {"rank": list(range(1000))}}}, "at most 256"),
        ({"families": {"lora": {"rank": {"choices": list(range(1000))}}}}, "at most 256"),
        ({"families": {"fish": {"fraction": [0.01], "samples": {"min": 1, "max": 1e9, "log": True}}}}, "samples"),
        ({"families": {"lora": {"rank": {"min": 1.2, "max": 1.8}}}}, "no integer"),
        ({"groups": [[0]] * 2000, "families": {"bitfit": {}}}, "at most 1024"),
    ],
)
def test_space_inputs_are_bounded_before_anything_is_enumerated(shape, spec, message):
    with pytest.raises(SpaceError, match=message):
        build_space(spec, shape)


def test_a_space_with_too_many_values_in_all_is_refused(shape):
    huge = ModelShape(**{**shape.__dict__, "n_layers": 200, "layer_bias_params": (0,) * 200})
    spec = {"groups": 200, "families": {"serial_adapter": {"size": list(range(60))}}}
    with pytest.raises(SpaceError, match="more than 8192 values"):
        build_space(spec, huge)


@pytest.mark.slow
def test_an_integer_log_range_below_one_is_refused_at_once():
    """The attack of issue 13: min 0.5 doubled int(0.5) = 0 forever, eating memory. Run apart,
    with a memory cap and a time limit, so that a regression fails instead of hanging."""
    import subprocess
    import sys

    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from autopeft.errors import SpaceError\n"
        "from autopeft.space.spec import field_values\n"
        "try:\n"
        "    field_values('serial_adapter', 'size', {'min': 0.5, 'max': 64, 'log': True})\n"
        "except SpaceError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and "1 <= min" in out.stdout, out.stderr[-2000:]
