"""What a PEFT family is: its settings, how it is injected and counted, and how spaces search it.

A family is one file in this package: a :class:`FamilySettings` model (its JSON settings,
defaults and validation) and a :class:`Family` subclass registered with :func:`register`
(injection, parameter counts, its one-line summary, size limits and its role in search
spaces). :class:`autopeft.config.PeftConfig`, the spaces, the summaries and the accounting are
built from the registry (:mod:`autopeft.modules.registry`, which names each family module). A
family that needs work on training data before injection (FISH's mask) has it in
:mod:`autopeft.train.prepare`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from autopeft.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from autopeft.encoder import EncoderLayout, ModelShape
    from autopeft.peft_format import PeftAdapter

#: Most layers a ``layers`` list or a per-layer size map may name (no encoder has more), and the
#: largest size at all: checked before anything loops over them.
MAX_LAYERS = 1024
MAX_SIZE = 1 << 20
SizeSpec = int | dict[int, int]
#: Names of the linear layers of a layer, as every family and layout uses them: an encoder has the
#: first six, a decoder the attention's four and its MLP's ``gate``, ``up`` and ``down``.
LinearTarget = Literal["query", "key", "value", "attention_output", "intermediate", "output", "gate", "up", "down"]
LINEAR_TARGETS: tuple[str, ...] = (
    "query", "key", "value", "attention_output", "intermediate", "output", "gate", "up", "down",
)  # fmt: skip


# -- settings ---------------------------------------------------------------------------------------
class FamilySettings(BaseModel):
    """A family's settings: frozen, unknown fields refused. Families without layers subclass this."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The field holding the per-layer size (None: the family has none).
    size_field: ClassVar[str | None] = None
    #: Fields added after stored configuration keys were made: left out of :meth:`canonical` while at
    #: their default, so that the keys of stored trials (and duplicate detection) do not change.
    added_fields: ClassVar[frozenset[str]] = frozenset()

    def sizes(self, n_layers: int) -> dict[int, int]:
        """Layer index -> size for every layer the family is placed in (empty: not placed per layer)."""
        return {}

    def layer_set(self, n_layers: int) -> list[int]:
        return list(self.sizes(n_layers))

    def canonical(self, n_layers: int) -> dict[str, Any]:
        """JSON with explicit layers: equal settings give equal dicts."""
        return self._dump_for_key()

    def _dump_for_key(self) -> dict[str, Any]:
        body = self.model_dump(exclude_none=True)
        for name in self.added_fields:
            if body.get(name) == type(self).model_fields[name].default:
                body.pop(name)
        return body

    def to_json(self) -> dict[str, Any]:
        """JSON as a person writes it: defaults left out."""
        return self.model_dump(exclude_defaults=True)


def check_layers(layers: list[int] | None) -> list[int] | None:
    """A ``layers`` list: bounded, no repeats, sorted."""
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


def check_size(value: SizeSpec, field: str) -> SizeSpec:
    """A size given once or per layer: bounded, at least 1."""
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


_LAYER_KEY = TypeAdapter(int)


def check_distinct_layer_keys(sizes: Mapping[Any, Any], field: str) -> None:
    """Refuse a per-layer map whose keys name one layer twice once read as integers (``"1"`` and ``" 1"``):
    the JSON object has two entries and the map would silently keep one of them."""
    seen: dict[int, Any] = {}
    for key in sizes:
        try:
            layer = _LAYER_KEY.validate_python(key)
        except ValidationError:
            continue  # not a layer index: the field's own validation says so
        if layer in seen:
            raise ValueError(f"{field} names layer {layer} more than once ({seen[layer]!r} and {key!r})")
        seen[layer] = key


def check_targets(targets: list[str]) -> list[str]:
    """Linear targets: no repeats, in the layer's order."""
    if len(set(targets)) != len(targets):
        raise ValueError(f"targets lists a layer more than once: {targets}")
    return sorted(targets, key=LINEAR_TARGETS.index)


class LayerSettings(FamilySettings):
    """Settings of a family placed on some layers (all by default), without a size."""

    layers: list[int] | None = Field(None, description="Layer indices; omitted means every layer.")

    @field_validator("layers")
    @classmethod
    def _layers(cls, v: list[int] | None) -> list[int] | None:
        return check_layers(v)

    def sizes(self, n_layers: int) -> dict[int, int]:
        chosen = range(n_layers) if self.layers is None else self.layers
        return {int(i): 1 for i in sorted(chosen)}

    def canonical(self, n_layers: int) -> dict[str, Any]:
        return {**self._dump_for_key(), "layers": self.layer_set(n_layers)}


