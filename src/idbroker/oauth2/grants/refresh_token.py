"""RFC 6749 §6 refresh, rotating the refresh token on every use; a reused token revokes its family
(OAuth 2.0 Security BCP §4.14.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import constants as c
from .. import dpop
from ..errors import InvalidGrantError
from .base import UserGrant, narrow_scope, ttl

if TYPE_CHECKING:
    from ...store.models import Client, Grant, RefreshToken


class RefreshTokenGrant(UserGrant):
    grant_type = c.GRANT_REFRESH_TOKEN

    async def handle(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        token = self.presented(client, form, "refresh_token")
        jkt = dpop.BOUND_KEY.get()

        def check(current: RefreshToken, grant: Grant) -> str:
            if current.client_id != client.client_id:
                raise InvalidGrantError("the refresh token was issued to another client")
            bound = getattr(grant, "dpop_jkt", None)
            if bound and bound != jkt:  # RFC 9449 §5: a proof with the key the token is bound to
                raise InvalidGrantError("the refresh token is bound to another DPoP key")
            return narrow_scope(form.get("scope"), grant.scope)

        rotation = await self.grant_store.rotate_refresh_token(token, check=check,
                                                               ttl=ttl(self.settings, client, "refresh_token_ttl"))
        if rotation.old is None:
            raise InvalidGrantError("the refresh token is invalid")
        if rotation.reused:
            raise InvalidGrantError("the refresh token was already used", detail="refresh token reuse")
        if rotation.new_token is None or rotation.grant is None:
            raise InvalidGrantError("the refresh token expired or was revoked")
        return self.token_response(client, rotation.grant, scope=rotation.scope, refresh_token=rotation.new_token,
                                   user=rotation.user)
