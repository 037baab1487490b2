"""The one reader of "inline JSON or a file" and the one wording of pydantic's validation errors."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autopeft.errors import AutoPeftError, SpaceError
from autopeft.inputs import describe_validation, error_location, load_json_arg


def test_inline_json_and_files_read_the_same(tmp_path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"a": [1, 2]}))
    assert load_json_arg(str(path), "thing") == load_json_arg('  {"a": [1, 2]}', "thing") == {"a": [1, 2]}
    assert load_json_arg("[1]", "thing", object_only=False) == [1]
    long_inline = json.dumps({"k" * 300: 1})  # longer than a file name may be: never looked up as one
    assert load_json_arg(long_inline, "thing") == {"k" * 300: 1}


@pytest.mark.parametrize(
    "arg, message",
    [
        ("missing.json", "thing 'missing.json' is neither JSON nor an existing file"),
        ("x" * 5000, f"thing {'x' * 5000!r} is neither JSON nor an existing file"),  # too long for a file name
        ('{"a": ', "thing in inline JSON is not valid JSON: Expecting value at line 1 column 7"),
        ('{"a": NaN}', "JSON constant NaN is not allowed (thing in inline JSON)"),
        ("[1, 2]", "thing must be a JSON object, got an array in inline JSON"),
    ],
)
def test_what_is_wrong_is_named_with_the_callers_error(arg: str, message: str) -> None:
    with pytest.raises(SpaceError) as err:
        load_json_arg(arg, "thing", SpaceError)
    assert str(err.value) == message


def test_a_file_names_itself_and_the_caller_may_say_what_else_was_expected(tmp_path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"a": 1,}')
    with pytest.raises(AutoPeftError, match=f"study in {path} is not valid JSON"):
        load_json_arg(str(path), "study")
    with pytest.raises(AutoPeftError, match=r"space 'x' is neither a name \(a, b\), JSON nor an existing file"):
        load_json_arg("x", "space", expected="a name (a, b), JSON nor an existing file")


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int | dict[int, int]


class _Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=2)]
    inner: _Inner | None = None
    rate: float = Field(1.0, gt=0)


def _errors(data: dict[str, Any]) -> list[Any]:
    with pytest.raises(ValidationError) as err:
        _Outer.model_validate(data)
    return err.value.errors()


def test_each_field_once_with_the_value_and_without_pydantics_tags() -> None:
    errors = _errors({"name": "x", "inner": {"size": "big"}, "rate": -1, "colour": 1})
    assert describe_validation(errors) == (
        "name: String should have at least 2 characters (got 'x'); "
        "inner.size: Input should be a valid integer, unable to parse string as an integer (got 'big'); "
        "rate: Input should be greater than 0 (got -1); colour: unknown field"
    )
    assert error_location(("inner", "size", "dict[int,int]", "function-after[f(), int]", 3)) == "inner.size.3"
    assert describe_validation(_errors({})) == "name: required"


def test_first_names_the_most_telling_error_and_callers_may_word_their_own() -> None:
    errors = _errors({"name": "x", "colour": 1})
    assert describe_validation(errors, first=True) == "colour: unknown field"
    assert (
        describe_validation(errors, got=False)
        == "name: String should have at least 2 characters; colour: unknown field"
    )

    def unknown(e: Any, where: str) -> str | None:
        return f"unknown field {where!r} (known: name, inner, rate)" if e["type"] == "extra_forbidden" else None

    assert (
        describe_validation(errors, first=True, explain=unknown) == "unknown field 'colour' (known: name, inner, rate)"
    )
