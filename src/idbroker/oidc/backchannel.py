"""Ending browser sessions, the one way every path uses (logout, the account page, password
change, account deletion): the session and its grants end (offline_access grants stay), and each
client that took part and registered a backchannel_logout_uri receives a logout token
(OIDC Back-Channel Logout 1.0)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..oauth2 import constants as c
from ..security import random_token

if TYPE_CHECKING:
    import httpx

    from ..accounts.sessions import SessionService
    from ..clients.registry import ClientRegistry
    from ..keys.keystore import KeyStore
    from ..oauth2.grant_store import GrantStore
    from ..store.models import Client

log = logging.getLogger("idbroker.logout")

Delivery = tuple[str, str]  # (backchannel_logout_uri, logout token)


class SignOut:
    def __init__(self, sessions: SessionService, grants: GrantStore, clients: ClientRegistry, keys: KeyStore, *,
                 issuer: str, timeout: float, subject: Callable[[Client, str], str] | None = None):
        self.subject = subject or (lambda client, sub: sub)  # IdTokens.subject: pairwise subjects (OIDC Core §8.1)
        self.sessions = sessions
        self.grants = grants
        self.clients = clients
        self.keys = keys
        self.issuer = issuer
        self.timeout = timeout  # for each back-channel POST (settings.sessions.backchannel_timeout)
        self._http: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None

    def end(self, sids: list[str], sub: str) -> list[Delivery]:
        """Ends the sessions and their grants; returns the logout tokens to deliver."""
        deliveries = []
        for sid in sids:
            self.sessions.end(sid)
            self.grants.revoke_session_grants(sid)
            deliveries += self.deliveries(sid, sub)
        return deliveries

    def deliveries(self, sid: str, sub: str) -> list[Delivery]:
        out = []
        for client_id in self.sessions.clients_of(sid):
            client = self.clients.get(client_id)
            if client is not None and client.backchannel_logout_uri:
                out.append((client.backchannel_logout_uri, self.logout_token(client, sid, sub)))
        return out

    def logout_token(self, client: Client, sid: str, sub: str) -> str:
        """Back-Channel Logout §2.4."""
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.issuer, "aud": client.client_id, "iat": now,
                                  "exp": now + 120, "jti": random_token(16), "sid": sid,
                                  "sub": self.subject(client, sub),
                                  "events": {c.BACKCHANNEL_LOGOUT_EVENT: {}}}
        return self.keys.sign(claims, typ=c.TYP_LOGOUT_TOKEN, alg=client.id_token_signed_response_alg)

    async def notify(self, deliveries: list[Delivery]) -> None:
        """POSTs the logout tokens (run after the response: a slow client delays nobody)."""
        if not deliveries:
            return
        http = self._client()
        await asyncio.gather(*(self._post(http, uri, token) for uri, token in deliveries))

    def _client(self) -> httpx.AsyncClient:
        """The client of the running event loop, made at its first delivery and kept: a new client
        loads the CA bundle into a TLS context, ~30 ms of CPU that every logout used to pay. One per
        event loop, since a connection belongs to the loop that opened it (a worker has one)."""
        # Imported here, not with the module: with rich installed httpx loads its command-line
        # interface too, ~7 MB in every worker that never delivers a logout token.
        import httpx

        loop = asyncio.get_running_loop()
        if self._http is None or self._http[0] is not loop:
            self._http = (loop, httpx.AsyncClient(timeout=self.timeout, follow_redirects=False))
        return self._http[1]

    async def _post(self, http: httpx.AsyncClient, uri: str, token: str) -> None:
        import httpx

        try:
            r = await http.post(uri, data={"logout_token": token}, headers={"Cache-Control": "no-cache"})
            if r.status_code >= 300:
                log.warning("back-channel logout to %s answered %s", urlsplit(uri).netloc, r.status_code)
        except httpx.HTTPError as exc:
            log.warning("back-channel logout to %s failed: %s", urlsplit(uri).netloc, type(exc).__name__)
