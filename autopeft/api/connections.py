"""Limits on connections, below the app: a header-read timeout and a cap on open connections.

uvicorn closes a keep-alive connection that stays idle between requests, but it waits forever for a
request whose headers never finish: thousands of connections that send a few header bytes and stop
(slowloris) would hold the server's sockets until it can accept no more. :class:`GuardedHttpProtocol`
is uvicorn's httptools protocol with two additions, given to uvicorn as ``http=PROTOCOL``:

- a connection must send each request's headers within ``header_timeout_s`` of its start (of the
  connection for the first request, of the request's first byte for later ones), else it gets
  ``408`` and is closed;
- beyond ``max_connections`` open connections (per server process), the one that has waited longest
  for its headers gets ``408`` and is closed to make room; when none is waiting (every connection is
  busy with a request), the new one gets ``503`` and is closed at once. So the process keeps file
  descriptors for the clients it serves, and a flood of connections that never send their headers
  cannot lock out a client that sends its request at once.

The limits are the server's settings (``AUTOPEFT_HEADER_TIMEOUT_S``, ``AUTOPEFT_MAX_CONNECTIONS``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: What ``autopeft serve`` gives uvicorn as ``http`` (a string: it reaches uvicorn's worker processes).
PROTOCOL = "autopeft.api.connections:GuardedHttpProtocol"


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float
    max_connections: int

    @classmethod
    def from_settings(cls) -> ConnectionLimits:
        from autopeft.api.settings import get_settings

        settings = get_settings()
        return cls(settings.header_timeout_s, settings.max_connections)


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with a header-read timeout and a connection cap (see the module)."""

    #: None: read from the server's settings at the first connection.
    limits: ClassVar[ConnectionLimits | None] = None
    #: Connections of this process waiting for a request's headers, oldest first (one event loop per process).
    waiting: ClassVar[dict[GuardedHttpProtocol, None]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    @classmethod
    def _limits(cls) -> ConnectionLimits:
        if cls.limits is None:
            cls.limits = ConnectionLimits.from_settings()
        return cls.limits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_timer()
        if len(self.connections) > self._limits().max_connections:
            oldest = next((c for c in self.waiting if c is not self and not c._in_flight()), None)
            if oldest is None:  # every other connection is serving a request (or idles between two)
                self._refuse(503, b"Service Unavailable", b"too many open connections; try again shortly")
            else:
                oldest._refuse(408, b"Request Timeout", b"the request headers did not arrive in time")

    def _in_flight(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # a later request on a kept-alive connection
            self._start_header_timer()

    def on_headers_complete(self) -> None:
        self._stop_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _start_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self._limits().header_timeout_s, self._headers_too_slow)
        self.waiting[self] = None

    def _stop_header_timer(self) -> None:
        self.waiting.pop(self, None)
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        self.waiting.pop(self, None)
        if self.transport.is_closing():
            return
        if self._in_flight():
            self._start_header_timer()  # a request in flight: the next one's headers are timed after it
            return
        self._refuse(408, b"Request Timeout", b"the request headers did not arrive in time")

    def _refuse(self, status: int, reason: bytes, message: bytes) -> None:
        self._stop_header_timer()
        body = b'{"detail":"' + message + b'"}'
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        self.transport.write(head % (status, reason, len(body)) + body)
        self.transport.close()
