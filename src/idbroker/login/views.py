"""The login and consent pages (the signed-in pages are in dashboard.py and account.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..oauth2 import constants as c
from ..oauth2.errors import AccessDeniedError
from ..web.csrf import Csrf
from ..web.i18n import N_
from ..web.navigation import local_path
from .hosted import FORM_EXPIRED
from .journey import EXPIRED
from .mfa import second_step_url
from .protection import check_password_async, too_many

if TYPE_CHECKING:
    from ..store.models import Interaction
    from .journey import Journey

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


class LoginViews:
    def __init__(self, journey: Journey, csrf: Csrf):
        self.journey = journey
        self.provider = journey.provider
        self.pages = journey.pages
        self.csrf = csrf

    def _page(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        token, fresh = self.csrf.token(request)
        found = self.journey.current(request)
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

    def _login_context(self, request: Request, interaction: Interaction | None, req: Any) -> dict[str, Any]:
        found = self.journey.current(request)
        return {
            "interaction": interaction.id if interaction else "",
            "client": req.client if req else None,
            "login_hint": req.params.get("login_hint", "") if req else "",
            "current_user": found[1] if found and req and "select_account" in req.prompt else None,
            "req": req,
            "next": local_path(request.query_params.get("next"), "") if interaction is None else "",
        }

    # -- login -------------------------------------------------------------------------------------
    async def login_form(self, request: Request) -> Response:
        value = request.query_params.get("interaction")
        interaction, req = self._interaction(request, value)
        if value and interaction is None:
            return self.journey.error_page(request, EXPIRED, 400)
        return self._page(request, "login/login.html", **self._login_context(request, interaction, req))

    async def login_submit(self, request: Request) -> Response:
        form = await request.form()
        interaction, req = self._interaction(request, str(form.get("interaction") or "") or None)
        context = self._login_context(request, interaction, req)
        if form.get("interaction") and interaction is None:
            return self.journey.error_page(request, EXPIRED, 400)
        if not self.csrf.valid(request, str(form.get("csrf_token") or "")):
            return self._page(request, "login/login.html", 400, error=FORM_EXPIRED, **context)
        if form.get("action") == "continue":
            found = self.journey.current(request)
            if found is None or interaction is None:
                return self._page(request, "login/login.html", 400, error=SIGN_IN_FIRST, **context)
            self.journey.interactions.mark(interaction.id, login_sid=found[0].sid)
            return RedirectResponse(self.journey.resume_url(interaction.id), status_code=303)
        email = str(form.get("username") or "").strip()
        password = str(form.get("password") or "")
        # The throttle first: while locked, the password is not checked (protection.py).
        checked = await check_password_async(self.provider, request, email, password) if email and password else None
        if checked is not None and checked.retry_after:
            context["login_hint"] = email
            text, headers = too_many(self.pages, request, checked.retry_after,
                                     ui_locales=req.params.get("ui_locales") if req else None)
            return self._page(request, "login/login.html", 429, error=text, headers=headers, **context)
        user = checked.user if checked is not None else None
        if user is None:
            context["login_hint"] = email
            return self._page(request, "login/login.html", 401, error=LOGIN_FAILED, **context)
        previous = self.journey.current(request)
        # "Keep me signed in": a persistent cookie for session_ttl; otherwise a cookie that ends
        # with the browser and a server-side session of at most short_session_ttl.
        remember = form.get("remember") == "1"
        settings = self.provider.settings
        cookie, session = await run_in_threadpool(
            self.provider.sessions.create, user, ["pwd"], c.ACR_PASSWORD,
            user_agent=request.headers.get("user-agent"), ip=request.client.host if request.client else None,
            ttl=settings.session_ttl if remember else min(settings.short_session_ttl, settings.session_ttl))
        if previous is not None:
            await run_in_threadpool(self.provider.sessions.end, previous[0].sid)
        if interaction is not None:
            self.journey.interactions.mark(interaction.id, login_sid=session.sid)
            target = self.journey.resume_url(interaction.id)
        else:
            target = self.provider.issuer + local_path(str(form.get("next") or ""))
            # A second factor first, when the policy wants one.
            target = await run_in_threadpool(second_step_url, self.journey, request, user, list(session.amr),
                                             str(form.get("next") or "")) or target
        response = RedirectResponse(target, status_code=303)
        self.set_session_cookie(response, cookie, persistent=remember)
        return response

    def set_session_cookie(self, response: Response, value: str, *, persistent: bool = False) -> None:
        response.set_cookie(self.journey.session_cookie, value, httponly=True,
                            max_age=self.provider.settings.session_ttl if persistent else None,
                            secure=self.provider.settings.secure_cookies, samesite="lax", path="/")

    # -- consent -------------------------------------------------------------------------------
    async def consent_form(self, request: Request) -> Response:
        interaction, req = self._interaction(request, request.query_params.get("interaction"))
        found = self.journey.current(request)
        if interaction is None or found is None:
            return self.journey.error_page(request, EXPIRED, 400)
        return self._page(request, "login/consent.html", interaction=interaction.id, client=req.client, req=req,
                          user=found[1], scopes=[(s, SCOPE_TEXT.get(s, s)) for s in req.scopes])

    async def consent_submit(self, request: Request) -> Response:
        form = await request.form()
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
        await run_in_threadpool(self.journey.consents.remember, user.id, req.client.client_id, req.scopes)
        self.journey.interactions.mark(interaction.id, consented=True)
        return RedirectResponse(self.journey.resume_url(interaction.id), status_code=303)
