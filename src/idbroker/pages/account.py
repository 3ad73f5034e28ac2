"""The account page: profile, email address, password, sessions, connected applications, and
deleting the account. Every form is CSRF-protected, checked in full before anything is written,
and answered with the page and its errors (400) or a redirect back with a notice (303).

Messages it sends are limited (accounts/throttle.py send_rules): change-of-address mails per new
address, per account and per client address, one per `resend_interval` to an address - past
them the same answer and no mail, as for an address another account holds; phone-confirmation
texts per number, per account and per client address, one per `resend_interval` - past them
429 with Retry-After.
"""

from __future__ import annotations

import logging
from datetime import UTC
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from babel.dates import format_datetime
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import audit
from ..accounts.lifecycle import (
    DELETE_CONFIRM_WRONG,
    LINK_INVALID,
    WRONG_PASSWORD,
    AccountError,
    Problem,
    check_profile,
)
from ..accounts.sessions import describe_device
from ..accounts.throttle import send_rules
from ..accounts.users import MAX_PASSWORD
from ..notify.mail import MailError
from ..notify.sms import SmsError
from ..store.db import aware
from ..text import N_, SUPPORTED
from ..web.proxies import client_ip
from .hosted import HostedPages, field
from .sign_in import SCOPE_TEXT

if TYPE_CHECKING:
    from ..flow.journey import Journey
    from ..oidc.backchannel import Delivery
    from ..provider import Provider
    from ..store.models import AuditEvent, BrowserSession, User
    from ..web.csrf import Csrf

log = logging.getLogger("idbroker.account")

NOTICES = {
    "profile": N_("Your profile was saved."),
    "email": N_("Check the new mailbox: we sent a link to confirm the new address. "
                "Your current address stays in use until then."),
    "password": N_("Your password was changed."),
    "session": N_("The session was signed out."),
    "app": N_("The application's access was revoked."),
    "phone_sent": N_("We sent a code to your phone number. Enter it to confirm the number."),
    "phone": N_("Your phone number is confirmed."),
}
# What a change of credentials or "sign out everywhere" signed out (AccountService.sign_out_others),
# said after its notice: by default the applications lose their access too; keep_apps keeps it.
SIGNED_OUT = N_("Your other sessions were signed out, and applications you signed in to there lost their access.")
SIGNED_OUT_APPS_KEPT = N_("Your other sessions were signed out. Connected applications keep their access.")
SIGNS_OUT = frozenset({"password", "sessions"})
KEEP_APPS = "keep_apps"  # the checkbox of the forms that sign the rest out
PHONE_CODE_WRONG = N_("That code is not right. Check the latest message and try again.")
PHONE_WAIT = N_("Please wait %(seconds)d seconds before asking for a new code.")
PHONE_SMS_TEXT = N_("Your %(issuer)s code to confirm this phone number: %(code)s")
PHONE_NOT_SENT = N_("We could not send the message. Please try again in a few minutes.")
VERIFY_PHONE = "verify_phone"
CHANGE_EMAIL_SUBJECT = N_("Confirm your new email address")


def keeps_apps(form: Any) -> bool:
    return field(form, KEEP_APPS, 8) == "yes"


def signed_out_notice(kept_apps: bool) -> str:
    return SIGNED_OUT_APPS_KEPT if kept_apps else SIGNED_OUT


def notices(request: Request, messages: dict[str, str], signs_out: frozenset[str]) -> list[str]:
    """The notices of a page reached by `_done` (?done=what[&apps=kept])."""
    done = request.query_params.get("done", "")
    found = [messages[done]] if done in messages else []
    if done in signs_out:
        found.append(signed_out_notice(request.query_params.get("apps") == "kept"))
    return found


def session_view(row: BrowserSession, current_sid: str, lang: str) -> dict[str, Any]:
    browser, system = describe_device(row.user_agent)
    signed_in = aware(row.auth_time).astimezone(UTC)
    try:
        shown = format_datetime(signed_in, format="medium", tzinfo=UTC, locale=SUPPORTED.get(lang, "en")) + " UTC"
    except (ValueError, LookupError):
        shown = signed_in.strftime("%Y-%m-%d %H:%M UTC")
    return {"sid": row.sid, "current": row.sid == current_sid, "browser": browser, "system": system,
            "ip": row.ip, "signed_in": shown, "signed_in_iso": signed_in.isoformat()}


def activity_view(row: AuditEvent, lang: str) -> dict[str, Any]:
    """One line of "Recent security activity"."""
    when = aware(row.created_at).astimezone(UTC)
    try:
        shown = format_datetime(when, format="medium", tzinfo=UTC, locale=SUPPORTED.get(lang, "en")) + " UTC"
    except (ValueError, LookupError):
        shown = when.strftime("%Y-%m-%d %H:%M UTC")
    browser, system = describe_device(row.user_agent) if row.user_agent else ("", "")
    return {"kind": row.kind, "text": audit.DESCRIPTIONS[row.kind], "ip": row.ip, "when": shown,
            "when_iso": when.isoformat(), "browser": browser, "system": system}


