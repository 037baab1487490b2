"""What a person gives autopeft, read one way everywhere.

- :func:`load_json_arg`: a command-line value that is JSON inline or the path of a JSON file
  (a configuration, a space, a task description, training settings, a study);
- :func:`describe_validation`: pydantic's validation errors as one line that names each
  field and what is wrong with it (the library's errors and the server's 422 answers);
  :func:`validate_object` validates a JSON object as a model with that wording.

Both raise or return messages only; turning them into exit codes or HTTP answers stays with
``autopeft.cli`` and ``api``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from autopeft.errors import AutoPeftError

M = TypeVar("M", bound=BaseModel)

#: Pydantic's names for the parts of a schema that appear in an error's location between the
#: fields (a union's branches, validators): not a field, so not shown.
_SCHEMA_TAG_PREFIXES = (
    "function-",
    "json-or-python[",
    "dict[",
    "list[",
    "tuple[",
    "set[",
    "literal[",
    "lax-or-strict[",
    "tagged-union[",
    "nullable[",
    "method=",  # an optimizer method's branch of the optimizer object (autopeft.optimize.methods.registry)
)
_SCHEMA_TAGS = frozenset(
    {"int", "float", "str", "bool", "bytes", "constrained-int", "constrained-float", "constrained-str"}
)
#: Error types whose input is the whole object given (not worth repeating in the message).
_WHOLE_INPUT = ("model_attributes_type", "dict_type")
_SHORT = 80

#: Builds the message of one error: ``explain(error, where)`` returns the whole part (location
#: included, if wanted) or None for the default ``where: what (got value)``.
Explain = Callable[[Mapping[str, Any], str], "str | None"]


def is_inline_json(text: str) -> bool:
    """Whether a command-line value is JSON written inline (an object or an array), not a path."""
    return text.lstrip()[:1] in ("{", "[")


def is_file(text: str) -> bool:
    """Whether a command-line value names an existing file (a name too long for the system is none)."""
    try:
        return Path(text).expanduser().is_file()
    except OSError:
        return False


def load_json_arg(
    text_or_path: str,
    what: str,
    error: type[AutoPeftError] = AutoPeftError,
    *,
    object_only: bool = True,
    expected: str = "JSON nor an existing file",
) -> Any:
    """The value of ``text_or_path``: inline JSON (:func:`is_inline_json`), else the JSON in that file.

    ``NaN`` and ``Infinity`` are refused (JSON has no such numbers); with ``object_only`` the value
    must be a JSON object. Failures raise ``error`` naming ``what`` (``"configuration"``,
    ``"--training"``) and where the JSON came from; ``expected`` completes the message for a value
    that is neither inline JSON nor a file (``"... is neither <expected>"``).
    """
    if is_inline_json(text_or_path):
        source, text = "inline JSON", text_or_path
    else:
        if not is_file(text_or_path):
            raise error(f"{what} {text_or_path!r} is neither {expected}")
        path = Path(text_or_path).expanduser()
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise error(f"cannot read {what} file {source!r}: {getattr(err, 'strerror', None) or err}") from None

    def refuse(constant: str) -> float:
        raise error(f"JSON constant {constant} is not allowed ({what} in {source})")

    try:
        value = json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as err:
        raise error(
            f"{what} in {source} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    if object_only and not isinstance(value, dict):
        raise error(f"{what} must be a JSON object, got {json_type(value)} in {source}")
    return value


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, with its article ("an array", "a string", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    names = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def validate_object(model: type[M], data: Any, what: str, error: type[AutoPeftError], **describe: Any) -> M:
    """``data`` (a JSON object, or already a ``model``) validated as ``model``, or ``error``: ``"<what> must
    be a JSON object, got list"`` or ``"invalid <what>: <describe_validation(errors, **describe)>"``."""
    if isinstance(data, model):
        return data
    if not isinstance(data, Mapping):
        raise error(f"{what} must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(dict(data))
    except ValidationError as err:
        raise error(f"invalid {what}: {describe_validation(err.errors(), **describe)}") from None


def describe_validation(
    errors: Iterable[Mapping[str, Any]],
    *,
    first: bool = False,
    got: bool = True,
    explain: Explain | None = None,
) -> str:
    """``where: what (got value)`` for each of pydantic's ``errors``, joined by ``"; "``.

    ``where`` is the field's dotted location without pydantic's schema tags (:func:`error_location`);
    one message per location (a union reports each branch: the first stays). ``first``: only the
    most telling error (:func:`most_telling`). ``got``: name the offending value (shortened) when
    the error has a location. ``explain`` words the errors a caller knows better.
    """
    chosen = list(errors)
    if first and chosen:
        chosen = [most_telling(chosen)]
    parts: dict[str, str] = {}
    for e in chosen:
        where = error_location(e.get("loc", ()))
        part = explain(e, where) if explain is not None else None
        parts.setdefault(where, part if part is not None else located(where, _what(e, got and bool(where))))
    return "; ".join(parts.values())


def error_location(loc: Iterable[Any]) -> str:
    """A pydantic location as ``field.sub.0``, without the schema tags pydantic puts between fields."""
    return ".".join(str(p) for p in loc if not _is_schema_tag(p))


def located(where: str, what: str) -> str:
    return f"{where}: {what}" if where else what


def most_telling(errors: list[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The error that says most: an unknown field first; else one that is not about the kind of value
    given (a union reports a type error for each branch it did not take)."""
    specific = [e for e in errors if not str(e.get("type", "")).endswith("_type")] or errors
    return next((e for e in specific if e.get("type") == "extra_forbidden"), specific[0])


def _what(e: Mapping[str, Any], got: bool) -> str:
    kind = e.get("type")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required"
    msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
    if got and "input" in e and kind not in _WHOLE_INPUT:
        return f"{msg} (got {short_repr(e['input'])})"
    return msg


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHORT else text[: _SHORT - 3] + "..."


def _is_schema_tag(part: Any) -> bool:
    return isinstance(part, str) and (part in _SCHEMA_TAGS or part.startswith(_SCHEMA_TAG_PREFIXES))
