"""Every optimizer method of this package: a new method is a new file here, named in the import below.

The import is written out (no discovery by file name) so that the import checker sees every method
module. :data:`METHODS` maps names to methods; :data:`OptimizerSettings` is the type of a study's
``optimizer`` object: one settings model per method, chosen by ``method`` (``gp`` when left out).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import BeforeValidator, Discriminator, Tag, TypeAdapter, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from autopeft.errors import OptimizerError
from autopeft.optimize.methods import (  # noqa: F401 - each module registers its method when imported
    base,
    gp,
    random,
    saas,
    sobol,
    tpe,
)

#: Every method by name (the import above fills it).
METHODS: dict[str, base.Method[Any]] = base.METHODS
#: The method of an ``optimizer`` object that names none.
DEFAULT_METHOD = "gp"
#: How a method's branch shows in a validation error's location (left out of messages: :mod:`autopeft.inputs`).
TAG_PREFIX = "method="


def method_of(settings: base.MethodSettings) -> base.Method[Any]:
    """The registered method of a study's settings."""
    return METHODS[settings.method]


def _tag(value: Any) -> str:
    """The union branch of an ``optimizer`` value: its method (a non-object is checked as the default's)."""
    if isinstance(value, base.MethodSettings):
        return TAG_PREFIX + value.method
    name = value.get("method", DEFAULT_METHOD) if isinstance(value, Mapping) else DEFAULT_METHOD
    return TAG_PREFIX + str(name)


def _known_method(value: Any) -> Any:
    """Refuse an unknown ``method`` by name, listing the known ones (before the union picks a branch)."""
    if isinstance(value, Mapping) and "method" in value and value["method"] not in METHODS:
        known = ", ".join(METHODS)
        error = PydanticCustomError("unknown_method", f"unknown optimizer method; one of {known}")
        raise ValidationError.from_exception_data(
            "optimizer", [InitErrorDetails(type=error, loc=("method",), input=value["method"])]
        )
    return value


if TYPE_CHECKING:
    OptimizerSettings = base.MethodSettings
else:
    OptimizerSettings = Annotated[
        Union[tuple(Annotated[m.settings_type, Tag(TAG_PREFIX + name)] for name, m in METHODS.items())],  # noqa: UP007
        Discriminator(_tag),
        BeforeValidator(_known_method),
    ]

_ADAPTER: TypeAdapter[base.MethodSettings] = TypeAdapter(OptimizerSettings)


def parse_optimizer(data: Mapping[str, Any] | base.MethodSettings | None = None) -> base.MethodSettings:
    """A study's ``optimizer`` object as its method's settings (None or ``{}``: ``gp`` with its defaults).

    Raises:
        OptimizerError: naming each bad field (an unknown method, a field of another method, a bad value).
    """
    from autopeft.inputs import describe_validation

    if isinstance(data, base.MethodSettings):
        return data
    try:
        return _ADAPTER.validate_python(dict(data or {}))
    except ValidationError as err:
        raise OptimizerError(f"invalid optimizer: {describe_validation(err.errors())}") from None
