"""Request parsing and response helpers shared by the back-channel endpoints."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..oauth2.errors import InvalidClientError, InvalidRequestError, OAuth2Error
from ..web import body

log = logging.getLogger("idbroker.oauth2")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM_TYPE = "application/x-www-form-urlencoded"


def provider_of(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.provider


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded body (read and parsed by web/body.py); one that cannot be read or parsed,
    and a parameter sent twice, are invalid_request (RFC 6749 §3.1, §3.2, §5.2)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != FORM_TYPE:
        raise InvalidRequestError(f"the request body must be {FORM_TYPE}")
    try:
        form = await body.read_form(request)
    except body.BodyError as exc:
        raise InvalidRequestError(str(exc)) from None
    return unique_params([(key, str(value)) for key, value in form.multi_items()])


def unique_params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidRequestError(f"parameter {key!r} was sent more than once")
        if "\x00" in key or "\x00" in value:
            raise InvalidRequestError("parameters must not contain NUL characters")
        if value != "":  # RFC 6749 §3.1: empty parameters are treated as omitted
            out[key] = value
    return out


def json_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=status,
                    media_type="application/json", headers={**NO_STORE, **(headers or {})})


def error_response(err: OAuth2Error) -> Response:
    """RFC 6749 §5.2 JSON error; 401 invalid_client carries WWW-Authenticate."""
    if err.detail:
        log.info("%s: %s (%s)", err.error, err.description, err.detail)
    headers = {}
    if isinstance(err, InvalidClientError):
        headers["WWW-Authenticate"] = 'Basic realm="idbroker", charset="UTF-8"'
    return json_response(err.as_dict(), err.status_code, headers)
