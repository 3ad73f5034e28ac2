"""Terms of service: the versioned text from `terms_file`, accepted once per version.

The journey sends a signed-in user whose accepted version differs from `terms_version` here
before returning them to any application; accepting continues the authorization, declining
answers the application with access_denied.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..flow.journey import EXPIRED
from ..oauth2.errors import AccessDeniedError
from ..text import N_
from .hosted import HostedPages, field

if TYPE_CHECKING:
    from ..flow.journey import Journey
    from ..provider import Provider
    from ..store.models import User
    from ..web.csrf import Csrf

log = logging.getLogger("idbroker.terms")

NO_TERMS = N_("There are no terms of service to accept.")
TERMS_CHANGED = N_("The terms changed while you were reading them. Please read the new version.")
_BLANK_LINES = re.compile(r"\n[ \t]*\n")


class TermsText:
    """Paragraphs of the terms file, re-read when the file changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: tuple[str, float, list[str]] | None = None

    def paragraphs(self, path: str) -> list[str]:
        if not path:
            return []
        try:
            mtime = Path(path).stat().st_mtime
        except OSError:
            log.warning("terms_file %s cannot be read", path)
            return []
        with self._lock:
            if self._cached and self._cached[0] == path and self._cached[1] == mtime:
                return self._cached[2]
        try:
            raw = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            log.warning("terms_file %s cannot be read", path)
            return []
        paragraphs = split_paragraphs(raw)
        with self._lock:
            self._cached = (path, mtime, paragraphs)
        return paragraphs


def split_paragraphs(raw: str) -> list[str]:
    """Plain text: paragraphs are separated by blank lines; line breaks inside one are kept."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n").strip("\ufeff")
    return [p.strip("\n").rstrip() for p in _BLANK_LINES.split(text) if p.strip()]


class TermsViews(HostedPages):
    def __init__(self, provider: Provider, journey: Journey, csrf: Csrf):
        super().__init__(provider, journey, csrf)
        self.accounts = self.provider.accounts
        self.text = TermsText()

    def routes(self) -> list[Route]:
        return [
            Route("/terms", self.terms_form, methods=["GET"]),
            Route("/terms", self.terms_submit, methods=["POST"]),
            Route("/terms/current", self.current, methods=["GET"]),
        ]

    @property
    def version(self) -> str:
        return self.provider.settings.terms_version

    def _paragraphs(self) -> list[str]:
        return self.text.paragraphs(self.provider.settings.terms_file)

    async def current(self, request: Request) -> Response:
        """Public: the text in force, without a form."""
        if not self.version:
            return self.journey.error_page(request, NO_TERMS, 404)
        paragraphs = await run_in_threadpool(self._paragraphs)
        return self.page(request, "terms/current.html", version=self.version, paragraphs=paragraphs)

    async def terms_form(self, request: Request) -> Response:
        value = request.query_params.get("interaction") or ""
        interaction, _ = self.journey.parked(value)
        if value and interaction is None:
            return self.journey.error_page(request, EXPIRED, 400)
        found = self.signed_in(request)
        if found is None:
            return self.redirect("/login" + (f"?interaction={interaction.id}" if interaction else ""))
        if not self.version:
            if interaction is not None:  # nothing to accept any more: carry on
                return RedirectResponse(self.journey.resume_url(interaction.id), status_code=303)
            return self.journey.error_page(request, NO_TERMS, 404)
        return await self._show(request, found[1], interaction.id if interaction else "")

    async def _show(self, request: Request, user: User, interaction: str, status: int = 200,
                    error: str | None = None) -> Response:
        _, req = self.journey.parked(interaction)
        client = req.client if req else None
        paragraphs = await run_in_threadpool(self._paragraphs)
        return self.page(request, "terms/accept.html", status, user=user, version=self.version,
                         paragraphs=paragraphs, interaction=interaction, client=client, error=error,
                         accepted=user.terms_version == self.version)

    async def terms_submit(self, request: Request) -> Response:
        form = await self.form(request)
        value = field(form, "interaction", 64)
        interaction, req = self.journey.parked(value)
        if value and interaction is None:
            return self.journey.error_page(request, EXPIRED, 400)
        found = self.signed_in(request)
        if found is None:
            return self.redirect("/login" + (f"?interaction={interaction.id}" if interaction else ""))
        if not self.csrf.valid(request, field(form, "csrf_token", 256)):
            return self.form_expired(request)
        user = found[1]
        if field(form, "decision", 16) != "accept":
            if interaction is not None and req is not None:
                self.journey.interactions.finish(interaction.id)
                return self.journey.redirect_error(request, req,
                                                   AccessDeniedError("the user declined the terms of service"))
            return self.redirect("/account")
        if not self.version:
            return self.journey.error_page(request, NO_TERMS, 404)
        if field(form, "version", 64) != self.version:
            return await self._show(request, user, interaction.id if interaction else "", 409, TERMS_CHANGED)
        await run_in_threadpool(self.accounts.accept_terms, user.id, self.version)
        if interaction is not None:
            return RedirectResponse(self.journey.resume_url(interaction.id), status_code=303)
        return self.redirect("/account")