def done_redirect(views: HostedPages, path: str, what: str, deliveries: list[Delivery] | None = None, *,
                  kept_apps: bool = False) -> Response:
    """Back to `path` with its notice; back-channel logouts are sent after the response."""
    query = {"done": what, **({"apps": "kept"} if kept_apps else {})}
    response = views.redirect(path + "?" + urlencode(query))
    if deliveries:
        response.background = BackgroundTask(views.provider.signout.notify, deliveries)
    return response


class AccountViews(HostedPages):
    def __init__(self, provider: Provider, journey: Journey, csrf: Csrf):
        super().__init__(provider, journey, csrf)
        self.accounts = self.provider.accounts

    def routes(self) -> list[Route]:
        return [
            Route("/account", self.account, methods=["GET"]),
            Route("/account/profile", self.profile, methods=["POST"]),
            Route("/account/email", self.email, methods=["POST"]),
            Route("/account/email/confirm", self.confirm_email_form, methods=["GET"]),
            Route("/account/email/confirm", self.confirm_email, methods=["POST"]),
            Route("/account/password", self.password, methods=["POST"]),
            Route("/account/phone/send", self.send_phone_code, methods=["POST"]),
            Route("/account/phone/verify", self.verify_phone, methods=["POST"]),
            Route("/account/sessions/end", self.end_session, methods=["POST"]),
            Route("/account/sessions/end-others", self.end_other_sessions, methods=["POST"]),
            Route("/account/apps/revoke", self.revoke_app, methods=["POST"]),
            Route("/account/delete", self.delete_form, methods=["GET"]),
            Route("/account/delete", self.delete, methods=["POST"]),
        ]

    # -- the page ---------------------------------------------------------------------------------
    async def _render(self, request: Request, session: BrowserSession, user: User, status: int = 200,
                      **context: Any) -> Response:
        sessions, apps = await run_in_threadpool(self._lists, user.id)
        lang = self.pages.language(request, user_locale=user.locale)
        events = await run_in_threadpool(self.provider.audit.events, user.id, 30)
        context.setdefault("activity", [activity_view(e, lang) for e in events if e.kind in audit.DESCRIPTIONS][:10])
        context.setdefault("errors", {})
        context.setdefault("profile", {"given_name": user.given_name or "", "family_name": user.family_name or "",
                                       "locale": user.locale or "", "phone_number": user.phone_number or ""})
        context.setdefault("new_email", "")
        return self.page(request, "account/account.html", status, user=user, nav="account",
                         sessions=[session_view(s, session.sid, lang) for s in sessions],
                         apps=apps, scope_text=SCOPE_TEXT, min_password=self.provider.password_policy.min_length,
                         max_password=self.provider.password_policy.max_length, **context)

    def _lists(self, user_id: int) -> tuple[list[Any], list[Any]]:
        return self.accounts.live_sessions(user_id), self.accounts.connected_apps(user_id)

    async def account(self, request: Request) -> Response:
        found = self.signed_in(request)
        if found is None:
            return self.to_login(request)
        return await self._render(request, *found, notice=notices(request, NOTICES, SIGNS_OUT))

    def _done(self, what: str, deliveries: list[Delivery] | None = None, *, kept_apps: bool = False) -> Response:
        """Back to the account page; back-channel logouts are sent after the response."""
        return done_redirect(self, "/account", what, deliveries, kept_apps=kept_apps)

    async def _guarded(self, request: Request) -> tuple[Any, BrowserSession, User] | Response:
        """The form, session and user of a POST; or the response when signed out or the CSRF
        token is missing or wrong."""
        form = await self.form(request)
        found = self.signed_in(request)
        if found is None:
            return self.to_login(request)
        if not self.csrf.valid(request, field(form, "csrf_token", 256)):
            return self.form_expired(request)
        return form, found[0], found[1]

    # -- profile ------------------------------------------------------------------------------------
    async def profile(self, request: Request) -> Response:
        guarded = await self._guarded(request)
        if isinstance(guarded, Response):
            return guarded
        form, session, user = guarded
        submitted = {name: field(form, name, 300) for name in ("given_name", "family_name", "locale", "phone_number")}
        checked = check_profile(submitted)
        if checked.errors:
            return await self._render(request, session, user, 400, errors=checked.errors, profile=submitted)
        await run_in_threadpool(self.accounts.update_profile, user.id, checked.values)
        return self._done("profile")

    # -- phone: re-verified by a code sent to the number -------------------------------------------
    async def send_phone_code(self, request: Request) -> Response:
        guarded = await self._guarded(request)
        if isinstance(guarded, Response):
            return guarded
        _, session, user = guarded
        if not user.phone_number or user.phone_number_verified:
            return self._done("profile")
        refused = await run_in_threadpool(self.provider.limiter.hit_all, send_rules(
            "phone", user.phone_number, account=user.id, ip=client_ip(request),
            interval=self.settings.resend_interval))
        if refused is not None:
            wait = refused[1]
            return await self._render(request, session, user, 429, errors={"phone_code": Problem(
                PHONE_WAIT, {"seconds": wait})}, headers={"Retry-After": str(wait)})
        _, code = await run_in_threadpool(self.provider.one_time.issue, user.id, VERIFY_PHONE,
                                          self.settings.verification_ttl, new_value=user.phone_number,
                                          with_code=True)
        lang = self.pages.catalogs.negotiate(user.locale, self.pages.language(request, user_locale=user.locale))
        text = self.pages.catalogs.get(lang).gettext(PHONE_SMS_TEXT) % {"issuer": self.settings.totp_issuer,
                                                                        "code": code}
        try:
            await run_in_threadpool(self.provider.sms.send, user.phone_number, text)
        except SmsError:
            return await self._render(request, session, user, 502,
                                      errors={"phone_code": Problem(PHONE_NOT_SENT)})
        return self._done("phone_sent")

    async def verify_phone(self, request: Request) -> Response:
        guarded = await self._guarded(request)
        if isinstance(guarded, Response):
            return guarded
        form, session, user = guarded
        code = field(form, "code", 20).replace(" ", "")
        row = await run_in_threadpool(self.provider.one_time.redeem_code, user.id, VERIFY_PHONE, code)
        # The code confirms the number it was sent to, and only while that is still the user's.
        if row is None or row.new_value != user.phone_number:
            return await self._render(request, session, user, 400,
                                      errors={"phone_code": Problem(PHONE_CODE_WRONG)})
        await run_in_threadpool(self.accounts.confirm_phone, user.id, row.new_value)
        return self._done("phone")

    # -- email ------------------------------------------------------------------------------------
    async def email(self, request: Request) -> Response:
        guarded = await self._guarded(request)
        if isinstance(guarded, Response):
            return guarded
        form, session, user = guarded
        submitted = field(form, "new_email", 400).strip()
        password = field(form, "current_password", MAX_PASSWORD)
        errors: dict[str, Problem] = {}
        try:
            new_email = self.accounts.check_new_email(user, submitted)
        except AccountError as exc:
            errors["new_email"] = exc.problem
            new_email = ""
        # The password is checked even when the address is wrong: same time either way.
        if not await run_in_threadpool(self.accounts.password_matches, user, password):
            errors["email_password"] = Problem(WRONG_PASSWORD)
        if errors:
            return await self._render(request, session, user, 400, errors=errors, new_email=submitted)
        refused = await run_in_threadpool(self.provider.limiter.hit_all, send_rules(
            "email-change", new_email, account=user.id, ip=client_ip(request),
            interval=self.settings.resend_interval))
        token = await run_in_threadpool(self.accounts.start_email_change, user, new_email) if refused is None \
            else None
        response = self._done("email")
        if token is not None:  # the same answer when the address belongs to someone else, or past a limit
            # Mail goes out in the user's language when they chose one, else the page's.
            lang = self.pages.catalogs.negotiate(user.locale, self.pages.language(request, user_locale=user.locale))
            response.background = BackgroundTask(self._send_change_mail, new_email, token, lang)
        return response

    def _send_change_mail(self, to: str, token: str, lang: str) -> None:
        link = self.issuer + "/account/email/confirm?" + urlencode({"token": token})
        minutes = max(1, self.provider.settings.verification_ttl // 60)
        context = {"link": link, "email": to, "minutes": minutes}
        subject = self.pages.catalogs.get(lang).gettext(CHANGE_EMAIL_SUBJECT)
        text = self.pages.render_text("account/change_email_mail.txt", lang, **context)
        html = self.pages.render_text("account/change_email_mail.html", lang, **context)
        try:
            self.provider.mailer.send(to, subject, text, html)
        except MailError:
            log.warning("the change-of-address mail could not be sent")

    async def confirm_email_form(self, request: Request) -> Response:
        """The link from the mail shows a button: mail scanners that fetch links do not use it up."""
        token = request.query_params.get("token", "")
        pending = await run_in_threadpool(self.accounts.pending_email_change, token)
        if pending is None:
            return self.journey.error_page(request, LINK_INVALID, 400)
        return self.page(request, "account/confirm_email.html", token=token, new_email=pending.new_value)

    async def confirm_email(self, request: Request) -> Response:
        form = await self.form(request)
        if not self.csrf.valid(request, field(form, "csrf_token", 256)):
            return self.form_expired(request)
        try:
            user, _ = await run_in_threadpool(self.accounts.confirm_email_change, field(form, "token", 200))
        except AccountError as exc:
            return self.journey.error_page(request, exc.problem.message, 400)
        # The new address signs in from now on: everything else signed in as the user is signed
        # out, except this browser when it is signed in as them.
        found = self.signed_in(request)
        here = found[0].sid if found is not None and found[1].id == user.id else None
        keep_apps = keeps_apps(form)
        deliveries = await run_in_threadpool(self.accounts.sign_out_others, user.id, user.sub, here,
                                             keep_apps=keep_apps)
        response = self.page(request, "account/email_changed.html", new_email=user.email,
                             signed_in=found is not None, signed_out=signed_out_notice(keep_apps))
        if deliveries:
            response.background = BackgroundTask(self.provider.signout.notify, deliveries)
        return response

    # -- password ---------------------------------------------------------------------------------
    async def password(self, request: Request) -> Response:
        guarded = await self._guarded(request)
        if isinstance(guarded, Response):
            return guarded
        form, session, user = guarded
        current = field(form, "current_password", MAX_PASSWORD)
        new = field(form, "new_password", MAX_PASSWORD)
        errors: dict[str, Problem] = {}
        if not await run_in_threadpool(self.accounts.password_matches, user, current):
            errors["current_password"] = Problem(WRONG_PASSWORD)
        try:
            await run_in_threadpool(self.accounts.check_new_password, user, new)  # may ask the range API
        except AccountError as exc:
            errors["new_password"] = exc.problem
        if errors:
            return await self._render(request, session, user, 400, errors=errors)
        keep_apps = keeps_apps(form)
        deliveries = await run_in_threadpool(self.accounts.change_password, user.id, new, keep_sid=session.sid,
                                             keep_apps=keep_apps)
        await run_in_threadpool(self.provider.audit.record, audit.PASSWORD_CHANGED, user_id=user.id, notify=True,
                                ip=client_ip(request),
                                user_agent=request.headers.get("user-agent"), method="change")
        return self._done("password", deliveries, kept_apps=keep_apps)

    # -- sessions -----------------------------------------------------------------------------------
    async def end_session(self, request: Request) -> Response:
        guarded = await self._guarded(request)
        if isinstance(guarded, Response):
            return guarded
        form, session, user = guarded
        sid = field(form, "sid", 64)
        if sid == session.sid:  # this browser: the normal sign-out, which also tells the apps
            return self.redirect("/oauth2/logout")
        deliveries = await run_in_threadpool(self.accounts.end_session, user, sid)
        return self._done("session", deliveries)

    async def end_other_sessions(self, request: Request) -> Response:
        guarded = await self._guarded(request)
        if isinstance(guarded, Response):
            return guarded
        form, session, user = guarded
        keep_apps = keeps_apps(form)
        deliveries = await run_in_threadpool(self.accounts.end_other_sessions, user, session.sid, keep_apps=keep_apps)
        return self._done("sessions", deliveries, kept_apps=keep_apps)

    # -- connected applications -------------------------------------------------------------------
    async def revoke_app(self, request: Request) -> Response:
        guarded = await self._guarded(request)
        if isinstance(guarded, Response):
            return guarded
        form, _, user = guarded
        await run_in_threadpool(self.accounts.revoke_app, user.id, field(form, "client_id", 255))
        return self._done("app")

    # -- deletion -----------------------------------------------------------------------------------
    async def delete_form(self, request: Request) -> Response:
        found = self.signed_in(request)
        if found is None:
            return self.to_login(request)
        return self._delete_page(request, found[1])

    def _delete_page(self, request: Request, user: User, status: int = 200, error: Problem | None = None
                     ) -> Response:
        return self.page(request, "account/delete.html", status, user=user, nav="account", error=error,
                         needs_password=bool(user.password_hash))

    async def delete(self, request: Request) -> Response:
        guarded = await self._guarded(request)
        if isinstance(guarded, Response):
            return guarded
        form, _, user = guarded
        confirm = field(form, "confirm", MAX_PASSWORD)
        if user.password_hash:
            ok = await run_in_threadpool(self.accounts.password_matches, user, confirm)
        else:
            ok = confirm.strip().lower() == user.email
        if not ok:
            return self._delete_page(request, user, 400, Problem(DELETE_CONFIRM_WRONG))
        deliveries = await run_in_threadpool(self.accounts.delete_account, user)
        log.info("account %s deleted by its owner", user.sub)
        response = self.pages.render(request, "account/goodbye.html", user_locale=user.locale)
        response.delete_cookie(self.journey.session_cookie, path="/")
        response.background = BackgroundTask(self.provider.signout.notify, deliveries)
        return response
