"""OIDC RP-Initiated Logout 1.0 and Back-Channel Logout 1.0."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from joserfc.errors import JoseError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..oauth2 import constants as c
from ..oauth2.endpoints.common import unique_params
from ..oauth2.errors import OAuth2Error
from ..security import random_token

if TYPE_CHECKING:
    from ..login.journey import Journey
    from ..provider import Provider
    from ..store.models import Client
    from ..web.csrf import Csrf

log = logging.getLogger("idbroker.logout")


@dataclass
class LogoutRequest:
    client: Client | None = None
    hint: dict[str, Any] | None = None
    redirect_uri: str | None = None
    state: str | None = None


class BadLogoutRequest(Exception):
    pass


class Logout:
    def __init__(self, journey: Journey, csrf: Csrf):
        self.journey = journey
        self.provider: Provider = journey.provider
        self.csrf = csrf

    def _parse(self, params: dict[str, str]) -> LogoutRequest:
        p = self.provider
        out = LogoutRequest(state=params.get("state"))
        hint = params.get("id_token_hint")
        if hint:
            try:
                token = p.keys.verify(hint)  # expired hints are fine (RP-Initiated Logout §2)
            except (JoseError, ValueError):
                raise BadLogoutRequest("The id_token_hint is not a valid ID token from this provider.") from None
            claims = token.claims
            if token.header.get("typ", "JWT").lower() in (c.TYP_ACCESS_TOKEN, c.TYP_LOGOUT_TOKEN):
                raise BadLogoutRequest("The id_token_hint is not an ID token.")
            if claims.get("iss") != p.issuer:
                raise BadLogoutRequest("The id_token_hint was not issued here.")
            out.hint = claims
        client_id = params.get("client_id")
        hinted = out.hint.get("aud") if out.hint else None
        if isinstance(hinted, list):
            hinted = hinted[0] if len(hinted) == 1 else None
        if client_id and hinted and client_id != hinted:
            raise BadLogoutRequest("client_id does not match the id_token_hint.")
        client_id = client_id or hinted
        if client_id:
            out.client = p.clients.get(client_id)
            if out.client is None:
                raise BadLogoutRequest("The application is not registered.")
        uri = params.get("post_logout_redirect_uri")
        if uri:
            if out.client is None:
                raise BadLogoutRequest("post_logout_redirect_uri needs id_token_hint or client_id.")
            if uri not in out.client.post_logout_redirect_uris:
                raise BadLogoutRequest("The post_logout_redirect_uri is not registered for this application.")
            out.redirect_uri = uri
        return out

    async def endpoint(self, request: Request) -> Response:
        try:
            if request.method == "POST":
                form = await request.form()
                params = unique_params([(k, str(v)) for k, v in form.multi_items()])
            else:
                params = unique_params(list(request.query_params.multi_items()))
            req = self._parse(params)
        except (BadLogoutRequest, OAuth2Error) as exc:
            message = exc.args[0] if isinstance(exc, BadLogoutRequest) else exc.description
            return self.journey.error_page(request, message, 400)
        found = self.journey.current(request)
        confirmed = request.method == "POST" and params.get("confirm") == "yes" and \
            self.csrf.valid(request, params.get("csrf_token"))
        hint_matches = bool(found and req.hint and req.hint.get("sub") == found[1].sub
                            and req.hint.get("sid") in (None, found[0].sid))
        if found is not None and not (confirmed or hint_matches):
            token, fresh = self.csrf.token(request)
            keep = {k: v for k, v in params.items() if k not in ("csrf_token", "confirm")}
            response = self.journey.pages.render(request, "login/logout.html", csrf_token=token, params=keep,
                                                 client=req.client, user=found[1])
            self.csrf.set_cookie(response, fresh)
            return response
        task = None
        if found is not None:
            task = BackgroundTask(self.notify, await run_in_threadpool(self.end_session, found[0].sid, found[1].sub))
        if req.redirect_uri:
            response: Response = RedirectResponse(_with_state(req.redirect_uri, req.state), status_code=303)
        else:
            response = self.journey.pages.render(request, "login/logged_out.html", client=req.client)
        response.delete_cookie(self.journey.session_cookie, path="/")
        response.background = task
        return response

    def end_session(self, sid: str, sub: str) -> list[tuple[str, str]]:
        """Ends the session and its grants; returns (backchannel URI, logout token) to deliver."""
        p = self.provider
        p.sessions.end(sid)
        p.grants.revoke_session_grants(sid)
        deliveries = []
        for client_id in p.sessions.clients_of(sid):
            client = p.clients.get(client_id)
            if client is None or not client.backchannel_logout_uri:
                continue
            deliveries.append((client.backchannel_logout_uri, self.logout_token(client, sid, sub)))
        return deliveries

    def logout_token(self, client: Client, sid: str, sub: str) -> str:
        """Back-Channel Logout §2.4."""
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.provider.issuer, "aud": client.client_id, "iat": now,
                                  "exp": now + 120, "jti": random_token(16), "sub": sub, "sid": sid,
                                  "events": {c.BACKCHANNEL_LOGOUT_EVENT: {}}}
        return self.provider.keys.sign(claims, typ=c.TYP_LOGOUT_TOKEN, alg=client.id_token_signed_response_alg)

    async def notify(self, deliveries: list[tuple[str, str]]) -> None:
        if not deliveries:
            return
        timeout = self.provider.settings.backchannel_timeout
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
            await asyncio.gather(*(self._post(http, uri, token) for uri, token in deliveries))

    async def _post(self, http: httpx.AsyncClient, uri: str, token: str) -> None:
        try:
            r = await http.post(uri, data={"logout_token": token},
                                headers={"Cache-Control": "no-cache"})
            if r.status_code >= 300:
                log.warning("back-channel logout to %s answered %s", urlsplit(uri).netloc, r.status_code)
        except httpx.HTTPError as exc:
            log.warning("back-channel logout to %s failed: %s", urlsplit(uri).netloc, type(exc).__name__)


def _with_state(uri: str, state: str | None) -> str:
    if state is None:
        return uri
    parts = urlsplit(uri)
    query = f"{parts.query}&{urlencode({'state': state})}" if parts.query else urlencode({"state": state})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
