"""The login and consent pages (the signed-in pages are in dashboard.py and account.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..flow.journey import EXPIRED
from ..oauth2 import constants as c
from ..oauth2.errors import AccessDeniedError
from ..web.csrf import Csrf
from ..web.i18n import N_
from ..web.navigation import local_path
from .hosted import FORM_EXPIRED, posted_form
from .protection import check_password, client_ip, too_many
from .second_step import second_step_url

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ..flow.journey import Journey
    from ..store.models import BrowserSession, Grant, Interaction, User

SCOPE_TEXT = {
    "openid": N_("Confirm your identity"),
    "profile": N_("Your name and profile details"),
    "email": N_("Your email address"),
    "phone": N_("Your phone number"),
    "address": N_("Your postal address"),
    "offline_access": N_("Stay connected when you are not using it"),
}
LOGIN_FAILED = N_("Incorrect email or password.")
SIGN_IN_FIRST = N_("Please sign in.")


@dataclass
class SignedIn:
    """What the sign-in's write made: the browser session (and its cookie value), and either the
    page the parked request needs next or the request's grant and response parameters."""

    cookie: str
    session: BrowserSession
    prompt: str | None = None
    issued: tuple[Grant, dict[str, str]] | None = None


class LoginViews:
    def __init__(self, journey: Journey, csrf: Csrf):
        self.journey = journey
        self.provider = journey.provider
        self.pages = journey.pages
        self.csrf = csrf

    def _page(self, request: Request, template: str, status: int = 200, *,
              found: tuple[BrowserSession, User] | None, **context: Any) -> Response:
        """`found`: the browser's session as the view already looked it up (the page's language
        may be its user's)."""
        token, fresh = self.csrf.token(request)
        req = context.pop("req", None)
        response = self.pages.render(request, template, status=status, csrf_token=token,
                                     ui_locales=req.params.get("ui_locales") if req else None,
                                     user_locale=found[1].locale if found else None, **context)
        self.csrf.set_cookie(response, fresh)
        return response

    def _interaction(self, request: Request, value: str | None) -> tuple[Interaction | None, Any]:
        interaction = self.journey.interactions.get(value)
        if interaction is None:
            return None, None
        req = self.journey.request_of(interaction)
        return (interaction, req) if req is not None else (None, None)

    def _login_context(self, request: Request, interaction: Interaction | None, req: Any,
                       found: tuple[BrowserSession, User] | None) -> dict[str, Any]:
        return {
            "interaction": interaction.id if interaction else "",
            "client": req.client if req else None,
            "login_hint": req.params.get("login_hint", "") if req else "",
            "current_user": found[1] if found and req and "select_account" in req.prompt else None,
            "req": req,
            "next": local_path(request.query_params.get("next"), "") if interaction is None else "",
        }

    # -- login -------------------------------------------------------------------------------------
    # Each view reads the request on the event loop, then does everything else - every query, the
    # password check, the one write of a sign-in, the page - in one trip to the thread pool.
    async def login_form(self, request: Request) -> Response:
        return await run_in_threadpool(self._login_form, request)

    def _login_form(self, request: Request) -> Response:
        value = request.query_params.get("interaction")
        interaction, req = self._interaction(request, value)
        if value and interaction is None:
            return self.journey.error_page(request, EXPIRED, 400)
        found = self.journey.current(request)
        return self._page(request, "login/login.html", found=found,
                          **self._login_context(request, interaction, req, found))

    async def login_submit(self, request: Request) -> Response:
        form = await posted_form(request) or FormData()  # unreadable: fails the CSRF check
        return await run_in_threadpool(self._login_submit, request, form)

    def _login_submit(self, request: Request, form: FormData) -> Response:
        interaction, req = self._interaction(request, str(form.get("interaction") or "") or None)
        if form.get("interaction") and interaction is None:
            return self.journey.error_page(request, EXPIRED, 400)
        found = self.journey.current(request)
        context = self._login_context(request, interaction, req, found)
        if not self.csrf.valid(request, str(form.get("csrf_token") or "")):
            return self._page(request, "login/login.html", 400, found=found, error=FORM_EXPIRED, **context)
        if form.get("action") == "continue":
            if found is None or interaction is None:
                return self._page(request, "login/login.html", 400, found=found, error=SIGN_IN_FIRST, **context)
            self.journey.interactions.mark(interaction.id, login_sid=found[0].sid)
            return RedirectResponse(self.journey.resume_url(interaction.id), status_code=303)
        email = str(form.get("username") or "").strip()
        password = str(form.get("password") or "")
        # "Keep me signed in": a persistent cookie for session_ttl; otherwise a cookie that ends
        # with the browser and a server-side session of at most short_session_ttl.
        remember = form.get("remember") == "1"
        settings = self.provider.settings
        ttl = settings.session_ttl if remember else min(settings.short_session_ttl, settings.session_ttl)

        # With the authorization request parked in this browser, the sign-in answers it at once
        # (what /oauth2/authorize/resume would do next): one write for the whole sign-in, and no
        # extra round trip. Else, the interaction is marked and resumed as after any other page.
        here = interaction is not None and req is not None and "none" not in req.prompt \
            and request.cookies.get(self.journey.interaction_cookie) == interaction.id

        def sign_in(user: User) -> Callable[[Session], SignedIn]:
            # Reads first, outside the write (protection.py): what the request still needs.
            step = self.journey.next_prompt(request, req, interaction, user, ["pwd"]) if here else None

            def write(s: Session) -> SignedIn:
                answer = here and step is None
                cookie, session = self.journey.sign_in(
                    request, user, ["pwd"], c.ACR_PASSWORD, ttl=ttl, previous=found[0] if found else None,
                    interaction=None if answer else interaction, session=s)
                issued = self.journey.record_grant(req, session, user, interaction, s) if answer else None
                return SignedIn(cookie, session, step[0] if step else None, issued)

            return write

        # The throttle first: while locked, the password is not checked (protection.py).
        checked = check_password(self.provider, email, password, client_ip(request),
                                 request.headers.get("user-agent"), sign_in) if email and password else None
        if checked is not None and checked.retry_after:
            context["login_hint"] = email
            text, headers = too_many(self.pages, request, checked.retry_after,
                                     ui_locales=req.params.get("ui_locales") if req else None)
            return self._page(request, "login/login.html", 429, found=found, error=text, headers=headers, **context)
        if checked is None or checked.user is None:
            context["login_hint"] = email
            return self._page(request, "login/login.html", 401, found=found, error=LOGIN_FAILED, **context)
        user, done = checked.user, checked.result
        response: Response
        if done.issued is not None:
            response = self.journey.respond(request, req, done.session, user, interaction, *done.issued)
        elif done.prompt is not None:
            response = self.journey.park(req, interaction, done.prompt)
        elif interaction is not None:
            response = RedirectResponse(self.journey.resume_url(interaction.id), status_code=303)
        else:
            # A second factor first, when the policy wants one.
            next_path = str(form.get("next") or "")
            response = RedirectResponse(
                second_step_url(self.journey, request, user, list(done.session.amr), next_path)
                or self.provider.issuer + local_path(next_path), status_code=303)
        self.set_session_cookie(response, done.cookie, persistent=remember)
        return response

    def set_session_cookie(self, response: Response, value: str, *, persistent: bool = False) -> None:
        response.set_cookie(self.journey.session_cookie, value, httponly=True,
                            max_age=self.provider.settings.session_ttl if persistent else None,
                            secure=self.provider.settings.secure_cookies, samesite="lax", path="/")

    # -- consent -------------------------------------------------------------------------------
    async def consent_form(self, request: Request) -> Response:
        return await run_in_threadpool(self._consent_form, request)

    def _consent_form(self, request: Request) -> Response:
        interaction, req = self._interaction(request, request.query_params.get("interaction"))
        found = self.journey.current(request)
        if interaction is None or found is None:
            return self.journey.error_page(request, EXPIRED, 400)
        return self._page(request, "login/consent.html", found=found, interaction=interaction.id, client=req.client,
                          req=req, user=found[1], scopes=[(s, SCOPE_TEXT.get(s, s)) for s in req.scopes])

    async def consent_submit(self, request: Request) -> Response:
        form = await posted_form(request) or FormData()  # unreadable: fails the CSRF check
        return await run_in_threadpool(self._consent_submit, request, form)

    def _consent_submit(self, request: Request, form: FormData) -> Response:
        interaction, req = self._interaction(request, str(form.get("interaction") or ""))
        found = self.journey.current(request)
        if interaction is None or found is None:
            return self.journey.error_page(request, EXPIRED, 400)
        if not self.csrf.valid(request, str(form.get("csrf_token") or "")):
            return self.journey.error_page(request, FORM_EXPIRED, 400)
        if form.get("decision") != "allow":
            self.journey.interactions.finish(interaction.id)
            return self.journey.redirect_error(request, req, AccessDeniedError("the user denied the request"))
        user = found[1]
        with self.provider.db.session() as s:
            self.journey.consents.remember(user.id, req.client.client_id, req.scopes, session=s)
            self.journey.interactions.mark(interaction.id, consented=True, session=s)
        return RedirectResponse(self.journey.resume_url(interaction.id), status_code=303)
