"""Types shared by the request and response schemas.

Every string refuses NUL characters (PostgreSQL cannot store them) and every number in
free-form JSON must be finite, so that bad input is a 422 and never a database error.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

#: Largest value of an id in a path or body (the columns are 32-bit).
MAX_ID = 2**31 - 1
#: Deepest nesting of free-form JSON (metrics, extra, model_config, space, task).
MAX_JSON_DEPTH = 32


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _json_ok(value: Any) -> Any:
    """Refuse NaN/Infinity, NUL characters and nesting deeper than MAX_JSON_DEPTH (iteratively)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{item} is not a finite number")
        if isinstance(item, str):
            _no_nul(item)
        elif isinstance(item, dict):
            for k, v in item.items():
                _no_nul(str(k))
                stack.append((v, depth + 1))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return value


#: The schema says what ``_no_nul`` enforces (with its own message), so clients and generators know it.
NO_NUL_PATTERN = "^[^\\u0000]*$"
Text = Annotated[str, AfterValidator(_no_nul), Field(json_schema_extra={"pattern": NO_NUL_PATTERN})]
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_ok)]
#: A number that is a number: finite, and not ``true``/``false`` (JSON booleans are not 1 and 0 here).
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class Strict(BaseModel):
    """Request bodies: unknown fields are refused, so a typo is an error and not a silent default."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel):
    """``{data, count}``: the items and how many there are in all."""

    count: int


class ErrorPublic(BaseModel):
    """Every error answer: what is wrong, naming the offending value."""

    detail: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a router answers with."""
    what = {
        401: "No or a wrong API key",
        404: "No such study or trial",
        409: "Conflicts with the stored state: a stale lease token, a repeated report that differs",
        413: "Request body too large",
        422: "Invalid request (the message names the field and value)",
        503: "Database unavailable; retry",
    }
    return {code: {"model": ErrorPublic, "description": what[code]} for code in codes}
