"""RFC 8628 §3.1 device authorization endpoint: a client registered for the device_code grant
(public ones too, §3.1) asks for a device code and a user code (oauth2/device_codes.py)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..oauth2.device_codes import GRANT_DEVICE_CODE
from ..oauth2.errors import InvalidScopeError, OAuth2Error, UnauthorizedClientError
from .common import error_response, json_response, provider_of, read_form


async def device_authorization_endpoint(request: Request) -> Response:
    provider = provider_of(request)
    try:
        form = await read_form(request)
        client = provider.client_auth.authenticate(request.headers.get("authorization"), form).client
        if GRANT_DEVICE_CODE not in client.grant_types:
            raise UnauthorizedClientError("this client may not use the device authorization grant")
        asked = list(dict.fromkeys(form.get("scope", "").split())) or list(client.scopes)
        refused = [s for s in asked if s not in client.scopes]
        if refused:
            raise InvalidScopeError(f"scope not allowed for this client: {' '.join(refused)}")
        body = await run_in_threadpool(provider.device_codes.start, client, " ".join(asked))
    except OAuth2Error as err:
        return error_response(err)
    return json_response(body)
