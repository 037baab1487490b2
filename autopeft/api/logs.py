"""Structured logs: one JSON object (or one ``key=value`` line) per event, on stderr.

Fields given with ``log.info(msg, extra={...})`` become keys of the line.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")})
    if record.exc_info:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        exc = fields.pop("exc", None)
        line = " ".join(f"{k}={_kv(v)}" for k, v in fields.items())
        return f"{line}\n{exc}" if exc else line


def _kv(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Send ``autopeft`` and ``uvicorn`` logs to stderr in one format (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    handler.set_name("autopeft")
    for name in ("autopeft", "uvicorn", "uvicorn.error", "alembic"):
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if h.get_name() != "autopeft"]
        if name in ("autopeft", "uvicorn", "alembic"):
            logger.addHandler(handler)
            logger.propagate = False
        quiet = logging.WARNING if name == "alembic" else logging.INFO
        logger.setLevel(level if name == "autopeft" else max(logging.getLevelName(level), quiet))
    logging.getLogger("uvicorn.access").disabled = True  # the access log is ours (api.middleware)
