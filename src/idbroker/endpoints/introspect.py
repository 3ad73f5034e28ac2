"""RFC 7662 token introspection, for authenticated confidential clients (resource servers)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..oauth2.errors import InvalidRequestError, InvalidTokenError, OAuth2Error
from ..store.db import aware, utcnow
from .common import error_response, json_response, provider_of, read_form

INACTIVE = {"active": False}
AT_FIELDS = ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti", "auth_time", "acr", "amr", "sid",
             "act", "cnf")  # RFC 8693 §4.1 (exchanged tokens); RFC 9449 §6.2 (DPoP-bound)


async def introspect_endpoint(request: Request) -> Response:
    provider = provider_of(request)
    try:
        form = await read_form(request)
        # Client authentication is CPU only while the registry has the client cached (a few seconds).
        provider.client_auth.authenticate(request.headers.get("authorization"), form, allow_public=False)
        token = form.get("token")
        if not token:
            raise InvalidRequestError("token is required")
        if token.count(".") == 2:  # an access token (JWT): usually answered from the caches
            try:
                claims = await provider.access_tokens.check(token)
            except InvalidTokenError:
                body = INACTIVE
            else:
                body = {"active": True, "token_type": "DPoP" if "cnf" in claims else "Bearer",
                        **{k: claims[k] for k in AT_FIELDS if k in claims}}
                body["sub"] = provider.id_tokens.subject(provider.clients.get(claims["client_id"]), claims["sub"])
        else:
            body = await run_in_threadpool(introspect_refresh_token, provider, token)
    except OAuth2Error as err:
        return error_response(err)
    return json_response(body)


def introspect_refresh_token(provider, token: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    found = provider.grants.find_refresh_token(token)
    if found is None:
        return INACTIVE
    rt, grant = found
    if rt.used_at is not None or grant.revoked_at is not None or aware(rt.expires_at) <= utcnow():
        return INACTIVE
    user = provider.users.by_id(grant.user_id)
    if user is None or user.disabled:
        return INACTIVE
    return {"active": True, "token_type": "refresh_token", "scope": rt.scope, "client_id": rt.client_id,
            "sub": provider.id_tokens.subject(provider.clients.get(rt.client_id), user.sub),
            "iss": provider.issuer, "exp": int(aware(rt.expires_at).timestamp()),
            "iat": int(aware(rt.created_at).timestamp())}
