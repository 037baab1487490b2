"""Search spaces: a vector in ``[0, 1]^d`` <-> a valid PEFT configuration.

>>> space = build_space("autopeft", model_shape(None))
>>> space.d                      # 3 + n_layers
>>> config = space.decode([0.5] * space.d)
>>> space.decode(space.encode(config)) == config

Every dimension is discrete (:class:`~autopeft.space.dims.Dimension`); decoding is
deterministic and every decoded configuration fits the model (checked for every
value of every dimension when the space is built).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autopeft.config import PeftConfig, parse_config
from autopeft.encoder import ModelShape
from autopeft.errors import ConfigError, SpaceError
from autopeft.inputs import load_json_arg
from autopeft.space.builtin import BUILTIN
from autopeft.space.dims import Dimension, split_layers
from autopeft.space.spec import SEARCHABLE, SpaceSpec, field_values, parse_space_spec

__all__ = ["BUILTIN", "Dimension", "Space", "SpaceSpec", "build_space", "load_space_arg"]

#: Most dimensions of a space, and most values of all its dimensions together: building a
#: space decodes every value once, and the optimiser's cost grows with both.
MAX_DIMS = 1024
MAX_TOTAL_VALUES = 8192
#: Most work building a space may take, in decode steps (:meth:`Space.build_steps`): building decodes each
#: value of each kind of dimension once, and one decode costs about a step per dimension and per layer of
#: each family placed on layers. The limit keeps a study's creation well under a second on a small CPU; the
#: optimiser's cost per proposed point grows with the same product.
MAX_BUILD_STEPS = 50_000
#: Points of the space decoded and encoded back when it is built: a space whose configurations do not
#: encode back to their points could never be proposed from.
ROUND_TRIP_POINTS = 4


@dataclass(frozen=True)
class _Slot:
    """Where a family field's value comes from: a dimension index or a fixed value."""

    dim: int | None
    fixed: Any = None


