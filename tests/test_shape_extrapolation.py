"""A deep model's shape is extended from copies of 2 and 3 layers (issue 27: a study of 256 layers is created
at once): the result is the shape of the whole model, for every architecture that takes it."""

from __future__ import annotations

import time

import pytest

from autopeft.layouts import ARCHITECTURES
from autopeft.shape import EXTRAPOLATE_FROM, _built_shape, shape_of_config


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_an_extended_shape_is_the_shape_of_the_whole_model(name):
    example = ARCHITECTURES[name].example_config()
    try:
        config = example.__class__.from_dict({**example.to_dict(), "num_hidden_layers": 2 * EXTRAPOLATE_FROM})
    except Exception:  # noqa: BLE001 - a config with a list per layer (layer_types) is built whole anyway
        config = example
    assert shape_of_config(config, 3) == _built_shape(config, 3)


def test_a_deep_model_is_not_built_layer_by_layer():
    example = ARCHITECTURES["bert"].example_config()
    shape_of_config(example, 2)  # transformers' imports
    config = example.__class__.from_dict({**example.to_dict(), "num_hidden_layers": 256})
    started = time.monotonic()
    shape = shape_of_config(config, 2)
    assert time.monotonic() - started < 1.0
    assert shape.n_layers == 256 and len(shape.layer_bias_params) == 256
