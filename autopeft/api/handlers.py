"""The one place where errors become HTTP responses: always JSON ``{"detail": "..."}``, never a bare 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from autopeft.api.errors import ApiError
from autopeft.errors import AutoPeftError
from autopeft.inputs import describe_validation, located

log = logging.getLogger("autopeft.api")


#: What FastAPI answers (400) when the body cannot even be decoded as JSON text.
_BODY_PARSE_ERROR = "There was an error parsing the body"
#: Order of methods in an ``Allow`` header.
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(AutoPeftError, _library)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _http(request: Request, err: StarletteHTTPException) -> Response:
    """Starlette's and FastAPI's own errors, with two repairs: a body that cannot be parsed at all
    (not UTF-8, nested deeper than the parser goes) is a 422 like any other invalid JSON, not an
    undocumented 400; a 405 lists every method the path has in ``Allow``, not one route's."""
    if err.status_code == 400 and err.__cause__ is not None and err.detail == _BODY_PARSE_ERROR:
        return JSONResponse({"detail": _unparsable(err.__cause__)}, status_code=422)
    if err.status_code == 405:
        allowed = allowed_methods(request)
        headers = {**(err.headers or {}), "Allow": ", ".join(allowed)}
        detail = f"method {request.method} is not allowed on {request.url.path} (allowed: {', '.join(allowed)})"
        return JSONResponse({"detail": detail}, status_code=405, headers=headers)
    return await http_exception_handler(request, err)  # type: ignore[arg-type]


def _unparsable(cause: BaseException) -> str:
    if isinstance(cause, UnicodeDecodeError):
        return f"the body is not valid JSON (it is not UTF-8: byte 0x{cause.object[cause.start]:02x} at {cause.start})"
    if isinstance(cause, RecursionError):
        return "the body is not valid JSON (it is nested too deeply)"
    return f"the body is not valid JSON ({type(cause).__name__})"


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on the request's path (one path may have several routes)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHOD_ORDER
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]


async def _validation(_request: Request, err: RequestValidationError) -> JSONResponse:
    errors = err.errors()
    return JSONResponse(
        {"detail": describe_errors(errors), "errors": [_plain(e) for e in errors[:20]]}, status_code=422
    )


async def _library(_request: Request, err: AutoPeftError) -> JSONResponse:
    status = err.status if isinstance(err, ApiError) else 422
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"detail": str(err)}, status_code=status, headers=headers)


async def _unexpected(request: Request, err: Exception) -> JSONResponse:
    log.error("unexpected error", exc_info=err, extra={"path": request.url.path})
    return JSONResponse({"detail": f"internal error ({type(err).__name__}); see the server log"}, status_code=500)


def describe_errors(errors: list[Any] | tuple[Any, ...]) -> str:
    """``where: what (got value)`` for each error, one location once (:func:`autopeft.inputs.describe_validation`);
    locations start below the body."""
    below_body = [{**e, "loc": tuple(p for p in e.get("loc", ()) if p != "body")} for e in errors]
    return describe_validation(below_body, explain=_invalid_json) or "invalid request"


def _invalid_json(e: Any, where: str) -> str | None:
    if e.get("type") != "json_invalid":
        return None
    reason = e.get("ctx", {}).get("error", e.get("msg", "invalid"))
    return located(where, f"the body is not valid JSON ({reason})")


def _plain(e: Any) -> dict[str, Any]:
    return {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": str(e.get("type"))}
