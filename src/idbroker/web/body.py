"""Request bodies: the one reader every endpoint that takes a body uses, and the form parser on top.

`read_body` reads the body as it streams in and never keeps more than `limit` bytes: a
Content-Length over the limit is refused before anything is read, and reading stops as soon as
the bytes received pass it. The whole body must arrive within BODY_READ_TIMEOUT seconds, so a
client that trickles it cannot hold a request for ever. A body that cannot be read - too large,
too slow, or broken off (a chunked encoding the server could not decode, a client gone
mid-body) - raises BodyError after one line in the log; the caller answers 400 in its own format
(to a client that is gone the answer goes nowhere, which is the quiet close it deserves).

The bytes are kept on the request where Starlette keeps what ``Request.body()`` read, so
``request.form()`` parses them without reading the stream again.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qsl

from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request

log = logging.getLogger("idbroker.http")

MAX_BODY = 64 * 1024       # bytes: every form and JSON body the broker takes is far smaller
MAX_FIELDS = 100
BODY_READ_TIMEOUT = 10.0   # seconds for the whole body (the setting body_read_timeout)


class BodyError(Exception):
    """The body could not be read or parsed; the message is safe to show."""


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The whole body, at most `limit` bytes; BodyError otherwise."""
    kept: bytes | None = getattr(request, "_body", None)
    if kept is None:
        kept = request._body = await _receive(request, limit)  # where Request.body() keeps it
    if len(kept) > limit:
        raise BodyError("the request body is too large")
    return kept


def _timeout(request: Request) -> float:
    """The app's `body_read_timeout` setting (create_app keeps it in app.state)."""
    app = request.scope.get("app")
    return getattr(app.state, "body_read_timeout", BODY_READ_TIMEOUT) if app is not None else BODY_READ_TIMEOUT


async def _receive(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and not (length.isascii() and length.isdigit()):
        raise BodyError("the Content-Length header is not a number")
    if length is not None and int(length) > limit:
        raise BodyError("the request body is too large")
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    try:
        # The ASGI messages read directly, as Request.stream() reads them, without its generator.
        async with asyncio.timeout(timeout := _timeout(request)):  # anyio's cancel scope costs ~3 % of a token call
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":  # http.disconnect
                    request._is_disconnected = True
                    raise ClientDisconnect()
                chunk = message.get("body", b"")
                more = message.get("more_body", False)
                size += len(chunk)
                if size > limit:
                    raise BodyError("the request body is too large")
                chunks.append(chunk)
        request._stream_consumed = True
    except TimeoutError:
        log.info("%s %s: the body did not arrive within %.0f s", request.method, request.url.path, timeout)
        raise BodyError("the request body arrived too slowly") from None
    except ClientDisconnect:
        # One line, no traceback: a client that goes away (or whose body the server could not
        # decode) is not the broker's error.
        log.info("%s %s: the client disconnected before the end of the body", request.method, request.url.path)
        raise BodyError("the request body is incomplete") from None
    return b"".join(chunks)


async def read_form(request: Request, limit: int = MAX_BODY) -> FormData:
    """The posted form (urlencoded, or multipart without files) of at most MAX_FIELDS text fields
    without NUL (which PostgreSQL cannot store), read as UTF-8: a multipart body naming another
    charset is refused (Starlette would decode it with any Python codec it names, unicode_escape
    included). A body of another type reads as an empty form."""
    raw = await read_body(request, limit)
    kind, options = parse_options_header(request.headers.get("content-type"))
    if kind == b"application/x-www-form-urlencoded":
        # What Starlette's parser gives (fields split on "&", empty ones skipped, "+" and %XX
        # decoded as UTF-8 with replacement), at a fifth of its cost: the token endpoint's hot path.
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
        if len(pairs) > MAX_FIELDS:
            raise BodyError("the form cannot be parsed")
        form = request._form = FormData(pairs)  # where Request.form() keeps what it parsed
    else:
        if kind == b"multipart/form-data" and options.get(b"charset", b"utf-8").lower() not in (b"utf-8", b"utf8"):
            raise BodyError("the form must be sent in UTF-8")
        try:
            form = await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=limit)
        except (HTTPException, MultiPartException, ValueError) as exc:
            raise BodyError("the form cannot be parsed") from exc
    for name, value in form.multi_items():
        if not isinstance(value, str) or "\x00" in name or "\x00" in value:
            raise BodyError("the form has a field that is not text")
    return form
