"""RFC 6749 §4.4 client credentials grant, for confidential clients acting on their own behalf."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import constants as c
from ..errors import InvalidScopeError, InvalidTargetError, UnauthorizedClientError
from .base import ttl

if TYPE_CHECKING:
    from ...settings import TokenSettings
    from ...store.models import Client
    from ..tokens import AccessTokens

USER_SCOPES = {"openid", "profile", "email", "phone", "address", "offline_access"}


class ClientCredentialsGrant:
    grant_type = c.GRANT_CLIENT_CREDENTIALS

    def __init__(self, access_tokens: AccessTokens, settings: TokenSettings):
        self.access_tokens = access_tokens
        self.settings = settings

    async def handle(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        """Runs on the event loop: a signed JWT, nothing stored, nothing to wait for."""
        if self.grant_type not in client.grant_types or client.public:
            raise UnauthorizedClientError("this client may not use the client_credentials grant")
        allowed = [s for s in client.scopes if s not in USER_SCOPES]
        requested = form.get("scope")
        if requested is None:
            scopes = allowed
        else:
            scopes = list(dict.fromkeys(requested.split()))
            if not scopes or any(s not in allowed for s in scopes):
                raise InvalidScopeError("the requested scope is not allowed for this client")
        resource = form.get("resource")  # RFC 8707 §2
        if resource is not None and ("#" in resource or "://" not in resource):
            raise InvalidTargetError("resource must be an absolute URI without a fragment")
        scope = " ".join(scopes)
        at = self.access_tokens.issue(client_id=client.client_id, sub=client.client_id, scope=scope,
                                      ttl=ttl(self.settings, client, "access_token_ttl"), audience=resource)
        body: dict[str, Any] = {"access_token": at.token, "token_type": "Bearer", "expires_in": at.expires_in}
        if scope:
            body["scope"] = scope
        return body
