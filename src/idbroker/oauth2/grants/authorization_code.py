"""RFC 6749 §4.1.3 authorization code grant, with PKCE (RFC 7636) applied as an extension."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...store.db import aware, utcnow
from .. import constants as c
from .. import pkce
from ..errors import InvalidGrantError
from .base import UserGrant

if TYPE_CHECKING:
    from ...store.models import Client


class AuthorizationCodeGrant(UserGrant):
    grant_type = c.GRANT_AUTHORIZATION_CODE

    async def handle(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        code = self.presented(client, form, "code")
        def check(row: Any, grant: Any) -> None:
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

        # Every outcome but "unknown code" uses the code up (a failed attempt cannot be retried).
        redeemed = await self.grant_store.redeem_code(code, check=check, refresh_ttl=self.refresh_ttl(client),
                                                      dpop_jkt=self.refresh_binding(client))
        if redeemed.code is None:
            raise InvalidGrantError("the authorization code is invalid")
        if redeemed.replayed:
            # RFC 6749 §4.1.2: a code used twice revokes every token issued from it.
            raise InvalidGrantError("the authorization code was already used", detail="code replay")
        return self.token_response(client, redeemed.grant, scope=redeemed.grant.scope, nonce=redeemed.code.nonce,
                                   refresh_token=redeemed.refresh_token, user=redeemed.user)
