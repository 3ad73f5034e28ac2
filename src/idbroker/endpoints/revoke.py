"""RFC 7009 token revocation."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..oauth2.errors import InvalidRequestError, InvalidTokenError, OAuth2Error
from .common import NO_STORE, error_response, provider_of, read_form


async def revoke_endpoint(request: Request) -> Response:
    provider = provider_of(request)
    try:
        form = await read_form(request)

        def run() -> None:
            auth = provider.client_auth.authenticate(request.headers.get("authorization"), form)
            token = form.get("token")
            if not token:
                raise InvalidRequestError("token is required")
            revoke(provider, auth.client.client_id, token, form.get("token_type_hint"))

        await run_in_threadpool(run)
    except OAuth2Error as err:
        return error_response(err)
    # RFC 7009 §2.2: 200 whether or not the token was valid.
    return Response(status_code=200, headers=NO_STORE)


def revoke(provider, client_id: str, token: str, hint: str | None) -> None:  # type: ignore[no-untyped-def]
    """Revokes a token issued to `client_id`; unknown tokens and other clients' are ignored.
    Access tokens are JWTs and refresh tokens never contain a '.', so the token's form decides
    its kind and the hint (RFC 7009 §2.1) is not needed. A refresh token takes its whole grant
    (every token issued from it) with it."""
    if token.count(".") == 2:
        try:
            claims = provider.access_tokens.validate(token)
        except InvalidTokenError:
            return
        if claims.get("client_id") == client_id:
            provider.grants.revoke_jti(claims["jti"], datetime.fromtimestamp(claims["exp"], UTC))
        return
    found = provider.grants.find_refresh_token(token)
    if found is not None and found[0].client_id == client_id:
        provider.grants.revoke_grant(found[1].id)
