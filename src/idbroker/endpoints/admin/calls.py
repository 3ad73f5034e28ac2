"""One admin API call: what a handler is given, the errors it raises, the JSON it reads and
writes, and the ETag / If-Match rules (RFC 9110 §8.8.3, §13.1.1)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ...security import is_digits, nul_path
from ...store.db import aware
from ...web import body

MAX_JSON = 64 * 1024
NO_STORE = {"Cache-Control": "no-store"}


class ApiError(Exception):
    """An answer other than success: `error` is an RFC 6749 §5.2-style code, `errors` the
    problems by field path (`redirect_uris[0]`)."""

    def __init__(self, status: int, error: str, description: str = "",
                 errors: list[tuple[str, str]] | None = None):
        super().__init__(description or error)
        self.status, self.error, self.description = status, error, description
        self.errors = errors or []

    def response(self) -> Response:
        out: dict[str, Any] = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        if self.errors:
            out["errors"] = [{"path": p, "message": m} for p, m in self.errors]
        return json_answer(out, self.status)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no such {what}")


def invalid(errors: list[tuple[str, str]], description: str = "the request has invalid fields") -> ApiError:
    return ApiError(422, "invalid_request", description, errors)


def conflict(description: str) -> ApiError:
    return ApiError(409, "conflict", description)


@dataclass
class Call:
    request: Request
    provider: Any
    client_id: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def query(self) -> Any:
        return self.request.query_params

    async def json(self) -> dict[str, Any]:
        """The body: a JSON object of at most MAX_JSON bytes (web/body.py bounds the read)."""
        ctype = self.request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ApiError(415, "invalid_request", "the request body must be application/json")
        try:
            raw = await body.read_body(self.request, MAX_JSON)
        except body.BodyError as exc:
            raise ApiError(413 if "large" in str(exc) else 400, "invalid_request", str(exc)) from None
        try:
            value = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid_request", "the request body is not JSON") from None
        if not isinstance(value, dict):
            raise ApiError(400, "invalid_request", "the request body must be a JSON object")
        where = nul_path(value)
        if where is not None:  # PostgreSQL refuses NUL in text
            raise invalid([(where, "must not contain NUL characters")])
        return value

    def check_if_match(self, current: str) -> None:
        """A stale If-Match is 412 (RFC 9110 §13.1.1); no If-Match: the change is made."""
        header = self.request.headers.get("if-match")
        if header is None:
            return
        tags = [t.strip() for t in header.split(",")]
        if "*" not in tags and current not in tags and current.removeprefix("W/") not in tags:
            raise ApiError(412, "precondition_failed", "the resource changed since it was read (ETag)")


def too_long(values: dict[str, Any], table: Any) -> list[tuple[str, str]]:
    """Fields whose string is longer than the column that stores it."""
    out = []
    for name, value in values.items():
        column = table.columns.get(name)
        length = getattr(column.type, "length", None) if column is not None else None
        if isinstance(value, str) and length and len(value) > length:
            out.append((name, f"must be at most {length} characters"))
    return out


def etag(row: Any) -> str:
    """A strong ETag of a stored row: a hash of every column's value (stored times have whole
    seconds, so two changes within a second would share an updated_at; the content differs)."""
    values = [[c.key, getattr(row, c.key)] for c in row.__table__.columns]
    text = json.dumps(values, sort_keys=True, default=_default)
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


def json_answer(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(value, separators=(",", ":"), default=_default), status_code=status,
                    media_type="application/json", headers={**NO_STORE, **(headers or {})})


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return aware(value).isoformat()
    raise TypeError(type(value).__name__)


def int_param(call: Call, name: str, default: int, low: int, high: int) -> int:
    raw = call.query.get(name)
    if raw is None:
        return default
    if not is_digits(raw) or not low <= int(raw) <= high:
        raise ApiError(400, "invalid_request", f"{name} must be an integer from {low} to {high}",
                       [(name, f"must be an integer from {low} to {high}")])
    return int(raw)
