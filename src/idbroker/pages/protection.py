"""The password check of the sign-in page, guarded by the failed-login throttle
(accounts/throttle.py) and recorded in the audit trail.

While the (account, address) pair, the address or the account is locked, the password is not
checked at all - a locked answer tells nothing about the password - and the page answers 429 with
Retry-After and the wait in words. The same holds for addresses that have no account, so a lock
tells nothing about who has one. The first failure that locks the account (from one address, or
everywhere) is recorded as ACCOUNT_LOCKED, which mails the owner - at most one such mail an hour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from babel.dates import format_timedelta
from starlette.requests import Request

from .. import audit
from ..accounts.throttle import LIMITS, subject
from ..text import N_, SUPPORTED
from ..web.proxies import client_ip as client_ip  # the one function naming the client address

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ..accounts.password_ways import PasswordOutcome
    from ..provider import Provider
    from ..store.models import User
    from ..web.templating import Pages

TOO_MANY = N_("Too many attempts. Try again in %(wait)s.")


@dataclass
class PasswordCheck:
    user: User | None          # the account, when the password was right
    retry_after: int = 0       # > 0: refused without checking the password
    result: Any = None         # what the sign-in's write returned
    message: str | None = None  # why not, when it is not a wrong password (a message id)
    params: dict[str, Any] = field(default_factory=dict)  # for the message
    status: int = 401           # the page's status: 503 when a way could not be asked, 403 refused




def check_password(provider: Provider, email: str, password: str, ip: str | None, user_agent: str | None,
                   sign_in: Callable[[PasswordOutcome], Callable[[Session], Any]] | None = None) -> PasswordCheck:
    """Throttle, then authenticate (accounts/password_ways.py: a directory, the local pool, the
    migration sources); records the outcome. Blocking: run it in the thread pool.

    Two writes on success: the attempt, counted before the password is checked, then one
    transaction that takes it back, with the caller's sign-in (flow/door.py, which records
    LOGIN_SUCCEEDED): `sign_in(outcome)` runs first (its reads, outside the write) and returns the
    function that writes, called with the transaction; what it returns is in `.result`.

    A way that could not be asked (a directory or legacy source that is down) counts as a failed
    attempt, so that it cannot be used to try passwords past the lock."""
    throttle = provider.login_throttle
    attempt = throttle.attempt(email, ip)
    if attempt.retry_after:
        return PasswordCheck(None, attempt.retry_after)
    outcome = provider.password_sign_in.authenticate(email, password)
    user = outcome.user
    if user is not None and outcome.refused is None:
        write = sign_in(outcome) if sign_in is not None else None
        with provider.db.session() as s:
            throttle.succeeded(attempt, session=s)
            result = write(s) if write is not None else None
        return PasswordCheck(user, result=result)
    if outcome.refused is not None:  # the password was right: not a failure of the throttle's kind
        throttle.succeeded(attempt)
        provider.audit.record(audit.LOGIN_FAILED, user_id=user.id if user else None, ip=ip, user_agent=user_agent,
                              reason="refused", **outcome.detail)
        return PasswordCheck(None, message=outcome.refused, params=outcome.refused_params, status=403)
    attempt = throttle.failed(attempt)
    owner = provider.users.by_email(email)
    owner_id = owner.id if owner is not None else None
    if outcome.unavailable is not None:
        provider.audit.record(audit.LOGIN_FAILED, user_id=owner_id, ip=ip, user_agent=user_agent,
                              reason="unavailable", **outcome.detail)
    else:
        provider.audit.record(audit.LOGIN_FAILED, user_id=owner_id, ip=ip, user_agent=user_agent)
    if attempt.first_lock and owner_id is not None:
        limit, window = LIMITS["lock-mail"]
        mail = provider.limiter.hit(f"lock-mail:{subject(email)}", limit, window) is None
        provider.audit.record(audit.ACCOUNT_LOCKED, user_id=owner_id, ip=ip, user_agent=user_agent, notify=mail,
                              seconds=attempt.lock_seconds)
    return PasswordCheck(None, message=outcome.unavailable, status=503 if outcome.unavailable else 401)


def wait_words(pages: Pages, lang: str, seconds: int) -> str:
    """`seconds` in words in `lang`, rounded up to whole minutes past one minute."""
    if seconds > 60:
        seconds = -(-seconds // 60) * 60
    locale = SUPPORTED.get(lang, "en")
    try:
        return format_timedelta(timedelta(seconds=max(1, seconds)), threshold=1.0, locale=locale)
    except (ValueError, LookupError):
        return f"{seconds} s"


def too_many(pages: Pages, request: Request, seconds: int, *, ui_locales: str | None = None,
             user_locale: str | None = None) -> tuple[str, dict[str, Any]]:
    """(the message in the page's language, the response headers) of a refused attempt."""
    lang = pages.language(request, ui_locales=ui_locales, user_locale=user_locale)
    text = pages.catalogs.get(lang).gettext(TOO_MANY) % {"wait": wait_words(pages, lang, seconds)}
    return text, {"Retry-After": str(seconds)}


def limit(provider: Provider, name: str, who: str | int) -> int | None:
    """One event of the rate limit `name` (accounts/throttle.py LIMITS) for `who`: None when
    allowed, else the seconds to wait."""
    count, window = LIMITS[name]
    return provider.limiter.hit(f"{name}:{who}", count, window)
