"""The interface every grant handler implements, and what the user grants share.

A handler is built once by the composition root with exactly the collaborators its ``__init__``
names (as fosite's handlers declare theirs): the grant store, the token issuers, the user
directory, the tokens settings section. It never sees the whole broker. The token endpoint has
already authenticated the client; ``handle`` validates the rest of the request and returns the
token response body (RFC 6749 §5.1) or raises an ``OAuth2Error``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ...oidc.claims import id_token_claims, requested_claims, upstream_claims
from ...store.db import aware
from .. import constants as c
from .. import dpop
from ..errors import InvalidGrantError, InvalidRequestError, InvalidScopeError, UnauthorizedClientError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ...accounts.users import UserService
    from ...oidc.id_token import IdTokens
    from ...settings import TokenSettings
    from ...store.models import Client, Grant, User
    from ..grant_store import GrantStore
    from ..tokens import AccessTokens


class GrantHandler(Protocol):
    grant_type: ClassVar[str]

    async def handle(self, client: Client, form: dict[str, str]) -> dict[str, Any]: ...


def ttl(settings: TokenSettings, client: Client, name: str) -> int:
    """A lifetime (`name`, e.g. "access_token_ttl"): the client's own, else the broker's."""
    return getattr(client, name) or getattr(settings, name)


def narrow_scope(requested: str | None, granted: str) -> str:
    """RFC 6749 §6: a refresh may ask for a subset of the granted scope, never more."""
    if requested is None:
        return granted
    asked = requested.split()
    allowed = set(granted.split())
    if not asked or any(s not in allowed for s in asked):
        raise InvalidScopeError("the requested scope exceeds the granted scope")
    return " ".join(dict.fromkeys(asked))


class UserGrant:
    """What a grant made on behalf of a user (code, refresh) uses to answer with tokens."""

    grant_type: ClassVar[str]

    def __init__(self, grant_store: GrantStore, users: UserService, access_tokens: AccessTokens,
                 id_tokens: IdTokens, settings: TokenSettings):
        self.grant_store = grant_store
        self.users = users
        self.access_tokens = access_tokens
        self.id_tokens = id_tokens
        self.settings = settings

    def presented(self, client: Client, form: dict[str, str], parameter: str) -> str:
        """The credential the grant redeems (`code`, `refresh_token`), once the client is known
        to be registered for the grant: RFC 6749 §5.2 unauthorized_client, else invalid_request
        when the parameter is missing."""
        if self.grant_type not in client.grant_types:
            raise UnauthorizedClientError(f"this client may not use the {self.grant_type} grant")
        value = form.get(parameter)
        if not value:
            raise InvalidRequestError(f"{parameter} is required")
        return value

    @staticmethod
    def refresh_binding(client: Client) -> str | None:
        """The DPoP key (thumbprint) the refresh token the request gets is bound to, written with it
        in the transaction that issues it: RFC 9449 §5 for a public client, and for a FAPI 2.0 one
        (oauth2/fapi.py); None for a bearer request or another confidential client."""
        return dpop.BOUND_KEY.get() if client.public or client.fapi2 else None

    def refresh_ttl(self, client: Client) -> Callable[[Grant], int | None]:
        """For a grant of `client`: the lifetime of the refresh token it gets, None when it gets none
        (`wants_refresh_token`). Asked in the transaction that uses the code up."""
        lifetime = ttl(self.settings, client, "refresh_token_ttl")
        return lambda grant: lifetime if wants_refresh_token(client, grant.scope) else None

    def token_response(self, client: Client, grant: Grant, *, scope: str, nonce: str | None = None,
                       refresh_token: str | None = None, user: User | None = None) -> dict[str, Any]:
        """Access token (+ ID token when openid was granted) for a user grant (its user loaded
        already, or looked up here)."""
        if user is None:
            user = self.users.by_id(grant.user_id)
        if user is None or user.disabled:
            raise InvalidGrantError("the user of this grant is no longer active")
        auth_time = int(aware(grant.auth_time).timestamp())
        at = self.access_tokens.issue(client_id=client.client_id, sub=user.sub, scope=scope,
                                      ttl=ttl(self.settings, client, "access_token_ttl"), grant_id=grant.id,
                                      auth_time=auth_time, acr=grant.acr, amr=grant.amr, sid=grant.sid,
                                      idp=grant.idp)
        body: dict[str, Any] = {"access_token": at.token, "token_type": "Bearer", "expires_in": at.expires_in,
                                "scope": scope}
        if c.SCOPE_OPENID in scope.split():
            body["id_token"] = self.id_tokens.issue(
                client_id=client.client_id, alg=client.id_token_signed_response_alg,
                sub=self.id_tokens.subject(client, user.sub),
                ttl=ttl(self.settings, client, "id_token_ttl"), auth_time=auth_time, nonce=nonce, sid=grant.sid,
                acr=grant.acr, amr=grant.amr, access_token=at.token,
                extra=upstream_claims(grant.idp) | id_token_claims(user, scope.split())
                | requested_claims(user, grant.claims, "id_token", scope.split()))
        if refresh_token:
            body["refresh_token"] = refresh_token
        return body


def wants_refresh_token(client: Client, scope: str) -> bool:
    """Refresh tokens go to clients allowed the refresh_token grant that asked for offline_access
    (OIDC Core §11), or to any such client when it is not an OpenID request."""
    if c.GRANT_REFRESH_TOKEN not in client.grant_types:
        return False
    scopes = scope.split()
    return c.SCOPE_OFFLINE in scopes or c.SCOPE_OPENID not in scopes
