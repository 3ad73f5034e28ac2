"""Signing in through an upstream provider, and linking one to the signed-in account.

- ``GET /idp/{id}/start?interaction=...`` (or ``POST /idp/{id}/link`` from the account's linked
  identities page): the kind's `start` fills a `StartContext`; its state (state, nonce, PKCE
  verifier, SAML request id), the provider, the parked request and the linking user are sealed
  in a short-lived cookie (JWE dir/A256GCM under a sub-key of the server secret, path /idp/), so
  only the browser that started can finish, and nothing is stored for a visitor who never comes
  back. The cookie is SameSite=None when cookies are Secure: Apple's form_post and the SAML POST
  binding come back by a cross-site POST, which a Lax cookie would not accompany.
- ``GET|POST /idp/{id}/callback`` and ``POST /idp/{id}/acs``: the kind's `finish` checks the
  answer against that state; federation/linking.py picks the account (never silently by an
  address); the sign-in ends in the one door (flow/door.py) with amr ``fed``, method
  ``idp:{id}`` and the provider id for the `idp` claim.
- ``GET /idp/{id}/metadata``: the SP metadata of a SAML provider (its kind's `metadata()`).
- ``GET|POST /idp/{id}/slo``: SAML single logout, both ways (pages/single_logout.py); a SAML
  sign-in keeps its NameID and SessionIndex with the new session for it.
- ``GET /account/identities``, ``POST /idp/{id}/unlink``: the linked identities; unlinking never
  removes the last way in.

Every failure - an unknown provider, an expired or foreign state cookie, the upstream's refusal or
error (`UpstreamError`), a refused link - is a page in the user's language with a way back to the
sign-in page; never a 500, never a redirect to an address the client did not register. Those of
a sign-in this browser started (the upstream's errors, a refused link) are also an audit event
(`login.upstream_failed`); a request without this browser's state cookie, or for no configured
provider, is no such attempt and is only logged (at debug level), so that forged or stray requests
cannot fill the audit trail.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ..clients.metadata import offers
from ..federation.base import StartContext, UpstreamError
from ..federation.linking import IDENTITY_LINKED, IDENTITY_UNLINKED, UPSTREAM_FAILED, LinkRefused, session_methods
from ..federation.registry import SAML_KINDS
from ..federation.saml import STATE_LOGIN
from ..federation.saml_sessions import SamlSessions
from ..flow.door import Authenticated
from ..flow.journey import EXPIRED
from ..security import SealedState
from ..text import N_
from ..web.navigation import local_path
from ..web.proxies import client_ip
from .hosted import HostedPages
from .single_logout import SingleLogout

if TYPE_CHECKING:
    from ..federation.base import ExternalIdentity, PasswordAuthority, Upstream, UpstreamConfig
    from ..flow.journey import Journey
    from ..provider import Provider
    from ..store.models import Interaction, UpstreamProvider
    from ..web.csrf import Csrf

log = logging.getLogger("idbroker.federation")

STATE_TTL = 600  # seconds a browser has to come back from the upstream
UNKNOWN_PROVIDER = N_("This sign-in option is not available.")
STATE_LOST = N_("This sign-in took too long or was started in another browser. Please start again.")
IDENTITY_ADDED = N_("%(provider)s is now linked to your account.")


class UpstreamViews(HostedPages):
    def __init__(self, provider: Provider, journey: Journey, csrf: Csrf):
        super().__init__(provider, journey, csrf)
        self.upstreams = provider.upstreams
        self.linking = provider.linking
        self.audit = provider.audit
        self._state = SealedState(provider.settings.secret_bytes(), "idbroker upstream state", STATE_TTL)
        self.cookie = f"{provider.settings.cookie_name}_upstream"
        self.single_logout = SingleLogout(provider, journey)
        self.saml_sessions = SamlSessions(provider.db)

    def routes(self) -> list[Route]:
        return [
            Route("/idp/{id}/start", self.start, methods=["GET"]),
            Route("/idp/{id}/callback", self.callback, methods=["GET", "POST"]),
            Route("/idp/{id}/acs", self.callback, methods=["POST"]),
            Route("/idp/{id}/metadata", self.metadata, methods=["GET"]),
            Route("/idp/{id}/slo", self.single_logout.endpoint, methods=["GET", "POST"]),
            Route("/idp/{id}/link", self.link, methods=["POST"]),
            Route("/idp/{id}/unlink", self.unlink, methods=["POST"]),
            Route("/account/identities", self.identities, methods=["GET"]),
        ]

    # -- the way there ----------------------------------------------------------------------------
    async def start(self, request: Request) -> Response:
        value = request.query_params.get("interaction")
        provider_id = request.path_params["id"]
        (interaction, req), found = await run_in_threadpool(self._reads, provider_id, value, request)
        if value and interaction is None:
            return self.journey.error_page(request, EXPIRED, 400)
        if req is not None and not offers(req.client, provider_id):  # clients update --idp
            return self._unattributed(request, provider_id, interaction, UNKNOWN_PROVIDER,
                                      "not offered to this client", 403)
        # Home-realm discovery (pages/sign_in.py) passes the typed address.
        hint = request.query_params.get("login_hint") or (req.params.get("login_hint") if req is not None else None)
        return await self._go(request, provider_id, found, interaction=interaction, login_hint=hint,
                              next_path=local_path(request.query_params.get("next"), ""))

    def _reads(self, provider_id: str, interaction: str | None, request: Request | None = None
               ) -> tuple[tuple[Interaction, Any] | tuple[None, None],
                          tuple[UpstreamProvider, Upstream | PasswordAuthority] | None]:
        """The parked request (when the page names one) and the provider, read in one trip to the
        thread pool: each trip costs the event loop a hand-off to a thread and back."""
        return self.journey.parked(interaction, request) if interaction else (None, None), \
            self.upstreams.get(provider_id)

    async def link(self, request: Request) -> Response:
        form = await self.form(request)
        found = await run_in_threadpool(self.signed_in, request)
        if found is None:
            return self.to_login()
        if not self.csrf.valid(request, str(form.get("csrf_token") or "")):
            return self.form_expired(request)
        provider_id = request.path_params["id"]
        return await self._go(request, provider_id, await run_in_threadpool(self.upstreams.get, provider_id),
                              link_user=found[1].id)

    async def _go(self, request: Request, provider_id: str,
                  found: tuple[UpstreamProvider, Upstream | PasswordAuthority] | None, *,
                  interaction: Interaction | None = None, login_hint: str | None = None, next_path: str = "",
                  link_user: int | None = None) -> Response:
        if found is None or not hasattr(found[1], "start"):
            return self._unattributed(request, provider_id, None, UNKNOWN_PROVIDER, "unknown provider", 404)
        row, upstream = found
        ctx = StartContext(callback_url=self._callback_url(row), login_hint=login_hint)
        try:
            url = await upstream.start(ctx)  # type: ignore[union-attr]
        except UpstreamError as err:
            return await self._failed(request, row.id, interaction, err.message, err.detail, 502, name=row.name)
        sealed = self._state.seal({"p": row.id, "i": interaction.id if interaction else None, "s": ctx.state,
                             "c": ctx.callback_url, "h": login_hint, "n": next_path, "l": link_user})
        response = RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
        secure = self.settings.secure_cookies
        response.set_cookie(self.cookie, sealed, max_age=STATE_TTL, path="/idp/", httponly=True, secure=secure,
                            samesite="none" if secure else "lax")
        return response

    def _callback_url(self, row: UpstreamProvider) -> str:
        return f"{self.issuer}/idp/{row.id}/" + ("acs" if row.kind in SAML_KINDS else "callback")

    # -- the way back -----------------------------------------------------------------------------
    async def callback(self, request: Request) -> Response:
        provider_id = request.path_params["id"]
        if request.method == "POST":
            form = await self.read_form(request)
            params = {k: v for k, v in (form or FormData()).items() if isinstance(v, str)}
        else:
            params = dict(request.query_params)
        state = self._state.open(request.cookies.get(self.cookie))
        if state is None or state.get("p") != provider_id:
            return self._unattributed(request, provider_id, None, STATE_LOST, "no or foreign state cookie", 400)
        (interaction, req), found = await run_in_threadpool(self._reads, provider_id, state.get("i"))
        if state.get("i") and interaction is None:
            return self._forget(self.journey.error_page(request, EXPIRED, 400))
        if found is None or not hasattr(found[1], "finish"):
            return self._unattributed(request, provider_id, interaction, UNKNOWN_PROVIDER, "unknown provider", 404)
        row, upstream = found
        ctx = StartContext(callback_url=state["c"], login_hint=state.get("h"), state=state.get("s") or {})
        try:
            identity = await upstream.finish(ctx, params)  # type: ignore[union-attr]
        except UpstreamError as err:
            return await self._failed(request, row.id, interaction, err.message, err.detail, 400, name=row.name)
        identity = dataclasses.replace(identity, provider_id=row.id)  # ours, whatever the kind said
        # What the provider was built from (its secrets opened once, then): every kind here keeps it.
        config = getattr(upstream, "config", None) or self.upstreams.config(row)
        return self._forget(await run_in_threadpool(self._finish, request, row, config, identity, interaction, req,
                                                    state, ctx.state.get(STATE_LOGIN)))

    def _finish(self, request: Request, row: UpstreamProvider, config: UpstreamConfig, identity: ExternalIdentity,
                interaction: Interaction | None, req: Any, state: dict[str, Any],
                saml_login: dict[str, Any] | None = None) -> Response:
        signup = self.settings.signup_enabled
        if req is not None and req.client.signup_enabled is not None:
            signup = req.client.signup_enabled
        try:
            resolved = self.linking.resolve(identity, config, signed_in=state.get("l"), signup_allowed=signup,
                                            record_use=False)  # with the sign-in's write, below
        except LinkRefused as refused:
            self._record_failure(request, row.id, f"link refused: {refused.message}")
            return self._failure_page(request, interaction, refused.message, 403, refused.params)
        user = resolved.user
        ip = client_ip(request)
        if resolved.linked:
            self.audit.record(IDENTITY_LINKED, user_id=user.id, ip=ip, user_agent=request.headers.get("user-agent"),
                              idp=row.id, created=resolved.created)
        if state.get("l") is not None:  # linking from the account page: already signed in
            self.linking.record_use(resolved)
            return self.redirect("/account/identities?" + urlencode({"linked": row.id}))
        amr, acr = session_methods(identity, config)
        login = self.journey.door.begin(
            request, Authenticated(user, amr, acr, f"idp:{row.id}", detail={"idp": row.id}, idp=row.id),
            interaction=interaction, req=req, landing=state.get("n") or "", answer_here=True)
        with self.journey.door.db.session() as s:
            self.linking.record_use(resolved, session=s)
            login.write(s)
            if saml_login and login.session is not None:   # for single logout (pages/single_logout.py)
                self.saml_sessions.remember(login.session.sid, row.id, saml_login, identity.subject, session=s)
        return login.response()

    async def metadata(self, request: Request) -> Response:
        found = await run_in_threadpool(self.upstreams.get, request.path_params["id"])
        if found is None or found[0].kind not in SAML_KINDS or not hasattr(found[1], "metadata"):
            return PlainTextResponse("no SAML upstream provider has this id", 404)
        return Response(found[1].metadata(), media_type="application/samlmetadata+xml")  # type: ignore[union-attr]

    # -- linked identities ------------------------------------------------------------------------
    async def identities(self, request: Request) -> Response:
        return await run_in_threadpool(self._identities, request)

    def _identities(self, request: Request, error: str | None = None, status: int = 200) -> Response:
        found = self.signed_in(request)
        if found is None:
            return self.to_login(request)
        user = found[1]
        providers = {r.id: r for r in self.upstreams.list()}
        links = self.linking.links(user.id)
        linked = {link.provider_id for link in links}
        added = providers.get(request.query_params.get("linked", ""))
        return self.page(request, "login/identities.html", status, user=user, error=error,
                         links=[(link, providers.get(link.provider_id)) for link in links],
                         available=[r for r in self.upstreams.buttons() if r.id not in linked],
                         added=added.name if added is not None else None, message=IDENTITY_ADDED)

    async def unlink(self, request: Request) -> Response:
        form = await self.form(request)
        return await run_in_threadpool(self._unlink, request, form, request.path_params["id"])

    def _unlink(self, request: Request, form: FormData, provider_id: str) -> Response:
        found = self.signed_in(request)
        if found is None:
            return self.to_login()
        if not self.csrf.valid(request, str(form.get("csrf_token") or "")):
            return self.form_expired(request)
        user = found[1]
        try:
            removed = self.linking.unlink(user, provider_id)
        except LinkRefused as refused:
            return self._identities(request, refused.message, 400)
        if removed:
            self.audit.record(IDENTITY_UNLINKED, user_id=user.id, ip=client_ip(request),
                              user_agent=request.headers.get("user-agent"), idp=provider_id)
        return self.redirect("/account/identities")

    # -- failures ---------------------------------------------------------------------------------
    async def _failed(self, request: Request, provider_id: str, interaction: Interaction | None, message: str,
                      detail: str, status: int, *, name: str | None = None) -> Response:
        log.info("upstream %s: %s", provider_id, detail or message)
        await run_in_threadpool(self._record_failure, request, provider_id, detail or message)
        params = {"provider": name or provider_id}
        return self._forget(self._failure_page(request, interaction, message, status, params))

    def _unattributed(self, request: Request, provider_id: str, interaction: Interaction | None, message: str,
                      detail: str, status: int) -> Response:
        """A request that is no sign-in attempt of this browser (no state cookie of its own, no
        such provider): the page, but no audit event, so that stray or forged requests cannot
        fill the audit trail."""
        log.debug("upstream %s: %s", provider_id[:64], detail)
        return self._forget(self._failure_page(request, interaction, message, status, {"provider": provider_id}))

    def _record_failure(self, request: Request, provider_id: str, detail: str) -> None:
        self.audit.record(UPSTREAM_FAILED, ip=client_ip(request),
                          user_agent=request.headers.get("user-agent"), idp=provider_id[:64], reason=detail[:500])

    def _failure_page(self, request: Request, interaction: Interaction | None, message: str, status: int,
                      params: dict[str, Any] | None) -> Response:
        """The error page, with the way back to the sign-in page (of the parked request, if any)."""
        back = "/login" + ("?" + urlencode({"interaction": interaction.id}) if interaction is not None else "")
        return self.page(request, "login/upstream_error.html", status, message=message, params=params or {},
                         back=back)

    def _forget(self, response: Response) -> Response:
        response.delete_cookie(self.cookie, path="/idp/")
        return response