class SizedSettings(LayerSettings):
    """Settings of a family with a size per layer (``size_field``), given once or as a map per layer."""

    @model_validator(mode="before")
    @classmethod
    def _one_key_per_layer(cls, data: Any) -> Any:
        raw = data.get(cls.size_field) if isinstance(data, dict) and cls.size_field else None
        if isinstance(raw, dict):
            check_distinct_layer_keys(raw, cls.size_field)
        return data

    @model_validator(mode="after")
    def _size_map_or_layers(self) -> SizedSettings:
        raw = getattr(self, self.size_field)
        if isinstance(raw, dict) and self.layers is not None and sorted(raw) != self.layers:
            raise ValueError(
                f"{self.size_field} is given per layer for layers {sorted(raw)} but layers is {self.layers}; "
                "give one of the two"
            )
        return self

    def sizes(self, n_layers: int) -> dict[int, int]:
        raw = getattr(self, self.size_field)
        if isinstance(raw, dict):
            return dict(sorted(raw.items()))
        chosen = range(n_layers) if self.layers is None else self.layers
        return {int(i): int(raw) for i in sorted(chosen)}

    def canonical(self, n_layers: int) -> dict[str, Any]:
        body = self._dump_for_key()
        body.pop(self.size_field)
        body.pop("layers", None)
        sizes = self.sizes(n_layers)
        if len(set(sizes.values())) == 1:
            return {self.size_field: next(iter(sizes.values())), "layers": list(sizes), **body}
        return {self.size_field: {str(k): v for k, v in sizes.items()}, **body}

    def to_json(self) -> dict[str, Any]:
        body = self.model_dump(exclude_defaults=True)
        raw = body.pop(self.size_field)  # the size first, as people write it
        return {self.size_field: {str(k): v for k, v in raw.items()} if isinstance(raw, dict) else raw, **body}


# -- injection ----------------------------------------------------------------------------------------
@dataclass
class Injected:
    """What one family added to a model: new modules and/or existing parameters it unfroze."""

    modules: list[nn.Module] = field(default_factory=list)
    params: list[nn.Parameter] = field(default_factory=list)
    #: Called by :meth:`PeftHandle.merge` (AdaMix averaging, prefix folding); None: nothing to merge.
    merge: Callable[[], None] | None = None
    #: Training passes are stochastic (AdaMix routing): the trainer adds a consistency term.
    stochastic: bool = False

    def trained(self) -> list[nn.Parameter]:
        out = {id(p): p for p in self.params}
        for m in self.modules:
            for p in m.parameters():
                if p.requires_grad:
                    out.setdefault(id(p), p)
        return list(out.values())


@dataclass
class InjectContext:
    """Inputs some families need besides their settings, gathered before any family ran."""

    #: id of each backbone parameter -> its name in the model before injection.
    backbone_names: dict[int, str] = field(default_factory=dict)
    #: Backbone parameter names that some family of the configuration trains whole.
    trained_whole: set[str] = field(default_factory=set)
    #: What :mod:`autopeft.train.prepare` estimated from data for a family (e.g. FISH's mask), by family name.
    prepared: dict[str, Any] = field(default_factory=dict)


# -- families -----------------------------------------------------------------------------------------
S = TypeVar("S", bound=FamilySettings)

#: How the search spaces place a family: a size per layer (``sized``), on/off per layer (``switch``),
#: one value for the whole model (``global``), or not searchable (None).
Placement = Literal["sized", "switch", "global"] | None


