"""Forgotten passwords: /forgot-password and /reset-password.

Asking for a reset gives the same page, with the same status, whether or not the address has an
account; only an existing, enabled account gets a mail (at most one per `resend_interval`),
sent after the response so that timing does not tell either. The mailed link is single-use and
lives `reset_ttl` seconds. Setting the new password ends every session and revokes every grant
of the user (so refresh tokens stop working), and marks the address verified: the link proved
control of the mailbox; the audit trail records it (PASSWORD_CHANGED).

Rate limits (accounts/throttle.py): requests per client address ("reset-ask-ip": past it, 429
with Retry-After, whatever the address asked for), and mails (send_rules "reset": per address and
per account, one per `resend_interval`; counted whether or not the address has an account, and
past them the same page and no mail).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import audit
from ..accounts.one_time import RESET_PASSWORD
from ..accounts.users import UserError
from ..flow.journey import EXPIRED
from ..text import N_
from .hosted import FORM_EXPIRED
from .lifecycle_pages import BAD_FORM, LifecyclePages, Problem, check_email, link, text_field
from .protection import TOO_MANY, client_ip, limit, wait_words
from .sign_in import NOT_FOR_THIS_CLIENT

if TYPE_CHECKING:
    from ..oauth2.authorize_checks import AuthorizationRequest
    from ..store.models import Interaction, OneTimeToken, User

LINK_INVALID = N_("This link is invalid, was already used or has expired. Ask for a new one.")
MISMATCH = N_("The two passwords are not the same.")
RESET_SUBJECT = N_("Reset your password")
CHANGED_SUBJECT = N_("Your password was changed")


class RecoveryViews(LifecyclePages):
    PASSWORD_MISSING = N_("Choose a new password.")

    # -- /forgot-password ----------------------------------------------------------------------
    def _forgot_page(self, request: Request, interaction: Interaction | None, req: AuthorizationRequest | None,
                     status: int = 200, *, email: str = "", error: Problem | None = None) -> Response:
        return self.page(request, "recovery/forgot.html", status, req=req, email=email, error=error,
                         interaction=interaction.id if interaction else "", login_url=self.login_url(interaction))

    async def forgot_form(self, request: Request) -> Response:
        value = request.query_params.get("interaction")
        interaction, req = self.journey.parked(value)
        if value and interaction is None:
            return self.journey.error_page(request, EXPIRED, 400)
        if req is not None and not req.client.local_accounts:  # upstream providers only: no password here
            return self.journey.error_page(request, NOT_FOR_THIS_CLIENT, 403)
        return self._forgot_page(request, interaction, req)

    async def forgot_submit(self, request: Request) -> Response:
        posted = await self.posted(request)
        if isinstance(posted, Response):
            return posted
        form, interaction, req = posted
        if req is not None and not req.client.local_accounts:
            return self.journey.error_page(request, NOT_FOR_THIS_CLIENT, 403)
        email, problem = check_email(text_field(form, "email"))
        if not self.csrf.valid(request, text_field(form, "csrf_token")):
            return self._forgot_page(request, interaction, req, 400, email=email, error=Problem(FORM_EXPIRED))
        if problem is not None:
            return self._forgot_page(request, interaction, req, 400, email=email, error=problem)
        wait = await run_in_threadpool(limit, self.provider, "reset-ask-ip", client_ip(request))
        if wait is not None:
            words = wait_words(self.pages, self.language(request, req), wait)
            response = self._forgot_page(request, interaction, req, 429, email=email,
                                         error=Problem(TOO_MANY, {"wait": words}))
            response.headers["Retry-After"] = str(wait)
            return response
        response = self.page(request, "recovery/forgot_sent.html", req=req, email=email,
                             minutes=max(1, self.settings.reset_ttl // 60), login_url=self.login_url(interaction))
        user = await run_in_threadpool(self.provider.users.by_email, email)
        if user is None:  # lazy migration: a legacy source that knows the address creates the account
            user = await run_in_threadpool(self.provider.lazy_migration.lookup, email)
        refused = await run_in_threadpool(self.may_mail, request, "reset", email, user.id if user else None)
        if user is not None and not user.disabled and refused is None:
            token, _ = await run_in_threadpool(self.provider.one_time.issue, user.id, RESET_PASSWORD,
                                               self.settings.reset_ttl)
            lang = self.pages.catalogs.negotiate(user.locale, self.language(request, req))
            url = link(self.settings.issuer, "/reset-password", token=token,
                       interaction=interaction.id if interaction else None)
            subject, text = self.compose("mail/reset_password.txt", RESET_SUBJECT, lang, link=url,
                                         minutes=max(1, self.settings.reset_ttl // 60))
            self.send_later(response, user.email, subject, text)
        return response

    # -- /reset-password -------------------------------------------------------------------------
    def _invalid(self, request: Request, interaction: Interaction | None) -> Response:
        return self.page(request, "recovery/invalid.html", 400, message=LINK_INVALID,
                         forgot_url=link("", "/forgot-password", interaction=interaction.id if interaction else None))

    def _reset_page(self, request: Request, token: str, user: User, interaction: Interaction | None,
                    req: AuthorizationRequest | None, status: int = 200, **errors: Problem | None) -> Response:
        return self.page(request, "recovery/reset.html", status, req=req, token=token, email=user.email,
                         interaction=interaction.id if interaction else "",
                         min_length=self.settings.password_min_length, **errors)

    def _pending(self, token: str) -> tuple[OneTimeToken, User] | None:
        row = self.provider.one_time.peek_link(token, RESET_PASSWORD)
        user = self.provider.users.by_id(row.user_id) if row is not None else None
        if row is None or user is None or user.disabled:
            return None
        return row, user

    async def reset_form(self, request: Request) -> Response:
        token = request.query_params.get("token") or ""
        interaction, req = self.journey.parked(request.query_params.get("interaction"))
        pending = await run_in_threadpool(self._pending, token)
        if pending is None:
            return self._invalid(request, interaction)
        return self._reset_page(request, token, pending[1], interaction, req)

    async def reset_submit(self, request: Request) -> Response:
        form = await self.read_form(request)
        if form is None:
            return self.journey.error_page(request, BAD_FORM, 400)
        token = text_field(form, "token")
        interaction, req = self.journey.parked(text_field(form, "interaction"))
        pending = await run_in_threadpool(self._pending, token)
        if pending is None:
            return self._invalid(request, interaction)
        user = pending[1]
        if not self.csrf.valid(request, text_field(form, "csrf_token")):
            return self._reset_page(request, token, user, interaction, req, 400, error=Problem(FORM_EXPIRED))
        password = text_field(form, "password")
        confirmation = text_field(form, "password_confirmation")
        problem = await run_in_threadpool(self.check_password, password, user.email)  # may ask the range API
        if problem is not None:
            return self._reset_page(request, token, user, interaction, req, 400, password_error=problem)
        if confirmation != password:
            return self._reset_page(request, token, user, interaction, req, 400, confirmation_error=Problem(MISMATCH))
        row = await run_in_threadpool(self.provider.one_time.redeem_link, token, RESET_PASSWORD)
        if row is None or row.user_id != user.id:
            return self._invalid(request, interaction)  # used by a concurrent submission
        try:
            await run_in_threadpool(self._reset, user, password)
        except UserError:  # the account vanished meanwhile
            return self._invalid(request, interaction)
        await run_in_threadpool(self.provider.audit.record, audit.PASSWORD_CHANGED, user_id=user.id,
                                ip=client_ip(request), user_agent=request.headers.get("user-agent"), method="reset")
        here, _ = self.journey.parked(interaction.id if interaction else None, request)
        response = self.page(request, "recovery/done.html", req=req, email=user.email,
                             login_url=self.login_url(here))
        response.delete_cookie(self.journey.session_cookie, path="/")
        lang = self.pages.catalogs.negotiate(user.locale, self.language(request, req))
        subject, text = self.compose("mail/password_changed.txt", CHANGED_SUBJECT, lang,
                                     reset_link=link(self.settings.issuer, "/forgot-password"))
        self.send_later(response, user.email, subject, text)
        return response

    def _reset(self, user: User, password: str) -> None:
        p = self.provider
        p.users.set_password(user.email, password)
        p.sessions.end_all_for_user(user.id)
        p.grants.revoke_user_grants(user.id)
        p.users.mark_email_verified(user.id)
