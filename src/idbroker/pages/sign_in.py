"""The login and consent pages (the signed-in pages are in dashboard.py and account.py).

Which ways of signing in the login page offers, and which its POST accepts, are decided here, for
the client of the parked request (`clients update ID --idp ... --no-local-accounts`):

- the buttons: the upstream providers that redirect the browser, those the client allows
  (every one when it names none);
- home-realm discovery: an address whose domain is a provider's (`idp update ID --domain ...`)
  goes to that provider - a redirecting one (oidc, oauth2, saml) by sending the browser to
  ``/idp/{id}/start`` with the address as login_hint, before any password is read (so the
  password field may be left empty); a directory (ldap) by checking the typed password here
  (federation/realm.py, the first password way). A provider the client does not allow is refused
  with a clear message, never silently passed over to the local pool;
- the password form: shown when the client takes local accounts, or allows a directory; sign-up
  and password reset only with local accounts. A client without local accounts refuses a
  password for any address that is not a directory's it allows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..accounts.password_ways import PasswordOutcome
from ..accounts.users import EMAIL_RE
from ..clients.metadata import offers
from ..federation.registry import redirects
from ..flow.door import Authenticated, Login
from ..flow.journey import EXPIRED
from ..oauth2 import constants as c
from ..oauth2.errors import AccessDeniedError
from ..text import N_
from ..web.csrf import Csrf
from ..web.navigation import local_path
from .hosted import FORM_EXPIRED, posted_form
from .protection import check_password, client_ip, too_many

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ..flow.journey import Journey
    from ..provider import Provider
    from ..store.models import BrowserSession, Interaction, User

SCOPE_TEXT = {
    "openid": N_("Confirm your identity"),
    "profile": N_("Your name and profile details"),
    "email": N_("Your email address"),
    "phone": N_("Your phone number"),
    "address": N_("Your postal address"),
    "offline_access": N_("Stay connected when you are not using it"),
    "groups": N_("The groups you belong to"),
}
LOGIN_FAILED = N_("Incorrect email or password.")
NO_LOCAL_ACCOUNTS = N_("This application does not accept a password for this address. Use one of the other ways "
                       "to sign in.")
NOT_FOR_THIS_CLIENT = N_("This sign-in option is not available.")  # the words of pages/upstream_sign_in.py
SIGN_IN_FIRST = N_("Please sign in.")


class LoginViews:
    def __init__(self, provider: Provider, journey: Journey, csrf: Csrf):
        self.journey = journey
        self.provider = provider
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

    def _login_context(self, request: Request, interaction: Interaction | None, req: Any,
                       found: tuple[BrowserSession, User] | None) -> dict[str, Any]:
        client = req.client if req else None
        offered = [r for r in self.provider.upstreams.list() if offers(client, r.id)]
        redirecting = [r for r in offered if r.id in {b.id for b in self.provider.upstreams.buttons()}]
        directories = [r for r in offered if r not in redirecting and r.domains]
        local = client is None or client.local_accounts
        return {
            "upstreams": redirecting,
            "local_accounts": local,
            "password_form": local or bool(directories),
            # An address of a redirecting provider's domain is sent there without a password.
            "password_optional": any(r.domains for r in redirecting),
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
        interaction, req = self.journey.parked(value)
        if value and interaction is None:
            return self.journey.error_page(request, EXPIRED, 400)
        hint = req.params.get("idp_hint") if req is not None else None
        if hint and interaction is not None and not offers(req.client, hint):
            return self.journey.error_page(request, NOT_FOR_THIS_CLIENT, 403)
        start = self.journey.hinted_start(req, interaction) if interaction is not None else None
        if start is not None:  # idp_hint: straight to that provider
            return RedirectResponse(start, status_code=303)
        found = self.journey.current(request)
        return self._page(request, "login/login.html", found=found,
                          **self._login_context(request, interaction, req, found))

    async def login_submit(self, request: Request) -> Response:
        form = await posted_form(request) or FormData()  # unreadable: fails the CSRF check
        return await run_in_threadpool(self._login_submit, request, form)

    def _login_submit(self, request: Request, form: FormData) -> Response:
        interaction, req = self.journey.parked(str(form.get("interaction") or "") or None)
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
        # "Keep me signed in" (flow/door.py Authenticated.remember).
        remember = form.get("remember") == "1"
        refused = self._home_realm(request, interaction, req, form, email)
        if isinstance(refused, str):
            context["login_hint"] = email
            return self._page(request, "login/login.html", 403, found=found, error=refused, **context)
        if refused is not None:
            return refused

        # With the authorization request parked in this browser, the sign-in answers it at once
        # (what /oauth2/authorize/resume would do next): one write for the whole sign-in, and no
        # extra round trip.
        def sign_in(outcome: PasswordOutcome) -> Callable[[Session], Login]:
            # The door's reads first, outside the write (protection.py), which then joins it.
            assert outcome.user is not None
            who = Authenticated(outcome.user, list(outcome.amr), outcome.acr or c.ACR_PASSWORD, outcome.method,
                                remember=remember, detail=outcome.detail, idp=outcome.idp)
            return self.journey.door.begin(request, who, interaction=interaction, req=req,
                                           landing=str(form.get("next") or ""), answer_here=True).write

        # The throttle first: while locked, the password is not checked (protection.py).
        checked = check_password(self.provider, email, password, client_ip(request),
                                 request.headers.get("user-agent"), sign_in) if email and password else None
        if checked is not None and checked.retry_after:
            context["login_hint"] = email
            text, headers = too_many(self.pages, request, checked.retry_after,
                                     ui_locales=req.params.get("ui_locales") if req else None)
            return self._page(request, "login/login.html", 429, found=found, error=text, headers=headers, **context)
        if checked is not None and checked.message is not None:  # a directory or source down, a link refused
            context["login_hint"] = email
            return self._page(request, "login/login.html", checked.status, found=found, error=checked.message,
                              error_params=checked.params, **context)
        if checked is None or checked.user is None:
            context["login_hint"] = email
            return self._page(request, "login/login.html", 401, found=found, error=LOGIN_FAILED, **context)
        login: Login = checked.result
        return login.response()

    def _home_realm(self, request: Request, interaction: Interaction | None, req: Any, form: FormData,
                    email: str) -> Response | str | None:
        """Home-realm discovery (the module docstring): the redirect to the provider of the
        address's domain, a message id when the client does not take this sign-in, or None to
        check the password (a directory's, or the local pool's)."""
        client = req.client if req is not None else None
        realm = self.provider.upstreams.for_domain(email) if EMAIL_RE.match(email) else None
        if realm is not None:
            if not offers(client, realm.id):
                return NOT_FOR_THIS_CLIENT
            if redirects(realm):
                query = {"login_hint": email}
                if interaction is not None:
                    query["interaction"] = interaction.id
                elif form.get("next"):
                    query["next"] = local_path(str(form.get("next")), "")
                return RedirectResponse(self.provider.issuer + f"/idp/{realm.id}/start?" + urlencode(query),
                                        status_code=303)
            return None  # a directory: the password way of federation/realm.py answers
        if client is not None and not client.local_accounts:
            return NO_LOCAL_ACCOUNTS
        return None

    # -- consent -------------------------------------------------------------------------------
    async def consent_form(self, request: Request) -> Response:
        return await run_in_threadpool(self._consent_form, request)

    def _consent_form(self, request: Request) -> Response:
        interaction, req = self.journey.parked(request.query_params.get("interaction"))
        found = self.journey.current(request)
        if interaction is None or found is None:
            return self.journey.error_page(request, EXPIRED, 400)
        return self._page(request, "login/consent.html", found=found, interaction=interaction.id, client=req.client,
                          req=req, user=found[1], scopes=[(s, SCOPE_TEXT.get(s, s)) for s in req.scopes])

    async def consent_submit(self, request: Request) -> Response:
        form = await posted_form(request) or FormData()  # unreadable: fails the CSRF check
        return await run_in_threadpool(self._consent_submit, request, form)

    def _consent_submit(self, request: Request, form: FormData) -> Response:
        interaction, req = self.journey.parked(str(form.get("interaction") or ""))
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
