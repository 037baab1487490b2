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

from pydantic import BaseModel, ConfigDict, create_model, model_validator

from autopeft.errors import ConfigError
from autopeft.inputs import error_location, load_json_arg, located, validate_object
from autopeft.modules.base import FamilySettings, LayerSettings
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

    def placement(self, n_layers: int) -> dict[str, dict[str, Any]]:
        """Where each family sits, for displays: ``{family: {"layers": {layer: size or True} | None,
        "size_field": name | None}}``; ``layers`` is None for a family not placed per layer."""
        out: dict[str, dict[str, Any]] = {}
        for name, settings in self.families().items():
            layers = None
            if isinstance(settings, LayerSettings):
                sizes = settings.sizes(n_layers)
                layers = {str(i): (v if settings.size_field else True) for i, v in sizes.items()}
            out[name] = {"layers": layers, "size_field": settings.size_field}
        return out

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON-ready data, as the user wrote it (defaults omitted)."""
        return {name: settings.to_json() for name, settings in self.families().items()}


PeftConfig: type[_ConfigBase] = create_model(
    "PeftConfig",
    __base__=_ConfigBase,
    __doc__="A whole configuration; each family is optional.",
    **{name: (family.settings_type | None, None) for name, family in FAMILIES.items()},
)


def _explain(e: Mapping[str, Any], where: str) -> str | None:
    """A configuration's own words for an unknown family or field and for a value outside its choices."""
    if e["type"] == "extra_forbidden":
        field, family = e["loc"][-1], error_location(e["loc"][:-1])
        if not family:
            return f"unknown family {field!r} (known: {', '.join(FAMILIES)})"
        known = list(FAMILIES[family].settings_type.model_fields) if family in FAMILIES else []
        return f"unknown field {field!r} in {family} (known: {', '.join(known)})"
    if e["type"] == "literal_error":
        where = error_location(p for p in e["loc"] if not isinstance(p, int))
        return located(where, f"{e['input']!r} is not one of {e['ctx']['expected']}")
    return None


def parse_config(data: Mapping[str, Any] | _ConfigBase) -> _ConfigBase:
    """Validate JSON data into a :class:`PeftConfig` or raise :class:`ConfigError`."""
    return validate_object(PeftConfig, data, "configuration", ConfigError, got=False, explain=_explain)


def load_config(text_or_path: str) -> _ConfigBase:
    """Parse a configuration given as inline JSON or as the path of a JSON file."""
    return parse_config(load_json_arg(text_or_path, "configuration", ConfigError, object_only=False))
