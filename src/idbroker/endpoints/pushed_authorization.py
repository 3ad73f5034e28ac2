"""RFC 9126 §2 pushed authorization request endpoint: authenticate the client, validate and keep
the request (oauth2/pushed_requests.py), answer 201 with its request_uri."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..oauth2.errors import OAuth2Error
from .common import error_response, json_response, provider_of, read_form


async def par_endpoint(request: Request) -> Response:
    provider = provider_of(request)
    try:
        form = await read_form(request)
        client = provider.client_auth.authenticate(request.headers.get("authorization"), form).client
        body = await run_in_threadpool(provider.authorization_requests.push, client, form)
    except OAuth2Error as err:
        return error_response(err)
    return json_response(body, 201)
