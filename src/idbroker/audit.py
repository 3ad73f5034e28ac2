"""Security events: recorded in the audit trail (audit_events) and, for the ones a user should
know about, mailed to them in their language.

``record`` writes the event, then - for the kinds in NOTIFY, or any kind in MAILS when the caller
passes ``notify=True`` - queues a mail to the user: in their chosen language, else the default;
subject from MAILS, body from ``templates/mail/security_*.txt`` (themes may override them). The mail
is sent by a background thread, so ``record`` never waits for the mail server; ``drain`` waits for
the queued mails (tests, shutdown).

The templates and catalogs belong to the web layer, above this one: the composition root hands
``Audit`` a ``MailTexts`` built on them, and the names of the second-factor kinds as data.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC
from typing import TYPE_CHECKING, Any, Protocol

from markupsafe import Markup
from sqlalchemy import event, insert, select

from .accounts.sessions import describe_device
from .store.db import aware, utcnow
from .store.models import AuditEvent, User
from .text import N_, SUPPORTED

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from .notify.mail import Mailer
    from .store.db import Database

log = logging.getLogger("idbroker.audit")

# Event kinds. Those in NOTIFY are mailed to the user.
MFA_ENROLLED = "mfa.enrolled"
MFA_REMOVED = "mfa.removed"
RECOVERY_CODE_USED = "mfa.recovery_code_used"
RECOVERY_CODES_REGENERATED = "mfa.recovery_codes_regenerated"
ACCOUNT_LOCKED = "login.locked"
LOGIN_FAILED = "login.failed"
LOGIN_SUCCEEDED = "login.succeeded"
PASSWORD_CHANGED = "account.password_changed"
AWS_CREDENTIALS_ISSUED = "credentials.aws_issued"      # detail: client_id, role_arn, duration
AWS_CREDENTIALS_REFUSED = "credentials.aws_refused"    # detail: client_id, role_arn asked, error
USER_MIGRATED = "user.migrated"  # created from a lazy-migration source (migration/lazy.py)
MIGRATION_SOURCE_UNAVAILABLE = "migration.source_unavailable"  # a source could not be asked
TOKEN_EXCHANGED = "token.exchanged"  # RFC 8693 exchange at the token endpoint, issued or refused
ADMIN_CALL = "admin.call"  # an admin API call: method, path (template), client_id, status
ADMIN_ACTION = "admin.action"  # an action on the admin pages (pages/admin.py): user_id the admin; action, target
# SCIM provisioning writes (endpoints/scim.py): detail client_id and the resource id (sub or group id)
SCIM_USER_CREATED = "scim.user_created"
SCIM_USER_UPDATED = "scim.user_updated"  # PUT or PATCH; detail deactivated=True when it ended the sessions
SCIM_USER_DELETED = "scim.user_deleted"
SCIM_GROUP_CREATED = "scim.group_created"
SCIM_GROUP_UPDATED = "scim.group_updated"
SCIM_GROUP_DELETED = "scim.group_deleted"
CLIENT_REGISTERED = "client.registered"  # RFC 7591 dynamic registration: client_id, client_name
CLIENT_UPDATED = "client.updated"        # RFC 7592 update by the client's registration access token
CLIENT_DELETED = "client.deleted"        # RFC 7592 delete by the client's registration access token
NOTIFY = frozenset({MFA_ENROLLED, MFA_REMOVED, RECOVERY_CODE_USED, RECOVERY_CODES_REGENERATED, ACCOUNT_LOCKED})

# kind -> (mail subject, mail template). PASSWORD_CHANGED mails only when asked (the reset page
# sends its own message).
MAILS = {
    ACCOUNT_LOCKED: (N_("Sign-in to your account was paused after failed attempts"), "mail/security_locked.txt"),
    MFA_ENROLLED: (N_("A sign-in method was added to your account"), "mail/security_mfa_enrolled.txt"),
    MFA_REMOVED: (N_("A sign-in method was removed from your account"), "mail/security_mfa_removed.txt"),
    RECOVERY_CODE_USED: (N_("A recovery code was used to sign in to your account"),
                         "mail/security_recovery_code_used.txt"),
    RECOVERY_CODES_REGENERATED: (N_("New recovery codes were created for your account"),
                                 "mail/security_recovery_codes_regenerated.txt"),
    PASSWORD_CHANGED: (N_("Your password was changed"), "mail/security_password_changed.txt"),
}
_INSERT = insert(AuditEvent.__table__)  # built once: every sign-in records an event

# How the account page's "Recent security activity" names each kind.
DESCRIPTIONS = {
    LOGIN_SUCCEEDED: N_("Successful sign-in"),
    LOGIN_FAILED: N_("Failed sign-in attempt"),
    ACCOUNT_LOCKED: N_("Sign-in paused after failed attempts"),
    PASSWORD_CHANGED: N_("Password changed"),
    MFA_ENROLLED: N_("Sign-in method added"),
    MFA_REMOVED: N_("Sign-in method removed"),
    RECOVERY_CODE_USED: N_("Recovery code used"),
    RECOVERY_CODES_REGENERATED: N_("New recovery codes created"),
}


class MailTexts(Protocol):
    """A mail's words in a language of the catalogs, from templates a theme may override."""

    def language(self, user_locale: str | None) -> str:
        """The user's language if the catalogs have it, else the default."""
        ...

    def gettext(self, lang: str, message: str) -> str: ...

    def render(self, template: str, lang: str, **context: Any) -> str: ...


