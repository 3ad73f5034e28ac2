"""RFC 6749 §6 refresh, rotating the refresh token on every use; a reused token revokes its family
(OAuth 2.0 Security BCP §4.14.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import constants as c
from ..errors import InvalidGrantError, InvalidRequestError, UnauthorizedClientError
from .base import GrantHandler, narrow_scope, ttl, user_token_response

if TYPE_CHECKING:
    from ...provider import Provider
    from ...store.models import Client, Grant, RefreshToken


class RefreshTokenGrant(GrantHandler):
    grant_type = c.GRANT_REFRESH_TOKEN

    async def handle_async(self, provider: Provider, client: Client, form: dict[str, str]) -> dict[str, Any]:
        if self.grant_type not in client.grant_types:
            raise UnauthorizedClientError("this client may not use the refresh_token grant")
        token = form.get("refresh_token")
        if not token:
            raise InvalidRequestError("refresh_token is required")

        def check(current: RefreshToken, grant: Grant) -> str:
            if current.client_id != client.client_id:
                raise InvalidGrantError("the refresh token was issued to another client")
            return narrow_scope(form.get("scope"), grant.scope)

        rotation = await provider.grants.rotate_refresh_token(token, check=check,
                                                              ttl=ttl(provider, client, "refresh_token_ttl"))
        if rotation.old is None:
            raise InvalidGrantError("the refresh token is invalid")
        if rotation.reused:
            raise InvalidGrantError("the refresh token was already used", detail="refresh token reuse")
        if rotation.new_token is None or rotation.grant is None:
            raise InvalidGrantError("the refresh token expired or was revoked")
        return user_token_response(provider, client, rotation.grant, scope=rotation.scope,
                                   refresh_token=rotation.new_token, user=rotation.user)
