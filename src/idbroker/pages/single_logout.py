"""SAML single logout through the browser (SAML 2.0 Profiles §4.4), both ways.

- **We start it** (`start`): when a session that began through a SAML upstream ends by logout
  (endpoints/logout.py), the local session has already ended; the browser is then sent to the
  IdP's SingleLogoutService with our signed LogoutRequest. What to do after - the
  post_logout_redirect_uri (with its state) or our "signed out" page - and the request's ID and
  RelayState ride in a short-lived sealed cookie (JWE, path /idp/), as the upstream sign-in's
  state does (pages/upstream_sign_in.py): nothing is stored for a browser that never comes back,
  and that browser is signed out here anyway.
- **The IdP answers** at ``{issuer}/idp/{id}/slo`` (Redirect or POST binding) with a
  LogoutResponse, checked by the kind (federation/saml.py `logout_response`); then the browser
  goes on as the logout said. A missing cookie, a refused or failed answer: the page says the user
  is signed out here but the provider did not confirm it, never an error without a way on.
- **The IdP starts it**: a LogoutRequest at the same address, checked by the kind; the local
  sessions of that NameID (and SessionIndex, when named) end as at any logout (back-channel logout
  tokens to the clients that took part) and the IdP gets our signed LogoutResponse.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..federation.base import UpstreamError
from ..federation.saml_sessions import SamlSessions
from ..security import SealedState
from ..text import N_
from ..web.body import BodyError, read_form

if TYPE_CHECKING:
    from ..flow.journey import Journey
    from ..provider import Provider

log = logging.getLogger("idbroker.federation")

STATE_TTL = 600
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
NOT_CONFIRMED = N_("You are signed out here, but the sign-in provider did not confirm that you are signed "
                   "out there too. Close your browser to be sure.")
BAD_LOGOUT_REQUEST = N_("This sign-out request could not be verified.")


class SingleLogout:
    def __init__(self, provider: Provider, journey: Journey):
        self.journey = journey
        self.upstreams = provider.upstreams
        self.signout = provider.signout
        self.clients = provider.clients
        self.saml_sessions = SamlSessions(provider.db)
        settings = provider.settings
        self.secure = settings.secure_cookies
        self.cookie = f"{settings.cookie_name}_slo"
        self._state = SealedState(settings.secret_bytes(), "idbroker single logout", STATE_TTL)

    # -- we start ---------------------------------------------------------------------------------
    async def start(self, sid: str, *, after: str | None, client_id: str | None) -> Response | None:
        """The redirect to the IdP's SingleLogoutService for session `sid`, or None when it did not
        begin through a SAML upstream with one (or the request cannot be made: then only the local
        session ends). `after`: the post_logout_redirect_uri with its state, if any."""
        saved = await run_in_threadpool(self.saml_sessions.of, sid)
        if saved is None:
            return None
        found = await run_in_threadpool(self.upstreams.get, saved.provider_id)
        if found is None or not hasattr(found[1], "logout_request"):
            return None
        try:
            made = await found[1].logout_request(saved.name_id, saved.session_index)  # type: ignore[union-attr]
        except UpstreamError as err:
            log.info("upstream %s: no single logout: %s", saved.provider_id, err.detail or err.message)
            return None
        if made is None:
            return None
        location, request_id, relay_state = made
        sealed = self._state.seal({"p": saved.provider_id, "r": request_id, "s": relay_state, "a": after,
                                   "c": client_id})
        response = RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})
        response.set_cookie(self.cookie, sealed, max_age=STATE_TTL, path="/idp/", httponly=True, secure=self.secure,
                            samesite="none" if self.secure else "lax")
        return response

    # -- the IdP at /idp/{id}/slo -----------------------------------------------------------------
    async def endpoint(self, request: Request) -> Response:
        provider_id = request.path_params["id"]
        if request.method == "POST":
            try:
                form = await read_form(request)
            except BodyError:
                return self.journey.error_page(request, BAD_LOGOUT_REQUEST, 400)
            params = {k: v for k, v in form.items() if isinstance(v, str)}
            binding = BINDING_POST
        else:
            params = dict(request.query_params)
            binding = BINDING_REDIRECT
        if "SAMLResponse" in params:
            return self._forget(await self._answered(request, provider_id, params, binding))
        if "SAMLRequest" in params:
            return await self._asked(request, provider_id, params, binding)
        return self.journey.error_page(request, BAD_LOGOUT_REQUEST, 400)

    async def _answered(self, request: Request, provider_id: str, params: dict[str, str], binding: str) -> Response:
        state = self._state.open(request.cookies.get(self.cookie))
        if state is None or state.get("p") != provider_id:
            log.info("upstream %s: LogoutResponse without this browser's logout state", provider_id[:64])
            return self._unconfirmed(request)
        found = await run_in_threadpool(self.upstreams.get, provider_id)
        if found is None or not hasattr(found[1], "logout_response"):
            return self._unconfirmed(request)
        try:
            await found[1].logout_response(params, binding, state["r"], state["s"])  # type: ignore[union-attr]
        except UpstreamError as err:
            log.info("upstream %s: LogoutResponse refused: %s", provider_id, err.detail or err.message)
            return self._unconfirmed(request)
        if state.get("a"):
            return RedirectResponse(state["a"], status_code=303)
        client = await run_in_threadpool(self.clients.get, state["c"]) if state.get("c") else None
        return self.journey.pages.render(request, "login/logged_out.html", client=client)

    async def _asked(self, request: Request, provider_id: str, params: dict[str, str], binding: str) -> Response:
        found = await run_in_threadpool(self.upstreams.get, provider_id)
        if found is None or not hasattr(found[1], "logout_request_received"):
            return self.journey.error_page(request, BAD_LOGOUT_REQUEST, 404)
        upstream = found[1]
        try:
            request_id, subject, indexes = await upstream.logout_request_received(params, binding)  # type: ignore[union-attr]
        except UpstreamError as err:
            log.info("upstream %s: LogoutRequest refused: %s", provider_id, err.detail or err.message)
            return self.journey.error_page(request, BAD_LOGOUT_REQUEST, 400)
        deliveries = await run_in_threadpool(self._end, provider_id, subject, indexes)
        try:
            how, answer = await upstream.logout_answer(request_id, params.get("RelayState"))  # type: ignore[union-attr]
        except UpstreamError as err:
            log.info("upstream %s: no LogoutResponse: %s", provider_id, err.detail or err.message)
            response: Response = self.journey.pages.render(request, "login/logged_out.html", client=None)
        else:
            response = RedirectResponse(answer, status_code=303) if how == "redirect" else HTMLResponse(answer)
        response.headers["Cache-Control"] = "no-store"
        if self.journey.current(request) is None:   # this browser's session was one of them
            response.delete_cookie(self.journey.session_cookie, path="/")
        response.background = BackgroundTask(self.signout.notify, deliveries)
        return response

    def _end(self, provider_id: str, subject: str, indexes: list[str]) -> list[Any]:
        by_sub: dict[str, list[str]] = {}
        for sid, sub in self.saml_sessions.live(provider_id, subject, indexes):
            by_sub.setdefault(sub, []).append(sid)
        deliveries: list[Any] = []
        for sub, sids in by_sub.items():
            deliveries += self.signout.end(sids, sub)
        log.info("upstream %s: IdP-initiated logout ended %d session(s)", provider_id,
                 sum(len(s) for s in by_sub.values()))
        return deliveries

    def _unconfirmed(self, request: Request) -> Response:
        """Signed out here (the session ended before the browser left), not confirmed there."""
        return self.journey.pages.render(request, "login/logout_unconfirmed.html", status=400, message=NOT_CONFIRMED)

    def _forget(self, response: Response) -> Response:
        response.delete_cookie(self.cookie, path="/idp/")
        return response
