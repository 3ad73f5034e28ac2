"""What the account-lifecycle pages (sign-up, email verification, password recovery) share:
rendering with a CSRF token, reading a bounded form with its parked authorization request, field
validation messages, the pending sign-up, the limits on mail, and sending
localised mail off the request path."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from ..accounts.lifecycle import EMAIL_INVALID, Problem
from ..accounts.policy import PasswordRejected
from ..accounts.throttle import Rule, send_rules
from ..accounts.users import EMAIL_RE, normalise_email
from ..flow.journey import EXPIRED
from ..notify.mail import MailError
from ..text import N_
from .hosted import HostedPages
from .pending_signup import PendingSignups
from .protection import client_ip

if TYPE_CHECKING:
    from ..oauth2.authorize_checks import AuthorizationRequest
    from ..store.models import Client, Interaction

log = logging.getLogger("idbroker.accounts")

BAD_FORM = N_("The form could not be read. Please try again.")
VERIFY_SUBJECT = N_("Confirm your email address")
ALREADY_SUBJECT = N_("You already have an account")
MAX_EMAIL = 254      # RFC 5321 path limit
MAX_FIELD = 1024     # longer text input is refused before any other check


def text_field(form: FormData, name: str) -> str:
    """A submitted text value; files, absent fields and repeated names count as empty or first."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def check_email(raw: str) -> tuple[str, Problem | None]:
    email = normalise_email(raw)
    if not email or len(email) > MAX_EMAIL or not EMAIL_RE.match(email) \
            or any(unicodedata.category(ch) in ("Cc", "Cs") for ch in email):
        return "".join(ch for ch in email[:MAX_EMAIL] if unicodedata.category(ch) not in ("Cc", "Cs")), \
            Problem(EMAIL_INVALID)
    return email, None


def link(base: str, path: str, **params: str | None) -> str:
    query = urlencode({k: v for k, v in params.items() if v})
    return base + path + (f"?{query}" if query else "")


class LifecyclePages(HostedPages):
    PASSWORD_MISSING = N_("Choose a password.")

    def check_password(self, password: str, email: str | None) -> Problem | None:
        """The password policy (length, breached list, not the address); may ask the range API."""
        if not password:
            return Problem(self.PASSWORD_MISSING)
        try:
            self.provider.password_policy.check(password, email=email)
        except PasswordRejected as exc:
            return Problem(exc.message, dict(exc.params))
        return None

    """Sign-up, verification and recovery: pages that carry a parked authorization request."""

    async def posted(self, request: Request
                     ) -> tuple[FormData, Interaction | None, AuthorizationRequest | None] | Response:
        """A posted form with the authorization request it carries; or the error page when the
        form cannot be read or names an interaction that has expired."""
        form = await self.read_form(request)
        if form is None:
            return self.journey.error_page(request, BAD_FORM, 400)
        value = text_field(form, "interaction")
        interaction, req = self.journey.parked(value)
        if value and interaction is None:
            return self.journey.error_page(request, EXPIRED, 400)
        return form, interaction, req

    def signup_allowed(self, client: Client | None) -> bool:
        if client is not None and not client.local_accounts:  # upstream providers only
            return False
        if client is not None and client.signup_enabled is not None:
            return bool(client.signup_enabled)
        return self.settings.signup_enabled

    def login_url(self, interaction: Interaction | None) -> str:
        return link("", "/login", interaction=interaction.id if interaction else None)

    # -- the pending sign-up (pending_signup.py) and the limits on mail ------------------------
    @cached_property
    def pending_signups(self) -> PendingSignups:
        s = self.settings
        return PendingSignups(s.secret_bytes(), f"{s.cookie_name}_signup", s.verification_ttl, s.secure_cookies)

    def may_mail(self, request: Request, purpose: str, to: str, account: int | None = None,
                 pace: str | None = None) -> tuple[Rule, int] | None:
        """Counts one mail of `purpose` to `to` (accounts/throttle.py send_rules): None when it may
        be sent, else the limit it would pass and the seconds to wait. Blocking."""
        return self.provider.limiter.hit_all(send_rules(purpose, to, account=account, ip=client_ip(request),
                                                        interval=self.settings.resend_interval, pace=pace))

    # -- sessions ----------------------------------------------------------------------------
    async def sign_out_here(self, request: Request, response: Response) -> None:
        previous = self.journey.current(request)
        if previous is not None:
            await run_in_threadpool(self.provider.sessions.end, previous[0].sid)
        response.delete_cookie(self.journey.session_cookie, path="/")

    # -- mail ----------------------------------------------------------------------------------
    def compose(self, template: str, subject: str, lang: str, **context: Any) -> tuple[str, str]:
        """(subject, text) in `lang`. Values are plain text: the mail templates do not escape."""
        translations = self.pages.catalogs.get(lang)
        plain = {k: Markup(v) if isinstance(v, str) else v for k, v in context.items()}
        text = self.pages.render_text(template, lang, issuer=Markup(self.settings.issuer), **plain)
        return translations.gettext(subject), text

    def send_now(self, to: str, subject: str, text: str) -> bool:
        try:
            self.provider.mailer.send(to, subject, text)
        except MailError:
            return False
        except Exception:  # a broken mail setup must not turn into a page error
            log.exception("mail sending failed")
            return False
        return True

    def send_later(self, response: Response, to: str, subject: str, text: str) -> None:
        """After the response: its timing does not tell whether a mail went out."""
        self.later(response, self.send_now, to, subject, text)

    @staticmethod
    def later(response: Response, work: Callable[..., Any], *args: Any) -> None:
        """`work(*args)` after the response (in the thread pool), after what was already queued."""
        task = BackgroundTask(work, *args)
        if response.background is None:
            response.background = task
        else:
            previous = response.background

            async def both() -> None:
                await previous()
                await task()

            response.background = BackgroundTask(both)

    # -- email verification (after sign-up, and on the verification page) ------------------
    def check_page(self, request: Request, interaction: Interaction | None, req: AuthorizationRequest | None,
                   email: str, status: int = 200, **context: Any) -> Response:
        """The "check your mail" page: code form and resend button (the verification views
        answer both)."""
        return self.page(request, "verification/check.html", status, req=req, email=email,
                         interaction=interaction.id if interaction else "",
                         minutes=max(1, self.settings.verification_ttl // 60),
                         required=self.settings.require_email_verification,
                         resume_url=self.journey.resume_url(interaction.id) if interaction else "",
                         **context)

    def verification_mail(self, lang: str, token: str, code: str, interaction: Interaction | None
                          ) -> tuple[str, str]:
        url = link(self.settings.issuer, "/verify-email/confirm", token=token,
                   interaction=interaction.id if interaction else None)
        return self.compose("mail/verify.txt", VERIFY_SUBJECT, lang, link=url, code=code,
                            minutes=max(1, self.settings.verification_ttl // 60))

    def already_registered_mail(self, lang: str, interaction: Interaction | None) -> tuple[str, str]:
        """To an address that signs up again: it has an account (how to sign in, or reset)."""
        iid = interaction.id if interaction else None
        return self.compose("mail/already_registered.txt", ALREADY_SUBJECT, lang,
                            login_link=link(self.settings.issuer, "/login", interaction=iid),
                            reset_link=link(self.settings.issuer, "/forgot-password", interaction=iid))

