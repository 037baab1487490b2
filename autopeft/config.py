"""The canonical PEFT configuration: one optional entry per family.

The JSON form (see DESIGN.md) is accepted exactly as written::

    {"serial_adapter": {"size": 64, "layers": [0, 1], "experts": 1},
     "lora": {"rank": 8, "alpha": 16, "targets": ["query", "value"]}}

A missing family is off; a missing ``layers`` means every layer. As an extension a
size (``size``, ``length``, ``rank``) may be a map from layer index to size, e.g.
``{"size": {"0": 8, "5": 32}}``; the map's keys are then the layers.

Structure is checked here (:func:`parse_config`); whether a configuration fits a
particular model (layer indices, LoRA targets, size limits) is checked by
:meth:`PeftConfig.check_fits` against a :class:`~autopeft.encoder.ModelShape`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autopeft.errors import ConfigError

if TYPE_CHECKING:
    from autopeft.encoder import ModelShape

Activation = Literal["relu", "gelu", "tanh", "silu"]
LoraTarget = Literal["query", "key", "value", "attention_output", "intermediate", "output"]
LORA_TARGETS: tuple[str, ...] = ("query", "key", "value", "attention_output", "intermediate", "output")

#: Size limits that hold for every model (model-dependent limits are in ``check_fits``).
MAX_EXPERTS = 16
MAX_ADAPTER_FACTOR = 4  # a bottleneck may be at most 4x the hidden size
#: Most layers a ``layers`` list or a per-layer size map may name (no encoder has more), and the
#: largest size, layer index and prefix length at all: checked before anything loops over them.
MAX_LAYERS = 1024
MAX_SIZE = 1 << 20
SizeSpec = int | dict[int, int]


class _Family(BaseModel):
    """Common behaviour of family settings: frozen, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Name of the field that holds the per-layer size (None: the family has no size).
    size_field: ClassVar[str | None] = None

    def sizes(self, n_layers: int) -> dict[int, int]:
        """Map of layer index -> size for every layer the family is placed in."""
        raw = getattr(self, self.size_field) if self.size_field else 1
        if isinstance(raw, dict):
            return dict(sorted(raw.items()))
        layers = getattr(self, "layers", None)
        chosen = range(n_layers) if layers is None else layers
        return {int(i): int(raw) for i in sorted(chosen)}

    def layer_set(self, n_layers: int) -> list[int]:
        return list(self.sizes(n_layers))


def _check_size(value: SizeSpec, field: str) -> SizeSpec:
    if isinstance(value, dict) and len(value) > MAX_LAYERS:
        raise ValueError(f"a per-layer {field} map names {len(value)} layers; at most {MAX_LAYERS}")
    items = value.values() if isinstance(value, dict) else [value]
    for v in items:
        if v < 1:
            raise ValueError(f"{field} must be at least 1 (got {v}); leave the family out to turn it off")
        if v > MAX_SIZE:
            raise ValueError(f"{field} must be at most {MAX_SIZE} (got {v})")
    if isinstance(value, dict):
        if not value:
            raise ValueError(f"a per-layer {field} map needs at least one layer")
        for i in value:
            if not 0 <= i < MAX_LAYERS:
                raise ValueError(f"layer index {i} is not in 0..{MAX_LAYERS - 1}")
    return value


def _check_layers(layers: list[int] | None) -> list[int] | None:
    if layers is None:
        return None
    if len(layers) > MAX_LAYERS:
        raise ValueError(f"layers lists {len(layers)} entries; at most {MAX_LAYERS}")
    if any(not 0 <= i < MAX_LAYERS for i in layers):
        raise ValueError(f"layer indices must be >= 0 and below {MAX_LAYERS} (got {sorted(layers)[:20]})")
    if len(set(layers)) != len(layers):
        dup = sorted(i for i, n in Counter(layers).items() if n > 1)
        raise ValueError(f"layers lists {dup} more than once")
    return sorted(layers)


