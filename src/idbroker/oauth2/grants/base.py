"""The small interface every grant handler implements."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from ...store.db import aware
from .. import constants as c
from ..errors import InvalidGrantError, InvalidScopeError

if TYPE_CHECKING:
    from ...provider import Provider
    from ...store.models import Client, Grant, User


class GrantHandler:
    grant_type: str = ""
    # False when `handle` only computes (no database, no network): the token endpoint then runs
    # it on the event loop instead of paying for a thread-pool hop.
    blocking: bool = True

    def handle(self, provider: Provider, client: Client, form: dict[str, str]) -> dict[str, Any]:
        """Validate the request and return the token response body (RFC 6749 §5.1)."""
        raise NotImplementedError

    async def handle_async(self, provider: Provider, client: Client, form: dict[str, str]) -> dict[str, Any]:
        """What the token endpoint calls: `handle` in the thread pool when it blocks, else right
        here. A grant whose waits are all awaitable overrides this instead."""
        if self.blocking:
            return await run_in_threadpool(self.handle, provider, client, form)
        return self.handle(provider, client, form)


def ttl(provider: Provider, client: Client, name: str) -> int:
    return getattr(client, name) or getattr(provider.settings, name)


def narrow_scope(requested: str | None, granted: str) -> str:
    """RFC 6749 §6: a refresh may ask for a subset of the granted scope, never more."""
    if requested is None:
        return granted
    asked = requested.split()
    allowed = set(granted.split())
    if not asked or any(s not in allowed for s in asked):
        raise InvalidScopeError("the requested scope exceeds the granted scope")
    return " ".join(dict.fromkeys(asked))


def user_token_response(provider: Provider, client: Client, grant: Grant, *, scope: str,
                        nonce: str | None = None, with_id_token: bool = True,
                        refresh_token: str | None = None, audience: str | None = None,
                        user: User | None = None) -> dict[str, Any]:
    """Access token (+ ID token when openid was granted) for a user grant (its user loaded
    already, or looked up here)."""
    if user is None:
        user = provider.users.by_id(grant.user_id)
    if user is None or user.disabled:
        raise InvalidGrantError("the user of this grant is no longer active")
    auth_time = int(aware(grant.auth_time).timestamp())
    at = provider.access_tokens.issue(client_id=client.client_id, sub=user.sub, scope=scope,
                                      ttl=ttl(provider, client, "access_token_ttl"), grant_id=grant.id,
                                      auth_time=auth_time, acr=grant.acr, amr=grant.amr, sid=grant.sid,
                                      audience=audience)
    body: dict[str, Any] = {"access_token": at.token, "token_type": "Bearer", "expires_in": at.expires_in,
                            "scope": scope}
    if with_id_token and c.SCOPE_OPENID in scope.split():
        body["id_token"] = provider.id_tokens.issue(
            client_id=client.client_id, alg=client.id_token_signed_response_alg, sub=user.sub,
            ttl=ttl(provider, client, "id_token_ttl"), auth_time=auth_time, nonce=nonce, sid=grant.sid,
            acr=grant.acr, amr=grant.amr, access_token=at.token)
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
