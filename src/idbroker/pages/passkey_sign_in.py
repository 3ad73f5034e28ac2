"""Passwordless sign-in with a passkey, from the login page (with or without a parked
authorization request). Two JSON endpoints for static/webauthn.js, which the page calls for the
button "Sign in with a passkey" and for the browser's autofill of the email field (conditional
mediation):

- ``POST /login/passkey/options``: the PublicKeyCredentialRequestOptions as ``{"publicKey": ...}``.
  The challenge token stays in an HttpOnly cookie of this browser (path /login/passkey, five
  minutes, good once).
- ``POST /login/passkey`` with ``{"credential": <navigator.credentials.get() as JSON>,
  "interaction": "...", "next": "/local/path"}``: verifies the assertion (user verification
  required) and signs in like the password form does: a new session (amr ["hwk", "mfa"], acr
  urn:idbroker:acr:mfa) through the door (flow/door.py), never answering the parked request
  itself: the browser goes on by its resume URL. Answers
  ``{"redirect": URL}``, or ``{"error": message}`` in the page's language.

Both need the page's CSRF token in the ``X-CSRF-Token`` header and a JSON body; a request whose
Origin is not the broker's is refused.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..flow.door import Authenticated
from ..flow.journey import EXPIRED
from ..mfa.webauthn import CHALLENGE_TTL, FAILED, LOGIN, PASSWORDLESS_AMR, PasskeyError
from ..oauth2 import constants as c
from ..security import loads_bounded
from ..web.body import MAX_BODY, BodyError, read_body
from .hosted import FORM_EXPIRED
from .sign_in import NOT_FOR_THIS_CLIENT

if TYPE_CHECKING:
    from ..flow.journey import Journey
    from ..provider import Provider
    from ..web.csrf import Csrf

log = logging.getLogger("idbroker.webauthn")

NO_STORE = {"Cache-Control": "no-store"}


class PasskeyLoginViews:
    def __init__(self, provider: Provider, journey: Journey, csrf: Csrf):
        self.journey = journey
        self.provider = provider
        self.pages = journey.pages
        self.csrf = csrf
        self.passkeys = self.provider.passkeys
        self.cookie = f"{self.provider.settings.cookie_name}_webauthn"
        # The pages show passkey buttons only where browsers accept the RP id (not an IP address).
        self.pages.env.globals["passkeys_enabled"] = self.passkeys.available

    def routes(self) -> list[Route]:
        return [
            Route("/login/passkey/options", self.options, methods=["POST"]),
            Route("/login/passkey", self.finish, methods=["POST"]),
        ]

    # -- request checks -----------------------------------------------------------------------------
    async def _body(self, request: Request) -> dict[str, Any] | None:
        """The JSON object posted (web/body.py, bounded JSON), or None."""
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return None
        try:
            data = loads_bounded(await read_body(request) or b"{}", MAX_BODY)
        except (BodyError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _allowed(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is not None and origin != self.passkeys.origin:
            return False
        return self.csrf.valid(request, request.headers.get("x-csrf-token"))

    def _error(self, request: Request, message: str, status: int) -> JSONResponse:
        found = self.journey.current(request)
        lang = self.pages.language(request, user_locale=found[1].locale if found else None)
        text = self.pages.catalogs.get(lang).gettext(message)
        response = JSONResponse({"error": text}, status_code=status, headers=NO_STORE)
        response.delete_cookie(self.cookie, path="/login/passkey")
        return response

    # -- endpoints ------------------------------------------------------------------------------------
    async def options(self, request: Request) -> Response:
        if not self._allowed(request):
            return self._error(request, FORM_EXPIRED, 403)
        options, token = await run_in_threadpool(self.passkeys.authentication_options, LOGIN)
        response = JSONResponse({"publicKey": options}, headers=NO_STORE)
        response.set_cookie(self.cookie, token, max_age=CHALLENGE_TTL, httponly=True,
                            secure=self.provider.settings.secure_cookies, samesite="strict", path="/login/passkey")
        return response

    async def finish(self, request: Request) -> Response:
        data = await self._body(request)
        if data is None:
            return self._error(request, FAILED, 400)
        if not self._allowed(request):
            return self._error(request, FORM_EXPIRED, 403)
        value = data.get("interaction")
        interaction, req = self.journey.parked(value if isinstance(value, str) else None)
        if value and interaction is None:
            return self._error(request, EXPIRED, 400)
        if req is not None and not req.client.local_accounts:  # upstream providers only
            return self._error(request, NOT_FOR_THIS_CLIENT, 403)
        try:
            ceremony = self.passkeys.ceremony(request.cookies.get(self.cookie), LOGIN)
            done = await run_in_threadpool(self.passkeys.authenticate, ceremony, data.get("credential"))
        except PasskeyError as exc:
            log.info("passwordless sign-in refused: %s", exc)
            return self._error(request, exc.message, 400)
        next_value = data.get("next")
        response = await run_in_threadpool(
            self.journey.door.finish_login, request,
            Authenticated(done.user, list(PASSWORDLESS_AMR), c.ACR_MFA, "passkey", detail={"factor": done.factor.id}),
            interaction=interaction, req=req, landing=next_value if isinstance(next_value, str) else "",
            reply=lambda target: JSONResponse({"redirect": target}, headers=NO_STORE))
        response.delete_cookie(self.cookie, path="/login/passkey")
        return response
