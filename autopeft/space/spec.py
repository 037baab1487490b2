"""The JSON description of a search space (built-in spaces are written in it too).

::

    {"name": "small",
     "groups": 3, "grouping": "spindle",      # or "groups": [[0, 1], [2, 3], [4, 5]]
     "layer_bits": false,                     # AutoPEFT: one on/off bit per layer
     "one_family": false,                     # true: a "family" dimension picks one family per configuration
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
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autopeft.errors import SpaceError
from autopeft.inputs import validate_object
from autopeft.modules.registry import FAMILIES
from autopeft.space.dims import GROUPINGS

#: The families a space can search (a family's ``placement`` says how), in canonical order.
SEARCHABLE = {name: family for name, family in FAMILIES.items() if family.placement is not None}


def _field_kinds(name: str) -> tuple[set[str], set[str]]:
    """The integer fields and the list-valued fields of a family's settings."""
    ints, lists = set(), set()
    for field, info in FAMILIES[name].settings_type.model_fields.items():
        kinds = {info.annotation, *typing.get_args(info.annotation)}
        if int in kinds:
            ints.add(field)
        if any(typing.get_origin(kind) is list for kind in kinds):  # list[...] or list[...] | None
            lists.add(field)
    return ints, lists


#: Most values one field may take (choices, or a range's ladder); checked before any value is made.
MAX_VALUES = 256
#: Largest magnitude of a range's ends (no model has a size near it; keeps ladders arithmetic exact).
MAX_RANGE = 10**9
#: Most layer groups an explicit ``groups`` list may name, and most layers in one group.
MAX_GROUPS = 1024


class SpaceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("custom", min_length=1, max_length=100)
    groups: int | Annotated[list[Annotated[list[int], Field(max_length=MAX_GROUPS)]], Field(max_length=MAX_GROUPS)] = (
        Field(1, description="Number of layer groups, or the groups themselves.")
    )
    grouping: Literal["spindle", "uniform", "increasing", "decreasing"] = "spindle"
    layer_bits: bool = Field(False, description="Add one on/off dimension per layer (AutoPEFT).")
    one_family: bool = Field(
        False,
        description="Each configuration holds one of the families, chosen by a 'family' dimension, and is never "
        "empty (HF peft's one method per adapter: the lora space).",
    )
    families: dict[str, dict[str, Any]] = Field(min_length=1)

    @field_validator("families")
    @classmethod
    def _families(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, fields in v.items():
            family = SEARCHABLE.get(name)
            if family is None:
                raise ValueError(f"unknown family {name!r} (a space can search {', '.join(SEARCHABLE)})")
            settings = family.settings_type.model_fields
            known = {f for f in settings if f != "layers"} | {"per_group", family.space_field}
            for field in fields:
                if field == "layers":
                    raise ValueError(f"{name}.layers: a space places families by groups and layer_bits")
                if field not in known:
                    raise ValueError(f"unknown field {field!r} in {name} (known: {', '.join(sorted(known))})")
            if family.placement != "switch" and family.space_field not in fields:
                raise ValueError(f"{name} needs its {family.space_field!r}")
        return {k: v[k] for k in SEARCHABLE if k in v}

    @model_validator(mode="after")
    def _one_family_places_by_layer(self) -> SpaceSpec:
        if self.one_family and any(SEARCHABLE[f].placement == "global" for f in self.families):
            raise ValueError("one_family: every family must be placed by layer (fish is placed on the whole model)")
        return self


def parse_space_spec(data: Any) -> SpaceSpec:
    """Validate a space description or raise :class:`SpaceError` naming what is wrong."""
    if isinstance(data, SpaceSpec):
        return data
    if not isinstance(data, dict):
        raise SpaceError(f"a space must be a name or a JSON object, got {type(data).__name__}")
    return validate_object(SpaceSpec, data, "space", SpaceError, first=True, got=False, explain=_unknown_field)


def _unknown_field(e: Mapping[str, Any], where: str) -> str | None:
    if e["type"] != "extra_forbidden":
        return None
    return f"unknown field {e['loc'][-1]!r} in the space (known: {', '.join(SpaceSpec.model_fields)})"


def field_values(family: str, field: str, raw: Any) -> tuple[Any, ...]:
    """The values a field may take: one value (fixed) or several (a dimension)."""
    where = f"{family}.{field}"
    if isinstance(raw, dict):
        if "choices" in raw:
            if set(raw) != {"choices"} or not isinstance(raw["choices"], list) or not raw["choices"]:
                raise SpaceError(f"{where}: 'choices' must be the only key and a non-empty list")
            _check_count(where, len(raw["choices"]))
            values = tuple(_freeze(v) for v in raw["choices"])
        else:
            values = _range_values(where, field, raw)
    elif isinstance(raw, list) and field not in _field_kinds(family)[1]:
        if not raw:
            raise SpaceError(f"{where}: a list of choices cannot be empty")
        _check_count(where, len(raw))
        values = tuple(raw)
    else:
        values = (_freeze(raw),)
    if len(set(map(repr, values))) != len(values):
        raise SpaceError(f"{where}: choices repeat a value: {list(values)}")
    return values


def _freeze(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _check_count(where: str, n: int) -> None:
    if n > MAX_VALUES:
        raise SpaceError(f"{where}: {n} values; a field takes at most {MAX_VALUES}")


def _range_values(where: str, field: str, raw: dict[str, Any]) -> tuple[Any, ...]:
    """The ladder of a range, counted before it is made (at most ``MAX_VALUES`` values)."""
    unknown = set(raw) - {"min", "max", "log", "steps", "off"}
    if unknown or "min" not in raw or "max" not in raw:
        raise SpaceError(f"{where}: a range is {{'min', 'max', 'log', 'steps', 'off'}}, got {sorted(raw)}")
    lo, hi, log, steps = raw["min"], raw["max"], raw.get("log", False), raw.get("steps")
    if not all(_finite_number(v) for v in (lo, hi)):
        raise SpaceError(f"{where}: min and max must be finite numbers")
    if not isinstance(log, bool) or not isinstance(raw.get("off", False), bool):
        raise SpaceError(f"{where}: log and off are true or false")
    if not (abs(lo) <= MAX_RANGE and abs(hi) <= MAX_RANGE):
        raise SpaceError(f"{where}: min and max must lie within +-{MAX_RANGE:g} (got {lo}, {hi})")
    if not lo < hi or (log and lo <= 0):
        raise SpaceError(f"{where}: need 0 < min < max for a log range and min < max otherwise (got {lo}, {hi})")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= MAX_VALUES):
        raise SpaceError(f"{where}: steps must be an integer in 2..{MAX_VALUES}")
    family = where.split(".")[0]
    if field in _field_kinds(family)[0]:
        values = _int_ladder(where, lo, hi, log, steps)
    else:
        values = [float(v) for v in _spaced(lo, hi, steps or 8, log)]
    return ((FAMILIES[family].off,) if raw.get("off") else ()) + tuple(values)


def _finite_number(v: Any) -> bool:
    """A JSON number that is finite; an integer of any size counts (the range check bounds it next, and
    ``math.isfinite`` would raise OverflowError on one beyond a float's range)."""
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and math.isfinite(v))


def _int_ladder(where: str, lo: float, hi: float, log: bool, steps: int | None) -> list[int]:
    """Integer values of a range: doubling from ``min`` (log), every integer (short linear
    ranges), or ``steps`` rounded points."""
    if lo < 0 or (log and lo < 1):
        need = "1 <= min for a log range" if log else "0 <= min"
        raise SpaceError(f"{where}: an integer range needs {need} (got min {lo})")
    if log and steps is None:
        start = math.ceil(lo)
        count = int(math.log2(hi / start)) + 1 if start <= hi else 0
        while start * 2 ** (count - 1) > hi:  # float log2 may round up at an exact power
            count -= 1
        _check_count(where, count)
        values = [start * 2**k for k in range(count)]
    elif steps is None and hi - lo <= 64:
        values = list(range(math.ceil(lo), math.floor(hi) + 1))
    else:
        values = sorted({round(v) for v in _spaced(lo, hi, steps or 16, log)})
    if not values:
        raise SpaceError(f"{where}: no integer lies in [{lo}, {hi}]")
    return values


def _spaced(lo: float, hi: float, steps: int, log: bool) -> list[float]:
    if log:
        return [lo * (hi / lo) ** (k / (steps - 1)) for k in range(steps)]
    return [lo + (hi - lo) * k / (steps - 1) for k in range(steps)]


__all__ = ["GROUPINGS", "SEARCHABLE", "SpaceSpec", "field_values", "parse_space_spec"]
