"""Request ids and structured logs.

Each request gets an id: the incoming ``X-Request-Id`` when it is a plausible one (at most 128 of
``[A-Za-z0-9._-]``, so that a client cannot write into our logs), else a new random one. It is sent
back in the response's ``X-Request-Id`` and kept in a context variable for the request's log records
(`RequestFields`), with the route, method, status, latency, client_id and sub where known.

``log_format = "json"`` writes one JSON object a line (`JsonFormatter`): time, level, logger,
message and the request's fields. What never goes in a line: tokens, codes, passwords, cookies,
Authorization headers, query strings. The access line names the route template (``/idp/{id}/callback``),
never the URL, so the query strings of /oauth2/authorize and the callbacks stay out; the request's
fields are chosen here (`FIELDS`), never copied from headers. tests/unit/test_json_logs.py drives a
whole sign-in and token exchange and looks for each secret in the lines.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# The request's fields, filled as they become known (the route after routing, client_id and sub
# when an endpoint learns them: `note(client_id=..., sub=...)`).
_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("idbroker_request", default=None)
ACCESS = logging.getLogger("idbroker.access")
FIELDS = ("request_id", "route", "method", "status", "latency_ms", "client_id", "sub", "client_ip")


def request_id_from(value: str | None) -> str:
    if value and _REQUEST_ID_RE.match(value):
        return value
    return secrets.token_hex(16)


def begin(request_id: str, method: str) -> contextvars.Token[dict[str, Any] | None]:
    return _fields.set({"request_id": request_id, "method": method})


def end(token: contextvars.Token[dict[str, Any] | None]) -> None:
    _fields.reset(token)


def note(**fields: Any) -> None:
    """Add what an endpoint learnt (client_id, sub) to the current request's log fields."""
    current = _fields.get()
    if current is not None:
        current.update({k: v for k, v in fields.items() if v is not None})


def current_request_id() -> str | None:
    return (_fields.get() or {}).get("request_id")


class RequestFields(logging.Filter):
    """Puts the request's fields on every record logged while it is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_fields.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(level: str, log_format: str) -> None:
    """The broker's own log lines (`idbroker.*`) on standard error, one line each, as text or JSON."""
    logger = logging.getLogger("idbroker")
    mine = [h for h in logger.handlers if getattr(h, "_idbroker", False)]
    for handler in mine:
        logger.removeHandler(handler)
    if logger.handlers and not mine:
        logger.setLevel(level.upper())
        return  # someone (a test, an embedding application) configured it: theirs
    handler = logging.StreamHandler()
    handler._idbroker = True  # type: ignore[attr-defined]
    handler.addFilter(RequestFields())
    handler.setFormatter(JsonFormatter() if log_format == "json" else
                         logging.Formatter("[%(levelname)s] %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(level.upper())


def access(route: str, method: str, status: int, started: float) -> None:
    """One access-log line: the route template (never the URL or its query), status, latency."""
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    note(route=route, status=status, latency_ms=latency_ms)
    ACCESS.info("%s %s %s", method, route, status)
