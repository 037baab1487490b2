"""The JSON description of a search space (built-in spaces are written in it too).

::

    {"name": "small",
     "groups": 3, "grouping": "spindle",      # or "groups": [[0, 1], [2, 3], [4, 5]]
     "layer_bits": false,                     # AutoPEFT: one on/off bit per layer
     "families": {
       "serial_adapter": {"size": [0, 8, 16, 32], "experts": [1, 2, 4]},
       "lora": {"rank": {"min": 1, "max": 32, "log": true, "off": true}, "alpha": 16,
                "targets": {"choices": [["query", "value"], ["query", "key", "value"]]}},
       "bitfit": {"enabled": [false, true]},
       "fish": {"fraction": [0, 0.001, 0.005], "samples": 256}}}

Each family field is a fixed value, a list of choices (``{"choices": [...]}`` for
list-valued fields such as ``targets``), or a range ``{"min", "max", "log", "steps",
"off"}``. The family's size field (``size``, ``length``, ``rank``, bitfit's
``enabled``, fish's ``fraction``) turns the family off at 0 / false, and is searched
once per layer group unless ``"per_group": false``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autopeft.config import FAMILY_FIELDS
from autopeft.errors import SpaceError
from autopeft.space.dims import GROUPINGS

#: The field whose value places a family, and the value that turns it off.
PRIMARY: dict[str, tuple[str, Any]] = {
    "serial_adapter": ("size", 0),
    "parallel_adapter": ("size", 0),
    "prefix": ("length", 0),
    "lora": ("rank", 0),
    "bitfit": ("enabled", False),
    "fish": ("fraction", 0),
}
_LIST_FIELDS = {"targets"}
_INT_FIELDS = {"size", "length", "rank", "experts", "samples", "hidden"}


class SpaceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("custom", min_length=1, max_length=100)
    groups: int | list[list[int]] = Field(1, description="Number of layer groups, or the groups themselves.")
    grouping: Literal["spindle", "uniform", "increasing", "decreasing"] = "spindle"
    layer_bits: bool = Field(False, description="Add one on/off dimension per layer (AutoPEFT).")
    families: dict[str, dict[str, Any]] = Field(min_length=1)

    @field_validator("families")
    @classmethod
    def _families(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, fields in v.items():
            if name not in PRIMARY:
                raise ValueError(f"unknown family {name!r} (a space can search {', '.join(PRIMARY)})")
            known = {f for f in FAMILY_FIELDS[name].model_fields if f != "layers"} | {"per_group", PRIMARY[name][0]}
            for field in fields:
                if field == "layers":
                    raise ValueError(f"{name}.layers: a space places families by groups and layer_bits")
                if field not in known:
                    raise ValueError(f"unknown field {field!r} in {name} (known: {', '.join(sorted(known))})")
            if name != "bitfit" and PRIMARY[name][0] not in fields:
                raise ValueError(f"{name} needs its {PRIMARY[name][0]!r}")
        return {k: v[k] for k in PRIMARY if k in v}


def parse_space_spec(data: Any) -> SpaceSpec:
    """Validate a space description or raise :class:`SpaceError` naming what is wrong."""
    if isinstance(data, SpaceSpec):
        return data
    if not isinstance(data, dict):
        raise SpaceError(f"a space must be a name or a JSON object, got {type(data).__name__}")
    try:
        return SpaceSpec.model_validate(data)
    except ValidationError as err:
        errors = err.errors()
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = f"unknown field {first['loc'][-1]!r} in the space (known: {', '.join(SpaceSpec.model_fields)})"
            loc = ""
        raise SpaceError(f"invalid space: {loc + ': ' if loc else ''}{msg}") from None


def field_values(family: str, field: str, raw: Any) -> tuple[Any, ...]:
    """The values a field may take: one value (fixed) or several (a dimension)."""
    where = f"{family}.{field}"
    if isinstance(raw, dict):
        if "choices" in raw:
            if set(raw) != {"choices"} or not isinstance(raw["choices"], list) or not raw["choices"]:
                raise SpaceError(f"{where}: 'choices' must be the only key and a non-empty list")
            values = tuple(_freeze(v) for v in raw["choices"])
        else:
            values = _range_values(where, field, raw)
    elif isinstance(raw, list) and field not in _LIST_FIELDS:
        if not raw:
            raise SpaceError(f"{where}: a list of choices cannot be empty")
        values = tuple(raw)
    else:
        values = (_freeze(raw),)
    if len(set(map(repr, values))) != len(values):
        raise SpaceError(f"{where}: choices repeat a value: {list(values)}")
    return values


def _freeze(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _range_values(where: str, field: str, raw: dict[str, Any]) -> tuple[Any, ...]:
    unknown = set(raw) - {"min", "max", "log", "steps", "off"}
    if unknown or "min" not in raw or "max" not in raw:
        raise SpaceError(f"{where}: a range is {{'min', 'max', 'log', 'steps', 'off'}}, got {sorted(raw)}")
    lo, hi, log, steps = raw["min"], raw["max"], bool(raw.get("log", False)), raw.get("steps")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (lo, hi)):
        raise SpaceError(f"{where}: min and max must be finite numbers")
    if not lo < hi or (log and lo <= 0):
        raise SpaceError(f"{where}: need 0 < min < max for a log range and min < max otherwise (got {lo}, {hi})")
    if steps is not None and (not isinstance(steps, int) or steps < 2 or steps > 256):
        raise SpaceError(f"{where}: steps must be an integer in 2..256")
    if field in _INT_FIELDS:
        if log and steps is None:
            values, s = [], int(lo)
            while s <= hi:
                values.append(s)
                s *= 2
        elif steps is None and hi - lo <= 64:
            values = list(range(int(lo), int(hi) + 1))
        else:
            values = sorted({round(v) for v in _spaced(lo, hi, steps or 16, log)})
    else:
        values = [float(v) for v in _spaced(lo, hi, steps or 8, log)]
    off = PRIMARY.get(where.split(".")[0], (None, 0))[1]
    return ((off,) if raw.get("off") else ()) + tuple(values)


def _spaced(lo: float, hi: float, steps: int, log: bool) -> list[float]:
    if log:
        return [lo * (hi / lo) ** (k / (steps - 1)) for k in range(steps)]
    return [lo + (hi - lo) * k / (steps - 1) for k in range(steps)]


__all__ = ["GROUPINGS", "PRIMARY", "SpaceSpec", "field_values", "parse_space_spec"]
