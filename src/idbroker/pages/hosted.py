"""The base of every hosted page's views (account, dashboard, terms, MFA, sign-up, verification,
recovery): rendering with CSRF and the user's language, bounded form parsing, redirects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..text import N_
from ..web.body import BodyError, read_form

if TYPE_CHECKING:
    from ..flow.journey import Journey
    from ..oauth2.authorize_checks import AuthorizationRequest
    from ..provider import Provider
    from ..store.models import BrowserSession, User
    from ..web.csrf import Csrf

FORM_EXPIRED = N_("Your form expired. Please try again.")


def field(form: FormData, name: str, max_length: int) -> str:
    """A submitted text value, at most `max_length` characters; files and absent fields are ""."""
    value = form.get(name)
    return value[:max_length] if isinstance(value, str) else ""


async def posted_form(request: Request) -> FormData | None:
    """The posted form, or None when it cannot be read or parsed (web/body.py: too large, too
    slow, broken off, files, too many fields)."""
    try:
        return await read_form(request)
    except BodyError:
        return None


class HostedPages:
    def __init__(self, provider: Provider, journey: Journey, csrf: Csrf):
        self.journey = journey
        self.provider = provider
        self.settings = provider.settings
        self.pages = journey.pages
        self.csrf = csrf

    @property
    def issuer(self) -> str:
        return self.provider.issuer

    def page(self, request: Request, template: str, status: int = 200, *, req: AuthorizationRequest | None = None,
             headers: dict[str, str] | None = None, **context: Any) -> Response:
        """A page with a CSRF token, in the language of the authorization request (`req`), the
        signed-in user, the selector or the browser."""
        token, fresh = self.csrf.token(request)
        found = self.journey.current(request)
        context.setdefault("client", req.client if req is not None else None)
        response = self.pages.render(request, template, status=status, headers=headers, csrf_token=token,
                                     ui_locales=req.params.get("ui_locales") if req is not None else None,
                                     user_locale=found[1].locale if found else None, **context)
        self.csrf.set_cookie(response, fresh)
        return response

    def language(self, request: Request, req: AuthorizationRequest | None = None) -> str:
        found = self.journey.current(request)
        return self.pages.language(request, ui_locales=req.params.get("ui_locales") if req is not None else None,
                                   user_locale=found[1].locale if found else None)

    async def read_form(self, request: Request) -> FormData | None:
        """The posted form, or None when it cannot be read or parsed."""
        return await posted_form(request)

    async def form(self, request: Request) -> FormData:
        """The posted form; an unparsable one reads as empty (and fails its CSRF check)."""
        return await posted_form(request) or FormData()

    def signed_in(self, request: Request) -> tuple[BrowserSession, User] | None:
        return self.journey.current(request)

    def redirect(self, path: str) -> Response:
        return RedirectResponse(self.provider.issuer + path, status_code=303)

    def to_login(self, request: Request | None = None) -> Response:
        """To the login page, coming back here afterwards."""
        if request is None or request.method != "GET":
            return self.redirect("/login")
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return self.redirect("/login?" + urlencode({"next": here}))

    def form_expired(self, request: Request) -> Response:
        return self.journey.error_page(request, FORM_EXPIRED, 400)
