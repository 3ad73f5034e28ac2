"""Request parsing and response helpers shared by the back-channel endpoints."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
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
    return unique_params(await read_pairs(request))


async def read_pairs(request: Request) -> list[tuple[str, str]]:
    """The urlencoded body as (name, value) pairs, in order, repeats kept."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != FORM_TYPE:
        raise InvalidRequestError(f"the request body must be {FORM_TYPE}")
    try:
        form = await body.read_form(request)
    except body.BodyError as exc:
        raise InvalidRequestError(str(exc)) from None
    return [(key, str(value)) for key, value in form.multi_items()]


# Joins the values of a parameter that may be repeated (RFC 8693 §2.1 audience, resource): NUL
# never occurs in a value (refused below), so the values split back exactly.
REPEATED = "\x00"


def unique_params(pairs: list[tuple[str, str]], repeatable: Collection[str] = ()) -> dict[str, str]:
    """Parameters by name; each once, except those in `repeatable`, whose values are joined
    with REPEATED (``form[name].split(REPEATED)``)."""
    out: dict[str, str] = {}
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            raise InvalidRequestError("parameters must not contain NUL characters")
        if key in out and key not in repeatable:
            raise InvalidRequestError(f"parameter {key!r} was sent more than once")
        if value != "":  # RFC 6749 §3.1: empty parameters are treated as omitted
            out[key] = out[key] + REPEATED + value if key in out else value
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