class Audit:
    def __init__(self, db: Database, mailer: Mailer, texts: MailTexts, *, issuer: str,
                 method_labels: Mapping[str, str],
                 on_record: Callable[[str, Mapping[str, Any]], None] | None = None):
        """`method_labels`: second-factor kind -> message id of its name, for the mails that name one.
        `on_record(kind, detail)`: told of every event (the metrics count them; it must not raise)."""
        self.on_record = on_record
        self.db = db
        self.mailer = mailer
        self.texts = texts
        self.issuer = issuer
        self.method_labels = method_labels
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def record(self, kind: str, *, user_id: int | None = None, ip: str | None = None,
               user_agent: str | None = None, notify: bool | None = None, session: Session | None = None,
               **detail: Any) -> None:
        """Never raises: a failed audit write is logged, the user's action goes on. `notify`:
        mail the user (default: when the kind is in NOTIFY).

        With `session`, the event joins that transaction instead of writing one of its own: it is
        recorded if and only if the caller's changes are (a failure there is the caller's), and
        its mail is queued once they are committed."""
        now = utcnow()
        row = dict(user_id=user_id, kind=kind, ip=ip, user_agent=(user_agent or "")[:512] or None,
                   detail=detail or None, created_at=now)
        mail = (kind in NOTIFY if notify is None else notify) and user_id is not None and kind in MAILS
        if self.on_record is not None:
            self.on_record(kind, detail)
        if session is not None:
            session.connection().execute(_INSERT, row)
            log.info("security event %s user=%s", kind, user_id)
            if mail:
                assert user_id is not None
                event.listen(session, "after_commit", lambda _s: self._queue(kind, user_id, ip, user_agent, now,
                                                                               detail), once=True)
            return
        try:
            with self.db.session() as s:
                s.connection().execute(_INSERT, row)
        except Exception:  # noqa: BLE001 - the audit trail must not break sign-in
            log.exception("audit event %s not recorded", kind)
        log.info("security event %s user=%s", kind, user_id)
        if mail:
            assert user_id is not None
            self._queue(kind, user_id, ip, user_agent, now, detail)

    # -- mail to the user -------------------------------------------------------------------------
    def _queue(self, kind: str, user_id: int, ip: str | None, user_agent: str | None, when: Any,
               detail: dict[str, Any]) -> None:
        with self._lock:
            future = _sender().submit(self._mail, kind, user_id, ip, user_agent, when, detail)
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def drain(self, timeout: float = 10.0) -> None:
        """Waits until the queued mails are sent (or failed)."""
        with self._lock:
            pending = list(self._pending)
        wait(pending, timeout=timeout)

    def _mail(self, kind: str, user_id: int, ip: str | None, user_agent: str | None, when: Any,
              detail: dict[str, Any]) -> None:
        try:
            with self.db.session(write=False) as s:
                user = s.get(User, user_id)
            if user is None or user.disabled:
                return
            subject, template = MAILS[kind]
            texts = self.texts
            lang = texts.language(user.locale)
            method = detail.get("method")
            issuer = self.issuer
            context = {k: Markup(v) if isinstance(v, str) else v for k, v in detail.items()}
            context.update(
                issuer=Markup(issuer), email=Markup(user.email), ip=Markup(ip or ""),
                when=Markup(_format_when(aware(when), lang)), device=Markup(_device(user_agent, texts, lang)),
                method_name=Markup(texts.gettext(lang, self.method_labels.get(method) or method) if method else ""),
                account_link=Markup(issuer + "/account"), security_link=Markup(issuer + "/account/security"),
                reset_link=Markup(issuer + "/forgot-password"))
            self.mailer.send(user.email, texts.gettext(lang, subject), texts.render(template, lang, **context))
        except Exception:  # noqa: BLE001 - a broken mail setup must not break anything else
            log.exception("security mail %s not sent", kind)

    def events(self, user_id: int, limit: int = 50) -> list[AuditEvent]:
        with self.db.session(write=False) as s:
            return list(s.scalars(select(AuditEvent).where(AuditEvent.user_id == user_id)
                                  .order_by(AuditEvent.id.desc()).limit(limit)))


_SENDER: ThreadPoolExecutor | None = None
_SENDER_LOCK = threading.Lock()


def _sender() -> ThreadPoolExecutor:
    """One mail thread per process, started at the first security mail (after any fork)."""
    global _SENDER
    with _SENDER_LOCK:
        if _SENDER is None:
            _SENDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="idbroker-security-mail")
        return _SENDER


def _format_when(when: Any, lang: str) -> str:
    from babel.dates import format_datetime

    moment = when.astimezone(UTC)
    try:
        return format_datetime(moment, format="medium", tzinfo=UTC, locale=SUPPORTED.get(lang, "en")) + " UTC"
    except (ValueError, LookupError):
        return moment.strftime("%Y-%m-%d %H:%M UTC")


def _device(user_agent: str | None, texts: MailTexts, lang: str) -> str:
    if not user_agent:
        return ""
    browser, system = describe_device(user_agent)
    return f"{texts.gettext(lang, browser)}, {texts.gettext(lang, system)}"
