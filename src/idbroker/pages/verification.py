"""Email verification: /verify-email (6-digit code, resend) and /verify-email/confirm (the link).

Two kinds of visitors. A signed-in user whose address is unverified: the journey parks an
authorization request here (when `require_email_verification`), and the code is checked against
that user. And the browser that just signed up, which is not signed in: it holds the pending
sign-up cookie (pending_signup.py), whether the address was new or already had an account, and
gets the same answers in both cases - the page, resending ("verify" limits on the address and
the client address, not on an account), wrong codes and their count (MAX_CODE_ATTEMPTS wrong
tries void a code, counted per address so that an address without a code says the same). The
right code, when the cookie is bound to the new account, verifies the address and signs in.

The link needs no session: it verifies in any browser, and continues the authorization only in
the browser that is signed in as that user, or holds that user's pending sign-up, and holds the
interaction.

Rate limits (accounts/throttle.py): codes typed per address ("verify-code"); mails sent
(send_rules "verify": per address, per account when signed in, per client address, and one per
`resend_interval`, shared with the sign-up's mail). Past them the page answers 429 with
Retry-After and nothing is checked or sent.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..accounts.one_time import MAX_CODE_ATTEMPTS, VERIFY_EMAIL
from ..accounts.throttle import Rule, subject
from ..flow.door import Authenticated
from ..flow.journey import EXPIRED
from ..oauth2 import constants as c
from ..security import sha256_hex
from ..store.db import utcnow
from ..store.models import OneTimeToken, User
from ..text import N_
from .hosted import FORM_EXPIRED
from .lifecycle_pages import LifecyclePages, Problem, text_field
from .pending_signup import Pending
from .protection import TOO_MANY, limit, wait_words

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
NO_ACCOUNT = 0  # a user id that never exists (ids start at 1): a pending address without an account


class VerificationViews(LifecyclePages):
    # -- state -----------------------------------------------------------------------------------
    def live_code(self, user_id: int) -> bool:
        with self.provider.db.session(write=False) as s:
            found = s.scalar(select(OneTimeToken.id).where(
                OneTimeToken.user_id == user_id, OneTimeToken.purpose == VERIFY_EMAIL,
                OneTimeToken.used_at.is_(None), OneTimeToken.expires_at > utcnow(),
                OneTimeToken.code_hash.is_not(None)).limit(1))
        return found is not None

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

    def _too_many(self, request: Request, interaction: Interaction | None, req: AuthorizationRequest | None,
                  email: str, wait: int, **context: Any) -> Response:
        words = wait_words(self.pages, self.language(request, req), wait)
        return self.check_page(request, interaction, req, email, 429, headers={"Retry-After": str(wait)},
                               error=Problem(TOO_MANY, {"wait": words}), **context)

    def _refused(self, request: Request, interaction: Interaction | None, req: AuthorizationRequest | None,
                 email: str, refused: tuple[Rule, int]) -> Response:
        """No mail now: too soon after the last one, or past a limit."""
        rule, wait = refused
        if rule.per == "interval":
            return self.check_page(request, interaction, req, email, 429, headers={"Retry-After": str(wait)},
                                   error=Problem(WAIT, {"seconds": wait}))
        return self._too_many(request, interaction, req, email, wait)

    def _tries(self, email: str) -> Rule:
        """Wrong codes typed for a pending address, as the code's own count (OneTimeTokens) would
        say, but for every address, with a code or not."""
        return Rule(f"verify-tries:{subject(email)}", MAX_CODE_ATTEMPTS, self.settings.verification_ttl)

    def pending_mail(self, pending: Pending, lang: str, interaction: Interaction | None) -> None:
        """After the answer to "send a new code" for a pending sign-up: a new code to the account
        this browser created, else the "you already have an account" mail again."""
        user = self.provider.users.by_email(pending.email)
        if pending.binds(user) and user is not None and not user.email_verified:
            self.send_code(user, lang, interaction)
        elif user is not None and not user.disabled:
            mail_lang = self.pages.catalogs.negotiate(user.locale, lang)
            self.send_now(user.email, *self.already_registered_mail(mail_lang, interaction))

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
        interaction, req = self.journey.parked(value)
        if value and interaction is None:
            return self.journey.error_page(request, EXPIRED, 400)
        found = self.journey.current(request)
        if found is None:
            pending = self.pending_signups.of(request)
            if pending is None:
                return RedirectResponse(self.settings.issuer + self.login_url(interaction), status_code=303)
            return self.check_page(request, interaction, req, pending.email)
        user = found[1]
        if user.email_verified:
            return self.verified(request, user, interaction, req, signed_in=True)
        context: dict[str, Any] = {}
        # Back after the code expired (or a sign-in long after sign-up): a fresh one, unless
        # one was sent moments ago or too many were.
        if not await run_in_threadpool(self.live_code, user.id) and \
                await run_in_threadpool(self.may_mail, request, "verify", user.email, user.id) is None:
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
        pending = self.pending_signups.of(request) if found is None else None
        email = found[1].email if found else pending.email if pending else ""
        if not self.csrf.valid(request, text_field(form, "csrf_token")):
            return self.check_page(request, interaction, req, email, 400, error=Problem(FORM_EXPIRED))
        action = text_field(form, "action")
        if found is None and pending is None:
            # Nothing to verify in this browser: nothing happens.
            if action == "resend":
                return self.check_page(request, interaction, req, email, notice=Problem(CODE_SENT))
            return self.check_page(request, interaction, req, email, 400, error=Problem(CODE_WRONG))
        if found is not None and found[1].email_verified:
            return self.verified(request, found[1], interaction, req, signed_in=True)
        if action == "resend":
            account = found[1].id if found else None  # a pending address is limited as itself only
            refused = await run_in_threadpool(self.may_mail, request, "verify", email, account)
            if refused is not None:
                return self._refused(request, interaction, req, email, refused)
            if pending is not None:
                # The same answer whatever the address: the mail goes out after it.
                response = self.check_page(request, interaction, req, email, notice=Problem(CODE_SENT))
                await run_in_threadpool(self.provider.limiter.clear, self._tries(email).key)
                self.pending_signups.set(response, pending)  # lives as long as the new code
                self.later(response, self.pending_mail, pending, self.language(request, req), interaction)
                return response
            assert found is not None
            sent = await run_in_threadpool(self.send_code, found[1], self.language(request, req), interaction)
            if not sent:
                return self.check_page(request, interaction, req, email, 503, error=Problem(MAIL_FAILED))
            return self.check_page(request, interaction, req, email, notice=Problem(CODE_SENT))
        code = _SPACES.sub("", text_field(form, "code")[:64])
        if len(code) != 6 or not code.isascii() or not code.isdigit():
            return self.check_page(request, interaction, req, email, 400, error=Problem(CODE_FORMAT), code=code[:6])
        wait = await run_in_threadpool(limit, self.provider, "verify-code", subject(email))
        if wait is not None:  # the code is not even checked
            return self._too_many(request, interaction, req, email, wait, code=code[:6])
        if pending is not None:
            return await self._pending_code(request, pending, code, interaction, req)
        assert found is not None
        user = found[1]
        row = await run_in_threadpool(self.provider.one_time.redeem_code, user.id, VERIFY_EMAIL, code)
        if row is None:
            live = await run_in_threadpool(self.live_code, user.id)
            return self.check_page(request, interaction, req, email, 400,
                                   error=Problem(CODE_WRONG if live else CODE_SPENT))
        await run_in_threadpool(self.provider.users.mark_email_verified, user.id)
        return self.verified(request, user, interaction, req, signed_in=True)

    async def _pending_code(self, request: Request, pending: Pending, code: str, interaction: Interaction | None,
                            req: AuthorizationRequest | None) -> Response:
        """A code typed after signing up. It can only be right for the account this browser
        created; every other answer, and how many tries are left, is the same for any address."""
        limiter, tries = self.provider.limiter, self._tries(pending.email)
        found = await run_in_threadpool(self.provider.users.by_email, pending.email)
        user = found if pending.binds(found) else None
        if user is not None and user.email_verified:  # by the link, in another browser
            return await self._signed_up(request, user, interaction, req)
        if await run_in_threadpool(limiter.peek, tries.key, tries.limit, tries.window) is not None:
            return self.check_page(request, interaction, req, pending.email, 400, error=Problem(CODE_SPENT))
        # Unbound, the same query runs for nobody: the answer takes as long.
        row = await run_in_threadpool(self.provider.one_time.redeem_code, user.id if user else NO_ACCOUNT,
                                      VERIFY_EMAIL, code)
        if row is None or user is None:
            await run_in_threadpool(limiter.hit, tries.key, tries.limit, tries.window)
            spent = await run_in_threadpool(limiter.peek, tries.key, tries.limit, tries.window) is not None
            return self.check_page(request, interaction, req, pending.email, 400,
                                   error=Problem(CODE_SPENT if spent else CODE_WRONG))
        await run_in_threadpool(self.provider.users.mark_email_verified, user.id)
        return await self._signed_up(request, user, interaction, req)

    async def _signed_up(self, request: Request, user: User, interaction: Interaction | None,
                         req: AuthorizationRequest | None) -> Response:
        """The address of the account this browser created is proven: signed in here from now on."""
        landing = self.verified(request, user, None, req, signed_in=True) if interaction is None else ""
        response = await run_in_threadpool(
            self.journey.door.finish_login, request, Authenticated(user, ["pwd"], c.ACR_PASSWORD, "signup"),
            interaction=interaction, req=req, landing=landing)
        self.pending_signups.clear(response)
        return response

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
        interaction, req = self.journey.parked(value, request)
        pending = None if here else self.pending_signups.of(request)
        if pending is not None and pending.binds(user):
            return await self._signed_up(request, user, interaction, req)
        # Resumes only in the browser that holds the request and is signed in as this user (or
        # just created it); the journey then decides what is left (consent, or the response).
        return self.verified(request, user, interaction, req, signed_in=here)