class Family(ABC, Generic[S]):
    """One PEFT family. Subclasses are stateless; state lives in the modules they inject."""

    name: ClassVar[str]
    settings_type: ClassVar[type[FamilySettings]]
    #: Position in configurations, summaries and spaces (canonical order).
    order: ClassVar[int]
    #: The space dimension of the family: its field, its "off" value, and how it is placed.
    placement: ClassVar[Placement] = None
    space_field: ClassVar[str | None] = None
    off: ClassVar[Any] = 0
    #: The smallest settings that still run every code path (the worker's self-check).
    check_settings: ClassVar[dict[str, Any]] = {}
    #: A prepared value saved beside trained weights under this file stem (None: nothing to save).
    artifact: ClassVar[str | None] = None
    #: Why the family cannot be combined with others (None: it can).
    exclusive: ClassVar[str | None] = None
    #: Why the family cannot be folded into the backbone's own weights for a plain ``transformers`` export
    #: (None: it can; its wrappers then have a ``folded()`` method, or it only changes existing tensors).
    unfoldable: ClassVar[str | None] = "it adds modules that a plain transformers model does not have"
    #: peft's name of the family (``peft_type`` of ``adapter_config.json``; None: HF peft has no such method):
    #: such a family implements :meth:`peft_adapter`.
    peft_type: ClassVar[str | None] = None
    #: Families whose weights travel in this family's peft adapter (LoRA carries BitFit as ``bias="all"``).
    peft_companions: ClassVar[frozenset[str]] = frozenset()
    #: peft stores the family as prompt learning: its keys start ``base_model.``, not ``base_model.model.``.
    peft_prompt: ClassVar[bool] = False

    @abstractmethod
    def inject(self, layout: EncoderLayout, settings: S, ctx: InjectContext) -> Injected:
        """Add the family's modules to the model and return what it trains."""

    @abstractmethod
    def count(self, settings: S, shape: ModelShape) -> int:
        """Parameters the family trains, from the model's shape alone."""

    def merged_count(self, settings: S, shape: ModelShape) -> int:
        """Parameters the family keeps after merging for inference (default: all it trains)."""
        return self.count(settings, shape)

    def size_limit(self, settings: S, shape: ModelShape) -> int:
        """The largest per-layer size this model allows (sized families)."""
        return MAX_SIZE

    def peft_refusal(
        self, families: Mapping[str, FamilySettings], layout: EncoderLayout, shape: ModelShape
    ) -> str | None:
        """Why the configuration ``families`` on ``layout``'s model cannot be this family's peft adapter (None: it can)."""
        return None

    def peft_adapter(
        self, families: Mapping[str, FamilySettings], layout: EncoderLayout, shape: ModelShape
    ) -> PeftAdapter:
        """This family's part of a peft adapter of ``families`` on ``layout``'s model: config fields and tensors by peft
        key (implemented by every family with a :attr:`peft_type`)."""
        raise NotImplementedError(f"HF peft has no {self.name}")

    def unsupported(self, layout: EncoderLayout) -> str | None:
        """Why this family cannot run on the model of ``layout`` (read from its modules), or None when it can.

        Runs on models built on the meta device too (the server has no weights): look at modules,
        signatures and shapes, never at values."""
        return None

    def check_supported(self, shape: ModelShape) -> None:
        """Raise :class:`ConfigError` (one line naming the family and the architecture) where ``shape``'s
        model cannot run this family."""
        reason = shape.unsupported.get(self.name)
        if reason:
            raise ConfigError(f"{self.name} is not supported on {shape.model_type}: {reason}")

    def check_fits(self, settings: S, shape: ModelShape) -> None:
        """Raise :class:`ConfigError` unless the settings fit a model of ``shape``."""
        self.check_supported(shape)
        missing = [t for t in getattr(settings, "targets", None) or () if t not in shape.linear_shapes]
        if missing:
            raise ConfigError(
                f"{self.name}: target {missing[0]!r} does not exist in this model (it has {sorted(shape.linear_shapes)})"
            )
        n = shape.n_layers
        bad = [i for i in settings.layer_set(n) if i >= n]
        if bad:
            raise ConfigError(f"{self.name}: layer {bad[0]} does not exist; the model has layers 0..{n - 1}")
        if settings.size_field is None:
            return
        limit = self.size_limit(settings, shape)
        for layer, size in settings.sizes(n).items():
            if size > limit:
                raise ConfigError(
                    f"{self.name}.{settings.size_field}={size} at layer {layer} is out of range (at most {limit} "
                    "for this model)"
                )

    def summary(self, settings: S, n_layers: int | None) -> str:
        """One line for people, e.g. ``lora r8 @0,5 q,v``; :meth:`summary_size` and :meth:`summary_extra` shape it."""
        text = self.name
        raw = getattr(settings, settings.size_field) if settings.size_field else None
        if raw is not None:
            sizes = sorted(set(raw.values())) if isinstance(raw, dict) else [raw]
            text += " " + self.summary_size("/".join(map(str, sizes)))
        if isinstance(settings, LayerSettings):
            layers = sorted(raw) if isinstance(raw, dict) else settings.layers
            if layers is None and n_layers:
                layers = list(range(n_layers))
            text += " @" + (layer_ranges(layers) if layers is not None else "all")
        extra = self.summary_extra(settings)
        return f"{text} {extra}" if extra else text

    def summary_size(self, sizes: str) -> str:
        return sizes

    def summary_extra(self, settings: S) -> str:
        return ""

    def trains_whole(self, settings: S, layout: EncoderLayout) -> set[str]:
        """Backbone parameter names (as in the model before injection) this family trains whole."""
        return set()

    def prepare_for_check(self, settings: S, model: nn.Module, trained_whole: set[str]) -> Any:
        """A stand-in for what :mod:`autopeft.train.prepare` estimates from data (FISH's mask), for the worker's
        self-check."""
        return None

    # -- spaces -------------------------------------------------------------------------------------
    def settings_from_layers(self, values: Mapping[int, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
        """Settings JSON from the space's per-layer values (``placement`` sized or switch)."""
        if self.placement == "switch":
            return {"layers": sorted(values), **fields}
        return {self.space_field: {str(k): v for k, v in values.items()}, **fields}

    def layer_values(self, settings: S, n_layers: int) -> dict[int, Any]:
        """The space's per-layer values of ``settings`` (inverse of :meth:`settings_from_layers`)."""
        if self.placement == "switch":
            return dict.fromkeys(settings.layer_set(n_layers), True)
        return settings.sizes(n_layers)


FAMILIES: dict[str, Family[Any]] = {}


def register(cls: type[Family[Any]]) -> type[Family[Any]]:
    """Class decorator: make a family available by its name."""
    FAMILIES[cls.name] = cls()
    return cls


def targets_summary(targets: list[str]) -> str:
    """``["query", "value", "output"]`` -> ``q,v,output``."""
    return ",".join(t[0] if t in ("query", "key", "value") else t for t in targets)


def layer_ranges(layers: list[int]) -> str:
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
