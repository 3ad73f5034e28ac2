"""Email verification: /verify-email (6-digit code, resend) and /verify-email/confirm (the link).

The journey parks an authorization request here while the signed-in user's address is
unverified (when `require_email_verification`). A code is checked against the signed-in user;
MAX_CODE_ATTEMPTS wrong tries void it and a new one must be sent. The link needs no session: it
verifies in any browser, and continues the authorization only in the browser that is signed in
as that user and holds the interaction. Resending waits `resend_interval` seconds.

Rate limits (accounts/throttle.py LIMITS): codes typed per user ("verify-code"), and mails sent
per user and per client address ("verify-send", "verify-send-ip"); past them the page answers
429 with Retry-After and nothing is checked or sent.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..accounts.one_time import VERIFY_EMAIL
from ..security import sha256_hex
from ..store.db import utcnow
from ..store.models import OneTimeToken, User
from ..web.i18n import N_
from .hosted import FORM_EXPIRED
from .journey import EXPIRED
from .lifecycle_common import LifecyclePages, Problem, text_field
from .protection import TOO_MANY, client_ip, limit, wait_words

if TYPE_CHECKING:
    from ..oauth2.authorize_checks import AuthorizationRequest
    from ..store.models import Interaction

CODE_FORMAT = N_("Enter the 6-digit code from the message.")
CODE_WRONG = N_("That code is not right. Check the latest message and try again.")
CODE_SPENT = N_("This code can no longer be used. Send a new code and enter the one from the new message.")
CODE_SENT = N_("We sent a new message with a new code.")
WAIT = N_("Please wait %(seconds)d seconds before asking for a new code.")
MAIL_FAILED = N_("We could not send the message. Please try again in a few minutes.")
LINK_INVALID = N_("This link is invalid, was already used or has expired. "
                  "Sign in to get a new one.")
_SPACES = re.compile(r"[\s-]")


class VerificationViews(LifecyclePages):
    # -- state -----------------------------------------------------------------------------------
    def live_code(self, user_id: int) -> bool:
        with self.provider.db.session(write=False) as s:
            found = s.scalar(select(OneTimeToken.id).where(
                OneTimeToken.user_id == user_id, OneTimeToken.purpose == VERIFY_EMAIL,
                OneTimeToken.used_at.is_(None), OneTimeToken.expires_at > utcnow(),
                OneTimeToken.code_hash.is_not(None)).limit(1))
        return found is not None

    def wait_seconds(self, user_id: int) -> int:
        last = self.provider.one_time.last_issued(user_id, VERIFY_EMAIL)
        if last is None:
            return 0
        left = self.settings.resend_interval - (utcnow() - last).total_seconds()
        return max(0, math.ceil(left))

    def owner_of_link(self, token: str) -> User | None:
        """The user a (possibly used) link was sent to."""
        if not token or len(token) > 128:
            return None
        with self.provider.db.session(write=False) as s:
            return s.scalar(select(User).join(OneTimeToken, OneTimeToken.user_id == User.id).where(
                OneTimeToken.token_hash == sha256_hex(token), OneTimeToken.purpose == VERIFY_EMAIL))

    def send_code(self, user: User, lang: str, interaction: Interaction | None) -> bool:
        token, code = self.provider.one_time.issue(user.id, VERIFY_EMAIL, self.settings.verification_ttl,
                                                   with_code=True)
        mail_lang = self.pages.catalogs.negotiate(user.locale, lang)  # the user's choice, else the page's
        subject, text = self.verification_mail(mail_lang, token, code or "", interaction)
        return self.send_now(user.email, subject, text)

    def _send_limit(self, request: Request, user_id: int) -> int | None:
        return limit(self.provider, "verify-send", user_id) or \
            limit(self.provider, "verify-send-ip", client_ip(request))

    def _too_many(self, request: Request, interaction: Interaction | None, req: AuthorizationRequest | None,
                  email: str, wait: int, **context: Any) -> Response:
        words = wait_words(self.pages, self.language(request, req), wait)
        return self.check_page(request, interaction, req, email, 429, headers={"Retry-After": str(wait)},
                               error=Problem(TOO_MANY, {"wait": words}), **context)

    # -- outcomes ----------------------------------------------------------------------------------
    def verified(self, request: Request, user: User | None, interaction: Interaction | None,
                 req: AuthorizationRequest | None, *, signed_in: bool) -> Response:
        """Continue the authorization when it waits in this browser for this user, else say so."""
        if interaction is not None and signed_in:
            return RedirectResponse(self.journey.resume_url(interaction.id), status_code=303)
        return self.page(request, "verification/verified.html", req=req, signed_in=signed_in,
                         email=user.email if user else "", login_url=self.login_url(interaction))

    # -- /verify-email -----------------------------------------------------------------------------
    async def verify_form(self, request: Request) -> Response:
        value = request.query_params.get("interaction")
        interaction, req = self.interaction(value)
        if value and interaction is None:
            return self.journey.error_page(request, EXPIRED, 400)
        found = self.journey.current(request)
        if found is None:
            return RedirectResponse(self.settings.issuer + self.login_url(interaction), status_code=303)
        user = found[1]
        if user.email_verified:
            return self.verified(request, user, interaction, req, signed_in=True)
        context: dict[str, Any] = {}
        # Back after the code expired (or a sign-in long after sign-up): a fresh one, unless
        # one was sent moments ago.
        if not await run_in_threadpool(self.live_code, user.id) and \
                await run_in_threadpool(self.wait_seconds, user.id) == 0 and \
                await run_in_threadpool(self._send_limit, request, user.id) is None:
            sent = await run_in_threadpool(self.send_code, user, self.language(request, req), interaction)
            if not sent:
                context["error"] = Problem(MAIL_FAILED)
        return self.check_page(request, interaction, req, user.email, **context)

    async def verify_submit(self, request: Request) -> Response:
        posted = await self.posted(request)
        if isinstance(posted, Response):
            return posted
        form, interaction, req = posted
        found = self.journey.current(request)
        email = found[1].email if found else ""
        if not self.csrf.valid(request, text_field(form, "csrf_token")):
            return self.check_page(request, interaction, req, email, 400, error=Problem(FORM_EXPIRED))
        action = text_field(form, "action")
        if found is None:
            # Nobody is signed in here: the page after signing up with an address that already
            # has an account. Answer as for anyone else; nothing happens.
            if action == "resend":
                return self.check_page(request, interaction, req, email, notice=Problem(CODE_SENT))
            return self.check_page(request, interaction, req, email, 400, error=Problem(CODE_WRONG))
        session, user = found
        if user.email_verified:
            return self.verified(request, user, interaction, req, signed_in=True)
        if action == "resend":
            wait = await run_in_threadpool(self.wait_seconds, user.id)
            if wait > 0:
                return self.check_page(request, interaction, req, email, 429, headers={"Retry-After": str(wait)},
                                       error=Problem(WAIT, {"seconds": wait}))
            wait = await run_in_threadpool(self._send_limit, request, user.id)
            if wait is not None:
                return self._too_many(request, interaction, req, email, wait)
            sent = await run_in_threadpool(self.send_code, user, self.language(request, req), interaction)
            if not sent:
                return self.check_page(request, interaction, req, email, 503, error=Problem(MAIL_FAILED))
            return self.check_page(request, interaction, req, email, notice=Problem(CODE_SENT))
        code = _SPACES.sub("", text_field(form, "code")[:64])
        if len(code) != 6 or not code.isascii() or not code.isdigit():
            return self.check_page(request, interaction, req, email, 400, error=Problem(CODE_FORMAT), code=code[:6])
        wait = await run_in_threadpool(limit, self.provider, "verify-code", user.id)
        if wait is not None:  # the code is not even checked
            return self._too_many(request, interaction, req, email, wait, code=code[:6])
        row = await run_in_threadpool(self.provider.one_time.redeem_code, user.id, VERIFY_EMAIL, code)
        if row is None:
            live = await run_in_threadpool(self.live_code, user.id)
            return self.check_page(request, interaction, req, email, 400,
                                   error=Problem(CODE_WRONG if live else CODE_SPENT))
        await run_in_threadpool(self.provider.users.mark_email_verified, user.id)
        return self.verified(request, user, interaction, req, signed_in=True)

    # -- /verify-email/confirm ------------------------------------------------------------------
    async def confirm(self, request: Request) -> Response:
        token = request.query_params.get("token") or ""
        row = await run_in_threadpool(self.provider.one_time.redeem_link, token, VERIFY_EMAIL)
        if row is None:
            owner = await run_in_threadpool(self.owner_of_link, token)
            if owner is None or not owner.email_verified:
                return self.page(request, "verification/invalid.html", 400, message=LINK_INVALID,
                                 login_url="/login")
            user: User | None = owner
        else:
            await run_in_threadpool(self.provider.users.mark_email_verified, row.user_id)
            user = await run_in_threadpool(self.provider.users.by_id, row.user_id)
        assert user is not None
        found = self.journey.current(request)
        here = found is not None and found[1].id == user.id
        value = request.query_params.get("interaction") or request.cookies.get(self.journey.interaction_cookie)
        interaction, req = self.browser_interaction(request, value)
        # Resumes only in the browser that holds the request and is signed in as this user; the
        # journey then decides what is left (consent, or the response).
        return self.verified(request, user, interaction, req, signed_in=here)