class _Placed(_Family):
    """A family placed per layer, with a size that may be given per layer."""

    layers: list[int] | None = Field(None, description="Layer indices; omitted means every layer.")

    @field_validator("layers")
    @classmethod
    def _layers(cls, v: list[int] | None) -> list[int] | None:
        return _check_layers(v)

    @model_validator(mode="after")
    def _size_map_or_layers(self) -> _Placed:
        raw = getattr(self, self.size_field)
        if isinstance(raw, dict) and self.layers is not None and sorted(raw) != self.layers:
            raise ValueError(
                f"{self.size_field} is given per layer for layers {sorted(raw)} but layers is {self.layers}; "
                "give one of the two"
            )
        return self


class SerialAdapter(_Placed):
    """Bottleneck after the feed-forward block (Pfeiffer placement); ``experts > 1`` is AdaMix."""

    size_field: ClassVar[str | None] = "size"
    size: SizeSpec = Field(description="Bottleneck width.")
    experts: int = Field(1, ge=1, le=MAX_EXPERTS, description="AdaMix experts; 1 is a plain adapter.")
    activation: Activation = Field("relu", description="Non-linearity inside the bottleneck.")

    @field_validator("size")
    @classmethod
    def _size(cls, v: SizeSpec) -> SizeSpec:
        return _check_size(v, "size")


class ParallelAdapter(_Placed):
    """Bottleneck beside the feed-forward block, its output multiplied by ``scaling``."""

    size_field: ClassVar[str | None] = "size"
    size: SizeSpec = Field(description="Bottleneck width.")
    scaling: float = Field(4.0, gt=0, le=1e3, allow_inf_nan=False, description="Output scale s.")
    activation: Activation = Field("relu", description="Non-linearity inside the bottleneck.")

    @field_validator("size")
    @classmethod
    def _size(cls, v: SizeSpec) -> SizeSpec:
        return _check_size(v, "size")


class Prefix(_Placed):
    """Trainable key/value prefixes in the self-attention of the chosen layers."""

    size_field: ClassVar[str | None] = "length"
    length: SizeSpec = Field(description="Number of virtual key/value positions.")
    reparameterize: bool = Field(False, description="Train through an MLP that is folded away afterwards.")
    hidden: int = Field(512, ge=1, le=65536, description="Width of the reparameterisation MLP.")

    @field_validator("length")
    @classmethod
    def _length(cls, v: SizeSpec) -> SizeSpec:
        return _check_size(v, "length")


class LoRA(_Placed):
    """Low-rank update ``B @ A * alpha / rank`` on the named linear layers."""

    size_field: ClassVar[str | None] = "rank"
    rank: SizeSpec = Field(description="Rank r of the update.")
    alpha: float | None = Field(
        None, gt=0, le=1e4, allow_inf_nan=False, description="Scale numerator; omitted means 2 * rank."
    )
    targets: list[LoraTarget] = Field(["query", "value"], min_length=1, description="Linear layers to adapt.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")

    @field_validator("rank")
    @classmethod
    def _rank(cls, v: SizeSpec) -> SizeSpec:
        return _check_size(v, "rank")

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"targets lists a layer more than once: {v}")
        return sorted(v, key=LORA_TARGETS.index)

    def scaling(self, rank: int) -> float:
        alpha = 2.0 * rank if self.alpha is None else self.alpha
        return alpha / rank


class BitFit(_Family):
    """The bias terms of the chosen layers are trained."""

    layers: list[int] | None = Field(None, description="Layer indices; omitted means every layer.")

    @field_validator("layers")
    @classmethod
    def _layers(cls, v: list[int] | None) -> list[int] | None:
        return _check_layers(v)


