"""The spaces that ship: ``autopeft``, ``grouped``, ``full`` and ``lora``, written as space specs.

Each is built from the model's shape, encoder or decoder: ladders from its sizes, LoRA target
sets from its linears (a decoder's MLP is ``gate``, ``up`` and ``down``), and only the
families the model supports.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from autopeft.encoder import ModelShape
from autopeft.space.dims import log2_ladder
from autopeft.space.spec import SpaceSpec

#: Largest prefix on the ladders: longer prefixes cost attention time for little gain.
MAX_PREFIX = 128
FISH_FRACTIONS = [0, 0.0005, 0.001, 0.002, 0.005, 0.01]
#: The lora space's LoRA alphas (one per configuration; peft's ``lora_alpha``).
LORA_ALPHAS = [8, 16, 32, 64]
#: LoRA's target sets, the last growing to every linear of the model (:func:`lora_target_sets`).
LORA_TARGET_SETS = [["query", "value"], ["query", "key", "value", "attention_output"]]


def lora_target_sets(shape: ModelShape) -> list[list[str]]:
    """The attention's query and value; all four of its linears; every linear of a layer (MLP included)."""
    return [*LORA_TARGET_SETS, list(shape.linear_shapes)]


def _ladders(shape: ModelShape) -> dict[str, list[int]]:
    lora_top = min(64, min(min(s) for s in shape.linear_shapes.values()))
    return {
        "adapter": list(log2_ladder(shape.hidden)),
        "prefix": list(log2_ladder(min(MAX_PREFIX, shape.max_positions))),
        "lora": list(log2_ladder(lora_top)),
    }


def autopeft_space(shape: ModelShape) -> SpaceSpec:
    """AutoPEFT (seed 003): serial, parallel and prefix sizes, plus one insertion bit per layer."""
    lad = _ladders(shape)
    return SpaceSpec(
        name="autopeft",
        layer_bits=True,
        families={
            "serial_adapter": {"size": lad["adapter"]},
            "parallel_adapter": {"size": lad["adapter"]},
            "prefix": {"length": lad["prefix"]},
        },
    )


def grouped_space(shape: ModelShape) -> SpaceSpec:
    """Design spaces (seed 000): spindle layer groups, each family on/off and sized per group."""
    lad = _ladders(shape)
    return SpaceSpec(
        name="grouped",
        groups=min(4, shape.n_layers),
        grouping="spindle",
        families={
            "serial_adapter": {"size": lad["adapter"]},
            "parallel_adapter": {"size": lad["adapter"]},
            "prefix": {"length": lad["prefix"]},
            "lora": {"rank": lad["lora"]},
            "bitfit": {"enabled": [False, True]},
        },
    )


def full_space(shape: ModelShape) -> SpaceSpec:
    """Every family per layer group, with AdaMix experts, LoRA targets and DoRA, (IA)³ and FISH fraction."""
    lad = _ladders(shape)
    return SpaceSpec(
        name="full",
        groups=min(6, shape.n_layers),
        grouping="spindle",
        families={
            "serial_adapter": {"size": lad["adapter"], "experts": [1, 2, 4]},
            "parallel_adapter": {"size": lad["adapter"]},
            "prefix": {"length": lad["prefix"]},
            "lora": {"rank": lad["lora"], "targets": {"choices": lora_target_sets(shape)}, "dora": [False, True]},
            "ia3": {"enabled": [False, True]},
            "bitfit": {"enabled": [False, True]},
            "fish": {"fraction": FISH_FRACTIONS, "samples": 256},
        },
    )


def lora_space(shape: ModelShape) -> SpaceSpec:
    """Only what HF peft represents (``autopeft export --to peft``): per layer whether LoRA is there and its rank
    (peft's ``layers_to_transform`` and ``rank_pattern``), its targets, alpha and the DoRA bit, or instead (IA)³
    on the chosen layers; a ``family`` dimension picks LoRA or (IA)³, one method per adapter as in peft."""
    lad = _ladders(shape)
    return SpaceSpec(
        name="lora",
        groups=shape.n_layers,
        grouping="uniform",
        one_family=True,
        families={
            "lora": {
                "rank": lad["lora"],
                "alpha": LORA_ALPHAS,
                "targets": {"choices": lora_target_sets(shape)},
                "dora": [False, True],
            },
            "ia3": {"enabled": [False, True]},
        },
    )


def _supported(build: Callable[[ModelShape], SpaceSpec]) -> Callable[[ModelShape], SpaceSpec]:
    """A built-in space offers only the families the model supports (``shape.unsupported``)."""

    @wraps(build)
    def supported(shape: ModelShape) -> SpaceSpec:
        spec = build(shape)
        if not any(name in shape.unsupported for name in spec.families):
            return spec
        families = {name: dims for name, dims in spec.families.items() if name not in shape.unsupported}
        return spec.model_copy(update={"families": families})

    return supported


BUILTIN = {
    "autopeft": _supported(autopeft_space),
    "grouped": _supported(grouped_space),
    "full": _supported(full_space),
    "lora": _supported(lora_space),
}
