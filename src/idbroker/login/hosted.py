"""Shared base of the signed-in account pages (terms, apps dashboard, account settings).

NOTE: this file was overwritten by mistake by the sign-up/verification/recovery work at
16:28 and RECONSTRUCTED from its uses in terms.py and dashboard.py (HostedPages, field, page,
form, signed_in, redirect, to_login, form_expired, issuer). Its author should check it against the
original and restore anything missing. The sign-up/recovery pages do not use this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..web.i18n import N_

if TYPE_CHECKING:
    from ..store.models import BrowserSession, User
    from ..web.csrf import Csrf
    from .journey import Journey

FORM_EXPIRED = N_("Your form expired. Please try again.")


def field(form: FormData, name: str, max_length: int) -> str:
    """A submitted text value, at most `max_length` characters; files and absent fields are ""."""
    value = form.get(name)
    return value[:max_length] if isinstance(value, str) else ""


class HostedPages:
    def __init__(self, journey: Journey, csrf: Csrf):
        self.journey = journey
        self.provider = journey.provider
        self.settings = journey.provider.settings
        self.pages = journey.pages
        self.csrf = csrf

    @property
    def issuer(self) -> str:
        return self.provider.issuer

    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        token, fresh = self.csrf.token(request)
        found = self.journey.current(request)
        response = self.pages.render(request, template, status=status, csrf_token=token,
                                     user_locale=found[1].locale if found else None, **context)
        self.csrf.set_cookie(response, fresh)
        return response

    async def form(self, request: Request) -> FormData:
        try:
            return await request.form(max_files=0, max_fields=100, max_part_size=64 * 1024)
        except (HTTPException, ValueError, UnicodeDecodeError):
            return FormData()

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