class Fish(_Family):
    """A sparse mask over backbone weights chosen by empirical Fisher information."""

    fraction: float = Field(gt=0.0, le=1.0, allow_inf_nan=False, description="Share of backbone weights trained.")
    samples: int = Field(1024, ge=1, le=10_000_000, description="Training examples used to estimate Fisher.")
    ird: bool = Field(False, description="Choose samples and parameters by Iterative Range Decreasing.")

    def mask_size(self, backbone_params: int) -> int:
        """Number of backbone entries the mask unfreezes."""
        return max(1, min(backbone_params, round(self.fraction * backbone_params)))


class Full(_Family):
    """Full fine-tuning: every backbone weight is trained (a baseline, not a search choice)."""


FAMILY_FIELDS: dict[str, type[_Family]] = {
    "serial_adapter": SerialAdapter,
    "parallel_adapter": ParallelAdapter,
    "prefix": Prefix,
    "lora": LoRA,
    "bitfit": BitFit,
    "fish": Fish,
    "full": Full,
}


class PeftConfig(BaseModel):
    """A whole configuration; each family is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    serial_adapter: SerialAdapter | None = None
    parallel_adapter: ParallelAdapter | None = None
    prefix: Prefix | None = None
    lora: LoRA | None = None
    bitfit: BitFit | None = None
    fish: Fish | None = None
    full: Full | None = None

    @model_validator(mode="after")
    def _full_alone(self) -> PeftConfig:
        if self.full is not None and len(self.families()) > 1:
            others = [n for n in self.families() if n != "full"]
            raise ValueError(f"full fine-tuning already trains everything; remove {others} or full")
        return self

    def families(self) -> dict[str, _Family]:
        """The families that are on, in canonical order."""
        return {name: getattr(self, name) for name in FAMILY_FIELDS if getattr(self, name) is not None}

    def check_fits(self, shape: ModelShape) -> None:
        """Raise :class:`ConfigError` unless every family fits the model ``shape``."""
        n = shape.n_layers
        for name, fam in self.families().items():
            layers = fam.layer_set(n) if isinstance(fam, (_Placed, BitFit)) else []
            bad = [i for i in layers if i >= n]
            if bad:
                raise ConfigError(f"{name}: layer {bad[0]} does not exist; the model has layers 0..{n - 1}")
            if isinstance(fam, _Placed):
                limit = _size_limit(name, fam, shape)
                for layer, size in fam.sizes(n).items():
                    if size > limit:
                        raise ConfigError(
                            f"{name}.{fam.size_field}={size} at layer {layer} is out of range (at most {limit} "
                            f"for this model)"
                        )
            if isinstance(fam, LoRA):
                missing = [t for t in fam.targets if t not in shape.linear_shapes]
                if missing:
                    raise ConfigError(
                        f"lora: target {missing[0]!r} does not exist in this model "
                        f"(it has {sorted(shape.linear_shapes)})"
                    )

    def canonical(self, n_layers: int) -> dict[str, Any]:
        """Canonical JSON with explicit layers: equal configurations give equal dicts."""
        out: dict[str, Any] = {}
        for name, fam in self.families().items():
            body = fam.model_dump(exclude_none=True)
            if isinstance(fam, (_Placed, BitFit)):
                sizes = fam.sizes(n_layers)
                if isinstance(fam, _Placed):
                    body.pop(fam.size_field)
                    body.pop("layers", None)
                    if len(set(sizes.values())) == 1:
                        body = {fam.size_field: next(iter(sizes.values())), "layers": list(sizes), **body}
                    else:
                        body = {fam.size_field: {str(k): v for k, v in sizes.items()}, **body}
                else:
                    body["layers"] = list(sizes)
            out[name] = body
        return out

    def key(self, n_layers: int) -> str:
        """A string that is equal for equal configurations (used to refuse duplicates)."""
        return json.dumps(self.canonical(n_layers), sort_keys=True, separators=(",", ":"))

    def summary(self, n_layers: int | None = None) -> str:
        """One line for people: ``serial_adapter 64 @0-5 x4 experts + lora r8 @0,5 q,v``."""
        parts = []
        for name, fam in self.families().items():
            text = name
            raw = getattr(fam, fam.size_field) if fam.size_field else None
            if raw is not None:
                sizes = sorted(set(raw.values())) if isinstance(raw, dict) else [raw]
                text += " " + {"rank": "r", "length": "len "}.get(fam.size_field, "") + "/".join(map(str, sizes))
            if isinstance(fam, (_Placed, BitFit)):
                layers = sorted(raw) if isinstance(raw, dict) else fam.layers
                if layers is None and n_layers:
                    layers = list(range(n_layers))
                text += " @" + (_ranges(layers) if layers is not None else "all")
            if isinstance(fam, SerialAdapter) and fam.experts > 1:
                text += f" x{fam.experts} experts"
            if isinstance(fam, LoRA):
                text += " " + ",".join(t[0] if t in ("query", "key", "value") else t for t in fam.targets)
            if isinstance(fam, Fish):
                text += f" {100 * fam.fraction:g}%" + (" ird" if fam.ird else "")
            parts.append(text)
        return " + ".join(parts) or "head only"

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON-ready data, as the user wrote it (defaults omitted)."""
        out: dict[str, Any] = {}
        for name, fam in self.families().items():
            body = fam.model_dump(exclude_defaults=True)
            if fam.size_field:  # the size first, as people write it
                raw = body.pop(fam.size_field)
                body = {fam.size_field: {str(k): v for k, v in raw.items()} if isinstance(raw, dict) else raw, **body}
            out[name] = body
        return out


