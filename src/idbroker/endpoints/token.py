"""RFC 6749 §3.2 token endpoint: authenticate the client, hand off to the grant handler."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..oauth2.dpop import BOUND_KEY
from ..oauth2.dpop import TOKEN_TYPE as DPOP_TOKEN_TYPE
from ..oauth2.errors import InvalidRequestError, OAuth2Error, UnsupportedGrantTypeError
from ..web.metrics import token_issued
from .common import error_response, json_response, provider_of, read_pairs, unique_params
from .dpop_headers import nonce_headers, token_request_key


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
        jkt = await token_request_key(request, provider, client)  # RFC 9449: tokens bound to this key
        bound = BOUND_KEY.set(jkt)
        try:
            body = await handler.handle(client, form)
        finally:
            BOUND_KEY.reset(bound)
        if jkt and "access_token" in body:
            body["token_type"] = DPOP_TOKEN_TYPE  # RFC 9449 §5
        token_issued(grant_type, client.client_id)
    except OAuth2Error as err:
        response = error_response(err)
        response.headers.update(nonce_headers(provider))
        return response
    return json_response(body, headers=nonce_headers(provider))
