"""RFC 6749 §4.1.3 authorization code grant, with PKCE (RFC 7636) applied as an extension."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...store.db import aware, utcnow
from .. import constants as c
from .. import pkce
from ..errors import InvalidGrantError, InvalidRequestError, UnauthorizedClientError
from .base import GrantHandler, ttl, user_token_response, wants_refresh_token

if TYPE_CHECKING:
    from ...provider import Provider
    from ...store.models import Client


class AuthorizationCodeGrant(GrantHandler):
    grant_type = c.GRANT_AUTHORIZATION_CODE

    def handle(self, provider: Provider, client: Client, form: dict[str, str]) -> dict[str, Any]:
        if self.grant_type not in client.grant_types:
            raise UnauthorizedClientError("this client may not use the authorization_code grant")
        code = form.get("code")
        if not code:
            raise InvalidRequestError("code is required")
        redeemed = provider.grants.redeem_code(code)
        row, grant = redeemed.code, redeemed.grant
        if row is None or grant is None:
            raise InvalidGrantError("the authorization code is invalid")
        if redeemed.replayed:
            # RFC 6749 §4.1.2: a code used twice revokes every token issued from it.
            raise InvalidGrantError("the authorization code was already used", detail="code replay")
        if row.client_id != client.client_id:
            raise InvalidGrantError("the authorization code was issued to another client")
        if aware(row.expires_at) <= utcnow():
            raise InvalidGrantError("the authorization code expired")
        # RFC 6749 §4.1.3: redirect_uri must be identical when it was in the authorization request.
        if row.redirect_uri is not None and form.get("redirect_uri") != row.redirect_uri:
            raise InvalidGrantError("redirect_uri does not match the authorization request")
        pkce.check_verifier(row.code_challenge, form.get("code_verifier"))
        if grant.revoked_at is not None:
            raise InvalidGrantError("the authorization was revoked")
        refresh = None
        if wants_refresh_token(client, grant.scope):
            refresh, _ = provider.grants.create_refresh_token(
                grant, scope=grant.scope, ttl=ttl(provider, client, "refresh_token_ttl"))
        return user_token_response(provider, client, grant, scope=grant.scope, nonce=row.nonce,
                                   refresh_token=refresh, user=redeemed.user)
