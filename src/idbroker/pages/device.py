"""The device page (RFC 8628 §3.3): where a user types the code a TV or a command-line tool shows.

GET /device shows the code form (filled from `user_code` when the device's QR code or link
carried it, §3.3.1). A code is looked up only within the `device-code-ip` rate limit per client
address (accounts/throttle.py LIMITS, §5.1: user codes are short, guessing must stay out of reach).
A live code sends a signed-out user to the sign-in page (the one door), back here afterwards;
the signed-in user is shown the application and what it asks for, and allows or denies (POST,
CSRF-protected). Then: "you may return to your device".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..oauth2.device_codes import display, normalise
from ..store.db import aware
from ..text import N_
from ..web.proxies import client_ip
from .hosted import HostedPages, field
from .protection import limit
from .sign_in import SCOPE_TEXT

if TYPE_CHECKING:
    from ..store.models import DeviceCode

UNKNOWN_CODE = N_("That code is not valid or has expired. Check the code on your device and try again.")
TOO_MANY = N_("Too many codes were tried. Please wait a few minutes and try again.")
NO_LONGER = N_("This request is no longer waiting for an answer. Start again on your device.")


class DeviceViews(HostedPages):
    def routes(self) -> list[Route]:
        return [Route("/device", self.device_page, methods=["GET"]),
                Route("/device", self.device_submit, methods=["POST"])]

    async def device_page(self, request: Request) -> Response:
        typed = request.query_params.get("user_code", "")[:32]
        if not typed:
            return self.page(request, "device/enter.html", user_code="")
        return await run_in_threadpool(self._look_up, request, typed)

    def _look_up(self, request: Request, typed: str) -> Response:
        wait = limit(self.provider, "device-code-ip", client_ip(request) or "unknown")
        if wait is not None:
            return self.page(request, "device/enter.html", 429, user_code=typed, error=TOO_MANY,
                             headers={"Retry-After": str(wait)})
        row = self.provider.device_codes.pending(typed)
        if row is None:
            return self.page(request, "device/enter.html", 400, user_code=typed, error=UNKNOWN_CODE)
        found = self.signed_in(request)
        if found is None:
            return self.to_login(request)  # the one door, then back here
        return self._confirm(request, row, found[1])

    def _confirm(self, request: Request, row: DeviceCode, user: object) -> Response:
        client = self.provider.clients.get(row.client_id)
        scopes = [(s, SCOPE_TEXT.get(s, s)) for s in row.scope.split()]
        return self.page(request, "device/confirm.html", client=client, user=user, scopes=scopes,
                         user_code=display(row.user_code))

    async def device_submit(self, request: Request) -> Response:
        form = await self.form(request)
        return await run_in_threadpool(self._submit, request, form)

    def _submit(self, request: Request, form: object) -> Response:
        found = self.signed_in(request)
        if not self.csrf.valid(request, field(form, "csrf_token", 256)):  # type: ignore[arg-type]
            return self.form_expired(request)
        if found is None:
            return self.redirect("/device")
        session, user = found
        wait = limit(self.provider, "device-code-ip", client_ip(request) or "unknown")  # no guessing here either
        if wait is not None:
            return self.page(request, "device/enter.html", 429, user_code="", error=TOO_MANY,
                             headers={"Retry-After": str(wait)})
        typed = normalise(field(form, "user_code", 32))  # type: ignore[arg-type]
        allow = field(form, "decision", 16) == "allow"  # type: ignore[arg-type]
        row = self.provider.device_codes.pending(typed)
        client = self.provider.clients.get(row.client_id) if row is not None else None
        ttl = max(client.refresh_token_ttl or self.settings.refresh_token_ttl, self.settings.access_token_ttl) \
            if client is not None else 0
        decided = row is not None and self.provider.device_codes.decide(
            typed, allow=allow, user=user, auth_time=aware(session.auth_time), amr=list(session.amr),
            acr=session.acr, sid=session.sid, idp=session.idp, grant_ttl=ttl)
        if not decided:
            return self.page(request, "device/enter.html", 400, user_code="", error=NO_LONGER)
        return self.page(request, "device/done.html", client=client, allowed=allow)