class Space:
    """A search space built for one model shape."""

    def __init__(self, spec: SpaceSpec, shape: ModelShape) -> None:
        self.spec, self.shape = spec, shape
        for family in spec.families:
            if family in shape.unsupported:
                raise SpaceError(f"{family} is not supported on {shape.model_type}: {shape.unsupported[family]}")
        self.groups = split_layers(shape.n_layers, spec.groups, spec.grouping)
        self.dims: list[Dimension] = []
        self._total_values = 0
        self._primary: dict[str, list[_Slot]] = {}  # family -> one slot per group (or one for all)
        self._fields: dict[str, dict[str, _Slot]] = {}
        many = spec.one_family and len(spec.families) > 1
        #: The "family" dimension of a one-family space (None: every family may be on at once).
        self._family = self._add("family", tuple(spec.families)) if many else None
        for family, fields in spec.families.items():
            self._plan_family(family, fields)
        self._bits = [self._add(f"layer[{i}]", (0, 1)) for i in range(shape.n_layers)] if spec.layer_bits else []
        self._check_build_steps()
        self._check_every_value()
        self._check_round_trip()

    # -- construction -------------------------------------------------------------------
    def _add(self, name: str, values: tuple[Any, ...]) -> int:
        if len(self.dims) >= MAX_DIMS:
            raise SpaceError(f"space {self.spec.name!r} has more than {MAX_DIMS} dimensions")
        self._total_values += len(values)
        if self._total_values > MAX_TOTAL_VALUES:
            raise SpaceError(
                f"space {self.spec.name!r} has more than {MAX_TOTAL_VALUES} values in all its dimensions "
                f"(at {name}); use fewer layer groups or fewer values per field"
            )
        self.dims.append(Dimension(name, values))
        return len(self.dims) - 1

    def _slot(self, name: str, values: tuple[Any, ...]) -> _Slot:
        return _Slot(self._add(name, values)) if len(values) > 1 else _Slot(None, values[0])

    def _plan_family(self, family: str, fields: dict[str, Any]) -> None:
        role = SEARCHABLE[family]
        primary, off = role.space_field, role.off
        fields = dict(fields)
        per_group = bool(fields.pop("per_group", len(self.groups) > 1))
        if role.placement == "global" and per_group and "per_group" in self.spec.families[family]:
            raise SpaceError(f"{family}.per_group: {family} is placed on the whole model, not per layer group")
        values = field_values(family, primary, fields.pop(primary, True))
        if role.placement == "global":
            per_group = False
        if per_group and len(self.groups) > 1:
            self._primary[family] = [self._slot(f"{family}.{primary}[g{g}]", values) for g in range(len(self.groups))]
        else:
            self._primary[family] = [self._slot(f"{family}.{primary}", values)]
        self._fields[family] = {
            f: self._slot(f"{family}.{f}", field_values(family, f, raw)) for f, raw in fields.items()
        }
        if all(_is_off(v, off) for v in values):
            raise SpaceError(f"{family}.{primary}: every value turns the family off")

    def build_steps(self) -> int:
        """The work of building this space, estimated before it is done: its values times the steps of one decode."""
        layered = sum(1 for family in self._primary if SEARCHABLE[family].placement != "global")
        decodes = len(self._value_checks()) + 3 * ROUND_TRIP_POINTS  # a round trip decodes three times
        return decodes * (self.d + self.shape.n_layers * max(1, layered))

    def _check_build_steps(self) -> None:
        steps = self.build_steps()
        if steps > MAX_BUILD_STEPS:
            raise SpaceError(
                f"space {self.name!r} would take about {steps:,} decode steps to build ({self.d} dimensions on "
                f"{self.shape.n_layers} layers), over the limit of {MAX_BUILD_STEPS:,} (MAX_BUILD_STEPS): use fewer "
                "layer groups, fewer values per field or fewer families"
            )

    def _check_round_trip(self) -> None:
        """Refuse a space whose configurations do not encode back to their points (values that differ by less
        than :class:`~autopeft.space.dims.Dimension` can tell apart): nothing could ever be proposed from it."""
        for x in self.sample_points(ROUND_TRIP_POINTS, seed=0):
            config = self._decode_raw(x)
            try:
                self.encode(config)
            except (SpaceError, ConfigError) as err:
                raise SpaceError(
                    f"space {self.name!r} cannot propose: a configuration it decodes does not encode back ({err})"
                ) from None

    def _value_checks(self) -> list[tuple[int, int]]:
        """``(dimension, value index)`` pairs that building decodes: every value of every dimension, once per
        kind of dimension (a family's field in any layer group, a layer's bit: a value fits a model on any of
        its layers, whose shapes are the same, so one group of a kind speaks for all)."""
        seen: set[tuple[str, tuple[str, ...]]] = set()
        out = []
        for i, dim in enumerate(self.dims):
            kind = (re.sub(r"\[[^\]]*\]$", "", dim.name), tuple(map(repr, dim.values)))
            if kind not in seen:
                seen.add(kind)
                out += [(i, j) for j in range(dim.n)]
        return out

    def _check_every_value(self) -> None:
        top = [d.center(d.n - 1) for d in self.dims]
        for i, j in self._value_checks():
            dim = self.dims[i]
            x = list(top)
            x[i] = dim.center(j)
            try:
                config = self._decode_raw(x)
                config.check_fits(self.shape)
            except ConfigError as err:
                raise SpaceError(f"space {self.name!r}: {dim.name}={dim.values[j]!r} is invalid: {err}") from None

    # -- properties -----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def d(self) -> int:
        return len(self.dims)

    @property
    def cardinalities(self) -> list[int]:
        """Number of values of each dimension, for the optimiser."""
        return [d.n for d in self.dims]

    # -- decode / encode -------------------------------------------------------------------
    def _values(self, x: Sequence[float]) -> list[Any]:
        if len(x) != self.d:
            raise SpaceError(f"space {self.name!r} has {self.d} dimensions, got a vector of {len(x)}")
        return [dim.decode(float(v)) for dim, v in zip(self.dims, x)]

    def _get(self, slot: _Slot, values: list[Any]) -> Any:
        return slot.fixed if slot.dim is None else values[slot.dim]

    def _decode_raw(self, x: Sequence[float]) -> PeftConfig:
        values = self._values(x)
        n = self.shape.n_layers
        on = [i for i in range(n) if not self._bits or values[self._bits[i]]]
        body: dict[str, Any] = {}
        for family, slots in self._primary.items():
            role = SEARCHABLE[family]
            fields = {f: _thaw(self._get(s, values)) for f, s in self._fields[family].items()}
            if role.placement == "global":
                value = self._get(slots[0], values)
                if not _is_off(value, role.off):
                    body[family] = {role.space_field: value, **fields}
                continue
            groups = self.groups if len(slots) > 1 else [list(range(n))]
            sizes = {
                layer: self._get(slot, values)
                for slot, layers in zip(slots, groups)
                for layer in layers
                if layer in on and not _is_off(self._get(slot, values), role.off)
            }
            if sizes:
                body[family] = role.settings_from_layers(sizes, fields)
        if self.spec.one_family:
            body = self._one_family(body, values)
        return parse_config(body)

    def _one_family(self, body: dict[str, Any], values: list[Any]) -> dict[str, Any]:
        """Keep the family the "family" dimension chose; where it is off in every layer, put it on the last
        layer at its smallest size (a one-family space never proposes an empty configuration)."""
        chosen = values[self._family] if self._family is not None else next(iter(self._primary))
        if chosen in body:
            return {chosen: body[chosen]}
        role = SEARCHABLE[chosen]
        last = self._primary[chosen][-1]
        sizes = self.dims[last.dim].values if last.dim is not None else (last.fixed,)
        smallest = next(v for v in sizes if not _is_off(v, role.off))
        fields = {f: _thaw(self._get(s, values)) for f, s in self._fields[chosen].items()}
        return {chosen: role.settings_from_layers({self.shape.n_layers - 1: smallest}, fields)}

    def decode(self, x: Sequence[float]) -> PeftConfig:
        """The configuration at point ``x`` of ``[0, 1]^d`` (in canonical compact form)."""
        return parse_config(self._decode_raw(x).canonical(self.shape.n_layers))

    def encode(self, config: PeftConfig | Mapping[str, Any]) -> list[float]:
        """The canonical point of ``config`` (bin centres); :class:`SpaceError` if it is not in the space."""
        config = parse_config(config)
        config.check_fits(self.shape)
        n = self.shape.n_layers
        present = config.families()
        extra = [f for f in present if f not in self._primary]
        if extra:
            raise SpaceError(f"space {self.name!r} has no {extra[0]}")
        if self.spec.one_family and len(present) > 1:
            raise SpaceError(f"space {self.name!r} holds one family per configuration, not {', '.join(present)}")
        values: dict[int, Any] = {}
        if self._family is not None:
            values[self._family] = next(iter(present), self.dims[self._family].values[0])
        placed = set().union(*(f.layer_set(n) for f in present.values()))
        for i, dim in enumerate(self._bits):
            values[dim] = int(i in placed) if present else 0
        on = [i for i in range(n) if not self._bits or i in placed]
        for family, slots in self._primary.items():
            self._encode_family(family, slots, present.get(family), on, values)
        x = [dim.encode(values[i]) if i in values else dim.center(0) for i, dim in enumerate(self.dims)]
        if self.decode(x).key(n) != config.key(n):
            raise SpaceError(f"configuration is not in space {self.name!r}: {self._why_not(config, x)}")
        return x

    def _encode_family(
        self, family: str, slots: list[_Slot], settings: Any, on: list[int], values: dict[int, Any]
    ) -> None:
        role = SEARCHABLE[family]
        n = self.shape.n_layers
        if role.placement == "global":
            sizes_by_group = [[getattr(settings, role.space_field)] if settings else []]
        else:
            sizes = role.layer_values(settings, n) if settings is not None else {}
            groups = self.groups if len(slots) > 1 else [list(range(n))]
            sizes_by_group = [[sizes[i] for i in g if i in on and i in sizes] for g in groups]
        for g, (slot, found) in enumerate(zip(slots, sizes_by_group)):
            if slot.dim is None:
                continue
            if len(set(found)) > 1:
                raise SpaceError(
                    f"configuration is not in space {self.name!r}: {family} has different sizes "
                    f"{sorted(set(found))} within layer group {g}"
                )
            value = found[0] if found else role.off
            values[slot.dim] = self.dims[slot.dim].values[self.dims[slot.dim].index(value)]
        for field, slot in self._fields[family].items():
            if slot.dim is not None and settings is not None:
                values[slot.dim] = _freeze(getattr(settings, field))

    def _why_not(self, config: PeftConfig, x: list[float]) -> str:
        got = self.decode(x).canonical(self.shape.n_layers)
        want = config.canonical(self.shape.n_layers)
        for family in sorted(set(got) | set(want)):
            if got.get(family) != want.get(family):
                return f"{family} would be {got.get(family)} in the space, not {want.get(family)}"
        return "it decodes differently"

    # -- sampling and description ----------------------------------------------------------
    def sample_points(self, n: int, seed: int) -> np.ndarray:
        """``n x d`` uniform random points (canonicalised to bin centres)."""
        rng = np.random.default_rng(seed)
        raw = rng.random((n, self.d))
        return np.array([[dim.center(dim.index_of_x(v)) for dim, v in zip(self.dims, row)] for row in raw])

    def sample(self, n: int, seed: int = 0) -> list[PeftConfig]:
        return [self.decode(row) for row in self.sample_points(n, seed)]

    def to_json(self) -> dict[str, Any]:
        """The space description (store it to rebuild the same space later)."""
        return self.spec.model_dump()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "d": self.d,
            "n_layers": self.shape.n_layers,
            "groups": self.groups,
            "layer_bits": self.spec.layer_bits,
            "one_family": self.spec.one_family,
            "families": list(self._primary),
            "dims": [d.to_json() for d in self.dims],
            "fixed": {
                f"{fam}.{f}": _thaw(s.fixed) for fam, fs in self._fields.items() for f, s in fs.items() if s.dim is None
            },
            "size": int(np.prod([float(d.n) for d in self.dims])) if self.d < 60 else None,
        }


def _is_off(value: Any, off: Any) -> bool:
    return value is False or (not isinstance(value, bool) and value == off)


def _thaw(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _freeze(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def build_space(space: str | Mapping[str, Any] | SpaceSpec, shape: ModelShape) -> Space:
    """A built-in space by name (``autopeft``, ``grouped``, ``full``, ``lora``) or a user-defined one."""
    if isinstance(space, str):
        if space not in BUILTIN:
            raise SpaceError(f"unknown space {space!r} (built-in: {', '.join(BUILTIN)}; or give a JSON space)")
        return Space(BUILTIN[space](shape), shape)
    return Space(parse_space_spec(dict(space) if isinstance(space, Mapping) else space), shape)


def load_space_arg(arg: str) -> str | dict[str, Any]:
    """A space given on the command line: a built-in name, inline JSON, or a JSON file."""
    if arg.strip() in BUILTIN:
        return arg.strip()
    names = ", ".join(BUILTIN)
    return load_json_arg(arg, "space", SpaceError, expected=f"a built-in name ({names}), JSON nor an existing file")
