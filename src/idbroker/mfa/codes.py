"""Codes sent to the user: by text message (SMS) to a phone number, or by mail to the account's
address. Each code is 6 digits, good for CODE_TTL seconds and for one use, with at most 5 tries
(accounts/one_time.py); sending a new one voids the previous one. Only one code is sent per
``resend_interval`` seconds, and at most LIMITS "mfa-send" per number or address and per account,
"mfa-send-ip" per client address (accounts/throttle.py send_rules): setting up a text-message
factor sends to a number the user typed."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..accounts.lifecycle import PHONE_INVALID
from ..accounts.throttle import send_rules
from ..notify.mail import MailError
from ..notify.sms import SmsError, mask_phone
from ..phone import normalise_phone
from ..store.db import utcnow
from ..text import N_
from .base import Attempt, FactorError

if TYPE_CHECKING:
    from ..accounts.one_time import OneTimeTokens
    from ..accounts.throttle import RateLimiter
    from ..notify.mail import Mailer
    from ..notify.sms import SmsSender
    from ..settings import MfaSettings, SignupSettings
    from ..store.models import MfaFactor
    from .service import MfaService

log = logging.getLogger("idbroker.mfa")

PURPOSE = "mfa_code"
CODE_TTL = 600
NOT_SENT = N_("The code could not be sent. Please try again later.")
WAIT = N_("A code was sent a moment ago. Please wait %(seconds)d seconds before asking for another one.")
TOO_MANY_SENT = N_("Too many codes were sent. Please try again in %(minutes)d minutes.")
CODE_WRONG = N_("That code is not right, or it has expired. Ask for a new code if needed.")
SMS_TEXT = N_("%(code)s is your sign-in code for %(issuer)s. Do not share it.")
MAIL_SUBJECT = N_("Your sign-in code")


class _CodeFactor:
    kind = ""
    amr = "otp"
    label = ""
    challenge = True

    def __init__(self, mfa: MfaService, one_time: OneTimeTokens, limiter: RateLimiter, signup: SignupSettings):
        self.mfa = mfa
        self.one_time = one_time
        self.limiter = limiter
        self.signup = signup  # resend_interval

    # -- sending -----------------------------------------------------------------------------------
    def _deliver(self, attempt: Attempt, code: str) -> None:
        raise NotImplementedError

    def _target(self, attempt: Attempt) -> str:
        """Where the code goes (a phone number, an address)."""
        raise NotImplementedError

    def begin(self, attempt: Attempt) -> dict[str, Any]:
        """Sends a fresh code for attempt.factor (enrolled or pending)."""
        factor = attempt.factor
        assert factor is not None
        interval = self.signup.resend_interval
        last = self.one_time.last_issued(attempt.user.id, PURPOSE)
        if last is not None and interval > 0 and utcnow() - last < timedelta(seconds=interval):
            left = interval - int((utcnow() - last).total_seconds())
            raise FactorError(WAIT, seconds=max(1, left))
        refused = self.limiter.hit_all(send_rules("mfa", self._target(attempt), account=attempt.user.id,
                                                  ip=attempt.ip, interval=interval))
        if refused is not None:
            rule, wait = refused
            if rule.per == "interval":  # another account sent a code to this number moments ago
                raise FactorError(WAIT, seconds=wait)
            raise FactorError(TOO_MANY_SENT, seconds=wait, minutes=-(-wait // 60))
        _, code = self.one_time.issue(attempt.user.id, PURPOSE, CODE_TTL, new_value=factor.id, with_code=True)
        assert code is not None
        try:
            self._deliver(attempt, code)
        except (SmsError, MailError) as exc:
            log.warning("second-factor code not sent (%s): %s", self.kind, exc)
            raise FactorError(NOT_SENT) from exc
        return {"sent_to": self.describe(factor)}

    def _redeem(self, attempt: Attempt) -> bool:
        factor = attempt.factor
        assert factor is not None
        code = "".join(ch for ch in attempt.value("code", 32) if ch in "0123456789")
        if len(code) != 6:
            return False
        row = self.one_time.redeem_code(attempt.user.id, PURPOSE, code)
        return row is not None and row.new_value == factor.id

    # -- enrolment and use -----------------------------------------------------------------------
    def confirm(self, attempt: Attempt) -> bool:
        if not self._redeem(attempt):
            raise FactorError(CODE_WRONG)
        assert attempt.factor is not None
        return self.mfa.confirm(attempt.factor.id)

    def verify(self, attempt: Attempt) -> bool:
        if not self._redeem(attempt):
            return False
        assert attempt.factor is not None
        self.mfa.touch(attempt.factor.id)
        return True


class SmsFactor(_CodeFactor):
    kind = "sms"
    amr = "sms"  # RFC 8176: confirmation using SMS text message
    label = N_("Text message")

    def __init__(self, sms: SmsSender, mfa: MfaService, one_time: OneTimeTokens, limiter: RateLimiter,
                 signup: SignupSettings, *, names: MfaSettings, issuer: str):
        super().__init__(mfa, one_time, limiter, signup)
        self.sms = sms
        self.names = names  # totp_issuer: how the text names the broker
        self.host = urlsplit(issuer).netloc

    def enrol(self, attempt: Attempt) -> tuple[MfaFactor, dict[str, Any]]:
        factor = attempt.factor
        if factor is None:
            raw = attempt.form.get("phone")
            phone = normalise_phone(raw if isinstance(raw, str) else None)  # too long: refused, not cut
            if phone is None:
                raise FactorError(PHONE_INVALID)
            factor = self.mfa.add_pending(attempt.user.id, self.kind, data={"phone": phone})
            attempt.factor = factor
            return factor, self.begin(attempt)
        return factor, {"sent_to": self.describe(factor)}

    def _deliver(self, attempt: Attempt, code: str) -> None:
        assert attempt.factor is not None and attempt.factor.data
        text = attempt.gettext(SMS_TEXT) % {"code": code, "issuer": self.names.totp_issuer}
        # Origin-bound one-time code line: browsers offer the code to this site only.
        text += f"\n\n@{self.host} #{code}"
        self.sms.send(self._target(attempt), text)

    def _target(self, attempt: Attempt) -> str:
        assert attempt.factor is not None and attempt.factor.data
        return str(attempt.factor.data["phone"])

    def describe(self, factor: MfaFactor) -> str:
        return mask_phone((factor.data or {}).get("phone", ""))


class EmailFactor(_CodeFactor):
    kind = "email"
    amr = "otp"  # RFC 8176 has no value for mail; a one-time code is an OTP
    label = N_("Email")

    def __init__(self, mailer: Mailer, mfa: MfaService, one_time: OneTimeTokens, limiter: RateLimiter,
                 signup: SignupSettings):
        super().__init__(mfa, one_time, limiter, signup)
        self.mailer = mailer

    def enrol(self, attempt: Attempt) -> tuple[MfaFactor, dict[str, Any]]:
        factor = attempt.factor
        if factor is None:
            factor = self.mfa.add_pending(attempt.user.id, self.kind, data={"email": attempt.user.email})
            attempt.factor = factor
            return factor, self.begin(attempt)
        return factor, {"sent_to": self.describe(factor)}

    def _target(self, attempt: Attempt) -> str:
        # The account's current address: a change of address moves the factor with it.
        return attempt.user.email

    def _deliver(self, attempt: Attempt, code: str) -> None:
        assert attempt.render_text is not None
        text = attempt.render_text("mail/mfa_code.txt", code=code, minutes=CODE_TTL // 60)
        self.mailer.send(self._target(attempt), attempt.gettext(MAIL_SUBJECT), text)

    def describe(self, factor: MfaFactor) -> str:
        email = (factor.data or {}).get("email", "")
        local, _, domain = email.partition("@")
        return f"{local[:1]}•••@{domain}" if domain else ""
