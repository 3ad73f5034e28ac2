"""RFC 6749 §3.2 token endpoint: authenticate the client, hand off to the grant handler."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..oauth2.errors import InvalidRequestError, OAuth2Error, UnsupportedGrantTypeError
from ..web.metrics import token_issued
from .common import error_response, json_response, provider_of, read_pairs, unique_params


async def token_endpoint(request: Request) -> Response:
    provider = provider_of(request)
    try:
        pairs = await read_pairs(request)
        named = [value for key, value in pairs if key == "grant_type"]
        handler = provider.grant_handlers.get(named[0]) if len(named) == 1 else None
        # A grant may take some parameters more than once (RFC 8693 §2.1); every other one is once.
        form = unique_params(pairs, getattr(handler, "repeatable", ()))
        grant_type = form.get("grant_type")
        if not grant_type:
            raise InvalidRequestError("grant_type is required")
        if handler is None:
            raise UnsupportedGrantTypeError(f"grant type {grant_type!r} is not supported")

        # Client authentication is CPU only while the registry has the client cached (a few seconds).
        client = provider.client_auth.authenticate(request.headers.get("authorization"), form).client
        body = await handler.handle(client, form)
        token_issued(grant_type, client.client_id)
    except OAuth2Error as err:
        return error_response(err)
    return json_response(body)
