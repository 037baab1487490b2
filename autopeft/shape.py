"""The shape of a classifier (:class:`~autopeft.encoder.ModelShape`) from a model, its config or its folder.

A shape says which families the model cannot run, so building one asks every family
(:data:`autopeft.modules.registry.FAMILIES`): this module sits above the families, which
themselves only read shapes.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from autopeft.encoder import (
    EncoderLayout,
    ModelShape,
    load_hf_config,
    quiet_transformers,
    resolve_model_dir,
)
from autopeft.errors import ModelError
from autopeft.layouts import architecture_for
from autopeft.modules.registry import FAMILIES

if TYPE_CHECKING:
    from torch import nn
    from transformers import PretrainedConfig


def unsupported(layout: EncoderLayout) -> dict[str, str]:
    """Family -> why it cannot run on the model of ``layout``: the architecture's rules, then each family's own check."""
    out = {}
    for name, family in FAMILIES.items():
        reason = layout.architecture.refused.get(name) or family.unsupported(layout)
        if reason:
            out[name] = reason
    return out


def shape_of(model: nn.Module) -> ModelShape:
    """The shape of a built classifier (weights or the meta device alike)."""
    layout = EncoderLayout(model)
    cfg = model.config
    linear = {}
    for target, where in layout.architecture.linears.items():
        mod = layout.layer(0).get_submodule(where.path)
        parts = where.part[1] if where.part else 1
        linear[target] = (int(mod.in_features), int(mod.out_features) // parts)
    biases = tuple(sum(p.numel() for n, p in layer.named_parameters() if n.endswith("bias")) for layer in layout.layers)
    return ModelShape(
        model_type=str(cfg.model_type),
        n_layers=layout.n_layers,
        hidden=int(cfg.hidden_size),
        heads=int(cfg.num_attention_heads),
        intermediate=linear[layout.architecture.feed_forward_output][0],
        max_positions=int(getattr(cfg, "max_position_embeddings", 512)),
        backbone_params=sum(p.numel() for _, p in layout.backbone_named_parameters()),
        head_params=sum(p.numel() for _, p in layout.head_named_parameters()),
        layer_bias_params=biases,
        linear_shapes=linear,
        unsupported=unsupported(layout),
        feed_forward_output=layout.architecture.feed_forward_output,
        is_decoder=layout.architecture.is_decoder,
    )


#: Layers from which a model's shape is extrapolated from copies of 2 and 3 layers (building every layer of a
#: deep model, even on the meta device, takes about 10 ms a layer on a small CPU).
EXTRAPOLATE_FROM = 8


def shape_of_config(config: PretrainedConfig, num_labels: int = 2) -> ModelShape:
    """Shape of the classifier ``config`` describes, built on the meta device (no weights).

    A deep model whose layers are all alike (no per-layer list in its config) is built with 2 and 3 layers,
    and its shape extended to all of them: exact, since every layer adds the same parameters; the two
    builds must agree that it does, else the whole model is built."""
    n = getattr(config, "num_hidden_layers", None)
    if isinstance(n, int) and n >= EXTRAPOLATE_FROM and not _per_layer_lists(config, n):
        try:
            two, three = (_built_shape(_with_layers(config, k), num_labels) for k in (2, 3))
        except Exception:  # noqa: BLE001 - a config that does not take fewer layers is built whole
            two = three = None
        if two is not None and three is not None and (two.n_layers, three.n_layers) == (2, 3):
            shape = _extended(two, three, n)
            if shape is not None:
                return shape
    return _built_shape(config, num_labels)


def _per_layer_lists(config: PretrainedConfig, n: int) -> bool:
    return any(isinstance(v, (list, tuple)) and len(v) == n for v in config.to_dict().values())


def _with_layers(config: PretrainedConfig, k: int) -> PretrainedConfig:
    return config.__class__.from_dict({**config.to_dict(), "num_hidden_layers": k})


def _extended(two: ModelShape, three: ModelShape, n: int) -> ModelShape | None:
    """The shape of ``n`` layers from those of 2 and 3, or None where a layer is not like the others."""
    from dataclasses import replace

    per_layer = three.backbone_params - two.backbone_params
    bias = three.layer_bias_params[-1]
    same = replace(three, n_layers=2, backbone_params=two.backbone_params, layer_bias_params=two.layer_bias_params)
    if same != two or len(set(three.layer_bias_params)) != 1:
        return None
    return replace(
        two, n_layers=n, backbone_params=two.backbone_params + (n - 2) * per_layer, layer_bias_params=(bias,) * n
    )


def _built_shape(config: PretrainedConfig, num_labels: int) -> ModelShape:
    import torch
    from transformers import AutoModelForSequenceClassification

    quiet_transformers()
    architecture_for(config.model_type)
    config = config.__class__.from_dict({**config.to_dict(), "num_labels": num_labels})
    try:
        with torch.device("meta"):
            model = AutoModelForSequenceClassification.from_config(config)
    except (ValueError, KeyError) as err:
        raise ModelError(f"cannot build a classifier for model type {config.model_type!r}: {err}") from None
    return shape_of(model)


@lru_cache(maxsize=32)
def _shape_of_dir(model_dir: str, num_labels: int) -> ModelShape:
    return shape_of_config(load_hf_config(Path(model_dir)), num_labels)


def model_shape(model: str | os.PathLike[str] | None, num_labels: int = 2) -> ModelShape:
    """Shape of the model at ``model`` (None: the bundled MiniLM; a folder, a ``.gguf`` file or a packaged
    name), read from its config only."""
    return _shape_of_dir(str(resolve_model_dir(model)), num_labels)
