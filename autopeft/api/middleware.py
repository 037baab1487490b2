"""Pure ASGI middleware: the Host and Origin checks (400, 403), the API key check (401), a request body limit
(413) and a structured access log."""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access = logging.getLogger("autopeft.api.access")


#: Paths that need the API key when the server has one: the REST API (but its health check) and its schema.
OPEN_PATHS = frozenset({"/api/v1/health"})
KEYED_PREFIXES = ("/api/", "/openapi.json", "/docs")


def bearer_problem(key: str | None, authorization: str | None) -> str | None:
    """Why ``authorization`` (the header's value) does not carry ``key``; None when it does or no key is set.

    Constant time in the key: the comparison is :func:`hmac.compare_digest`.
    """
    if key is None:
        return None
    scheme, _, given = (authorization or "").strip().partition(" ")
    given = given.strip() if scheme.lower() == "bearer" else ""
    if hmac.compare_digest(given.encode(), key.encode()):
        return None
    if given:
        return "missing or wrong API key: send 'Authorization: Bearer <key>'"
    return "this server needs an API key: send 'Authorization: Bearer <key>'"


class ApiKeyMiddleware:
    """401 before anything else (routing, body parsing, validation) for every keyed path without the key.

    A request that cannot authenticate learns nothing about the body it sent or the route it named.
    """

    def __init__(self, app: ASGIApp, key: str | None) -> None:
        self.app, self.key = app, key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.key is None or scope["type"] != "http" or not _keyed(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"")
        problem = bearer_problem(self.key, header.decode("latin-1"))
        if problem is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"detail": problem}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b"Bearer"),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _keyed(path: str) -> bool:
    return path not in OPEN_PATHS and path.startswith(KEYED_PREFIXES)


#: Methods that change state: a browser page of another site must not send them here.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def split_host(value: str) -> tuple[str, int | None]:
    """A Host header value as ``(name, port)``, lower case; port None when it names none
    (``example.org:8000``, ``[::1]:80``, ``localhost``). A port that is not a number gives -1."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        name, rest = (value[1:end], value[end + 1 :]) if end > 0 else (value, "")
        port = rest[1:] if rest.startswith(":") else None
    elif value.count(":") == 1:
        name, port = value.split(":")
    else:  # no port, or an IPv6 address without brackets
        name, port = value, None
    if port is None:
        return name, None
    return name, int(port) if port.isdigit() else -1


def same_origin(origin: str, host: str) -> bool:
    """Whether an ``Origin`` header names the site a request was sent to (its Host): the server's own pages
    (the dashboard) send their own origin. A Host without a port matches an origin on its scheme's default
    port (a TLS proxy in front speaks https on 443 and plain HTTP to the server)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return False
    name, host_port = split_host(host)
    default = _DEFAULT_PORTS[parts.scheme]
    return parts.hostname == name and (port or default) == (host_port if host_port is not None else default)


class SiteGuardMiddleware:
    """Before anything else: 400 for a ``Host`` the server does not answer to (DNS rebinding: a page of
    another site whose name now points at this machine), 403 for a state-changing request whose
    ``Origin`` is another site's (a page of any site open in a browser here could stop or delete
    studies). Requests without an ``Origin`` (workers, the CLI, curl) pass: a browser sends one with
    every state-changing request. This holds with or without an API key.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.any_host = "*" in allowed_hosts
        self.hosts = frozenset(split_host(h)[0] for h in allowed_hosts if h != "*")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode(): v.decode("latin-1") for k, v in scope.get("headers", ()) if k in (b"host", b"origin")}
        host = headers.get("host", "")
        name = split_host(host)[0]
        if not self.any_host and name not in self.hosts:
            await send_json(
                send,
                400,
                f"host {host[:100]!r} is not one this server answers to; if it is this server's name, its "
                f"operator adds it with `autopeft serve --allowed-hosts {name[:100] or 'NAME'}`",
            )
            return
        origin = headers.get("origin")
        if scope["method"] in UNSAFE_METHODS and origin is not None and not same_origin(origin, host):
            await send_json(
                send,
                403,
                f"cross-site request refused: Origin {origin[:100]!r} is not this server's own; state-changing "
                "requests come from the server's own pages or from clients that send no Origin (workers, the CLI)",
            )
            return
        await self.app(scope, receive, send)


async def send_json(send: Send, status: int, detail: str) -> None:
    """A complete ``{"detail": ...}`` answer, for middleware that refuses a request before routing."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes``: by Content-Length at once, or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _send_413(send, self.max_bytes, declared)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, f"request body is larger than {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, limit: int, declared: int) -> None:
    body = f'{{"detail":"request body of {declared} bytes is larger than the limit of {limit} bytes"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AccessLogMiddleware:
    """One log line per request: method, path, status, milliseconds, client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            client = scope.get("client")
            access.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status["code"],
                    "ms": round((time.perf_counter() - start) * 1000, 2),
                    "client": f"{client[0]}:{client[1]}" if client else None,
                },
            )
