"""The canonical PEFT configuration: one optional entry per family.

The JSON form (see DESIGN.md) is accepted exactly as written::

    {"serial_adapter": {"size": 64, "layers": [0, 1], "experts": 1},
     "lora": {"rank": 8, "alpha": 16, "targets": ["query", "value"]}}

A missing family is off; a missing ``layers`` means every layer. As an extension a
size (``size``, ``length``, ``rank``) may be a map from layer index to size, e.g.
``{"size": {"0": 8, "5": 32}}``; the map's keys are then the layers.

:class:`PeftConfig` has one field per registered family (:mod:`autopeft.modules.registry`),
each family's settings model and behaviour living in its own file. Structure is checked
here (:func:`parse_config`); whether a configuration fits a particular model (layer
indices, targets, size limits) is checked by :meth:`PeftConfig.check_fits`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model, model_validator

from autopeft.errors import ConfigError
from autopeft.modules.base import FamilySettings
from autopeft.modules.registry import FAMILIES

if TYPE_CHECKING:
    from autopeft.encoder import ModelShape


class _ConfigBase(BaseModel):
    """What every configuration does; :class:`PeftConfig` adds one field per family."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _exclusive_alone(self) -> _ConfigBase:
        present = self.families()
        for name in present:
            reason = FAMILIES[name].exclusive
            if reason and len(present) > 1:
                others = [n for n in present if n != name]
                raise ValueError(f"{reason}; remove {others} or {name}")
        return self

    def families(self) -> dict[str, FamilySettings]:
        """The families that are on, in canonical order."""
        return {name: getattr(self, name) for name in FAMILIES if getattr(self, name) is not None}

    def check_fits(self, shape: ModelShape) -> None:
        """Raise :class:`ConfigError` unless every family fits the model ``shape``."""
        for name, settings in self.families().items():
            FAMILIES[name].check_fits(settings, shape)

    def canonical(self, n_layers: int) -> dict[str, Any]:
        """Canonical JSON with explicit layers: equal configurations give equal dicts."""
        return {name: settings.canonical(n_layers) for name, settings in self.families().items()}

    def key(self, n_layers: int) -> str:
        """A string that is equal for equal configurations (used to refuse duplicates)."""
        return json.dumps(self.canonical(n_layers), sort_keys=True, separators=(",", ":"))

    def summary(self, n_layers: int | None = None) -> str:
        """One line for people: ``serial_adapter 64 @0-5 x4 experts + lora r8 @0,5 q,v``."""
        parts = [FAMILIES[name].summary(settings, n_layers) for name, settings in self.families().items()]
        return " + ".join(parts) or "head only"

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON-ready data, as the user wrote it (defaults omitted)."""
        return {name: settings.to_json() for name, settings in self.families().items()}


PeftConfig: type[_ConfigBase] = create_model(
    "PeftConfig",
    __base__=_ConfigBase,
    __doc__="A whole configuration; each family is optional.",
    **{name: (family.settings_type | None, None) for name, family in FAMILIES.items()},
)


def _format_validation(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
        loc = loc.replace(".int", "").replace(".dict[int,int]", "")
        if e["type"] == "extra_forbidden":
            field = e["loc"][-1]
            where = ".".join(str(p) for p in e["loc"][:-1])
            if where:
                known = list(FAMILIES[where].settings_type.model_fields) if where in FAMILIES else []
                parts.append(f"unknown field {field!r} in {where} (known: {', '.join(known)})")
            else:
                parts.append(f"unknown family {field!r} (known: {', '.join(FAMILIES)})")
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


def parse_config(data: Mapping[str, Any] | _ConfigBase) -> _ConfigBase:
    """Validate JSON data into a :class:`PeftConfig` or raise :class:`ConfigError`."""
    if isinstance(data, PeftConfig):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"a configuration must be a JSON object, got {type(data).__name__}")
    try:
        return PeftConfig.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(f"invalid configuration: {_format_validation(err)}") from None


def load_config(text_or_path: str) -> _ConfigBase:
    """Parse a configuration given as inline JSON or as the path of a JSON file."""
    from pathlib import Path

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