def _ranges(layers: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``0-2,5``."""
    out, run = [], []
    for i in sorted(layers):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)))
    return ",".join(out)


def _size_limit(name: str, fam: _Family, shape: ModelShape) -> int:
    if isinstance(fam, LoRA):
        return min(min(shape.linear_shapes[t]) for t in fam.targets if t in shape.linear_shapes)
    if isinstance(fam, Prefix):
        return shape.max_positions
    return MAX_ADAPTER_FACTOR * shape.hidden


def _format_validation(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
        loc = loc.replace(".int", "").replace(".dict[int,int]", "")
        if e["type"] == "extra_forbidden":
            field = e["loc"][-1]
            where = ".".join(str(p) for p in e["loc"][:-1])
            if where:
                known = list(FAMILY_FIELDS[where].model_fields) if where in FAMILY_FIELDS else []
                parts.append(f"unknown field {field!r} in {where} (known: {', '.join(known)})")
            else:
                parts.append(f"unknown family {field!r} (known: {', '.join(FAMILY_FIELDS)})")
            continue
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "literal_error":
            loc = ".".join(str(p) for p in e["loc"] if not isinstance(p, int))
            msg = f"{e['input']!r} is not one of {e['ctx']['expected']}"
        parts.append(f"{loc}: {msg}" if loc else msg)
    # Union types report each alternative; keep the first message per location.
    seen: dict[str, str] = {}
    for p in parts:
        seen.setdefault(p.split(":")[0], p)
    return "; ".join(seen.values())


def parse_config(data: Mapping[str, Any] | PeftConfig) -> PeftConfig:
    """Validate JSON data into a :class:`PeftConfig` or raise :class:`ConfigError`."""
    if isinstance(data, PeftConfig):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"a configuration must be a JSON object, got {type(data).__name__}")
    try:
        return PeftConfig.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(f"invalid configuration: {_format_validation(err)}") from None


def load_config(text_or_path: str) -> PeftConfig:
    """Parse a configuration given as inline JSON or as the path of a JSON file."""
    path = Path(text_or_path)
    if path.is_file():
        source, text = str(path), path.read_text(encoding="utf-8")
    elif text_or_path.strip()[:1] in ("{", "["):
        source, text = "inline JSON", text_or_path
    else:
        raise ConfigError(f"configuration {text_or_path!r} is neither JSON nor an existing file")
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{source} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    return parse_config(data)


def _refuse_constant(name: str) -> float:
    raise ConfigError(f"JSON constant {name} is not allowed in a configuration")
